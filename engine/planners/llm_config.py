"""Settings and client construction for the LLM planner (any OpenAI-compatible endpoint).

Settings come from keyword arguments, then the environment (prefix AUDIO_AGENT_LLM_, plus the
standard OPENAI_BASE_URL and OPENAI_API_KEY), then the ``[llm]`` table of the engine's TOML
config file (engine.settings.config_file), e.g.::

    [llm]
    base_url = "http://127.0.0.1:8080/v1"
    model = "qwen2.5-7b-instruct"

No key is ever written in code; a local server that needs no key gets a placeholder so the
openai client accepts the call.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from engine.settings import TableSettings

Variant = Literal["loudness", "plain"]
# auto walks the ladder of llm_endpoint (json_schema first); a rung's name forces that rung.
StructuredOutput = Literal["auto", "json_schema", "json_object_schema", "json_object", "plain"]

# Sent when no key is configured: llama.cpp, vLLM and Ollama servers ignore it.
_NO_KEY = "no-key-configured"


class LLMSettings(TableSettings):
    """How to reach the planner model and how hard to try."""

    config_table_name: ClassVar[str] = "llm"

    model_config = SettingsConfigDict(
        env_prefix="AUDIO_AGENT_LLM_", populate_by_name=True, extra="ignore"
    )

    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AUDIO_AGENT_LLM_BASE_URL", "OPENAI_BASE_URL"),
    )
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AUDIO_AGENT_LLM_API_KEY", "OPENAI_API_KEY"),
    )
    model: str = "gpt-4o-mini"
    # None leaves it out of the request (some reasoning models accept no temperature).
    temperature: float | None = Field(default=0.2, ge=0.0, le=2.0)
    timeout_s: float = Field(default=60.0, gt=0.0)
    # Attempts after the first one for timeouts, connection errors, 408/409/429 and 5xx.
    max_retries: int = Field(default=3, ge=0, le=10)
    # Backoff before retry n (0-based) is min(backoff_max_s, backoff_base_s * 2**n).
    backoff_base_s: float = Field(default=0.5, ge=0.0)
    backoff_max_s: float = Field(default=8.0, ge=0.0)
    variant: Variant = "loudness"
    # Older conversation turns are dropped first once they exceed this (chars / 4).
    history_token_budget: int = Field(default=3000, ge=0)
    # auto: start at json_schema and step down only when the server refuses the
    # response_format (see llm_endpoint); a rung's name forces that rung.
    structured_output: StructuredOutput = "auto"
    # Output tokens per answer; None sizes them from the plan limits (at most 4096) and, when
    # the server reported its context, to what is left of it.
    max_tokens: int | None = Field(default=None, ge=64)
    # The model's context in tokens when the server does not report it (Ollama, LM Studio).
    context_tokens: int | None = Field(default=None, ge=256)
    # Where what was learnt about endpoints is kept (default: <cache_dir>/llm_endpoints.json;
    # os.devnull keeps it in memory only).
    endpoint_cache: Path | None = None
    # When the model cannot produce a valid plan, let the rule planner answer instead of failing.
    fallback: bool = True
    # A folder with your own planner_prompt.md / planner_prompt_loudness.md (default: presets/).
    prompt_dir: Path | None = None


def llm_configured(settings: LLMSettings | None = None) -> bool:
    """True when an endpoint or a key is configured, so the LLM planner can be the default."""
    settings = settings or LLMSettings()
    has_key = settings.api_key is not None and bool(settings.api_key.get_secret_value())
    return bool(settings.base_url) or has_key


def create_openai_client(settings: LLMSettings):  # -> openai.OpenAI (import kept lazy)
    """An openai client for ``settings``; retries are ours (see LLMPlanner), so it makes none."""
    from openai import OpenAI

    api_key = settings.api_key.get_secret_value() if settings.api_key else _NO_KEY
    return OpenAI(
        base_url=settings.base_url,
        api_key=api_key or _NO_KEY,
        timeout=settings.timeout_s,
        max_retries=0,
    )
