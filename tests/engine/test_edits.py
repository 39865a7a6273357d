"""Structured one-event edits: the operations clients send and the edit grammar produces."""

from __future__ import annotations

import pytest

from engine.edits import EventEdit, apply_edit, stable_seed
from engine.errors import InvalidInputError, NotFoundError, PlanValidationError
from engine.plan import ChangeKind, PlanLimits, diff_plans, validate_plan

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


# ---- the plain-language edit grammar of the rule planner ------------------------------------

from engine.planners.rules import RulePlanner  # noqa: E402

RULES = RulePlanner()
WIDE = PlanLimits(max_overlap=8)
SCENE = validate_plan({
    "duration_s": 10.0,
    "events": [
        {"id": "e1", "description": "Rain", "start_s": 0, "end_s": 10, "target_lufs": -29},
        {"id": "e2", "description": "A dog barks", "start_s": 0, "end_s": 1, "target_lufs": -21},
        {"id": "e3", "description": "A door slams", "start_s": 3, "end_s": 4, "target_lufs": -20},
        {"id": "e4", "description": "Footsteps on gravel", "start_s": 4, "end_s": 8,
         "target_lufs": -27},
        {"id": "e5", "description": "Thunder rumbles", "start_s": 2, "end_s": 7, "target_lufs": -21},
        {"id": "e6", "description": "A car passes", "start_s": 5, "end_s": 9, "target_lufs": -21},
    ],
}, limits=WIDE)


def edited(instruction: str):
    return RULES.edit(SCENE, instruction, limits=WIDE).plan


def only_changed(new, *ids: str) -> None:
    """Every event not in ``ids`` is exactly as it was, id included."""
    for event in SCENE.events:
        if event.id not in ids:
            assert new.event(event.id) == event


def test_make_shorter_and_longer_keep_the_start() -> None:
    new = edited("make the door slam shorter")
    assert new.event("e3").start_s == 3.0 and new.event("e3").length_s < 1.0
    assert edited("make the thunder longer").event("e5").length_s > 5.0
    assert edited("the thunder should last 2 seconds").event("e5").end_s == 4.0
    assert edited("end the thunder at 9 s").event("e5").end_s == 9.0
    only_changed(new, "e3")


@pytest.mark.parametrize(
    ("instruction", "start_s"),
    [("move the door slam 2 s later", 5.0), ("the door slam 1 second earlier", 2.0),
     ("delay the door by 1.5 seconds", 4.5), ("bring the door in at 6 s", 6.0),
     ("push the door back by a second", 4.0), ("move the door slam to three seconds later", 6.0),
     ("hey, can you move the door to 0:07?", 7.0)],
)
def test_relative_and_absolute_moves(instruction: str, start_s: float) -> None:
    new = edited(instruction)
    assert new.event("e3").start_s == pytest.approx(start_s)
    assert new.event("e3").length_s == pytest.approx(1.0)
    only_changed(new, "e3")


def test_shift_everything() -> None:
    new = edited("shift everything 1 second later")
    for event in SCENE.events:
        assert new.event(event.id).start_s == event.start_s + 1.0


def test_order_swap_and_after() -> None:
    new = edited("swap the order of the dog and the door")
    assert new.event("e2").start_s == 3.0 and new.event("e3").start_s == 0.0
    after = edited("the dog should come after the door")
    assert after.event("e2").start_s >= after.event("e3").end_s - 1e-6


@pytest.mark.parametrize(
    ("instruction", "event_id", "delta_lu"),
    [("lower the rain by 3 dB", "e1", -3.0), ("quieter thunder", "e5", -6.0),
     ("the thunder is too loud", "e5", -6.0), ("raise the door by 2 dB", "e3", 2.0),
     ("turn the dog down a bit", "e2", -3.0), ("the rain is too quiet", "e1", 6.0)],
)
def test_loudness_with_and_without_amounts(instruction: str, event_id: str, delta_lu: float) -> None:
    new = edited(instruction)
    assert new.event(event_id).target_lufs == SCENE.event(event_id).target_lufs + delta_lu
    only_changed(new, event_id)


def test_everything_louder_and_mute() -> None:
    new = edited("everything louder by 2 dB")
    assert all(new.event(e.id).target_lufs == e.target_lufs + 2.0 for e in SCENE.events)
    assert edited("mute the thunder").event("e5").target_lufs == -70.0


@pytest.mark.parametrize(
    "instruction",
    ["can you please remove the footsteps", "I don't like the footsteps, take it out",
     "get rid of the footsteps", "no footsteps please"],
)
def test_politeness_and_filler(instruction: str) -> None:
    new = edited(instruction)
    assert "e4" not in new.event_ids
    only_changed(new, "e4")


