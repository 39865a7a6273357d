"""Video cue figures, printed as one JSON object.

    .venv/bin/python benchmarks/video.py [--minutes 1] [--width 320] [--height 240] [--backend procedural]

- decode_s_per_min / onsets_s_per_min: decode_frames (grey, 64 px analysis frames) and
  detect_onsets wall time per minute of a synthetic 25 fps clip of the given size;
- onset_acc: Onset ACC (+/-0.1 s) of the detected hits against the clip's known flash times;
- cue_to_stems_s: plan_from_video + render_scene (procedural backend by default) for a 10 s
  range, split into its plan and render parts.
"""

from __future__ import annotations

import argparse
import fractions
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.eval.onsets import onset_accuracy  # noqa: E402
from engine.video.cue import plan_from_video  # noqa: E402
from engine.video.decode import decode_frames  # noqa: E402
from engine.video.onsets import detect_onsets  # noqa: E402

FPS = 25


def synth_clip(path: Path, *, seconds: float, width: int, height: int, seed: int = 0) -> list[float]:
    """A textured dark scene with a white flash roughly every 0.7-1.5 s; returns flash times."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * FPS)
    flash_frames, frame = [], int(rng.integers(10, 30))
    while frame < frames - 2:
        flash_frames.append(frame)
        frame += int(rng.integers(18, 38))
    texture = rng.integers(10, 50, (height, width, 3), dtype=np.uint8)
    ms = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = ms
        stream.options = {"preset": "veryfast", "bf": "0"}
        flashes = set(flash_frames)
        for index in range(frames):
            image = np.full_like(texture, 230) if index in flashes else texture
            video_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            video_frame.pts, video_frame.time_base = index * 1000 // FPS, ms
            for packet in stream.encode(video_frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return [index / FPS for index in flash_frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--backend", default="procedural")
    args = parser.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        truth = synth_clip(clip, seconds=seconds, width=args.width, height=args.height)
        started = time.perf_counter()
        video = decode_frames(clip)
        decoded = time.perf_counter()
        analysis = detect_onsets(video)
        analysed = time.perf_counter()
        found = [onset.time_s for onset in analysis.hits]
        result = {
            "clip": {"seconds": seconds, "width": args.width, "height": args.height, "fps": FPS,
                     "frames": len(video), "flashes": len(truth)},
            "decode_s_per_min": round((decoded - started) / args.minutes, 4),
            "onsets_s_per_min": round((analysed - decoded) / args.minutes, 4),
            "onset_acc": round(onset_accuracy(found, truth, tolerance_s=0.1), 4),
            "hits_detected": len(found),
        }
        result["cue_to_stems_s"] = cue_to_stems(clip, Path(tmp) / "stems", backend=args.backend,
                                                end_s=min(10.0, seconds))
    cpu = platform.processor() or platform.machine()
    result["machine"] = {"python": platform.python_version(), "cpu": cpu}
    print(json.dumps(result, indent=2))


def cue_to_stems(clip: Path, out: Path, *, backend: str, end_s: float) -> dict:
    from engine.errors import AudioAgentError
    from engine.generators import create_generator
    from engine.scene import render_scene
    from engine.render_settings import SceneLabels

    try:
        generator = create_generator(backend)
    except (AudioAgentError, ImportError) as error:
        return {"backend": backend, "error": f"backend unavailable: {error}"}
    started = time.perf_counter()
    result = plan_from_video(clip, start_s=0.0, end_s=end_s, hint="footsteps")
    planned = time.perf_counter()
    manifest = render_scene(result.plan, generator=generator, out_dir=out, labels=SceneLabels(backend))
    rendered = time.perf_counter()
    return {
        "backend": backend,
        "range_s": end_s,
        "events": len(manifest.events),
        "plan_s": round(planned - started, 4),
        "render_s": round(rendered - planned, 4),
        "total_s": round(rendered - started, 4),
    }


if __name__ == "__main__":
    main()
