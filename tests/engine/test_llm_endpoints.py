"""The LLM planner against fakes of the local servers people run (tests/fake_openai_server.py
PROFILES, each citing its source), through the real openai client over HTTP on loopback:
the structured-output ladder, the errors that must not move it, context and truncation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.errors import PlannerError
from engine.plan import DEFAULT_LIMITS, PlanLimits
from engine.planners.llm import LLMPlanner, LLMSettings, estimate_tokens
from engine.planners.llm_endpoint import MEMORY
from engine.planners.llm_parse import plan_max_tokens, schema_note
from engine.planners.llm_prompt import load_system_prompt, new_scene_message
from tests.fake_openai_server import FakeOpenAIServer, prompt_tokens

RAIN = {"id": "e1", "description": "Heavy rain falls on a tin roof.", "start_s": 0.0,
        "end_s": 10.0, "target_lufs": -30.0}
DOOR = {"id": "e2", "description": "A wooden door slams shut.", "start_s": 4.0, "end_s": 5.5,
        "target_lufs": -18.0}
GOOD = {"duration_s": 10.0, "events": [RAIN, DOOR]}


@pytest.fixture(autouse=True)
def endpoint_cache(monkeypatch, tmp_path):
    path = tmp_path / "llm_endpoints.json"
    monkeypatch.setenv("AUDIO_AGENT_LLM_ENDPOINT_CACHE", str(path))
    for name in ("AUDIO_AGENT_LLM_STRUCTURED_OUTPUT", "AUDIO_AGENT_LLM_MAX_TOKENS",
                 "AUDIO_AGENT_LLM_CONTEXT_TOKENS", "AUDIO_AGENT_LLM_VARIANT"):
        monkeypatch.delenv(name, raising=False)
    MEMORY.clear_process_memory()
    yield path
    MEMORY.clear_process_memory()


def planner_for(server: FakeOpenAIServer, **overrides: Any) -> LLMPlanner:
    settings = LLMSettings(
        base_url=server.base_url, api_key=overrides.pop("api_key", "test-key"),
        model=overrides.pop("model", "planner-test"), timeout_s=5.0,
        max_retries=overrides.pop("max_retries", 1), backoff_base_s=0.01, backoff_max_s=0.05,
        **overrides,
    )
    return LLMPlanner(settings=settings, fallback=False)


def first_request_tokens(prompt: str, *, duration_s: float) -> int:
    """The planner's estimate of a first request (the prompt text changes with the presets)."""
    system = load_system_prompt("loudness", limits=DEFAULT_LIMITS)
    user = new_scene_message(prompt, duration_s=duration_s)
    return estimate_tokens([{"role": "system", "content": system},
                            {"role": "user", "content": user}])


def format_of(body: dict) -> str:
    fmt = body.get("response_format")
    if fmt is None:
        return "plain"
    if fmt["type"] == "json_object":
        return "json_object_schema" if "schema" in fmt else "json_object"
    return fmt["type"]


# ----------------------------------------------------------------------------- the ladder
@pytest.mark.parametrize(
    ("profile", "best_rung", "refused_status"),
    [
        ("scripted", "json_schema", None),
        ("vllm", "json_schema", None),
        ("ollama", "json_schema", None),
        ("llama-server", "json_schema", None),
        ("llama-cpp-python", "json_object_schema", 500),
        ("llama-server-old", "json_object_schema", 500),
        ("vllm-old", "json_object_schema", 400),
    ],
)
def test_each_server_gets_a_model_made_plan_on_its_best_rung_after_at_most_one_refusal(
    profile, best_rung, refused_status, endpoint_cache
):
    with FakeOpenAIServer(profile=profile, context_tokens=8192) as server:
        for _ in range(4):
            server.add_json(GOOD)
        first = planner_for(server).plan("rain on a roof, a door slams", duration_s=10.0)
        assert first.planner == "llm" and not first.fell_back
        assert first.plan.event_ids == ["e1", "e2"]
        assert format_of(server.chat_requests[-1]) == best_rung
        if refused_status is None:
            assert server.refusals == [] and first.notes == ()
        else:
            ((status, body),) = server.refusals
            assert status == refused_status and format_of(body) == "json_schema"
            (note,) = first.notes
            assert note.startswith("the endpoint refused response_format json_schema (HTTP ")
            assert note.endswith("using json_object with a schema from now on")
            assert "\n" not in note and "File " not in note

        # Later plans, edits and new planner instances of this process start on that rung.
        again = planner_for(server).plan("rain again", duration_s=10.0)
        planner_for(server).edit(first.plan, "make the door louder")
        planner_for(server).plan("rain once more", duration_s=10.0)
        assert again.notes == ()
        assert len(server.refusals) == (0 if refused_status is None else 1)
        assert {format_of(body) for body in server.chat_requests[-3:]} == {best_rung}
        assert server.pending == 0


