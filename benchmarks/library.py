"""Sound library speed, printed as JSON: indexing throughput, search latency, a scene from it.

A library of ``--files`` real files (default 20,000) is generated in a temporary folder: UCS
names over a few dozen categories, one-shots and beds, mostly short 16-bit WAV with every
``--other-every``-th file FLAC/OGG/MP3/AIFF, 0.3-3 s long at 22.05 kHz (small, so the run
measures the indexer and not the disk). Then:

* indexing: files/s for `library add` (metadata, tags, loudness, transient, loop score, FTS);
* rescan: files/s when nothing changed (size+mtime only);
* search: latency p50/p99 over ``--queries`` event descriptions (goal: p99 < 20 ms at 20,000),
  wall and this process's CPU time (the difference is other work on a shared machine);
* scene: a 10-event plan rendered with the hybrid backend (wall seconds, events from library).

Wall and CPU time are both reported: this machine is shared, and wall time inflates.

    .venv/bin/python benchmarks/library.py [--files 20000] [--queries 500] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.generators import GenerationRequest, create_generator
from engine.library.scan import add_folder, rescan
from engine.library.search import search
from engine.library.store import LibraryIndex
from engine.plan import Event, Plan
from engine.scene import render_scene
from engine.render_settings import SceneLabels

RATE = 22050
# (CatID, FX name words, is a bed)
CATEGORIES = (
    ("DOORWood", "Slam|Open|Close|Creak|Knock", False), ("DOORMetl", "Slam|Clang|Latch", False),
    ("GUNPis", "Shot|Single|Distant", False), ("GUNAuto", "Burst|Spray", False),
    ("EXPLReal", "Blast|Boom|Debris", False), ("FEETConc", "Walk|Run|Scuff", False),
    ("GLASBrk", "Smash|Shatter|Bottle", False), ("METLImpt", "Hit|Clank|Pipe", False),
    ("WOODImpt", "Knock|Crack|Plank", False), ("ANMLDog", "Bark|Growl|Yap", False),
    ("ANMLCat", "Meow|Hiss|Purr", False), ("BIRDSong", "Robin|Sparrow|Chirp", False),
    ("BELLChrch", "Toll|Ring|Chime", False), ("ALRMBuzr", "Buzzer|Beep|Alert", False),
    ("VEHCar", "Pass By|Door|Horn", False), ("WHSTLHmn", "Whistle|Call", False),
    ("AMBForst", "Morning|Night|Wind Leaves", True), ("AMBCity", "Traffic|Street|Distant", True),
    ("AMBRoom", "Tone|Hum|Quiet", True), ("RAINConc", "Light|Heavy|Pavement", True),
    ("RAINRoof", "Tin|Tiles|Drip", True), ("WATRStrm", "Stream|Brook|Trickle", True),
    ("WIND", "Gust|Howl|Steady", True), ("FIREBurn", "Crackle|Campfire|Fireplace", True),
    ("CROWDCafe", "Chatter|Murmur|Busy", True), ("MACHHvac", "Hum|Fan|Drone", True),
)
ADJECTIVES = "Heavy|Light|Big|Small|Close|Distant|Hard|Soft|Long|Short|Dry|Wet".split("|")
CREATORS = ("ABC", "XYZ", "JDS", "SFX")
OTHER_FORMATS = (("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3"), ("aiff", "AIFF"))
QUERIES = (
    "a heavy wooden door slams", "door creaks open", "a single pistol shot in the distance",
    "machine gun burst", "a huge explosion", "footsteps on concrete", "a bottle smashes",
    "metal pipe hit", "a dog barks", "a cat meows", "birds singing in the morning forest",
    "church bell tolls", "an alarm buzzer", "a car passes by", "someone whistles",
    "city traffic ambience", "quiet room tone", "heavy rain on pavement", "rain on a tin roof",
    "a babbling brook", "strong wind gusts", "crackling campfire", "busy cafe chatter",
    "air conditioning hum", "a cow moos in a barn", "spaceship engine",
)


def build_library(folder: Path, files: int, *, other_every: int, seed: int = 0) -> float:
    """Write ``files`` sound files; returns seconds spent."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(RATE * 4).astype(np.float32)
    for number in range(files):
        cat_id, names, is_bed = CATEGORIES[number % len(CATEGORIES)]
        name = rng.choice(names.split("|"))
        adjective = rng.choice(ADJECTIVES)
        length_s = float(rng.uniform(1.5, 3.0) if is_bed else rng.uniform(0.3, 1.5))
        frames = int(length_s * RATE)
        start = int(rng.integers(0, len(noise) - frames))
        audio = noise[start:start + frames] * 0.1
        if not is_bed:
            onset = int(rng.uniform(0.0, 0.2) * frames)
            envelope = np.zeros(frames, dtype=np.float32)
            envelope[onset:] = np.exp(-np.arange(frames - onset) / (0.05 * RATE))
            audio = audio * envelope * 5
        ext, fmt = ("wav", "WAV")
        if other_every and number % other_every == 0:
            ext, fmt = OTHER_FORMATS[(number // other_every) % len(OTHER_FORMATS)]
        sub = folder / cat_id[:4] / f"{number // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{cat_id}_{name} {adjective} {number}_{rng.choice(CREATORS)}_Bench.{ext}"
        sf.write(str(path), audio, RATE, format=fmt)
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--other-every", type=int, default=20, help="every Nth file is FLAC/OGG/MP3/AIFF")
    parser.add_argument("--keep", metavar="DIR", default=None, help="build in DIR and keep it")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="aa-library-bench-"))
    try:
        library = work / "SFX"
        build_s = build_library(library, args.files, other_every=args.other_every) if not library.is_dir() else 0.0
        index_file = work / "library.sqlite"
        if index_file.exists():
            index_file.unlink()
        with LibraryIndex(index_file) as index:
            wall, cpu = time.perf_counter(), time.process_time()
            report = add_folder(index, library)
            index_wall, index_cpu = time.perf_counter() - wall, time.process_time() - cpu
            wall = time.perf_counter()
            again = rescan(index)[0]
            rescan_wall = time.perf_counter() - wall

            search(index, "warm up the caches")
            latencies_ms, cpu_ms = [], []
            for number in range(args.queries):
                query = QUERIES[number % len(QUERIES)]
                started, started_cpu = time.perf_counter(), time.process_time()
                search(index, query, length_s=2.0)
                latencies_ms.append((time.perf_counter() - started) * 1000.0)
                cpu_ms.append((time.process_time() - started_cpu) * 1000.0)

            plan = Plan(duration_s=20.0, events=tuple(
                Event(id=f"e{i}", description=QUERIES[i * 2], start_s=float(i * 2), end_s=float(i * 2 + 3), seed=i)
                for i in range(10)
            ))
            generator = create_generator("hybrid", index=str(index_file))
            wall = time.perf_counter()
            results = generator.generate(
                [GenerationRequest(e.description, e.length_s, e.seed, 48000) for e in plan.events]
            )
            generate_s = time.perf_counter() - wall
            from_library = sum(1 for r in results if (getattr(r, "source", None) or {}).get("backend") == "library")
            wall = time.perf_counter()
            manifest = render_scene(plan, generator=generator, out_dir=work / "scene",
                                    labels=SceneLabels(backend="hybrid"))
            scene_s = time.perf_counter() - wall
        print(json.dumps({
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "files": args.files,
            "build_s": round(build_s, 1),
            "indexing": {
                "indexed": report.indexed, "skipped": len(report.skipped),
                "wall_s": round(index_wall, 1), "cpu_s": round(index_cpu, 1),
                "files_per_s_wall": round(report.indexed / index_wall, 1),
                "files_per_s_cpu": round(report.indexed / max(index_cpu, 1e-9), 1),
            },
            "rescan_unchanged": {"files": again.unchanged, "wall_s": round(rescan_wall, 2),
                                 "files_per_s": round(again.unchanged / max(rescan_wall, 1e-9))},
            "search_ms": {"queries": len(latencies_ms), "p50": round(statistics.median(latencies_ms), 2),
                          "p99": round(percentile(latencies_ms, 99), 2), "max": round(max(latencies_ms), 2),
                          "cpu_p50": round(statistics.median(cpu_ms), 2),
                          "cpu_p99": round(percentile(cpu_ms, 99), 2), "goal_p99": 20.0},
            "scene": {"events": len(plan.events), "from_library": from_library,
                      "generate_s": round(generate_s, 2), "render_scene_s": round(scene_s, 2),
                      "failed": len(manifest.failed)},
            "index_bytes": sum(p.stat().st_size for p in work.glob("library.sqlite*")),
        }, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
