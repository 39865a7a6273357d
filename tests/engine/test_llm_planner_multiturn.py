"""A whole LLM conversation: generate, then replace / loudness / move / delete / undo.

The scripted model answers each turn. After each turn the plan diff must name exactly the
events the model changed, and rendering the new plan (reuse= the previous manifest, a real
RenderCache) must call the generator only for events with new content.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pytest

from engine.cache import RenderCache
from engine.edits import stable_seed
from engine.generators import GenerationRequest, GenerationResult
from engine.plan import ChangeKind, diff_plans
from engine.planners import Turn
from engine.planners.llm import LLMPlanner, LLMSettings
from engine.scene import render_scene
from engine.render_settings import RenderSettings
from tests.fake_openai_server import FakeOpenAIServer

SAMPLE_RATE = 48000


class CountingGenerator:
    """Deterministic noise per request; records every description it was asked for."""

    name = "counting"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "version": 1}

    def generate(self, requests: Sequence[GenerationRequest], *, progress=None, cancel=None):
        self.calls.append([r.description for r in requests])
        results = []
        for request in requests:
            rng = np.random.default_rng(request.seed)
            frames = int(round(request.length_s * request.sample_rate))
            audio = (0.1 * rng.standard_normal((1, frames))).astype(np.float32)
            results.append(GenerationResult(audio=audio))
        return results


def event(event_id: str, description: str, start_s: float, end_s: float, lufs: float) -> dict:
    return {"id": event_id, "description": description, "start_s": start_s, "end_s": end_s,
            "target_lufs": lufs}


RAIN = event("e1", "Heavy rain falls on a tin roof.", 0.0, 10.0, -30.0)
DOOR = event("e2", "A wooden door slams shut.", 4.0, 5.5, -18.0)
DOG = event("e3", "A small dog barks twice.", 6.0, 8.0, -20.0)
CAT = {**DOG, "description": "A cat meows twice."}
QUIET_RAIN = {**RAIN, "target_lufs": -36.0}
EARLY_DOOR = {**DOOR, "start_s": 2.0, "end_s": 3.5}
THUNDER = {"description": "A loud thunder clap.", "start_s": 8.0, "end_s": 9.5,
           "target_lufs": -16.0}

# (user text, scripted events, expected {event_id: change} for everything not unchanged,
#  descriptions the generator must be asked for)
TURNS = [
    ("rain on a roof, a door slams, a dog barks", [RAIN, DOOR, DOG],
     {"e1": "added", "e2": "added", "e3": "added"},
     [RAIN["description"], DOOR["description"], DOG["description"]]),
    ("replace the dog with a cat", [RAIN, DOOR, CAT], {"e3": "changed"}, [CAT["description"]]),
    ("make the rain quieter", [QUIET_RAIN, DOOR, CAT], {"e1": "regained"}, []),
    ("move the door slam to 2 seconds", [QUIET_RAIN, EARLY_DOOR, CAT], {"e2": "moved"}, []),
    ("remove the cat", [QUIET_RAIN, EARLY_DOOR], {"e3": "removed"}, []),
    # The cat comes back with its old text, length and seed: its raw render is in the cache.
    ("undo that", [QUIET_RAIN, EARLY_DOOR, CAT], {"e3": "added"}, []),
    # Insertion; the model gave no id, so the planner picks one not used in the plan.
    ("add a thunder clap at 8 seconds", [QUIET_RAIN, EARLY_DOOR, CAT, THUNDER], {"e4": "added"},
     [THUNDER["description"]]),
]


@pytest.fixture()
def server():
    with FakeOpenAIServer() as fake:
        yield fake


def test_conversation_diffs_and_renders_only_what_the_model_changed(server, tmp_path):
    for _, events, _, _ in TURNS:
        server.add_json({"duration_s": 10.0, "events": events})
    settings = LLMSettings(base_url=server.base_url, api_key="k", model="m", max_retries=0,
                           history_token_budget=100_000)
    planner = LLMPlanner(settings=settings, fallback=False)
    generator = CountingGenerator()
    cache = RenderCache(tmp_path / "cache")
    history: list[Turn] = []
    plan = manifest = None
    rain_gain_db: dict[int, float] = {}

    for number, (text, _, expected, generated) in enumerate(TURNS, 1):
        if plan is None:
            result = planner.plan(text, duration_s=10.0, history=history)
        else:
            result = planner.edit(plan, text, history=history)
        assert not result.fell_back and result.notes == ()
        diff = diff_plans(plan, result.plan)
        changed = {c.event_id: c.kind.value for c in diff.changes
                   if c.kind is not ChangeKind.UNCHANGED}
        assert changed == expected, f"turn {number}: {text}"

        calls_before = len(generator.calls)
        reuse = {e.id: e for e in manifest.events} if manifest else None
        new_manifest = render_scene(result.plan, generator=generator, cache=cache, reuse=reuse,
                                    out_dir=tmp_path / f"v{number}",
                                    settings=RenderSettings(write_mix=False))
        asked = [d for call in generator.calls[calls_before:] for d in call]
        assert sorted(asked) == sorted(generated), f"turn {number}: {text}"
        assert not new_manifest.failed
        for entry in new_manifest.events:
            assert entry.cache_hit == (entry.description not in generated)
            kind = diff.kind_of(entry.id)
            if manifest is not None and kind in (ChangeKind.UNCHANGED, ChangeKind.MOVED,
                                                  ChangeKind.REGAINED):
                # Same samples: the previous stem file is kept, only its item position/gain move.
                assert entry.stem_path == manifest.event(entry.id).stem_path
        rain_gain_db[number] = new_manifest.event("e1").gain_db
        history += [Turn("user", text), Turn("assistant", result.reply)]
        plan, manifest = result.plan, new_manifest

    # The loudness-only edit reached the DAW as an item-gain change of exactly -6 dB.
    assert rain_gain_db[3] - rain_gain_db[2] == pytest.approx(-6.0, abs=1e-3)
    assert rain_gain_db[7] == rain_gain_db[6] == rain_gain_db[3]
    # The restored cat has the seed it had before, so it hit the cache.
    assert plan.event("e3").seed == stable_seed(CAT["description"])
    cache.close()

    # What the model saw on the undo turn: all earlier turns (so the plan before the deletion
    # is there to restore) and the current plan, which no longer has the cat.
    undo_request = server.chat_requests[5]
    messages = undo_request["messages"][1:]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 5 + ["user"]
    before_delete = json.loads(messages[7]["content"])  # the reply to "move the door slam"
    assert [e["id"] for e in before_delete["events"]] == ["e1", "e2", "e3"]
    assert before_delete["events"][2]["description"] == CAT["description"]
    current = json.loads(messages[-1]["content"].splitlines()[1])
    assert [e["id"] for e in current["events"]] == ["e1", "e2"]
    assert messages[-1]["content"].endswith("Revision request: undo that\n"
                                            "Return the complete revised plan.")