def test_concurrent_first_plans_cost_one_refused_request(endpoint_cache):
    """The server plans sessions in parallel: until the rung is confirmed, requests to a new
    endpoint go one at a time, so only the first one can be refused."""
    from concurrent.futures import ThreadPoolExecutor

    with FakeOpenAIServer(profile="llama-server-old") as server:
        for _ in range(4):
            server.add_json(GOOD)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(
                lambda n: planner_for(server).plan(f"rain {n}", duration_s=10.0), range(4)))
        assert all(r.planner == "llm" for r in results)
        assert len(server.refusals) == 1
        assert [format_of(b) for b in server.chat_requests].count("json_schema") == 1


def test_the_rung_found_is_kept_in_the_cache_file_for_the_next_process(endpoint_cache):
    with FakeOpenAIServer(profile="llama-cpp-python") as server:
        server.add_json(GOOD)
        planner_for(server).plan("rain", duration_s=10.0)
        saved = json.loads(endpoint_cache.read_text())["endpoints"]
        assert saved[f"{server.base_url}|planner-test"]["rung"] == "json_object_schema"

        MEMORY.clear_process_memory()  # as a new process would start
        server.add_json(GOOD)
        result = planner_for(server).plan("rain", duration_s=10.0)
        assert result.notes == () and len(server.refusals) == 1
        assert format_of(server.chat_requests[-1]) == "json_object_schema"


def test_the_lower_rungs_put_the_schema_in_the_prompt(endpoint_cache):
    with FakeOpenAIServer() as server:
        server.add_error(422, "response_format: unknown type json_schema")
        server.add_error(400, "response_format.schema: extra fields not permitted")
        server.add_json(GOOD)
        result = planner_for(server).plan("rain, door", duration_s=10.0)
        assert [format_of(b) for b in server.chat_requests] == [
            "json_schema", "json_object_schema", "json_object"]
        assert len(result.notes) == 2 and result.notes[1].endswith(
            "using json_object (schema in the prompt) from now on")
        system = server.chat_requests[2]["messages"][0]["content"]
        assert system.endswith(schema_note(with_loudness=True))
        assert server.chat_requests[0]["messages"][0]["content"] != system

        server.add_error(400, "response_format is not supported by this model")
        server.add_json(GOOD)
        result = planner_for(server).plan("rain, door", duration_s=10.0)
        last = server.chat_requests[-1]
        assert format_of(last) == "plain" and "response_format" not in last
        assert last["messages"][0]["content"].endswith(schema_note(with_loudness=True))
        assert result.notes[0].endswith("using plain JSON (schema in the prompt) from now on")


def test_a_forced_rung_is_never_left(endpoint_cache):
    with FakeOpenAIServer(profile="llama-cpp-python") as server:
        planner = planner_for(server, structured_output="json_schema")
        with pytest.raises(PlannerError) as raised:
            planner.plan("rain", duration_s=10.0)
        message = str(raised.value)
        assert "HTTP 500: body.response_format.type: Input should be 'text' or 'json_object'" in (
            message)
        assert "set it to auto" in message and "\n" not in message and "File " not in message
        assert len(server.chat_requests) == 1


