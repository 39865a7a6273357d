"""`audio-agent llm check` against mimicked local servers over HTTP (tests/fake_openai_server)."""

from __future__ import annotations

import json

import pytest

from engine.planners.llm_endpoint import MEMORY
from server.cli import main
from tests.fake_openai_server import FakeOpenAIServer

PLAN = {"duration_s": 8.0, "events": [
    {"id": "e1", "description": "Rain taps on a window pane.", "start_s": 0.0, "end_s": 8.0,
     "target_lufs": -30.0},
    {"id": "e2", "description": "A wooden door closes.", "start_s": 5.0, "end_s": 6.0,
     "target_lufs": -20.0},
]}


@pytest.fixture(autouse=True)
def llm_env(monkeypatch, tmp_path):
    cache = tmp_path / "llm_endpoints.json"
    monkeypatch.setenv("AUDIO_AGENT_LLM_ENDPOINT_CACHE", str(cache))
    monkeypatch.setenv("AUDIO_AGENT_LLM_API_KEY", "test-key")
    monkeypatch.setenv("AUDIO_AGENT_LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("AUDIO_AGENT_LLM_MODEL", "local-model")
    for name in ("AUDIO_AGENT_LLM_STRUCTURED_OUTPUT", "AUDIO_AGENT_LLM_CONTEXT_TOKENS",
                 "AUDIO_AGENT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    MEMORY.clear_process_memory()
    yield cache
    MEMORY.clear_process_memory()


def test_check_finds_the_rung_a_llama_cpp_python_server_takes_and_remembers_it(
    monkeypatch, capsys, llm_env
):
    with FakeOpenAIServer(profile="llama-cpp-python", model="local-model") as server:
        monkeypatch.setenv("AUDIO_AGENT_LLM_BASE_URL", server.base_url)
        server.add_json(PLAN)
        assert main(["llm", "check"]) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0] == f"endpoint: {server.base_url}"
        assert lines[1] == "model: local-model"
        assert lines[2] == "models: local-model ('local-model' listed)"
        assert lines[3].startswith("context: not reported")
        assert lines[4] == "structured output: json_object with a schema"
        assert lines[5].startswith("note: the endpoint refused response_format json_schema "
                                   "(HTTP 500: body.response_format.type: Input should be")
        assert lines[6].startswith("sample plan (") and "2 events, made by the model" in lines[6]
        assert json.loads("\n".join(lines[7:]))["events"][1]["description"] == (
            "A wooden door closes.")
        saved = json.loads(llm_env.read_text())["endpoints"]
        assert saved[f"{server.base_url}|local-model"]["rung"] == "json_object_schema"

        # A second check probes from the top again (the server may have been upgraded).
        server.add_json(PLAN)
        assert main(["llm", "check"]) == 0
        assert len(server.refusals) == 2


def test_check_reports_the_context_llama_server_gives_and_uses_the_model_option(
    monkeypatch, capsys
):
    with FakeOpenAIServer(profile="llama-server", model="qwen", context_tokens=8192) as server:
        monkeypatch.setenv("AUDIO_AGENT_LLM_BASE_URL", server.base_url)
        server.add_json(PLAN)
        assert main(["llm", "check", "--llm-model", "qwen"]) == 0
        out = capsys.readouterr().out
        assert "context: 8192 tokens (reported by the server)" in out
        assert "structured output: json_schema\n" in out and "note:" not in out
        assert server.chat_requests[0]["model"] == "qwen"
        assert server.chat_requests[0]["max_tokens"] <= 8192


def test_check_failure_is_one_line_naming_cause_and_fix(monkeypatch, capsys):
    with FakeOpenAIServer(profile="llama-server", api_key="the-right-key") as server:
        monkeypatch.setenv("AUDIO_AGENT_LLM_BASE_URL", server.base_url)
        assert main(["llm", "check"]) == 1
        captured = capsys.readouterr()
        assert "models: not listed" in captured.out
        assert captured.err == (
            "audio-agent: error: LLM planner failed: the LLM endpoint refused the API key "
            "(HTTP 401: Invalid API Key); set AUDIO_AGENT_LLM_API_KEY (or OPENAI_API_KEY) to a "
            "key it accepts\n"
        )


def test_check_without_an_endpoint_says_what_to_set(monkeypatch, capsys):
    for name in ("AUDIO_AGENT_LLM_BASE_URL", "OPENAI_BASE_URL", "AUDIO_AGENT_LLM_API_KEY",
                 "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["llm", "check"]) == 2
    assert "set AUDIO_AGENT_LLM_BASE_URL" in capsys.readouterr().err
