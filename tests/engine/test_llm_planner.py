"""LLM planner pieces without a server: settings, presets, answer parsing, ids and seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.edits import stable_seed
from engine.errors import InvalidInputError
from engine.plan import Event, Plan, PlanLimits, validate_plan
from engine.planners import Turn, create_planner
from engine.planners.llm import LLMPlanner, LLMSettings, llm_configured
from engine.planners.llm_config import create_openai_client
from engine.planners.llm_parse import (
    ReplyFormatError,
    extract_json,
    looks_like_refusal,
    plan_data,
)
from engine.planners.llm_prompt import (
    PRESETS_DIR,
    PROMPT_FILES,
    bound_history,
    load_system_prompt,
)

_ENV = ("AUDIO_AGENT_LLM_BASE_URL", "AUDIO_AGENT_LLM_API_KEY", "AUDIO_AGENT_LLM_MODEL",
        "AUDIO_AGENT_LLM_VARIANT", "AUDIO_AGENT_LLM_TIMEOUT_S", "OPENAI_BASE_URL",
        "OPENAI_API_KEY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# ----------------------------------------------------------------------------- settings
def test_nothing_configured_means_the_rule_planner_stays_default():
    assert not llm_configured()
    assert LLMSettings().base_url is None and LLMSettings().api_key is None


def test_settings_read_our_prefix_first_then_the_openai_variables(clean_env):
    clean_env.setenv("OPENAI_BASE_URL", "http://openai-var/v1")
    clean_env.setenv("OPENAI_API_KEY", "sk-openai")
    assert llm_configured()
    assert LLMSettings().base_url == "http://openai-var/v1"
    clean_env.setenv("AUDIO_AGENT_LLM_BASE_URL", "http://ours/v1")
    clean_env.setenv("AUDIO_AGENT_LLM_MODEL", "local-model")
    clean_env.setenv("AUDIO_AGENT_LLM_VARIANT", "plain")
    clean_env.setenv("AUDIO_AGENT_LLM_TIMEOUT_S", "7.5")
    settings = LLMSettings()
    assert (settings.base_url, settings.model, settings.variant, settings.timeout_s) == (
        "http://ours/v1", "local-model", "plain", 7.5)
    assert settings.api_key.get_secret_value() == "sk-openai"
    assert "sk-openai" not in repr(settings)  # keys never end up in logs


def test_settings_come_from_the_config_file_llm_table_under_the_environment(clean_env, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('target_lufs = -20.0\n[llm]\nbase_url = "http://from-file/v1"\n'
                      'model = "file-model"\ntimeout_s = 5\nmax_retries = 1\n')
    clean_env.setenv("AUDIO_AGENT_CONFIG", str(config))
    settings = LLMSettings()
    assert (settings.base_url, settings.model, settings.timeout_s, settings.max_retries) == (
        "http://from-file/v1", "file-model", 5.0, 1)
    assert llm_configured()
    clean_env.setenv("AUDIO_AGENT_LLM_MODEL", "env-model")
    assert LLMSettings().model == "env-model"  # the environment beats the file
    assert LLMSettings(model="kw-model").model == "kw-model"  # ... and arguments beat both
    assert create_planner("llm", model="cli-model").settings.base_url == "http://from-file/v1"


def test_a_base_url_alone_counts_as_configured_and_gets_a_placeholder_key():
    settings = LLMSettings(base_url="http://127.0.0.1:9/v1")
    assert llm_configured(settings)
    client = create_openai_client(settings)
    assert client.max_retries == 0 and str(client.base_url) == "http://127.0.0.1:9/v1/"
    assert client.api_key  # the openai client refuses an empty key


def test_bad_settings_are_rejected_by_name():
    with pytest.raises(ValueError, match="variant"):
        LLMSettings(variant="loud")
    with pytest.raises(ValueError, match="timeout_s"):
        LLMSettings(timeout_s=0)


def test_create_planner_passes_the_cli_model_and_env_variant(clean_env):
    clean_env.setenv("AUDIO_AGENT_LLM_VARIANT", "plain")
    planner = create_planner("llm", model="my-model")
    assert isinstance(planner, LLMPlanner)
    assert planner.settings.model == "my-model" and planner.variant == "plain"
    assert create_planner("llm", model=None).settings.model == "gpt-4o-mini"
    assert LLMPlanner(variant="loudness").variant == "loudness"
    with pytest.raises(InvalidInputError, match="variant='loud'"):
        LLMPlanner(variant="loud")  # type: ignore[arg-type]


def test_no_endpoint_configured_says_so_at_once_instead_of_calling(clean_env, tmp_path):
    from engine.errors import PlannerError

    empty = tmp_path / "config.toml"
    empty.write_text("")
    clean_env.setenv("AUDIO_AGENT_CONFIG", str(empty))
    with pytest.raises(PlannerError, match="no LLM endpoint configured") as info:
        LLMPlanner(fallback=False).plan("rain", duration_s=4.0)
    assert "OPENAI_BASE_URL" in str(info.value)
    result = create_planner("llm").plan("rain then thunder", duration_s=4.0)
    assert result.fell_back and result.planner == "rules"
    assert any("no LLM endpoint configured" in note for note in result.notes)


def test_empty_prompt_and_bad_duration_fail_before_any_call():
    planner = LLMPlanner(settings=LLMSettings(base_url="http://127.0.0.1:9/v1"), fallback=False)
    with pytest.raises(InvalidInputError, match="prompt"):
        planner.plan("  ", duration_s=10.0)
    with pytest.raises(InvalidInputError, match="duration_s=0"):
        planner.plan("rain", duration_s=0)


# ----------------------------------------------------------------------------- presets
@pytest.mark.parametrize("variant", ["plain", "loudness"])
def test_presets_load_with_the_limits_filled_in(variant):
    text = load_system_prompt(variant, limits=PlanLimits(max_overlap=2, max_events=9))
    assert "$" not in text
    assert "more than 2 events" in text and "At most 9 events" in text
    assert ("target_lufs" in text) == (variant == "loudness")


def write_presets(tmp_path: Path, plain: str, loudness: str | None = None) -> Path:
    (tmp_path / PROMPT_FILES["plain"]).write_text(plain)
    source = PRESETS_DIR / PROMPT_FILES["loudness"]
    (tmp_path / PROMPT_FILES["loudness"]).write_text(loudness or source.read_text())
    return tmp_path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start_s end_s description " * 20 + "$max_overlap $surprise", "unknown placeholders"),
        ("start_s end_s description " * 20 + "$max_overlap costs $5", r"not a \$name placeholder"),
        ("start_s end_s description", "too short"),
        ("start_s end_s description target_lufs " * 20 + "$max_overlap", "does not fit variant"),
    ],
    ids=["unknown-placeholder", "stray-dollar", "too-short", "plain-mentions-loudness"],
)
def test_broken_presets_fail_naming_the_file(tmp_path, text, message):
    presets = write_presets(tmp_path, text)
    with pytest.raises(InvalidInputError, match=message) as raised:
        load_system_prompt("plain", limits=PlanLimits(), presets_dir=presets)
    assert str(presets / PROMPT_FILES["plain"]) in str(raised.value)


def test_unknown_variant_is_named():
    with pytest.raises(InvalidInputError, match="variant='x'"):
        load_system_prompt("x", limits=PlanLimits())


# ----------------------------------------------------------------------------- parsing
def test_extract_json_finds_the_object_in_fences_and_prose():
    assert extract_json('{"events": []}') == {"events": []}
    assert extract_json('Sure!\n```json\n{"a": 1}\n```\nDone.') == {"a": 1}
    assert extract_json('Plan: {"a": {"b": [1, 2]}} -- hope it helps {') == {"a": {"b": [1, 2]}}
    assert extract_json("Events [see below]: [{\"id\": \"e1\"}]") == [{"id": "e1"}]
    for text in ("", "no json here", "{broken: json"):
        with pytest.raises(ReplyFormatError):
            extract_json(text)


def test_refusal_detection_needs_refusal_words_and_no_json():
    assert looks_like_refusal("I can't help with that.")
    assert looks_like_refusal("Sorry, but I cannot produce this.")
    assert not looks_like_refusal("I can't resist: {\"events\": []}")
    assert not looks_like_refusal("Rain, then a door.")


def test_model_text_is_only_ever_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "__import__('pathlib').Path('pwned').touch()"
    hostile = json.dumps({"events": [{"id": "e1", "description": code, "start_s": 0, "end_s": 1}]})
    plan = validate_plan(plan_data(extract_json(f"```python\n{hostile}\n```"), duration_s=1.0))
    assert plan.events[0].description == code  # kept as text for the generator, nothing ran
    assert not (tmp_path / "pwned").exists()


def test_plan_data_requires_an_events_list():
    for data in ({"scene": "rain"}, 42, {"events": "rain"}):
        with pytest.raises(ReplyFormatError):
            plan_data(data, duration_s=10.0)
    with pytest.raises(ReplyFormatError, match=r"events\[1\] must be an object"):
        plan_data({"events": [{"description": "a"}, "b"]}, duration_s=10.0)


def test_missing_ids_are_numbered_without_reusing_old_or_new_ones():
    previous = Plan(duration_s=10.0, events=(
        Event(id="e1", description="Rain.", start_s=0, end_s=10, seed=5),
        Event(id="e3", description="Thunder.", start_s=2, end_s=4, seed=6),
    ))
    data = plan_data({"events": [
        {"id": "e1", "description": "Rain.", "start_s": 0, "end_s": 10},
        {"description": "A dog barks.", "start_s": 1, "end_s": 2},
        {"id": "e2", "description": "Wind.", "start_s": 0, "end_s": 10},
        {"description": "A horn honks.", "start_s": 5, "end_s": 6},
    ]}, duration_s=10.0, previous=previous)
    assert [e["id"] for e in data["events"]] == ["e1", "e4", "e2", "e5"]
    assert [e["seed"] for e in data["events"]] == [
        5, stable_seed("A dog barks."), stable_seed("Wind."), stable_seed("A horn honks.")]
    assert data["duration_s"] == 10.0


def test_numeric_ids_become_valid_ids_and_duration_is_authoritative():
    data = plan_data({"duration_s": 30, "events": [
        {"id": 1, "description": " A  bell\n rings. ", "start_s": 0, "end_s": 2}]},
        duration_s=8.0)
    assert data["duration_s"] == 8.0
    assert data["events"][0]["id"] == "e1" and data["events"][0]["description"] == "A bell rings."


def test_bound_history_keeps_the_newest_turns_within_budget():
    turns = [Turn("user", "x" * 40), Turn("assistant", "y" * 8), Turn("user", "z" * 8)]
    assert bound_history(turns, budget_tokens=4) == turns[1:]
    assert bound_history(turns, budget_tokens=14) == turns
    assert bound_history(turns, budget_tokens=0) == []
    assert bound_history(turns, budget_tokens=1) == []  # a turn is never cut in half


def test_numbers_written_as_text_with_units_are_read_as_numbers():
    data = plan_data({"events": [{"description": "A gong.", "start_s": "1.5 s", "end_s": "4",
                                  "target_lufs": "-20 LUFS"}]}, duration_s=10.0)
    event = validate_plan(data).events[0]
    assert (event.start_s, event.end_s, event.target_lufs) == (1.5, 4.0, -20.0)