# ----------------------------------------------------------------------------- unrelated errors
def test_a_context_overflow_is_its_own_error_and_keeps_structured_output(endpoint_cache):
    with FakeOpenAIServer(profile="llama-cpp-python", context_tokens=300) as server:
        planner = planner_for(server)
        with pytest.raises(PlannerError) as raised:
            planner.plan("rain", duration_s=10.0)
        message = str(raised.value)
        # The refused json_schema comes first (that server checks the format first); the
        # overflow of the json_object request is then named as such, not as a format refusal.
        assert ("does not fit the model's context (HTTP 400: This model's maximum context length "
                "is 300 tokens") in message and "--ctx-size" in message and "num_ctx" in message
        assert planner.endpoint_info().rung == "json_object_schema"
        assert planner.endpoint_info().context_tokens == 300
        assert [status for status, _ in server.refusals] == [500, 400]

    with FakeOpenAIServer(profile="llama-server", context_tokens=400) as server:
        planner = planner_for(server)
        MEMORY.first_probe(planner.endpoint_key)  # as if the models list had said nothing
        with pytest.raises(PlannerError, match=r"exceeds the available context size \(400"):
            planner.plan("rain", duration_s=10.0)
        assert planner.endpoint_info().rung == "json_schema"
        assert planner.endpoint_info().context_tokens == 400
        assert len(server.chat_requests) == 1  # a prompt over the context is not resent


def test_a_wrong_key_is_named_and_keeps_structured_output(endpoint_cache):
    for profile, said in [("llama-cpp-python", "HTTP 401: Invalid API key"),
                          ("llama-server", "HTTP 401: Invalid API Key"),
                          ("vllm", "HTTP 401: Unauthorized")]:
        with FakeOpenAIServer(profile=profile, api_key="right") as server:
            planner = planner_for(server, api_key="wrong")
            with pytest.raises(PlannerError) as raised:
                planner.plan("rain", duration_s=10.0)
            assert str(raised.value) == (
                f"LLM planner failed: the LLM endpoint refused the API key ({said}); set "
                "AUDIO_AGENT_LLM_API_KEY (or OPENAI_API_KEY) to a key it accepts"
            )
            assert len(server.chat_requests) == 1
            assert planner.endpoint_info().rung == "json_schema"


def test_rate_limits_and_server_errors_are_retried_on_the_same_rung(endpoint_cache):
    with FakeOpenAIServer() as server:
        server.add_error(429, "Rate limit reached", headers={"Retry-After": "0"})
        server.add_error(503, "model is loading")
        server.add_json(GOOD)
        result = planner_for(server, max_retries=2).plan("rain", duration_s=10.0)
        assert not result.fell_back and result.notes == ()
        assert [format_of(b) for b in server.chat_requests] == ["json_schema"] * 3

        server.add_error(429, "Rate limit reached")
        server.add_error(429, "Rate limit reached")
        with pytest.raises(PlannerError, match=r"rate limiting \(HTTP 429: Rate limit reached\); "
                                               r"gave up after 2 attempts"):
            planner_for(server).plan("rain", duration_s=10.0)
        assert planner_for(server).endpoint_info().rung == "json_schema"


def test_a_model_the_server_does_not_have_is_named(endpoint_cache):
    with FakeOpenAIServer(profile="ollama") as server:
        server.add_error(404, "", body={"error": {
            "message": 'model "qwen9:1b" not found, try pulling it first',
            "type": "not_found_error", "param": None, "code": None}})
        planner = planner_for(server, model="qwen9:1b")
        with pytest.raises(PlannerError) as raised:
            planner.plan("rain", duration_s=10.0)
        assert "has no model 'qwen9:1b' (HTTP 404: model \"qwen9:1b\" not found" in str(
            raised.value)
        assert "llm check" in str(raised.value) and planner.endpoint_info().rung == "json_schema"


def test_a_model_that_wants_max_completion_tokens_gets_it(endpoint_cache):
    with FakeOpenAIServer() as server:
        server.add_error(400, "Unsupported parameter: 'max_tokens' is not supported with this "
                              "model. Use 'max_completion_tokens' instead.")
        server.add_json(GOOD)
        result = planner_for(server).plan("rain", duration_s=10.0)
        assert result.notes == ()
        first, second = server.chat_requests
        assert "max_tokens" in first and "max_tokens" not in second
        assert second["max_completion_tokens"] == first["max_tokens"]
        assert format_of(second) == "json_schema"


