"""Time the diffusion backends: seconds per stem and per 4-event scene, batched vs one call per
event. Prints one JSON object.

    python benchmarks/generate.py                      # tiny random models, whatever device is present
    python benchmarks/generate.py --backend auffusion --real --model auffusion/auffusion-full
    python benchmarks/generate.py --backend stable-audio --real --model /weights/stable-audio --steps 50

Without --real the tiny checkpoints of tests/engine/tiny_models.py are built in a temp folder,
so the figures measure our batching and glue, not a model. With --real the given Hub id or
folder is loaded (GPU strongly advised) and the events are a few seconds long.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BACKENDS = ("auffusion", "stable-audio", "audioldm2")
PROMPTS = ("a door slams shut", "steady rain on a tin roof", "a car engine idling", "birds singing at dawn")


def _tiny(backend: str, folder: Path) -> tuple[str, dict[str, Any], list[float]]:
    """Build a tiny checkpoint; return (model path, generator options, event lengths in s)."""
    from tests.engine import tiny_models

    if backend == "auffusion":
        path = tiny_models.build_tiny_auffusion(folder / backend)
        return str(path), {"clip_frames": 64, "pad_frames": 4, "overlap_s": 0.04}, [0.1, 0.2, 0.3, 0.6]
    if backend == "stable-audio":
        path = tiny_models.build_tiny_stable_audio(folder / backend)
        return str(path), {"overlap_s": 0.02, "length_quantum_s": 0.05}, [0.05, 0.1, 0.15, 0.2]
    path = tiny_models.build_tiny_audioldm2(folder / backend)
    return str(path), {"overlap_s": 0.02, "length_quantum_s": 0.1, "max_segment_s": 0.4}, [0.1, 0.1, 0.2, 0.2]


def _timed(call) -> tuple[float, Any]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def bench(backend: str, *, model: str, options: dict[str, Any], lengths: list[float], repeats: int) -> dict[str, Any]:
    from engine.generators import GenerationRequest, create_generator

    generator = create_generator(backend, model=model, **options)
    load_s, _ = _timed(generator.pipeline)
    requests = [GenerationRequest(p, length, seed, 48000) for seed, (p, length) in enumerate(zip(PROMPTS, lengths))]
    generator.generate(requests[:1])  # warm-up: first-call allocations and kernels

    def best(call) -> float:
        return min(_timed(call)[0] for _ in range(repeats))

    one_stem_s = best(lambda: generator.generate(requests[:1]))
    batched_s = best(lambda: generator.generate(requests))
    per_event_s = best(lambda: [generator.generate([r]) for r in requests])
    identity = generator.identity()
    return {
        "backend": backend,
        "model": identity["model"],
        "device": identity["device"],
        "dtype": identity["dtype"],
        "steps": identity["steps"],
        "guidance": identity["guidance"],
        "event_lengths_s": lengths,
        "load_s": round(load_s, 3),
        "seconds_per_stem": round(one_stem_s, 4),
        "scene_4_events_batched_s": round(batched_s, 4),
        "scene_4_events_one_call_per_event_s": round(per_event_s, 4),
        "batched_speedup": round(per_event_s / batched_s, 2) if batched_s else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="all")
    parser.add_argument("--real", action="store_true", help="use real weights (needs --model and --backend)")
    parser.add_argument("--model", help="Hub id or local folder (with --real)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (tiny default 5, real: preset)")
    # Unset: the backends' own default (AUDIO_AGENT_DIFFUSION_* / [diffusion] config, else auto).
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--lengths", default="2,4,6,8", help="event lengths in s with --real")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if args.real and (args.backend == "all" or not args.model):
        parser.error("--real needs one --backend and --model")

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    common = {key: value for key, value in (("dtype", args.dtype), ("device", args.device)) if value}
    results = []
    if args.real:
        options = {**common, **({"steps": args.steps} if args.steps else {})}
        lengths = [float(x) for x in args.lengths.split(",")][:4]
        results.append(bench(args.backend, model=args.model, options=options, lengths=lengths, repeats=args.repeats))
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        with tempfile.TemporaryDirectory() as folder:
            for backend in BACKENDS if args.backend == "all" else (args.backend,):
                model, extra, lengths = _tiny(backend, Path(folder))
                options = {**common, **extra, "steps": args.steps or 5}
                results.append(bench(backend, model=model, options=options, lengths=lengths, repeats=args.repeats))
    import torch

    print(json.dumps({"benchmark": "generate", "tiny_models": not args.real, "torch_threads": torch.get_num_threads(),
                      "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
