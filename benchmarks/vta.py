"""VTA path timings on tiny random models (or real weights), printed as one JSON object.

    .venv/bin/python benchmarks/vta.py [--clips 4] [--steps 4] [--threads 1]
    .venv/bin/python benchmarks/vta.py --config my_vta.toml --data avsync15/test --clips 8  # real weights

Each phase runs through the real `audio-agent` commands: `vta units` (HuBERT layer-9 +
MiniBatchKMeans), `vta train stage1` / `stage2` (seconds per optimiser step), `video-cue
--generator vta` on a 2 s range with four flashes (seconds per stem), and `vta eval`. Without
--config the tiny models of the test suite are built first (their build time is reported too).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _tiny_world(root: Path, clips: int) -> tuple[Path, Path]:
    from tests.engine.video import tiny_vta

    data = root / "data"
    for index in range(clips):
        label = ("door_knock", "hammer", "dog_bark", "glass")[index % 4]
        (data / label).mkdir(parents=True, exist_ok=True)
        tiny_vta.flash_clip(data / label / f"take{index}.mp4", tone_hz=300.0 + 200 * index,
                            flash_every=5 + index)
    return data, tiny_vta.tiny_bases(root)


def _command(*argv: object) -> tuple[float, str]:
    from server.cli import main

    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{argv[:3]} failed ({code}): {err.getvalue().strip().splitlines()[-1:]}")
    return seconds, out.getvalue().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4, help="optimiser steps per stage")
    parser.add_argument("--denoise-steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--config", default=None, help="VTA config TOML naming real weights")
    parser.add_argument("--data", default=None, help="AVSync15-style folder (with --config)")
    parser.add_argument("--clusters", type=int, default=8)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from tests.engine.video import synth

    report: dict[str, object] = {"python": platform.python_version(), "torch": torch.__version__,
                                 "threads": args.threads, "clips": args.clips, "train_steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        if args.config:
            data, config = Path(args.data), Path(args.config)
        else:
            data, config = _tiny_world(root, args.clips)
            report["tiny_build_s"] = round(time.perf_counter() - started, 3)
        centroids, checkpoint = root / "centroids.npy", root / "ckpt"
        report["units_s"] = round(_command("vta", "units", data, "--out", centroids, "--config", config,
                                           "--clusters", args.clusters)[0], 3)
        for stage in ("stage1", "stage2"):
            extra = ["--centroids", centroids, "--config", config] if stage == "stage1" else []
            seconds, _ = _command("vta", "train", stage, data, "--out", checkpoint, "--steps", args.steps,
                                  "--save-every", args.steps, *extra)
            report[f"{stage}_s"] = round(seconds, 3)
            report[f"{stage}_s_per_step_incl_setup"] = round(seconds / args.steps, 3)
        video, flashes = synth.flashes(root / "flashes.mp4", [0.5, 1.3, 2.2, 2.6])
        seconds, out = _command("video-cue", video, "--start", 0.5, "--end", 2.5, "--out", root / "cue",
                                "--generator", "vta", "--checkpoint", checkpoint, "--steps", args.denoise_steps,
                                "--no-cache")
        stems = len(json.loads(Path(out.splitlines()[-1]).read_text())["events"])
        report.update(video_cue_s=round(seconds, 3), video_cue_stems=stems,
                      video_cue_s_per_stem=round(seconds / max(1, stems), 3))
        seconds, out = _command("vta", "eval", data, "--checkpoint", checkpoint, "--steps", args.denoise_steps)
        metrics = json.loads(out)
        report.update(eval_s=round(seconds, 3), eval_s_per_clip=round(seconds / max(1, metrics["n_clips"]), 3),
                      eval_mean=metrics["mean"])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
