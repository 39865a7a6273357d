"""Procedural generator cost on the render benchmark's 600 s scene, per request, as JSON.

The 16 requests of ``benchmarks/render.py``'s 600 s scene (each ~71 s, so all take the long,
segmented path) are rendered one at a time in this process; each reports its CPU seconds
(this thread's), wall seconds, minor page faults (on this machine a fault costs ~10 us, so
fresh memory is a large part of the CPU) and a SHA-256 of its samples, so two checkouts can be compared
for speed and for byte-identical output:

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/procedural.py \
        [--duration 600] [--events 16] [--repeats 2]

Run it with PYTHONPATH pointing at another checkout (a git worktree of an older commit) to
time the old code in the same minutes. ``--compare DIR`` renders the scene's requests and a
prompt set (one example per family from ``procedural_speed.py``, plain and "distant", 4 s at
48 kHz and 2.5 s at 22.05 kHz) in this checkout and in DIR (in a child process), and reports
per request whether the bytes are identical, the largest absolute sample difference and the
loudness difference (BS.1770, pyloudnorm), plus the worst of each per family.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 48000


def scene_requests(events: int, duration_s: float):
    """The requests ``render_scene`` makes for the render benchmark's staggered plan."""
    from benchmarks.render import staggered_plan
    from engine.generators import GenerationRequest

    requests = []
    for event in staggered_plan(events, duration_s).events:
        frames = max(1, int(round(event.length_s * SAMPLE_RATE)))
        requests.append(GenerationRequest(description=event.description.strip(),
                                          length_s=frames / SAMPLE_RATE, seed=event.seed,
                                          sample_rate=SAMPLE_RATE))
    return requests


def prompt_requests():
    """Every family's example, plain and distant, at two rates and lengths."""
    from benchmarks.procedural_speed import EXAMPLES
    from engine.generators import GenerationRequest

    requests = []
    for index, description in enumerate(EXAMPLES):
        for text in (description, f"distant {description}"):
            requests.append(GenerationRequest(text, 4.0, index, 48000))
            requests.append(GenerationRequest(text, 2.5, index + 100, 22050))
    return requests


def compare_requests(events: int, duration_s: float):
    return scene_requests(events, duration_s) + prompt_requests()


def _render(request) -> np.ndarray:
    """One request as the scene makes it (a batch of one: same samples, and the generator's
    hand-back of freed memory after a long event, whose re-faulting is part of the cost)."""
    from engine.generators.procedural import ProceduralGenerator

    result = ProceduralGenerator().generate([request])[0]
    assert result.audio is not None, result.error
    return result.audio


def timed(events: int, duration_s: float, repeats: int) -> dict:
    _render(scene_requests(1, 1.0)[0])  # imports and first-call costs, paid once
    rows = []
    for request in scene_requests(events, duration_s):
        best_cpu = best_wall = best_faults = float("inf")
        digest = ""
        for _ in range(repeats):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            wall, cpu = time.perf_counter(), time.thread_time()
            audio = _render(request)
            best_cpu = min(best_cpu, time.thread_time() - cpu)
            best_wall = min(best_wall, time.perf_counter() - wall)
            best_faults = min(best_faults,
                              resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
            digest = hashlib.sha256(audio.tobytes()).hexdigest()[:16]
            del audio
        rows.append({"description": request.description, "seed": request.seed,
                     "length_s": round(request.length_s, 3), "cpu_s": round(best_cpu, 3),
                     "wall_s": round(best_wall, 3), "minor_faults": int(best_faults),
                     "sha256_16": digest})
    return {"benchmark": "procedural", "tree": str(ROOT), "events": events,
            "duration_s": duration_s, "repeats": repeats,
            "cpu_s_total": round(sum(row["cpu_s"] for row in rows), 3),
            "minor_faults_total": sum(row["minor_faults"] for row in rows),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "requests": rows}


def _dump(events: int, duration_s: float, folder: str) -> None:
    for index, request in enumerate(compare_requests(events, duration_s)):
        np.save(os.path.join(folder, f"{index}.npy"), _render(request))


def compare(other: Path, events: int, duration_s: float) -> dict:
    import pyloudnorm

    from engine.generators.procedural import classify_family

    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, PYTHONPATH=str(other))
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--dump", folder,
                        "--events", str(events), "--duration", str(duration_s)],
                       cwd=other, env=env, check=True)
        rows = []
        for index, request in enumerate(compare_requests(events, duration_s)):
            old = np.load(os.path.join(folder, f"{index}.npy"))
            new = _render(request)
            meter = pyloudnorm.Meter(request.sample_rate)
            loudness = [meter.integrated_loudness(a.T.astype(np.float64)) for a in (old, new)]
            rows.append({"description": request.description, "seed": request.seed,
                         "family": classify_family(request.description),
                         "length_s": round(request.length_s, 3),
                         "sample_rate": request.sample_rate,
                         "identical": old.tobytes() == new.tobytes(),
                         "max_abs_diff": float(np.max(np.abs(old - new))),
                         "loudness_diff_lu": round(loudness[1] - loudness[0], 6)})
    families: dict[str, dict] = {}
    for row in rows:
        worst = families.setdefault(row["family"], {"requests": 0, "identical": 0,
                                                    "max_abs_diff": 0.0,
                                                    "max_abs_loudness_diff_lu": 0.0})
        worst["requests"] += 1
        worst["identical"] += row["identical"]
        worst["max_abs_diff"] = max(worst["max_abs_diff"], row["max_abs_diff"])
        worst["max_abs_loudness_diff_lu"] = max(worst["max_abs_loudness_diff_lu"],
                                                abs(row["loudness_diff_lu"]))
    return {"benchmark": "procedural-compare", "other": str(other),
            "identical": sum(row["identical"] for row in rows), "requests": len(rows),
            "by_family": families, "by_request": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=16)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compare", metavar="DIR", default=None)
    parser.add_argument("--dump", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dump:
        _dump(args.events, args.duration, args.dump)
    elif args.compare:
        print(json.dumps(compare(Path(args.compare).resolve(), args.events, args.duration),
                         indent=2))
    else:
        print(json.dumps(timed(args.events, args.duration, args.repeats), indent=2))


if __name__ == "__main__":
    main()
