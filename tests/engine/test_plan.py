"""Plan validation (every rule, with its message) and the diff classes."""

from __future__ import annotations

import math

import pytest

from engine.errors import PlanValidationError
from engine.plan import (
    ChangeKind,
    Event,
    Plan,
    PlanLimits,
    diff_plans,
    max_concurrent,
    next_event_id,
    validate_plan,
)


def _event(**overrides: object) -> dict:
    base = {"id": "e1", "description": "rain on a window", "start_s": 0.0, "end_s": 5.0}
    base.update(overrides)
    return base


def _plan(*events: dict, duration_s: float = 10.0) -> dict:
    return {"duration_s": duration_s, "events": list(events)}


def test_valid_plan_round_trips() -> None:
    plan = validate_plan(_plan(_event(), _event(id="e2", description="door slam", start_s=5, end_s=10,
                                                 target_lufs=-18.0, seed=7)))
    assert plan.event("e2").target_lufs == -18.0
    assert plan.event("e2").seed == 7
    assert plan.event_ids == ["e1", "e2"]
    assert validate_plan(Plan.model_validate_json(plan.model_dump_json())) == plan


@pytest.mark.parametrize(
    ("event", "field", "fragment"),
    [
        (_event(start_s=-1.0), "events[0].start_s", "must be >= 0"),
        (_event(start_s=5.0, end_s=5.0), "events[0].end_s", "must be > start_s"),
        (_event(start_s=6.0, end_s=4.0), "events[0].end_s", "must be > start_s"),
        (_event(end_s=10.5), "events[0].end_s", "must be <= duration_s (10.0)"),
        (_event(description="   "), "events[0].description", "must not be empty"),
        (_event(description="x" * 301), "events[0].description", "limit is 300"),
        (_event(target_lufs=3.0), "events[0].target_lufs", "within [-70.0, -5.0]"),
        (_event(target_lufs=-90.0), "events[0].target_lufs", "within [-70.0, -5.0]"),
        (_event(target_lufs=math.nan), "events[0].target_lufs", "finite"),
        (_event(end_s=math.inf), "events[0].end_s", "finite"),
        (_event(id="../x"), "events[0].id", "letters, digits"),
        (_event(seed=-1), "events[0].seed", "[0, 2**32)"),
        (_event(start_s="soon"), "events[0].start_s", "valid number"),
    ],
)
def test_event_rules_name_field_and_value(event: dict, field: str, fragment: str) -> None:
    with pytest.raises(PlanValidationError) as info:
        validate_plan(_plan(event))
    assert info.value.field == field
    assert fragment in str(info.value)
    assert str(info.value).startswith(field + "=")


def test_missing_field_and_unknown_field_are_named() -> None:
    with pytest.raises(PlanValidationError) as info:
        validate_plan({"duration_s": 10, "events": [{"id": "e1", "start_s": 0, "end_s": 1}]})
    assert info.value.field == "events[0].description"
    with pytest.raises(PlanValidationError) as info:
        validate_plan(_plan(_event(volume=3)))
    assert info.value.field == "events[0].volume"


@pytest.mark.parametrize("duration_s", [0.0, -5.0, 601.0, math.nan, math.inf])
def test_duration_bounds(duration_s: float) -> None:
    with pytest.raises(PlanValidationError) as info:
        validate_plan(_plan(_event(end_s=0.5), duration_s=duration_s))
    assert info.value.field == "duration_s"


def test_duration_limit_is_configurable() -> None:
    plan = _plan(_event(end_s=700.0), duration_s=700.0)
    with pytest.raises(PlanValidationError):
        validate_plan(plan)
    assert validate_plan(plan, limits=PlanLimits(max_duration_s=900.0)).duration_s == 700.0


def test_empty_plan_and_duplicate_ids() -> None:
    with pytest.raises(PlanValidationError, match="at least one event"):
        validate_plan(_plan())
    with pytest.raises(PlanValidationError) as info:
        validate_plan(_plan(_event(), _event(description="wind")))
    assert info.value.field == "events[1].id"
    assert "duplicate" in str(info.value)


def test_overlap_limit_counts_concurrent_events() -> None:
    four = [_event(id=f"e{i}", description=f"sound {i}", start_s=i, end_s=9.0) for i in range(4)]
    with pytest.raises(PlanValidationError) as info:
        validate_plan(_plan(*four), limits=PlanLimits(max_overlap=3))
    assert info.value.field == "events"
    assert "4 at 3.000 s" in str(info.value)
    assert "at most 3" in str(info.value)
    assert validate_plan(_plan(*four), limits=PlanLimits(max_overlap=4))


