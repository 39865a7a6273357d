"""engine.seeds: the one seed rule every front door applies."""

from __future__ import annotations

import pytest

from engine.errors import InvalidInputError
from engine.plan import Event, Plan
from engine.planners.rules import RulePlanner
from engine.seeds import mix_seed, plan_prompt, seed_plan

PLAN = Plan(duration_s=4.0, events=(
    Event(id="e1", description="rain", start_s=0.0, end_s=4.0, seed=11),
    Event(id="e2", description="a door slams", start_s=1.0, end_s=1.5, seed=22),
    Event(id="e3", description="a door slams", start_s=2.0, end_s=2.5, seed=23),  # a second take
))


def test_seed_zero_and_none_leave_the_planners_seeds() -> None:
    assert seed_plan(PLAN, None) == PLAN == seed_plan(PLAN, 0)
    assert mix_seed(22, 0) == 22


def test_a_seed_is_mixed_into_every_event_and_keeps_takes_apart() -> None:
    seeded = seed_plan(PLAN, 7)
    seeds = [event.seed for event in seeded.events]
    assert seeds == [mix_seed(11, 7), mix_seed(22, 7), mix_seed(23, 7)]
    assert len(set(seeds)) == 3  # two takes of one description stay two takes
    assert seed_plan(PLAN, 7) == seeded  # deterministic
    assert [e.seed for e in seed_plan(PLAN, 8).events] != seeds
    assert all(0 <= seed < 2**32 for seed in seeds)
    with pytest.raises(InvalidInputError):
        seed_plan(PLAN, -1)


def test_an_edit_keeps_the_seeds_of_kept_events() -> None:
    current = seed_plan(PLAN, 7)
    moved = current.events[1].model_copy(update={"start_s": 1.2, "end_s": 1.7})
    changed = current.events[2].model_copy(update={"description": "a glass breaks", "seed": 99})
    edited = current.model_copy(update={"events": (current.events[0], moved, changed)})
    result = seed_plan(edited, 7, previous=current)
    assert result.events[0].seed == current.events[0].seed  # unchanged
    assert result.events[1].seed == current.events[1].seed  # moved: same content, same stem
    assert result.events[2].seed == mix_seed(99, 7)  # new content gets the session's seed


def test_plan_prompt_is_planner_then_gate_then_seed() -> None:
    plain = plan_prompt(RulePlanner(), "rain, then a door slams", duration_s=6.0, seed=None)
    seeded = plan_prompt(RulePlanner(), "rain, then a door slams", duration_s=6.0, seed=5)
    assert [e.seed for e in seeded.plan.events] == [mix_seed(e.seed, 5) for e in plain.plan.events]
    assert seeded.planner == "rules" and seeded.reply
