"""LLM planner against a scripted OpenAI-compatible server over real HTTP (the real openai client).

Each test scripts the model's replies, then checks the outcome (accepted, repaired, fallen back
or an error) and what the planner sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.edits import stable_seed
from engine.errors import PlannerError
from engine.plan import DEFAULT_LIMITS, Event, Plan, PlanLimits
from engine.planners import PlanResult, Turn
from engine.planners.llm import LLMPlanner, LLMSettings
from engine.planners.llm_endpoint import MEMORY
from engine.planners.llm_parse import schema_note
from tests.fake_openai_server import FakeOpenAIServer

RAIN = {"id": "e1", "description": "Heavy rain falls on a tin roof.", "start_s": 0.0,
        "end_s": 10.0, "target_lufs": -30.0}
DOOR = {"id": "e2", "description": "A wooden door slams shut.", "start_s": 4.0, "end_s": 5.5,
        "target_lufs": -18.0}
GOOD = {"duration_s": 10.0, "events": [RAIN, DOOR]}


class StubFallback:
    """Stands in for the rule planner so the fallback path is visible and cheap."""

    name = "stub-rules"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def plan(self, prompt: str, *, duration_s: float, history=(), limits=None) -> PlanResult:
        self.calls.append(f"plan:{prompt}")
        event = Event(id="e1", description=prompt, start_s=0.0, end_s=duration_s)
        return PlanResult(plan=Plan(duration_s=duration_s, events=(event,)), planner=self.name)

    def edit(self, plan: Plan, instruction: str, *, history=(), limits=None) -> PlanResult:
        self.calls.append(f"edit:{instruction}")
        return PlanResult(plan=plan, planner=self.name, notes=("nothing changed",))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    # What the planner learns about endpoints goes to a file of this test, not the user's cache.
    monkeypatch.setenv("AUDIO_AGENT_LLM_ENDPOINT_CACHE", str(tmp_path / "llm_endpoints.json"))
    MEMORY.clear_process_memory()  # a later test may get an earlier test's port
    for name in ("AUDIO_AGENT_LLM_VARIANT", "AUDIO_AGENT_LLM_STRUCTURED_OUTPUT",
                 "AUDIO_AGENT_LLM_FALLBACK", "AUDIO_AGENT_LLM_TEMPERATURE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def server():
    with FakeOpenAIServer() as fake:
        yield fake


def make_planner(server: FakeOpenAIServer, **overrides: Any) -> LLMPlanner:
    planner_options = {k: overrides.pop(k) for k in ("variant", "fallback") if k in overrides}
    settings = LLMSettings(
        base_url=server.base_url,
        api_key="test-key",
        model=overrides.pop("model", "planner-test"),
        timeout_s=overrides.pop("timeout_s", 5.0),
        max_retries=overrides.pop("max_retries", 2),
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        **overrides,
    )
    planner_options.setdefault("fallback", StubFallback())
    return LLMPlanner(settings=settings, **planner_options)


def system_prompt(body: dict) -> str:
    assert body["messages"][0]["role"] == "system"
    return body["messages"][0]["content"]


def roles_and_texts(body: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"][1:]]


# ----------------------------------------------------------------------------- accepted
def test_valid_plan_is_accepted_and_the_request_carries_prompt_schema_and_variant(server):
    server.add_json(GOOD)
    result = make_planner(server).plan("rain on a roof, a door slams", duration_s=10.0)

    assert not result.fell_back and result.planner == "llm" and result.notes == ()
    assert [e.id for e in result.plan.events] == ["e1", "e2"]
    assert result.plan.event("e2").target_lufs == -18.0
    assert result.plan.event("e1").seed == stable_seed(RAIN["description"])
    assert json.loads(result.reply)["events"][1]["description"] == DOOR["description"]

    (sent,) = server.chat_requests
    assert sent["model"] == "planner-test" and sent["temperature"] == pytest.approx(0.2)
    assert "variant: loudness" in system_prompt(sent) and "target_lufs" in system_prompt(sent)
    assert f"more than {DEFAULT_LIMITS.max_overlap} events" in system_prompt(sent)
    assert roles_and_texts(sent) == [
        ("user", "Scene length: 10 seconds (duration_s = 10).\n"
                 "Scene request: rain on a roof, a door slams\nReturn the plan.")
    ]
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    event_schema = fmt["json_schema"]["schema"]["properties"]["events"]["items"]
    assert "target_lufs" in event_schema["required"]


def test_a_plan_that_stops_early_is_accepted_with_a_note(server):
    server.add_json({"events": [{**DOOR, "start_s": 1.0, "end_s": 2.5}]})
    result = make_planner(server).plan("a door slams", duration_s=10.0)
    assert not result.fell_back and result.plan.events[0].end_s == 2.5
    assert result.notes == ("no event reaches the scene end: the last one ends at 2.5 s of 10 s",)


def test_plain_variant_sends_the_plain_prompt_and_a_schema_without_loudness(server):
    plain = {"events": [{k: v for k, v in RAIN.items() if k != "target_lufs"}]}
    server.add_json(plain)
    limits = PlanLimits(max_overlap=2)
    result = make_planner(server, variant="plain").plan("rain", duration_s=10.0, limits=limits)

    assert result.plan.event("e1").target_lufs is None
    (sent,) = server.chat_requests
    assert "variant: plain" in system_prompt(sent) and "target_lufs" not in system_prompt(sent)
    assert "more than 2 events" in system_prompt(sent)
    items = sent["response_format"]["json_schema"]["schema"]["properties"]["events"]["items"]
    assert "target_lufs" not in items["properties"]


@pytest.mark.parametrize(
    "reply",
    [
        "```json\n" + json.dumps(GOOD) + "\n```",
        "Here is the plan you asked for:\n" + json.dumps(GOOD) + "\nEnjoy the scene!",
        json.dumps({"events": GOOD["events"]}),  # no duration_s
        json.dumps(GOOD["events"]),  # a bare list of events
        json.dumps({"plan": {"events": [
            {"id": "e1", "text": RAIN["description"], "start_time": 0, "end_time": 10,
             "loudness_lufs": -30},
            {"id": "e2", "caption": DOOR["description"], "start": 4, "end": 5.5, "lufs": -18,
             "comment": "ignored"},
        ]}}),
    ],
    ids=["fenced", "prose-around", "no-duration", "bare-list", "aliased-keys"],
)
def test_defensive_parsing_accepts_common_answer_shapes(server, reply):
    server.add_reply(reply)
    result = make_planner(server).plan("rain and a door", duration_s=10.0)

    assert not result.fell_back and result.notes == ()
    events = result.plan.events
    assert [(e.id, e.description, e.start_s, e.end_s, e.target_lufs) for e in events] == [
        ("e1", RAIN["description"], 0.0, 10.0, -30.0),
        ("e2", DOOR["description"], 4.0, 5.5, -18.0),
    ]
    assert len(server.chat_requests) == 1


# ----------------------------------------------------------------------------- repaired
def test_invalid_times_are_sent_back_once_and_the_corrected_plan_is_accepted(server):
    bad = {"duration_s": 10.0, "events": [RAIN, {**DOOR, "start_s": 9.0, "end_s": 12.0}]}
    server.add_json(bad)
    server.add_json(GOOD)
    result = make_planner(server).plan("rain, door", duration_s=10.0)

    assert not result.fell_back and result.planner == "llm"
    assert result.plan.event("e2").end_s == 5.5
    assert result.notes == (
        "the model corrected its plan after: events[1].end_s=12.0: must be <= duration_s (10.0)",
    )
    first, second = server.chat_requests
    assert roles_and_texts(second)[:2] == roles_and_texts(first)[:1] + [
        ("assistant", json.dumps(bad))
    ]
    role, text = roles_and_texts(second)[2]
    assert role == "user" and "events[1].end_s=12.0: must be <= duration_s (10.0)" in text


def test_wrong_types_are_repaired(server):
    server.add_json({"events": [{**RAIN, "start_s": "at the start"}]})
    server.add_json({"events": [RAIN]})
    result = make_planner(server).plan("rain", duration_s=10.0)

    assert not result.fell_back and result.plan.event_ids == ["e1"]
    assert "events[0].start_s" in result.notes[0]
    assert "events[0].start_s" in server.chat_requests[1]["messages"][-1]["content"]


def test_no_json_at_all_is_sent_back_as_a_format_error(server):
    server.add_reply("Rain on a roof with a door slam halfway through.")
    server.add_json(GOOD)
    result = make_planner(server).plan("rain, door", duration_s=10.0)

    assert not result.fell_back
    assert "no JSON object" in server.chat_requests[1]["messages"][-1]["content"]


# ----------------------------------------------------------------------------- fallen back
def test_too_many_overlaps_twice_falls_back_with_both_errors_in_the_notes(server):
    crowd = [{"id": f"e{i}", "description": f"Sound number {i}.", "start_s": 0.0, "end_s": 10.0}
             for i in range(1, DEFAULT_LIMITS.max_overlap + 2)]
    server.add_json({"events": crowd})
    server.add_json({"events": crowd + [{**crowd[0], "id": "e9"}]})
    fallback = StubFallback()
    result = make_planner(server, fallback=fallback).plan("a busy street", duration_s=10.0)

    assert result.fell_back and result.planner == "stub-rules"
    assert fallback.calls == ["plan:a busy street"]
    reason = result.notes[0]
    assert reason.startswith("LLM planner failed: the model's plan was invalid twice")
    assert reason.count(f"at most {DEFAULT_LIMITS.max_overlap} events may sound at once") == 2
    assert result.notes[1] == "the stub-rules planner made this plan instead"


def test_the_same_missing_field_twice_is_named_as_such(server):
    missing = {"events": [{"id": "e1", "description": "A bell rings.", "start_s": 0.0}]}
    server.add_json(missing)
    server.add_json(missing)
    result = make_planner(server).plan("a bell", duration_s=10.0)

    assert result.fell_back
    assert result.notes[0].startswith(
        "LLM planner failed: the model returned the same invalid plan twice (events[0].end_s="
    )
    assert "Field required" in result.notes[0]


def test_without_fallback_an_invalid_plan_twice_raises_a_planner_error(server):
    server.add_json({"events": [{**RAIN, "end_s": 0.0}]})
    server.add_json({"events": [{**RAIN, "end_s": -1.0}]})
    with pytest.raises(PlannerError) as raised:
        make_planner(server, fallback=False).plan("rain", duration_s=10.0)
    assert str(raised.value).startswith("LLM planner failed: the model's plan was invalid twice")
    assert raised.value.code == "planner_failed"


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ({"content": None, "refusal": "I can't help with that request."},
         "the model refused: I can't help with that request."),
        ({"content": "I'm sorry, but I can't create that scene."},
         "the model refused: I'm sorry, but I can't create that scene."),
        ({"content": "   "}, "the model returned an empty answer"),
    ],
    ids=["refusal-field", "refusal-text", "empty"],
)
def test_refusals_and_empty_answers_fall_back_without_a_repair_round(server, script, reason):
    server.add_reply(script.pop("content"), **script)
    result = make_planner(server).plan("a scene", duration_s=10.0)

    assert result.fell_back and result.notes[0] == f"LLM planner failed: {reason}"
    assert len(server.chat_requests) == 1


def test_a_completion_without_choices_falls_back(server):
    server.add_raw({"id": "x", "object": "chat.completion", "choices": []})
    result = make_planner(server).plan("rain", duration_s=10.0)
    assert result.fell_back
    assert result.notes[0] == "LLM planner failed: the LLM returned no answer (no choices)"


def test_garbage_ids_are_named_back_to_the_model(server):
    server.add_json({"events": [{**RAIN, "id": {"nested": 1}}]})
    server.add_json({"events": [RAIN]})
    result = make_planner(server).plan("rain", duration_s=10.0)
    assert not result.fell_back and result.plan.event_ids == ["e1"]
    assert "events[0].id" in server.chat_requests[1]["messages"][-1]["content"]


# ----------------------------------------------------------------------------- transport
def test_429_then_success_retries_and_accepts(server):
    server.add_error(429, "Rate limit reached")
    server.add_json(GOOD)
    result = make_planner(server).plan("rain, door", duration_s=10.0)

    assert not result.fell_back and result.plan.event_ids == ["e1", "e2"]
    first, second = server.chat_requests
    assert first == second  # the retry resends the same request


def test_500s_until_give_up_fall_back_or_raise(server):
    for _ in range(3):
        server.add_error(500, "upstream exploded")
    result = make_planner(server, max_retries=2).plan("rain", duration_s=10.0)
    assert result.fell_back and len(server.chat_requests) == 3
    assert result.notes[0] == (
        "LLM planner failed: the LLM endpoint failed (HTTP 500: upstream exploded); "
        "gave up after 3 attempts"
    )

    for _ in range(2):
        server.add_error(503, "overloaded")
    with pytest.raises(PlannerError, match=r"HTTP 503: overloaded\); gave up after 2 attempts"):
        make_planner(server, max_retries=1, fallback=False).plan("rain", duration_s=10.0)
    assert server.pending == 0


def test_timeout_is_retried_then_reported(server):
    server.add_json(GOOD, delay_s=2.0)
    server.add_json(GOOD)
    result = make_planner(server, timeout_s=0.3).plan("rain, door", duration_s=10.0)
    assert not result.fell_back and len(server.chat_requests) == 2

    server.add_json(GOOD, delay_s=2.0)
    with pytest.raises(PlannerError) as raised:
        make_planner(server, timeout_s=0.3, max_retries=0, fallback=False).plan(
            "rain", duration_s=10.0
        )
    assert str(raised.value) == (
        "LLM planner failed: the LLM did not answer within 0.3 s; gave up after 1 attempts"
    )


def test_auth_errors_are_not_retried(server):
    server.add_error(401, "Incorrect API key provided")
    with pytest.raises(PlannerError, match=r"HTTP 401: Incorrect API key provided"):
        make_planner(server, fallback=False).plan("rain", duration_s=10.0)
    assert len(server.chat_requests) == 1


def test_a_refused_json_schema_steps_down_one_rung_and_is_remembered(server):
    """The full ladder, per server, is in test_llm_endpoints.py; this is the plain 400 case."""
    server.add_error(400, "response_format json_schema is not supported")
    server.add_json(GOOD)
    server.add_json(GOOD)
    planner = make_planner(server)
    result = planner.plan("rain, door", duration_s=10.0)

    assert not result.fell_back
    assert result.notes == (
        "the endpoint refused response_format json_schema (HTTP 400: response_format "
        "json_schema is not supported); using json_object with a schema from now on",
    )
    first, second = server.chat_requests
    assert first["response_format"]["type"] == "json_schema"
    assert second["response_format"]["type"] == "json_object"
    assert second["response_format"]["schema"] == first["response_format"]["json_schema"]["schema"]

    planner.plan("rain again", duration_s=10.0)
    assert server.chat_requests[2]["response_format"]["type"] == "json_object"

    # A new planner for the same endpoint and model (the server makes one per request) knows.
    server.add_json(GOOD)
    result = make_planner(server).plan("rain once more", duration_s=10.0)
    assert result.notes == ()
    assert server.chat_requests[3]["response_format"]["type"] == "json_object"
    server.add_json(GOOD)
    make_planner(server, model="another-model").plan("rain", duration_s=10.0)
    assert server.chat_requests[4]["response_format"]["type"] == "json_schema"


def test_forced_json_schema_does_not_downgrade(server):
    server.add_error(400, "unknown field response_format")
    planner = make_planner(server, structured_output="json_schema", fallback=False)
    with pytest.raises(PlannerError, match=r"rejected the request \(HTTP 400: unknown field"):
        planner.plan("rain", duration_s=10.0)
    assert len(server.chat_requests) == 1


def test_plain_mode_never_sends_a_response_format(server):
    server.add_json(GOOD)
    make_planner(server, structured_output="plain", temperature=None).plan("rain", duration_s=10.0)
    (sent,) = server.chat_requests
    assert "response_format" not in sent
    assert system_prompt(sent).endswith(schema_note(with_loudness=True))
    assert "temperature" not in sent


# ----------------------------------------------------------------------------- edits
def current_plan() -> Plan:
    return Plan(duration_s=10.0, events=(
        Event(id="e1", description=RAIN["description"], start_s=0.0, end_s=10.0,
              target_lufs=-30.0, seed=111),
        Event(id="e2", description=DOOR["description"], start_s=4.0, end_s=5.5,
              target_lufs=-18.0, seed=222),
    ))


def test_edit_sends_history_and_the_current_plan_and_keeps_seeds_of_kept_events(server):
    history = [
        Turn("user", "rain on a roof, a door slams"),
        Turn("assistant", json.dumps(GOOD)),
    ]
    cat = {"id": "e2", "description": "A cat meows once.", "start_s": 4.0, "end_s": 5.5,
           "target_lufs": -18.0}
    server.add_json({"duration_s": 10.0, "events": [RAIN, cat]})
    result = make_planner(server).edit(current_plan(), "swap the door for a cat", history=history)

    assert result.plan.event("e1").seed == 111  # kept: same seed, the cached render is reused
    assert result.plan.event("e2").seed == stable_seed("A cat meows once.")
    (sent,) = server.chat_requests
    sent_turns = roles_and_texts(sent)
    assert sent_turns[:2] == [(t.role, t.content) for t in history]
    role, text = sent_turns[2]
    assert role == "user" and text.endswith(
        "Revision request: swap the door for a cat\nReturn the complete revised plan."
    )
    sent_plan = json.loads(text.splitlines()[1])
    assert sent_plan == {"duration_s": 10.0, "events": [
        {k: v for k, v in e.items()} for e in (RAIN, DOOR)
    ]}


def test_history_is_bounded_by_the_token_budget_oldest_first(server):
    history = [Turn("user", "a" * 400), Turn("assistant", "b" * 400),
               Turn("user", "c" * 40), Turn("assistant", "d" * 40)]
    server.add_json(GOOD)
    make_planner(server, history_token_budget=120).edit(current_plan(), "louder door",
                                                        history=history)
    sent_turns = roles_and_texts(server.chat_requests[0])
    # 100 + 10 + 10 tokens fit, the oldest 100-token turn does not.
    assert [text[0] for _, text in sent_turns[:-1]] == ["b", "c", "d"]
    assert "Current plan" in sent_turns[-1][1]  # the plan is always sent in full


def test_plain_variant_edit_keeps_loudness_of_events_the_model_left_alone(server):
    plain_events = [{k: v for k, v in e.items() if k != "target_lufs"} for e in (RAIN, DOOR)]
    plain_events[1]["start_s"], plain_events[1]["end_s"] = 6.0, 7.5
    server.add_json({"events": plain_events})
    result = make_planner(server, variant="plain").edit(current_plan(), "door later")

    assert result.plan.event("e1").target_lufs == -30.0
    assert result.plan.event("e2").target_lufs == -18.0
    assert result.plan.event("e2").start_s == 6.0 and result.plan.event("e2").seed == 222
    assert "target_lufs" not in server.chat_requests[0]["messages"][-1]["content"]


def test_renumbered_unchanged_events_get_their_old_ids_back(server):
    server.add_json({"events": [{**RAIN, "id": "rain"}, {**DOOR, "id": "3", "target_lufs": -24}]})
    result = make_planner(server).edit(current_plan(), "door quieter")
    assert result.plan.event_ids == ["e1", "e2"]
    assert result.plan.event("e2").target_lufs == -24 and result.plan.event("e2").seed == 222


def test_edit_fallback_gets_the_plan_and_instruction(server):
    server.add_reply("I cannot do that.")
    fallback = StubFallback()
    result = make_planner(server, fallback=fallback).edit(current_plan(), "make it scary")
    assert result.fell_back and fallback.calls == ["edit:make it scary"]
    assert result.notes[-1] == "nothing changed"


def test_default_fallback_is_the_real_rule_planner(server):
    server.add_error(500, "down")
    # fallback=None is what create_planner("llm") gives: the rule planner.
    planner = make_planner(server, max_retries=0, fallback=None)
    result = planner.plan("A door creaks open followed by footsteps", duration_s=10.0)

    assert result.fell_back and result.planner == "rules"
    assert result.notes[:2] == (
        "LLM planner failed: the LLM endpoint failed (HTTP 500: down); gave up after 1 attempts",
        "the rules planner made this plan instead",
    )
    first, second = sorted(result.plan.events, key=lambda e: e.start_s)
    assert "door" in first.description.lower() and "footsteps" in second.description.lower()
    # The assistant turn stores the plan as JSON so a later LLM turn can read (and undo) it.
    assert json.loads(result.reply)["events"][0]["id"] == result.plan.events[0].id


def test_cli_plan_with_the_llm_planner(server, monkeypatch, capsys):
    from server.cli import main

    monkeypatch.setenv("AUDIO_AGENT_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("AUDIO_AGENT_LLM_BACKOFF_BASE_S", "0.001")
    monkeypatch.setenv("AUDIO_AGENT_LLM_MAX_RETRIES", "0")
    monkeypatch.delenv("AUDIO_AGENT_PLANNER", raising=False)
    server.add_json({"events": [{**RAIN, "end_s": 8.0}]})
    assert main(["plan", "rain on a roof", "--duration", "8", "--planner", "llm",
                 "--llm-model", "cli-model"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["events"][0]["description"] == RAIN["description"]
    assert "planner: llm" in err and server.chat_requests[0]["model"] == "cli-model"

    server.add_error(500, "down")
    assert main(["plan", "rain on a roof", "--duration", "8", "--planner", "llm"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["events"][0]["description"].lower().startswith("rain")
    assert "fell back to the rule planner" in err and "HTTP 500: down" in err


def test_a_custom_prompt_dir_replaces_the_presets(server, tmp_path):
    plain = ("Custom plain planner. Use start_s, end_s and a description. At most $max_overlap "
             "at once. ") * 4
    (tmp_path / "planner_prompt.md").write_text(plain)
    server.add_json({"events": [{k: v for k, v in RAIN.items() if k != "target_lufs"}]})
    make_planner(server, variant="plain", prompt_dir=tmp_path).plan("rain", duration_s=10.0)
    assert system_prompt(server.chat_requests[0]).startswith("Custom plain planner.")
    assert f"At most {DEFAULT_LIMITS.max_overlap} at once." in system_prompt(
        server.chat_requests[0])


def test_a_given_fallback_planner_still_obeys_the_fallback_setting(server):
    """A caller-supplied fallback says which planner answers, not whether: with the user's
    fallback setting off, the failure is an error."""
    from engine.planners.rules import RulePlanner

    server.add_error(500, "down")
    settings = LLMSettings(base_url=server.base_url, api_key="k", model="m", max_retries=0,
                           fallback=False)
    with pytest.raises(PlannerError):
        LLMPlanner(settings=settings, fallback=RulePlanner()).plan("rain", duration_s=10.0)
    server.add_error(500, "down")
    given = RulePlanner(base_lufs=-18.0)
    result = make_planner(server, max_retries=0, fallback=given).plan(
        "a dog barks", duration_s=5.0)
    own = given.plan("a dog barks", duration_s=5.0).plan
    default = RulePlanner().plan("a dog barks", duration_s=5.0).plan
    assert result.fell_back and result.plan.events[0].target_lufs == own.events[0].target_lufs
    assert own.events[0].target_lufs != default.events[0].target_lufs  # the given one answered
