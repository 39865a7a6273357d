"""engine.limits: one rule per limit, and every layer uses the same number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine import limits
from engine.errors import InvalidInputError
from engine.limits import (
    check_audio,
    check_duration_s,
    check_position_s,
    check_sample_rate,
    check_seed,
    check_session_name,
    check_text,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rate", [8000, 44100, 48000, 384000, np.int64(96000)])
def test_sample_rate_rule_accepts_daw_rates(rate) -> None:
    assert check_sample_rate(rate) == int(rate)


@pytest.mark.parametrize("rate", [7999, 384001, 0, -48000, 48000.0, True, "48000", None])
def test_sample_rate_rule_refuses_the_rest_naming_the_field(rate) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_sample_rate(rate, field="--sample-rate")
    assert info.value.field == "--sample-rate" and "8000" in str(info.value)


def test_numbers_must_be_finite_and_in_range() -> None:
    assert check_duration_s(1.5) == 1.5
    for bad in (0.0, -1.0, float("nan"), float("inf"), True, "3", limits.MAX_DURATION_S + 1):
        with pytest.raises(InvalidInputError) as info:
            check_duration_s(bad)
        assert info.value.field == "duration_s"
    assert check_duration_s(30.0, maximum=30.0) == 30.0
    with pytest.raises(InvalidInputError, match=r"\(0, 30\]"):
        check_duration_s(30.5, maximum=30.0)
    assert check_position_s(0) == 0.0
    with pytest.raises(InvalidInputError):
        check_position_s(limits.MAX_POSITION_S * 2)


def test_seed_is_a_32_bit_integer() -> None:
    assert check_seed(0) == 0 and check_seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, 1.0, True):
        with pytest.raises(InvalidInputError) as info:
            check_seed(bad)
        assert info.value.field == "seed"


def test_text_and_session_names() -> None:
    assert check_text("prompt", "  rain  ") == "rain"
    assert len(check_text("prompt", "x" * limits.MAX_PROMPT_CHARS)) == limits.MAX_PROMPT_CHARS
    for bad in ("", "   ", None, "x" * (limits.MAX_PROMPT_CHARS + 1)):
        with pytest.raises(InvalidInputError):
            check_text("prompt", bad)
    assert check_session_name("x" * limits.MAX_SESSION_NAME_CHARS)
    for bad in ("", " ", "a\nb", "x" * (limits.MAX_SESSION_NAME_CHARS + 1), 3):
        with pytest.raises(InvalidInputError) as info:
            check_session_name(bad)
        assert info.value.field == "session"


def test_audio_shape_rule() -> None:
    assert check_audio(np.zeros(10)).shape == (1, 10)
    assert check_audio(np.zeros((2, 10), dtype=np.float64)).dtype == np.float32
    for bad in (np.zeros((2, 0)), np.zeros((1, 2, 3)), np.full((1, 4), np.nan),
                np.zeros((limits.MAX_CHANNELS + 1, 4)), "noise"):
        with pytest.raises(InvalidInputError) as info:
            check_audio(bad, field="result")
        assert info.value.field == "result"


def test_wire_settings_and_engine_share_the_numbers() -> None:
    """The wire schema, the docs, the settings and the plan gate read engine.limits."""
    from engine.plan import DEFAULT_LIMITS
    from engine.settings import EngineSettings

    schema = json.loads((ROOT / "docs" / "protocol.schema.json").read_text(encoding="utf-8"))
    generate = schema["requests"]["$defs"]["GenerateRequest"]["properties"]
    assert generate["prompt"]["maxLength"] == limits.MAX_PROMPT_CHARS
    assert generate["session"]["maxLength"] == limits.MAX_SESSION_NAME_CHARS
    assert generate["duration_s"]["maximum"] == limits.MAX_DURATION_S
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert f"`prompt` (1..{limits.MAX_PROMPT_CHARS} chars)" in doc
    assert f"(1..{limits.MAX_SESSION_NAME_CHARS} characters" in doc
    assert DEFAULT_LIMITS.max_overlap == limits.DEFAULT_MAX_OVERLAP
    assert DEFAULT_LIMITS.max_events == limits.MAX_EVENTS
    fields = EngineSettings.model_fields
    assert fields["max_overlap"].default == limits.DEFAULT_MAX_OVERLAP
    assert fields["sample_rate"].default == limits.DEFAULT_SAMPLE_RATE
