"""Structured one-event edits: the operations clients send and the edit grammar produces."""

from __future__ import annotations

import pytest

from engine.edits import EventEdit, apply_edit, stable_seed
from engine.errors import InvalidInputError, NotFoundError, PlanValidationError
from engine.plan import ChangeKind, diff_plans, validate_plan

PLAN = validate_plan({
    "duration_s": 10.0,
    "events": [
        {"id": "e1", "description": "rain", "start_s": 0, "end_s": 10, "target_lufs": -30},
        {"id": "e2", "description": "door slam", "start_s": 6, "end_s": 8, "seed": 5},
    ],
})


def kinds(new):
    return {c.event_id: c.kind for c in diff_plans(PLAN, new).changes}


def test_move_keeps_length_and_content() -> None:
    new = apply_edit(PLAN, EventEdit(op="move", event_id="e2", start_s=1.0))
    assert (new.event("e2").start_s, new.event("e2").end_s) == (1.0, 3.0)
    assert kinds(new) == {"e1": ChangeKind.UNCHANGED, "e2": ChangeKind.MOVED}


def test_move_past_the_end_trims_and_needs_render() -> None:
    new = apply_edit(PLAN, EventEdit(op="move", event_id="e2", start_s=9.0))
    assert (new.event("e2").start_s, new.event("e2").end_s) == (9.0, 10.0)
    assert kinds(new)["e2"] == ChangeKind.CHANGED


def test_set_loudness_replace_delete_add() -> None:
    louder = apply_edit(PLAN, EventEdit(op="set_loudness", event_id="e1", target_lufs=-20))
    assert kinds(louder)["e1"] == ChangeKind.REGAINED
    replaced = apply_edit(PLAN, EventEdit(op="replace_text", event_id="e2", description=" gunshot "))
    assert replaced.event("e2").description == "gunshot"
    assert replaced.event("e2").seed == stable_seed("gunshot")
    deleted = apply_edit(PLAN, EventEdit(op="delete", event_id="e1"))
    assert deleted.event_ids == ["e2"]
    added = apply_edit(PLAN, EventEdit(op="add", description="dog bark", start_s=2, end_s=3))
    assert added.event_ids == ["e1", "e2", "e3"]
    assert kinds(added)["e3"] == ChangeKind.ADDED
    bed = apply_edit(PLAN, EventEdit(op="add", description="wind"))
    assert (bed.event("e3").start_s, bed.event("e3").end_s) == (0.0, 10.0)


def test_stable_seed_ignores_case_and_spaces_but_not_words() -> None:
    assert stable_seed("Dog bark ") == stable_seed("dog bark")
    assert stable_seed("dog bark") != stable_seed("dog barks")
    assert stable_seed("dog bark", salt=1) != stable_seed("dog bark")


def test_bad_edits_name_the_field() -> None:
    with pytest.raises(NotFoundError) as info:
        apply_edit(PLAN, EventEdit(op="delete", event_id="e9"))
    assert info.value.field == "event_id" and "e1, e2" in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        apply_edit(PLAN, EventEdit(op="move", event_id="e1"))
    assert info.value.field == "start_s"
    with pytest.raises(InvalidInputError) as info:
        apply_edit(PLAN, EventEdit(op="add"))
    assert info.value.field == "description"
    with pytest.raises(PlanValidationError) as info:
        apply_edit(PLAN, EventEdit(op="set_loudness", event_id="e1", target_lufs=10))
    assert info.value.field == "events[0].target_lufs"
    with pytest.raises(PlanValidationError, match="at least one event"):
        apply_edit(apply_edit(PLAN, EventEdit(op="delete", event_id="e1")),
                   EventEdit(op="delete", event_id="e2"))


@pytest.mark.parametrize("start_s", [10.0, 12.0, -2.0])
def test_move_outside_the_scene_says_so_in_terms_of_start(start_s: float) -> None:
    with pytest.raises(PlanValidationError) as info:
        apply_edit(PLAN, EventEdit(op="move", event_id="e2", start_s=start_s))
    assert info.value.field == "start_s"
    assert f"start_s={start_s:g}" in str(info.value) and "[0, 10)" in str(info.value)
