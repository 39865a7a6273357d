"""Procedural backend speed per family, and peak memory of long events, printed as JSON.

One example description per family is rendered for ``--length`` seconds at ``--rate`` Hz,
``--repeats`` times; the best run counts (the least disturbed by other work on the machine).
Both wall time and this process's CPU time are reported, because a shared machine inflates
wall time. realtime_factor = audio seconds / seconds spent (higher is faster than real time).

``--long-s 400`` adds long events (beds, a sustained engine, a one-shot) rendered each in a
fresh Python process, reporting that process's peak RSS (baseline imports included) next to
the size of the returned float32 array.

    .venv/bin/python benchmarks/procedural_speed.py [--length 10] [--rate 48000] [--repeats 3]
        [--long-s 400]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

from engine.generators.procedural import DSP_VERSION, classify_family, render_sketch

EXAMPLES = (
    "heavy rain", "howling wind", "a babbling brook", "a campfire burning", "thunder",
    "a car passes by", "footsteps on gravel", "a door slams", "knock on wood", "a single gunshot",
    "an explosion",
    "people chatting in a cafe", "birds chirping", "a dog barks", "a cat meows", "a cow moos",
    "a church bell tolls", "an alarm clock", "typing on a keyboard", "dark ambient music pad",
    "something indescribable", "a police siren wails", "a car horn honks", "a woman screams",
    "a man coughing", "a referee blows a whistle", "a piano plays a melody", "a heartbeat",
    "keys jingle", "heart monitor beeping", "a clock ticking",
)
LONG_EXAMPLES = ("heavy rain", "howling wind", "people chatting in a cafe", "a car idling",
                 "dark ambient music pad", "a door slams")

# Runs in a child process so its peak RSS is this render's alone.
_LONG_CHILD = """
import json, resource, sys, time
from engine.generators.procedural import render_sketch
wall, cpu = time.perf_counter(), time.process_time()
description, length_s, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
audio = render_sketch(description, length_s=length_s, sample_rate=rate, seed=1)
print(json.dumps({"wall_s": round(time.perf_counter() - wall, 2),
                  "cpu_s": round(time.process_time() - cpu, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "output_mb": round(audio.nbytes / 2**20), "channels": audio.shape[0]}))
"""


def measure_long(description: str, *, length_s: float, sample_rate: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _LONG_CHILD, description, str(length_s), str(sample_rate)],
        capture_output=True, text=True, check=True)
    return {"description": description, "family": classify_family(description),
            "length_s": length_s, **json.loads(result.stdout)}


def measure(description: str, *, length_s: float, sample_rate: int, repeats: int) -> dict:
    render_sketch(description, length_s=0.5, sample_rate=sample_rate)  # imports, filter caches
    best_wall = best_cpu = float("inf")
    channels = 0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        audio = render_sketch(description, length_s=length_s, sample_rate=sample_rate, seed=1)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        channels = audio.shape[0]
    return {
        "family": classify_family(description),
        "description": description,
        "channels": channels,
        "wall_s": round(best_wall, 4),
        "cpu_s": round(best_cpu, 4),
        "realtime_factor_wall": round(length_s / best_wall, 1),
        "realtime_factor_cpu": round(length_s / max(best_cpu, 1e-9), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=float, default=10.0, help="seconds of audio per render")
    parser.add_argument("--rate", type=int, default=48000, help="sample rate in Hz")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-s", type=float, default=0.0,
                        help="also measure long events of this many seconds (0: skip)")
    args = parser.parse_args()
    rows = [measure(d, length_s=args.length, sample_rate=args.rate, repeats=args.repeats)
            for d in EXAMPLES]
    print(json.dumps({
        "benchmark": "procedural_speed",
        "dsp_version": DSP_VERSION,
        "length_s": args.length,
        "sample_rate": args.rate,
        "repeats": args.repeats,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "slowest_realtime_factor_cpu": min(row["realtime_factor_cpu"] for row in rows),
        "families": rows,
        "long_events": [measure_long(d, length_s=args.long_s, sample_rate=args.rate)
                        for d in LONG_EXAMPLES] if args.long_s > 0 else [],
    }, indent=2))


if __name__ == "__main__":
    main()
