"""Plan + render wall time on the procedural backend, printed as JSON.

Scenes of 1, 4 and 16 events at 10 s and 60 s. Events are laid out in staggered pairs
(at most two sound at once, within the default overlap limit of 3), so a 16-event scene is a
realistic busy scene, not 16 copies stacked. Each case: the plan is built and validated, then
rendered cold (no cache) into a fresh folder: generate, fit, loudness, limiter, BWF writes,
mix, manifest. The planner timing is the rule planner on the demo prompt.

    .venv/bin/python benchmarks/render.py [--repeats N] [--backend NAME]

realtime_factor = scene seconds / wall seconds (higher is faster than real time); stages_s splits
the best run by progress stage ("mix" includes writing the manifest).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from engine.generators import create_generator
from engine.plan import Event, Plan, validate_plan
from engine.planners import create_planner
from engine.scene import render_scene

DEMO_PROMPT = "Rain pouring outside as thunder rumbles in the distance, followed by a door slamming"
SOUNDS = ("rain on a window", "distant thunder", "a door slams", "footsteps on gravel",
          "a car passes", "birds chirping", "wind gusts", "a dog barks")


def staggered_plan(events: int, duration_s: float) -> Plan:
    """``events`` events, each 2 slots long, starting one slot apart: two overlap at a time."""
    slot = duration_s / (events + 1)
    made = []
    for index in range(events):
        start = index * slot
        end = duration_s if index == events - 1 else min(duration_s, start + 2 * slot)
        made.append(Event(id=f"e{index + 1}", description=SOUNDS[index % len(SOUNDS)],
                          start_s=round(start, 6), end_s=round(end, 6), seed=index))
    return Plan(duration_s=duration_s, events=tuple(made))


class StageClock:
    """Seconds spent in each progress stage (from its first report to the next stage's)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.marks: list[tuple[str, float]] = []

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.marks or self.marks[-1][0] != stage:
            self.marks.append((stage, time.perf_counter()))

    def split(self, ended: float) -> dict[str, float]:
        spans: dict[str, float] = {}
        edges = self.marks + [("", ended)]
        spans["plan"] = round(edges[0][1] - self.started, 4)
        for (stage, at), (_, until) in zip(edges, edges[1:]):
            spans[stage] = round(spans.get(stage, 0.0) + until - at, 3)
        return spans


def time_case(events: int, duration_s: float, backend: str, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            clock = StageClock()
            plan = validate_plan(staggered_plan(events, duration_s))
            manifest = render_scene(
                plan, generator=create_generator(backend), out_dir=folder, progress=clock
            )
            ended = time.perf_counter()
            assert len(manifest.events) == events and not manifest.failed
            runs.append((ended - clock.started, clock.split(ended)))
    best, stages = min(runs, key=lambda run: run[0])
    return {"events": events, "duration_s": duration_s, "wall_s": round(best, 3),
            "wall_s_all": [round(run[0], 3) for run in runs], "stages_s": stages,
            "realtime_factor": round(duration_s / best, 2)}


def time_planner(repeats: int) -> dict:
    planner = create_planner("rules")
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = planner.plan(DEMO_PROMPT, duration_s=10.0)
        walls.append(time.perf_counter() - started)
    return {"planner": "rules", "events": len(result.plan.events), "wall_s": round(min(walls), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", default="procedural")
    args = parser.parse_args()
    cases = [time_case(n, d, args.backend, args.repeats) for d in (10.0, 60.0) for n in (1, 4, 16)]
    print(json.dumps({
        "benchmark": "render",
        "backend": args.backend,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "plan": time_planner(args.repeats),
        "cases": cases,
    }, indent=2))


if __name__ == "__main__":
    main()