def test_back_to_back_events_do_not_overlap() -> None:
    chain = [_event(id=f"e{i}", description=f"s{i}", start_s=i * 2.0, end_s=i * 2.0 + 2.0) for i in range(5)]
    plan = validate_plan(_plan(*chain), limits=PlanLimits(max_overlap=1))
    assert max_concurrent(plan.events)[0] == 1


def _base() -> Plan:
    return validate_plan(_plan(
        _event(id="rain", description="rain", start_s=0, end_s=10, target_lufs=-30),
        _event(id="door", description="door slam", start_s=6, end_s=8, target_lufs=-20, seed=3),
        _event(id="dog", description="dog bark", start_s=2, end_s=3),
    ))


def _with(plan: Plan, event_id: str, **update: object) -> Plan:
    events = tuple(e.model_copy(update=update) if e.id == event_id else e for e in plan.events)
    return validate_plan(plan.model_copy(update={"events": events}))


def test_diff_classes() -> None:
    old = _base()
    assert {c.kind for c in diff_plans(old, old).changes} == {ChangeKind.UNCHANGED}
    assert diff_plans(old, _with(old, "door", start_s=7, end_s=9)).kind_of("door") == ChangeKind.MOVED
    assert diff_plans(old, _with(old, "door", target_lufs=-12)).kind_of("door") == ChangeKind.REGAINED
    assert diff_plans(old, _with(old, "door", description="gunshot")).kind_of("door") == ChangeKind.CHANGED
    assert diff_plans(old, _with(old, "door", seed=4)).kind_of("door") == ChangeKind.CHANGED
    # A new length needs a new render even at the same start.
    assert diff_plans(old, _with(old, "door", end_s=9)).kind_of("door") == ChangeKind.CHANGED
    moved_and_louder = diff_plans(old, _with(old, "door", start_s=1, end_s=3, target_lufs=-10))
    change = [c for c in moved_and_louder.changes if c.event_id == "door"][0]
    assert change.kind == ChangeKind.MOVED and change.loudness_changed
    # Whitespace-only description differences are not content changes.
    assert diff_plans(old, _with(old, "dog", description=" dog bark ")).kind_of("dog") == ChangeKind.UNCHANGED


def test_diff_added_removed_and_needs_render() -> None:
    old = _base()
    new_events = tuple(e for e in old.events if e.id != "dog") + (
        Event(id="car", description="car passing", start_s=0, end_s=4),
    )
    new = validate_plan(old.model_copy(update={"events": new_events}))
    diff = diff_plans(old, new)
    assert diff.ids(ChangeKind.ADDED) == ["car"]
    assert diff.ids(ChangeKind.REMOVED) == ["dog"]
    assert diff.needs_render == ["car"]
    assert diff_plans(None, old).needs_render == ["rain", "door", "dog"]


def test_next_event_id_skips_used() -> None:
    plan = validate_plan(_plan(_event(id="e1"), _event(id="e2", description="x", start_s=5, end_s=6)))
    assert next_event_id(plan) == "e3"
    assert next_event_id(None) == "e1"


# ---- shaped fades and plan notes (optional, backward compatible) ------------------------------


def test_fades_and_notes_are_optional_and_round_trip() -> None:
    old_style = validate_plan(_plan(_event()))
    assert old_style.events[0].fade_in_s is None and old_style.notes == ()
    shaped = validate_plan({**_plan(_event(fade_in_s=2.0, fade_out_s=1.5)), "notes": ["merged"]})
    again = validate_plan(shaped.model_dump(mode="json"))
    assert again == shaped and again.events[0].fade_out_s == 1.5 and again.notes == ("merged",)


@pytest.mark.parametrize(
    ("fades", "message"),
    [({"fade_in_s": -1.0}, "must be >= 0"), ({"fade_out_s": math.inf}, "finite"),
     ({"fade_in_s": 3.0, "fade_out_s": 3.0}, "must fit in the event's 5 s")],
)
def test_bad_fades_are_named(fades: dict, message: str) -> None:
    with pytest.raises(PlanValidationError, match=message) as info:
        validate_plan(_plan(_event(**fades)))
    assert info.value.field.startswith("events[0].fade_")


def test_a_new_fade_shape_needs_a_new_stem() -> None:
    old = validate_plan(_plan(_event()))
    new = validate_plan(_plan(_event(fade_out_s=2.0)))
    assert diff_plans(old, new).kind_of("e1") == ChangeKind.CHANGED


def test_the_default_overlap_limit_fits_layered_scenes() -> None:
    six = [_event(id=f"e{i}", description=f"layer {i}", start_s=0.0, end_s=9.0) for i in range(6)]
    assert validate_plan(_plan(*six))
    with pytest.raises(PlanValidationError, match="at most 6"):
        validate_plan(_plan(*six, _event(id="e9", description="one more", start_s=1.0, end_s=2.0)))