# ----------------------------------------------------------------------------- tokens
def test_max_tokens_comes_from_the_limits_and_the_reported_context(endpoint_cache):
    limits = PlanLimits(max_events=4, max_description_chars=120)
    with FakeOpenAIServer() as server:  # no context reported
        server.add_json(GOOD)
        planner_for(server).plan("rain", duration_s=10.0, limits=limits)
        assert server.chat_requests[0]["max_tokens"] == plan_max_tokens(
            with_loudness=True, limits=limits)
        events = server.chat_requests[0]["response_format"]["json_schema"]["schema"][
            "properties"]["events"]
        assert events["minItems"] == 1 and events["maxItems"] == 4
        assert events["items"]["properties"]["description"]["maxLength"] == 120

    context = first_request_tokens("rain", duration_s=10.0) + 1000
    with FakeOpenAIServer(profile="vllm", context_tokens=context) as server:
        server.add_json(GOOD)
        result = planner_for(server).plan("rain", duration_s=10.0)
        (sent,) = server.chat_requests
        assert not result.fell_back and server.refusals == []
        assert sent["max_tokens"] == 1000 <= context - prompt_tokens(sent)


def test_a_max_tokens_the_server_finds_too_large_is_lowered_once(endpoint_cache):
    with FakeOpenAIServer() as server:
        server.add_error(400, "'max_tokens' or 'max_completion_tokens' is too large: 4096. This "
                              "model's maximum context length is 4096 tokens and your request "
                              "has 2778 input tokens (4096 > 4096 - 2778).")
        server.add_json(GOOD)
        result = planner_for(server).plan("rain", duration_s=10.0)
        assert not result.fell_back
        assert server.chat_requests[1]["max_tokens"] == 4096 - 2778
        assert format_of(server.chat_requests[1]) == "json_schema"


@pytest.mark.parametrize("profile", ["llama-server", "ollama", "llama-cpp-python"])
def test_a_cut_off_answer_is_answered_with_cut_off_and_the_repair_fits_the_context(
    profile, endpoint_cache
):
    rambling = "Here is the scene you asked for, in detail: " + "rain keeps falling " * 300
    context = first_request_tokens("rain, a door", duration_s=10.0) + 700
    with FakeOpenAIServer(profile=profile, context_tokens=context) as server:
        server.add_reply(rambling)
        server.add_json(GOOD)
        # Only llama-server reports its context; for the others the user sets it.
        options = {"context_tokens": context} if profile != "llama-server" else {}
        result = planner_for(server, **options).plan("rain, a door", duration_s=10.0)

        assert not result.fell_back and result.plan.event_ids == ["e1", "e2"]
        assert "your answer was cut off at the output limit" in result.notes[-1]
        first, second = server.chat_requests[-2:]
        repair = second["messages"][-1]["content"]
        assert "your answer was cut off" in repair and "shorter plan" in repair
        quoted = second["messages"][-2]["content"]
        assert len(quoted) < len(rambling)
        # Neither request, with the answer room it asked for, exceeds the context.
        for body in (first, second):
            assert prompt_tokens(body) + body["max_tokens"] <= context
        assert [format_of(body) for _, body in server.refusals] == (
            ["json_schema"] if profile == "llama-cpp-python" else [])


def test_a_context_the_models_list_reports_is_respected_before_sending(endpoint_cache):
    with FakeOpenAIServer(profile="llama-server", context_tokens=700) as server:
        with pytest.raises(PlannerError) as raised:
            planner_for(server).plan("rain", duration_s=10.0)
        assert "leaves no room for an answer in the model's 700-token context" in str(
            raised.value)
        assert server.chat_requests == []


def test_no_room_for_a_repair_round_is_said_plainly(endpoint_cache):
    context = first_request_tokens("rain", duration_s=10.0) + 300
    with FakeOpenAIServer(profile="llama-server", context_tokens=context) as server:
        server.add_reply("Rain. " * 400)
        with pytest.raises(PlannerError) as raised:
            planner_for(server).plan("rain", duration_s=10.0)
        assert f"no room for a repair round in the model's {context}-token context" in str(
            raised.value)
        assert "your answer was cut off" in str(raised.value) and len(server.chat_requests) == 1
        assert server.refusals == []


# ----------------------------------------------------------------------------- parsing
def test_raw_control_characters_inside_strings_are_read(endpoint_cache):
    raw = json.dumps(GOOD).replace("Heavy rain falls", "Heavy rain\n\tfalls\x01")
    assert "\n" in raw and "\t" in raw
    with FakeOpenAIServer(profile="llama-cpp-python") as server:
        server.add_reply(raw)
        result = planner_for(server).plan("rain", duration_s=10.0)
        assert result.plan.event("e1").description == "Heavy rain falls on a tin roof."
        assert len(server.chat_requests) == 2  # the refused json_schema, then one answer
