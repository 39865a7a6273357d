"""Per-event fades in the LLM planner: the schema and prompt ask for them, answers are read and
checked like times, revisions keep them. Against the scripted server over real HTTP."""

from __future__ import annotations

import json

import pytest

from engine.plan import DEFAULT_LIMITS, Event, Plan
from engine.planners.llm import LLMPlanner
from engine.planners.llm_parse import plan_data, plan_max_tokens, plan_schema
from engine.planners.llm_prompt import load_system_prompt, plan_for_model
from engine.planners.rules import RulePlanner
from tests.engine.test_llm_planner_http import clean_env, server  # noqa: F401 - fixtures
from tests.engine.test_llm_planner_http import make_planner as http_planner
from tests.fake_openai_server import FakeOpenAIServer

HELICOPTER = {"id": "e1", "description": "A helicopter approaches overhead.", "start_s": 0.0,
              "end_s": 8.0, "fade_in_s": 4.0, "fade_out_s": None, "target_lufs": -20.0}
CAR = {"id": "e2", "description": "A car drives away on gravel.", "start_s": 6.0, "end_s": 10.0,
       "fade_in_s": None, "fade_out_s": 2.5, "target_lufs": -22.0}


def make_planner(server: FakeOpenAIServer) -> LLMPlanner:
    """The HTTP suite's planner, failing at once and falling back to the rule planner."""
    return http_planner(server, max_retries=0, fallback=RulePlanner())


def last_user_text(body: dict) -> str:
    return body["messages"][-1]["content"]


# ---- what the model is asked for ------------------------------------------------------------


@pytest.mark.parametrize("with_loudness", [True, False])
def test_schema_has_nullable_fades_that_strict_mode_accepts(with_loudness: bool) -> None:
    items = plan_schema(with_loudness=with_loudness)["properties"]["events"]["items"]
    for name in ("fade_in_s", "fade_out_s"):
        assert items["properties"][name] == {"type": ["number", "null"]}
        # Strict structured output needs every property listed as required.
        assert name in items["required"]
    assert set(items["required"]) == set(items["properties"])


def test_room_for_the_fade_keys_in_the_answer_budget() -> None:
    # The longest allowed plan, written with fades on every event, still fits max_tokens.
    description = "x" * DEFAULT_LIMITS.max_description_chars
    event = {"id": "e12", "description": description, "start_s": 12.345, "end_s": 12.345,
             "fade_in_s": 12.345, "fade_out_s": 12.345, "target_lufs": -23.5}
    answer = json.dumps({"duration_s": 600.0, "events": [event] * DEFAULT_LIMITS.max_events})
    assert len(answer) / 3 <= plan_max_tokens(with_loudness=True)


@pytest.mark.parametrize("variant", ["plain", "loudness"])
def test_both_prompts_explain_fades_and_their_bounds(variant: str) -> None:
    text = load_system_prompt(variant, limits=DEFAULT_LIMITS)
    assert "fade_in_s" in text and "fade_out_s" in text
    assert "fade_in_s + fade_out_s <= end_s - start_s" in text
    assert '"fade_in_s": null' in text  # the output example shows the keys


def test_the_request_carries_the_fade_schema(server) -> None:
    server.add_json({"duration_s": 10.0, "events": [HELICOPTER, CAR]})
    make_planner(server).plan("a helicopter approaches, a car drives away", duration_s=10.0)
    (sent,) = server.chat_requests
    items = sent["response_format"]["json_schema"]["schema"]["properties"]["events"]["items"]
    assert "fade_in_s" in items["required"] and "fade_out_s" in items["required"]
    assert "fade_out_s" in sent["messages"][0]["content"]


# ---- reading answers --------------------------------------------------------------------------


def test_fades_from_the_model_reach_the_plan(server) -> None:
    server.add_json({"duration_s": 10.0, "events": [HELICOPTER, CAR]})
    result = make_planner(server).plan("a helicopter approaches, a car drives away",
                                       duration_s=10.0)
    assert not result.fell_back and result.notes == ()
    heli, car = result.plan.event("e1"), result.plan.event("e2")
    assert (heli.fade_in_s, heli.fade_out_s) == (4.0, None)
    assert (car.fade_in_s, car.fade_out_s) == (None, 2.5)


