"""`audio-agent llm check [--llm-model NAME]`: what the configured LLM endpoint supports.

The first command to run after pointing the planner at Ollama, LM Studio, llama.cpp or vLLM.
It reads the models list once (names, and the context size where the server reports it),
then plans one short sample scene with the structured-output ladder started from the top, so
it finds the best rung this server takes, and remembers it for later runs. The report goes
to stdout; a failure ends with the usual one-line error naming cause and fix.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.errors import InvalidInputError

SAMPLE_PROMPT = "Rain on a window, then a door closes"
SAMPLE_DURATION_S = 8.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "llm",
        help="check the LLM endpoint the planner uses",
        description="Check the OpenAI-compatible endpoint the LLM planner is configured for.",
    )
    actions = parser.add_subparsers(dest="llm_action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="list models, find the structured output that works, plan a sample scene",
        description="Probe the configured endpoint once: models listed, context size if "
                    "reported, the structured-output rung that works, a sample plan.",
    )
    check.add_argument("--llm-model", default=None, metavar="NAME",
                       help="model to check (default: AUDIO_AGENT_LLM_MODEL)")
    check.set_defaults(handler=run_check)


def _settings(model: str | None) -> Any:
    from pydantic import ValidationError

    from engine.planners.llm_config import LLMSettings

    try:
        settings = LLMSettings()
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "llm"
        raise InvalidInputError(f"llm.{name}={first.get('input')!r}: {first['msg']}",
                                field=f"llm.{name}", value=first.get("input")) from None
    return settings.model_copy(update={"model": model}) if model else settings


def run_check(args: argparse.Namespace) -> int:
    from engine.planners.llm import NOT_CONFIGURED, LLMPlanner
    from engine.planners.llm_config import llm_configured
    from engine.planners.llm_endpoint import MEMORY, RUNG_WORDS

    settings = _settings(args.llm_model)
    if not llm_configured(settings):
        raise InvalidInputError(NOT_CONFIGURED, field="AUDIO_AGENT_LLM_BASE_URL", value=None)
    planner = LLMPlanner(settings=settings, fallback=False)
    planner.forget_endpoint()  # probe from the top of the ladder, whatever was learnt before
    print(f"endpoint: {settings.base_url or 'https://api.openai.com/v1 (OpenAI)'}")
    print(f"model: {settings.model}")
    _report_models(planner)
    MEMORY.first_probe(planner.endpoint_key)  # the list was read just now

    result = planner.plan(SAMPLE_PROMPT, duration_s=SAMPLE_DURATION_S)  # raises on failure
    info = planner.endpoint_info()
    print(f"structured output: {RUNG_WORDS[info.rung]}")
    for note in result.notes:
        print(f"note: {note}")
    count = len(result.plan.events)
    print(f"sample plan ({SAMPLE_PROMPT!r}, {SAMPLE_DURATION_S:g} s): "
          f"{count} event{'' if count == 1 else 's'}, made by the model")
    print(json.dumps(result.plan.model_dump(mode="json"), indent=2))
    return 0


def _report_models(planner: Any) -> None:
    """Print the models listed and the context size, and remember a reported context."""
    from engine.planners.llm_endpoint import (
        MEMORY,
        list_models,
        matching_model,
        reported_context_tokens,
    )
    from engine.planners.llm_errors import one_line

    try:
        models = list_models(planner._client_or_new(), timeout_s=planner.settings.timeout_s)
    except Exception as error:  # the chat endpoint may still work: say so and go on
        print(f"models: not listed ({one_line(getattr(error, 'message', error))})")
        models = []
    else:
        names = [str(entry.get("id")) for entry in models]
        listed = "listed" if planner.settings.model in names else "NOT listed"
        print(f"models: {', '.join(names) or 'none'} ({planner.settings.model!r} {listed})")
    entry = matching_model(models, planner.settings.model)
    reported = reported_context_tokens(entry) if entry else None
    if reported:
        MEMORY.update(planner.endpoint_key, cache_file=planner.cache_file,
                      context_tokens=reported)
        print(f"context: {reported} tokens (reported by the server)")
    elif planner.settings.context_tokens:
        print(f"context: {planner.settings.context_tokens} tokens (AUDIO_AGENT_LLM_CONTEXT_TOKENS)")
    else:
        print("context: not reported (set AUDIO_AGENT_LLM_CONTEXT_TOKENS so repairs fit it)")
