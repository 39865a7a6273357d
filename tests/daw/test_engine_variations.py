"""A re-roll of N variations: N seeds of one event rendered in one batched generator call
(engine side; the end-to-end REAPER test drives the same path through the server)."""

from __future__ import annotations

import pytest
import soundfile as sf
from pydantic import ValidationError

from engine.api import Change, EditRequest
from engine.errors import InvalidInputError
from tests.engine.test_session import CountingGenerator, _generate, _manager


def test_n_variations_render_in_one_generator_call_and_the_active_one_plays(tmp_path):
    generator = CountingGenerator()
    manager = _manager(tmp_path / "data", generator)
    _, first = _generate(manager)
    event = first.plan.events[0]
    calls = generator.calls
    seeds = [11, 22, 33, 44]
    change = Change(op="set_seed", event_id=event.id, seed=33, variations=seeds)
    pending = manager.prepare_edit("scene", change=change.to_edit(), variations={event.id: seeds})
    version = manager.render(pending)

    assert generator.calls == calls + 1  # one batched call for all four, none for the scene
    assert sorted(r.seed for r in generator.batches[-1]) == seeds
    assert {r.description for r in generator.batches[-1]} == {event.description}
    variations = version.manifest.variations
    assert [(v.event_id, v.number, v.seed) for v in variations] == [(event.id, n, s) for n, s in enumerate(seeds, 1)]
    assert all(not v.cache_hit for v in variations)
    assert len({v.cache_key for v in variations}) == 4
    for v in variations:  # each a real stem of the event's length
        info = sf.info(v.stem_path)
        assert info.frames == pytest.approx((event.end_s - event.start_s) * info.samplerate, abs=1)
    played = version.manifest.event(event.id)
    assert played.cache_hit and played.cache_key == variations[2].cache_key
    assert version.plan.event(event.id).seed == 33  # the session records the active variation
    others = [e for e in version.manifest.events if e.id != event.id]
    assert all(e.cache_hit for e in others)


def test_variations_are_checked():
    with pytest.raises(ValidationError, match="only a set_seed"):
        Change(op="move", event_id="e1", start_s=0.0, variations=[1, 2])
    with pytest.raises(ValidationError, match="repeat"):
        Change(op="set_seed", event_id="e1", variations=[1, 1])
    with pytest.raises(ValidationError, match="one of variations"):
        Change(op="set_seed", event_id="e1", seed=5, variations=[1, 2])
    with pytest.raises(ValidationError):
        Change(op="set_seed", event_id="e1", variations=list(range(9)))  # more than MAX_VARIATIONS
    change = Change(op="set_seed", event_id="e1", variations=[7, 8])
    assert change.seed == 7 and change.to_edit().seed == 7
    assert EditRequest(session="s", changes=[change]).changes[0].variations == [7, 8]


def test_variations_must_name_an_event_and_include_its_seed(tmp_path):
    manager = _manager(tmp_path / "data", CountingGenerator())
    _, first = _generate(manager)
    event = first.plan.events[0]
    change = Change(op="set_seed", event_id=event.id, seed=3).to_edit()
    with pytest.raises(InvalidInputError, match="not in the scene"):
        manager.prepare_edit("scene", change=change, variations={"nope": [3, 4]})
    with pytest.raises(InvalidInputError, match="plays seed 3"):
        manager.prepare_edit("scene", change=change, variations={event.id: [5, 6]})