def test_fade_keys_are_read_defensively() -> None:
    data = plan_data({"events": [
        {"description": "A train arrives.", "start": 0, "end": 6, "fade_in": "3 s",
         "fadeOut": 0},
        {"description": "Wind.", "start_s": 0, "end_s": 6, "fade_out_seconds": 1.5},
    ]}, duration_s=6.0)
    first, second = data["events"]
    assert first["fade_in_s"] == 3.0
    assert first["fade_out_s"] is None  # 0 s is no shaped fade, the same plan as null
    assert second["fade_out_s"] == 1.5 and "fade_in_s" not in second


@pytest.mark.parametrize(
    ("bad", "message"),
    [({"fade_in_s": 5.0, "fade_out_s": 4.0}, "must fit in the event's 8 s"),
     ({"fade_in_s": -1.0}, "events[0].fade_in_s=-1.0: must be >= 0"),
     ({"fade_out_s": "slowly"}, "events[0].fade_out_s")],
    ids=["too-long", "negative", "not-a-number"],
)
def test_fades_that_break_the_plan_rules_are_sent_back_and_repaired(server, bad, message) -> None:
    server.add_json({"duration_s": 10.0, "events": [{**HELICOPTER, **bad}]})
    server.add_json({"duration_s": 10.0, "events": [HELICOPTER]})
    result = make_planner(server).plan("a helicopter approaches", duration_s=10.0)

    assert not result.fell_back and result.plan.events[0].fade_in_s == 4.0
    assert message in last_user_text(server.chat_requests[1])
    assert message in result.notes[0]


def test_fades_broken_twice_fall_back_to_the_rule_planner(server) -> None:
    broken = {"duration_s": 10.0, "events": [{**HELICOPTER, "fade_in_s": 20.0}]}
    server.add_json(broken)
    server.add_json(broken)
    result = make_planner(server).plan("a helicopter approaches", duration_s=10.0)
    assert result.fell_back and result.planner == "rules"
    # The rule planner's own fade for "approaches" stands in.
    assert result.plan.events[0].fade_in_s


# ---- revisions -----------------------------------------------------------------------------


def faded_plan() -> Plan:
    return Plan(duration_s=10.0, events=(
        Event(id="e1", description=HELICOPTER["description"], start_s=0.0, end_s=8.0,
              fade_in_s=4.0, target_lufs=-20.0, seed=111),
        Event(id="e2", description=CAR["description"], start_s=6.0, end_s=10.0,
              fade_out_s=2.5, target_lufs=-22.0, seed=222),
    ))


def test_the_model_sees_the_fades_of_the_current_plan() -> None:
    shown = plan_for_model(faded_plan(), with_loudness=False)["events"]
    assert shown[0]["fade_in_s"] == 4.0 and "fade_out_s" not in shown[0]
    assert shown[1]["fade_out_s"] == 2.5 and "fade_in_s" not in shown[1]


def test_a_revision_that_leaves_fade_keys_out_keeps_the_fades(server) -> None:
    bare = [{k: v for k, v in e.items() if not k.startswith("fade")} for e in (HELICOPTER, CAR)]
    bare[1]["target_lufs"] = -28.0
    server.add_json({"events": bare})
    result = make_planner(server).edit(faded_plan(), "car quieter")

    assert result.plan.event("e1").fade_in_s == 4.0
    assert result.plan.event("e2").fade_out_s == 2.5 and result.plan.event("e2").target_lufs == -28
    sent_plan = json.loads(last_user_text(server.chat_requests[0]).splitlines()[1])
    assert sent_plan["events"][0]["fade_in_s"] == 4.0


def test_a_revision_can_change_or_clear_a_fade(server) -> None:
    server.add_json({"events": [{**HELICOPTER, "fade_in_s": None},
                                {**CAR, "fade_out_s": 3.5}]})
    result = make_planner(server).edit(faded_plan(), "no fade on the helicopter, longer car fade")
    heli, car = result.plan.event("e1"), result.plan.event("e2")
    assert heli.fade_in_s is None and heli.seed == 111  # same sound, new edge shape
    assert car.fade_out_s == 3.5
