"""Render-path cost, this code against the previous code in the same run, printed as JSON.

    .venv/bin/python benchmarks/render.py [--repeats N] [--previous DIR | --previous-commit SHA]
                                          [--skip-long] [--skip-previous-long] [--steps]

One scene alone, this tree only (what the figures below are made of):

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/render.py --steps \
        --child scene 16 60 synthetic

Measured, each in a fresh interpreter (a child process) so imports, memory and caches start
cold and equal for both sides:

- ``scene_60s``: a 16-event 60 s scene (staggered pairs, like a busy real scene). CPU seconds
  per stage *outside the generator* (process CPU, all threads): the generator is wrapped and
  its own CPU subtracted; a one-event render before it pays imports and warm-up. The generator is a fixed synthetic one defined here (rain-like beds,
  door-like bursts, tones, clicks), so both sides process identical audio; the procedural
  backend of each side is timed as well (``scene_60s_procedural``).
  With ``--steps`` each scene also reports ``cpu_by_step_s``: the same CPU split by what the
  render spends it on (fit, fades, loudness, true peak, limiter gain, name hash, WAV write,
  mix bus add, other; see STEPS).
- ``scene_600s``: a 16-event 600 s scene on the procedural backend: wall seconds and peak RSS.
- ``startup``: ``audio-agent --help`` and ``audio-agent client status`` (no server listening:
  the cost is start-up and the client's imports), wall and CPU, best of --repeats.

"previous" is the code before the render-path performance work: a git worktree of
--previous-commit (created under /tmp if missing), or any checkout given with --previous.
Ratios are previous / now (higher is better). The machine is shared: wall figures on a busy
machine are noisy, CPU figures much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS_COMMIT = "59241e38ee38e2e1ce11f9cb0e308004ac7f8d17"  # before the render-path work
SOUNDS = ("rain on a window", "distant thunder", "a door slams", "footsteps on gravel",
          "a car passes", "birds chirping", "wind gusts", "a dog barks")


# -- child side: runs inside the tree under test ---------------------------------------------


def staggered_plan(events: int, duration_s: float):
    """``events`` events, each 2 slots long, starting one slot apart: two overlap at a time."""
    from engine.plan import Event, Plan, validate_plan

    slot = duration_s / (events + 1)
    made = []
    for index in range(events):
        start = index * slot
        end = duration_s if index == events - 1 else min(duration_s, start + 2 * slot)
        made.append(Event(id=f"e{index + 1}", description=SOUNDS[index % len(SOUNDS)],
                          start_s=round(start, 6), end_s=round(end, 6), seed=index))
    return validate_plan(Plan(duration_s=duration_s, events=tuple(made)))


class SyntheticGenerator:
    """Deterministic material of four kinds, picked by seed: beds, bursts, tones, clicks."""

    name = "synthetic"

    def identity(self):
        return {"model": "benchmark-synthetic", "revision": 1}

    def generate(self, requests, *, progress=None, cancel=None):
        import numpy as np
        from engine.generators import GenerationResult

        results = []
        for request in requests:
            rate = request.sample_rate
            frames = max(1, int(round(request.length_s * rate)))
            rng = np.random.default_rng(request.seed)
            kind = request.seed % 4
            if kind == 0:  # rain: noise bed with droplets
                audio = rng.standard_normal((2, frames)) * 0.03
                for at in rng.integers(0, max(1, frames - 300), size=int(request.length_s * 30)):
                    audio[:, at : at + 300] += rng.standard_normal((2, 300)) * 0.5 * np.exp(
                        -np.arange(300) / 40.0)[: min(300, frames - at)]
            elif kind == 1:  # a door: one decaying burst, then near silence
                audio = rng.standard_normal((2, frames)) * np.exp(-np.arange(frames) / (0.08 * rate))
            elif kind == 2:  # an engine-like tone with harmonics
                t = np.arange(frames) / rate
                audio = np.stack([0.2 * np.sin(2 * np.pi * 90 * t) + 0.05 * np.sin(2 * np.pi * 7000 * t)] * 2)
            else:  # clock ticks: sparse clicks in silence
                audio = np.zeros((1, frames))
                audio[0, :: rate // 2] = 0.8
            results.append(GenerationResult(audio=audio.astype(np.float32)))
        return results


class CpuMeter:
    """Process CPU per progress stage, with the generator's own CPU kept apart."""

    def __init__(self, generator) -> None:
        self.inner = generator
        self.name = getattr(generator, "name", "")
        self.generator_cpu_s = 0.0
        self.started = time.process_time()
        self.marks: list[tuple[str, float]] = []

    def identity(self):
        return self.inner.identity()

    def generate(self, requests, *, progress=None, cancel=None):
        begun = time.process_time()
        try:
            return self.inner.generate(requests, progress=progress, cancel=cancel)
        finally:
            self.generator_cpu_s += time.process_time() - begun

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.marks or self.marks[-1][0] != stage:
            self.marks.append((stage, time.process_time()))

    def split(self, ended: float) -> dict[str, float]:
        edges = self.marks + [("", ended)]
        spans = {"setup": edges[0][1] - self.started}
        for (stage, at), (_, until) in zip(edges, edges[1:]):
            spans[stage] = spans.get(stage, 0.0) + until - at
        spans["generate"] = spans.get("generate", 0.0) - self.generator_cpu_s
        return {stage: round(value, 3) for stage, value in spans.items()}