def test_put_a_new_sound_adds_it_and_an_existing_one_moves() -> None:
    new = edited("put a car horn at 7 seconds")
    assert new.event("e6") == SCENE.event("e6")  # the car stays where it was
    horn = [e for e in new.events if e.id not in SCENE.event_ids]
    assert len(horn) == 1 and "horn" in horn[0].description.lower()
    assert horn[0].start_s == 7.0 and horn[0].length_s <= 2.0
    moved = edited("put the door at 6 seconds")
    assert moved.event("e3").start_s == 6.0 and moved.event_ids == SCENE.event_ids


def test_an_ambiguous_target_lists_the_candidates() -> None:
    plan = validate_plan({"duration_s": 10.0, "events": [
        {"id": "e1", "description": "A car passes", "start_s": 0, "end_s": 4},
        {"id": "e2", "description": "A car idles", "start_s": 6, "end_s": 10}]})
    with pytest.raises(InvalidInputError) as info:
        RULES.edit(plan, "make the car quieter")
    assert "e1: A car passes" in str(info.value) and "e2: A car idles" in str(info.value)
    assert RULES.edit(plan, "remove the idling car").plan.event_ids == ["e1"]


def test_an_unreadable_edit_is_one_clear_line() -> None:
    with pytest.raises(InvalidInputError) as info:
        edited("make it sound more like the eighties")
    message = str(info.value)
    assert "\n" not in message and "not understood" in message and "swap X and Y" in message
    with pytest.raises(NotFoundError, match="elephant"):
        edited("move the elephant to 3 s")


def test_set_fades_edit() -> None:
    new = apply_edit(PLAN, EventEdit(op="set_fades", event_id="e1", fade_in_s=2.0))
    assert new.event("e1").fade_in_s == 2.0 and kinds(new)["e1"] == ChangeKind.CHANGED
    cleared = apply_edit(new, EventEdit(op="set_fades", event_id="e1", fade_in_s=0.0))
    assert cleared.event("e1").fade_in_s is None
    with pytest.raises(InvalidInputError, match="fade_in_s"):
        apply_edit(PLAN, EventEdit(op="set_fades", event_id="e1"))
    with pytest.raises(PlanValidationError, match="must fit"):
        apply_edit(PLAN, EventEdit(op="set_fades", event_id="e2", fade_in_s=3.0))


@pytest.mark.parametrize(
    ("instruction", "event_id", "fade"),
    [("fade the car out", "e6", ("fade_out_s", 2.0)),
     ("the car should fade in", "e6", ("fade_in_s", 2.0)),
     ("fade the rain in over 3 s", "e1", ("fade_in_s", 3.0))],
)
def test_fade_edits(instruction: str, event_id: str, fade: tuple[str, float]) -> None:
    new = edited(instruction)
    assert getattr(new.event(event_id), fade[0]) == fade[1]
    only_changed(new, event_id)


def test_more_plain_forms() -> None:
    assert edited("move the door slam to the start").event("e3").start_s == 0.0
    assert edited("make the rain last only until 8 seconds").event("e1").end_s == 8.0
    quieter = edited("make everything 1 dB quieter")
    assert all(quieter.event(e.id).target_lufs == e.target_lufs - 1.0 for e in SCENE.events)
    assert edited("slide the car back 1 s").event("e6").start_s == 6.0


def test_a_counted_run_moves_together() -> None:
    run = validate_plan({"duration_s": 10.0, "events": [
        {"id": "e1", "description": "A dog barks", "start_s": 1, "end_s": 1.5},
        {"id": "e2", "description": "A dog barks", "start_s": 2, "end_s": 2.5}]})
    new = RULES.edit(run, "move the dog to 4 s").plan
    assert [(e.start_s, e.end_s) for e in new.events] == [(4.0, 4.5), (5.0, 5.5)]


def test_an_edit_drops_the_notes_of_the_version_before() -> None:
    noted = PLAN.model_copy(update={"notes": ("'x' was asked for 12 s, past the scene end",)})
    assert apply_edit(noted, EventEdit(op="delete", event_id="e2")).notes == ()


def test_add_relative_to_an_event() -> None:
    new = edited("add a dog bark after the door")
    added = [e for e in new.events if e.id not in SCENE.event_ids]
    assert len(added) == 1 and added[0].start_s == 4.0 and "dog" in added[0].description.lower()
    only_changed(new)
    before = edited("add a scream before the door slam")
    scream = [e for e in before.events if e.id not in SCENE.event_ids][0]
    assert scream.end_s <= 3.0 + 1e-6 and "scream" in scream.description.lower()
