"""set_seed: the structured edit behind a DAW's re-roll and take choice (engine side)."""

from __future__ import annotations

import pytest

from engine.api import Change, EditRequest
from engine.edits import apply_edit
from engine.errors import InvalidInputError
from engine.plan import Event, Plan


def plan() -> Plan:
    return Plan(duration_s=4.0, events=(Event(id="e1", description="cup set down", start_s=0.0, end_s=1.0, seed=3),
                                        Event(id="e2", description="kettle", start_s=1.0, end_s=4.0, seed=5)))


def test_set_seed_changes_only_that_events_seed():
    edited = apply_edit(plan(), Change(op="set_seed", event_id="e1", seed=99).to_edit())
    assert [e.seed for e in edited.events] == [99, 5]
    assert edited.events[0].model_copy(update={"seed": 3}) == plan().events[0]


def test_set_seed_needs_a_seed_in_range():
    with pytest.raises(InvalidInputError, match="seed"):
        apply_edit(plan(), Change(op="set_seed", event_id="e1").to_edit())
    with pytest.raises(ValueError):
        Change(op="set_seed", event_id="e1", seed=2**32)
    assert EditRequest(session="s", changes=[Change(op="set_seed", event_id="e1", seed=7)]).changes[0].seed == 7