# Steps timed inside the render (module, function, step name): thread CPU summed over calls on
# every thread, each call counted once under the outermost timed step that is running on its
# thread (a true-peak scan inside a loudness measurement counts as loudness). "other" is what
# is left of the CPU outside the generator. Names missing from a tree under test are skipped.
STEPS = (
    ("engine.render", "fit_to_length", "fit"),
    ("engine.render", "apply_fades", "fades"),
    ("engine.render", "measure", "loudness"),
    ("engine.render", "_measure_after", "loudness"),
    ("engine.truepeak", "scan", "true_peak"),
    ("engine.render", "_gain_spans", "limiter_gain"),
    ("engine.scene", "_file_hash", "name_hash"),
    ("engine.stems", "write_stem", "wav_write"),
    ("engine.scene", "write_stem", "wav_write"),
)


class StepMeter:
    """Thread CPU per render step (see STEPS), installed by wrapping module functions."""

    def __init__(self) -> None:
        import collections
        import threading

        self.seconds: collections.Counter[str] = collections.Counter()
        self.local = threading.local()
        self.installed: list[tuple[object, str, object]] = []

    def install(self) -> None:
        import importlib

        for module_name, name, step in STEPS:
            module = importlib.import_module(module_name)
            real = getattr(module, name, None)
            if real is not None:
                self.installed.append((module, name, real))
                setattr(module, name, self._timed(real, step))
        bus = getattr(importlib.import_module("engine.render"), "MixBus", None)
        if bus is not None:
            self.installed.append((bus, "add", bus.add))
            bus.add = self._timed(bus.add, "mix_add")

    def uninstall(self) -> None:
        for owner, name, real in reversed(self.installed):
            setattr(owner, name, real)
        self.installed.clear()

    def _timed(self, real, step: str):
        meter = self

        def timed(*args, **kwargs):
            if getattr(meter.local, "busy", False):
                return real(*args, **kwargs)  # inside another timed step: counted there
            meter.local.busy = True
            began = time.thread_time()
            try:
                return real(*args, **kwargs)
            finally:
                meter.seconds[step] += time.thread_time() - began
                meter.local.busy = False

        return timed

    def split(self, outside_s: float) -> dict[str, float]:
        steps = {step: round(value, 3) for step, value in sorted(self.seconds.items())}
        steps["other"] = round(outside_s - sum(self.seconds.values()), 3)
        return steps


def _render(plan, generator, folder, progress):
    from engine.scene import render_scene

    return render_scene(plan, generator=generator, out_dir=folder, progress=progress)


def child_scene(events: int, duration_s: float, backend: str) -> dict:
    import resource

    if backend == "synthetic":
        generator = SyntheticGenerator()
    else:
        from engine.generators import create_generator

        generator = create_generator(backend)
    plan = staggered_plan(events, duration_s)
    # A one-event warm-up render first: imports and filter designs are paid before measuring,
    # as a server pays them once (the CPU figures are the per-scene work).
    with tempfile.TemporaryDirectory() as folder:
        _render(staggered_plan(1, 1.0), SyntheticGenerator(), folder, None)
    meter = CpuMeter(generator)
    steps = StepMeter()
    if STEP_TIMES:
        steps.install()
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        manifest = _render(plan, meter, folder, meter)
        ended = time.process_time()
        wall = time.perf_counter() - wall
        assert len(manifest.events) == events and not manifest.failed
    steps.uninstall()
    stages = meter.split(ended)
    outside = sum(stages.values())
    result = {"events": events, "duration_s": duration_s, "backend": backend,
              "wall_s": round(wall, 3), "generator_cpu_s": round(meter.generator_cpu_s, 3),
              "cpu_outside_generator_s": round(outside, 3), "cpu_by_stage_s": stages,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                   1)}
    if STEP_TIMES:
        result["cpu_by_step_s"] = steps.split(outside)
    return result


# -- parent side -----------------------------------------------------------------------------


BLAS_THREADS = "1"  # what the CLI and server pin (server/cli.py); see --blas-threads
STEP_TIMES = False  # --steps: CPU per render step too (wrappers cost a little CPU themselves)


def _child_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)  # ahead of the editable install's finder
    if BLAS_THREADS != "unset":
        env["OPENBLAS_NUM_THREADS"] = BLAS_THREADS  # the same for both sides
    return env


def run_child(tree: Path, *args: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    if STEP_TIMES:
        command.insert(2, "--steps")
    process = subprocess.Popen(command, cwd=tree, env=_child_env(tree),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate()
    if process.returncode:
        raise RuntimeError(f"child in {tree} failed ({process.returncode}): {err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return result


def best_scene(tree: Path, repeats: int, events: int, duration_s: float, backend: str) -> dict:
    runs = [run_child(tree, "scene", str(events), str(duration_s), backend) for _ in range(repeats)]
    best = min(runs, key=lambda run: run["cpu_outside_generator_s"])
    best["cpu_outside_generator_s_all"] = [run["cpu_outside_generator_s"] for run in runs]
    return best


def time_command(tree: Path, args: list[str], repeats: int) -> dict:
    walls, cpus, rss = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "server.cli", *args], cwd=tree,
                                   env=_child_env(tree), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(process.pid, 0)
        walls.append(time.perf_counter() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
        rss.append(usage.ru_maxrss / 1024)
    return {"wall_s": round(min(walls), 3), "cpu_s": round(min(cpus), 3),
            "peak_rss_mb": round(min(rss), 1)}


def startup(tree: Path, repeats: int) -> dict:
    # Port 9 (discard) on loopback: nothing listens, so `client status` fails fast after its
    # imports; what is timed is start-up, as a DAW's status poll sees it before the reply.
    return {"help": time_command(tree, ["--help"], repeats),
            "client_status": time_command(
                tree, ["client", "status", "--url", "ws://127.0.0.1:9"], repeats)}


def previous_tree(args: argparse.Namespace) -> Path:
    if args.previous:
        return Path(args.previous).resolve()
    folder = Path(tempfile.gettempdir()) / f"audio-agent-previous-{args.previous_commit[:12]}"
    if not folder.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), args.previous_commit],
                       cwd=ROOT, check=True, capture_output=True)
    return folder


def ratio(previous: float, now: float) -> float | None:
    return round(previous / now, 2) if now > 0 else None


def compare(previous: dict, now: dict, key: str) -> dict:
    return {"previous": previous[key], "now": now[key], "ratio": ratio(previous[key], now[key])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--previous", default=None, metavar="DIR",
                        help="a checkout of the previous code (default: a worktree of "
                        "--previous-commit)")
    parser.add_argument("--previous-commit", default=PREVIOUS_COMMIT)
    parser.add_argument("--skip-long", action="store_true", help="no 600 s scene")
    parser.add_argument("--skip-previous-long", action="store_true",
                        help="600 s scene on this code only (the previous one takes minutes)")
    parser.add_argument("--blas-threads", default=BLAS_THREADS,
                        help="OPENBLAS_NUM_THREADS for both sides' children (default 1, as the "
                        "CLI and server set it; 'unset' leaves the environment alone)")
    parser.add_argument("--steps", action="store_true",
                        help="also CPU per render step (fit, fades, loudness, true peak, "
                        "limiter gain, name hash, WAV write, mix bus add) in the scenes")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    globals()["BLAS_THREADS"] = args.blas_threads
    globals()["STEP_TIMES"] = args.steps
    if args.child:
        kind, *rest = args.child
        if kind == "scene":
            print(json.dumps(child_scene(int(rest[0]), float(rest[1]), rest[2])))
        return
    now_tree, old_tree = ROOT, previous_tree(args)
    report: dict = {
        "benchmark": "render",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_1min": round(os.getloadavg()[0], 2),
                    "openblas_num_threads_in_children": args.blas_threads},
        "targets": {"scene_60s_cpu_outside_generator_s": 1.2, "scene_600s_wall_s": 10.0,
                    "scene_600s_peak_rss_mb": 500.0, "startup_wall_s": 0.3},
        "previous": str(old_tree),
    }
    old60 = best_scene(old_tree, args.repeats, 16, 60.0, "synthetic")
    new60 = best_scene(now_tree, args.repeats, 16, 60.0, "synthetic")
    report["scene_60s"] = {
        "cpu_outside_generator_s": compare(old60, new60, "cpu_outside_generator_s"),
        "cpu_by_stage_s": {"previous": old60["cpu_by_stage_s"], "now": new60["cpu_by_stage_s"]},
        "wall_s": compare(old60, new60, "wall_s"),
        "peak_rss_mb": compare(old60, new60, "peak_rss_mb"),
    }
    old_proc = best_scene(old_tree, args.repeats, 16, 60.0, "procedural")
    new_proc = best_scene(now_tree, args.repeats, 16, 60.0, "procedural")
    report["scene_60s_procedural"] = {
        "cpu_outside_generator_s": compare(old_proc, new_proc, "cpu_outside_generator_s"),
        "cpu_by_stage_s": {"previous": old_proc["cpu_by_stage_s"],
                           "now": new_proc["cpu_by_stage_s"]},
        "generator_cpu_s": compare(old_proc, new_proc, "generator_cpu_s"),
    }
    if not args.skip_long:
        new600 = run_child(now_tree, "scene", "16", "600", "procedural")
        long = {"now": new600}
        if not args.skip_previous_long:
            old600 = run_child(old_tree, "scene", "16", "600", "procedural")
            long = {key: compare(old600, new600, key)
                    for key in ("wall_s", "peak_rss_mb", "cpu_outside_generator_s",
                                "generator_cpu_s")}
        report["scene_600s"] = long
    old_start, new_start = startup(old_tree, args.repeats), startup(now_tree, args.repeats)
    report["startup"] = {
        name: {key: compare(old_start[name], new_start[name], key)
               for key in ("wall_s", "cpu_s", "peak_rss_mb")}
        for name in ("help", "client_status")
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
