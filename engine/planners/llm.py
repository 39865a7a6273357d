"""The LLM planner: any OpenAI-compatible chat endpoint turns a scene prompt (or a revision of
a plan) into a validated Plan.

One planning call is: send -> parse -> validate; on a parse or validation error the model gets
that error once and one more try. Transport trouble (timeouts, 429, 5xx) is retried with
exponential backoff. When the model still cannot give a valid plan, the rule planner answers
and the PlanResult says so (fell_back=True, notes); with fallback disabled a PlannerError with a
one-line reason is raised instead. Nothing the model writes is ever executed: it is parsed as
JSON, shaped by llm_parse and checked by engine.plan.validate_plan.

Configuration (environment, see llm_config.LLMSettings):
    AUDIO_AGENT_LLM_BASE_URL / OPENAI_BASE_URL   e.g. http://127.0.0.1:8080/v1 (llama.cpp, vLLM)
    AUDIO_AGENT_LLM_API_KEY  / OPENAI_API_KEY    not needed by most local servers
    AUDIO_AGENT_LLM_MODEL, _VARIANT (loudness|plain), _STRUCTURED_OUTPUT (auto|json_schema|plain),
    _TIMEOUT_S, _MAX_RETRIES, _BACKOFF_BASE_S, _HISTORY_TOKEN_BUDGET, _FALLBACK, _PROMPT_DIR
Then `audio-agent plan "PROMPT" --planner llm [--llm-model NAME]`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from engine.errors import InvalidInputError, PlannerError, PlanValidationError
from engine.plan import DEFAULT_LIMITS, Plan, PlanLimits, validate_plan
from engine.planners import Planner, PlanResult, Turn
from engine.planners.llm_config import (
    LLMSettings,
    Variant,
    create_openai_client,
    llm_configured,
)
from engine.planners.llm_parse import (
    ReplyFormatError,
    extract_json,
    looks_like_refusal,
    plan_data,
    response_format,
)
from engine.planners.llm_prompt import (
    PLAIN_JSON_NOTE,
    PRESETS_DIR,
    bound_history,
    edit_message,
    load_system_prompt,
    new_scene_message,
    plan_json,
    repair_message,
)

__all__ = ["LLMPlanner", "LLMSettings", "llm_configured", "create_openai_client"]

log = logging.getLogger(__name__)

# Endpoints (base_url, model) that answered 400 to a json_schema response_format. Shared by
# all planner instances: the server builds a planner per request and should not ask again.
_SCHEMA_REJECTED: set[tuple[str, str]] = set()
_SCHEMA_LOCK = threading.Lock()

# A plan whose last event ends this close to the scene end counts as reaching it.
END_TOLERANCE_S = 0.05
NOT_CONFIGURED = (
    "no LLM endpoint configured: set AUDIO_AGENT_LLM_BASE_URL (or OPENAI_BASE_URL) for a local "
    "or hosted OpenAI-compatible server, or OPENAI_API_KEY for OpenAI"
)


# What a bad answer can raise while being read: shown to the model once, then a fallback.
# (ReplyFormatError is a ValueError; TypeError covers shapes nobody anticipated.)
_REJECTED = (ReplyFormatError, PlanValidationError, ValueError, TypeError)


class _Failure(Exception):
    """The model could not give a plan; the message says why, in one line."""


@dataclass
class _Call:
    """One planning request: the conversation so far and what a valid answer must fit."""

    messages: list[dict[str, str]]
    duration_s: float
    previous: Plan | None
    limits: PlanLimits
    notes: list[str] = field(default_factory=list)


def _status_reason(error: Any) -> str:
    """'HTTP 503: <the endpoint's own error message>' (openai keeps it in .body)."""
    status = getattr(error, "status_code", None)
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    message = str(message or body or getattr(error, "message", "") or error)[:300]
    return f"HTTP {status}: {message}" if status is not None else message


class LLMPlanner:
    """Planner backed by an OpenAI-compatible chat model (see module docstring)."""

    name = "llm"

    def __init__(
        self,
        *,
        model: str | None = None,
        settings: LLMSettings | None = None,
        variant: Variant | None = None,
        fallback: Planner | bool | None = None,
        client: Any = None,
    ) -> None:
        """``model`` overrides settings.model; ``variant`` overrides settings.variant
        ("loudness" by default); ``fallback`` is the planner to use on failure (None: the rule
        planner), False for none; settings.fallback still switches falling back on or off. ``client`` is an openai
        client to reuse (built from settings when omitted)."""
        settings = settings or LLMSettings()
        if model:
            settings = settings.model_copy(update={"model": model})
        self.settings = settings
        self.variant: Variant = variant or settings.variant
        if self.variant not in ("loudness", "plain"):
            raise InvalidInputError(
                f"variant={self.variant!r}: choose 'loudness' or 'plain'", field="variant",
                value=self.variant,
            )
        self._fallback_option = fallback
        self._client = client

    @property
    def json_schema_supported(self) -> bool:
        """False once this endpoint + model rejected a json_schema response_format (auto)."""
        if self.settings.structured_output == "plain":
            return False
        with _SCHEMA_LOCK:
            return self._endpoint not in _SCHEMA_REJECTED

    def _remember_schema_rejected(self) -> None:
        with _SCHEMA_LOCK:
            _SCHEMA_REJECTED.add(self._endpoint)

    @property
    def _endpoint(self) -> tuple[str, str]:
        return (self.settings.base_url or "", self.settings.model)

    # ----------------------------------------------------------------- planner protocol
    def plan(
        self,
        prompt: str,
        *,
        duration_s: float,
        history: Sequence[Turn] = (),
        limits: PlanLimits = DEFAULT_LIMITS,
    ) -> PlanResult:
        if not prompt or not prompt.strip():
            raise InvalidInputError("prompt='': describe the scene", field="prompt", value=prompt)
        if not 0 < duration_s <= limits.max_duration_s:
            raise InvalidInputError(
                f"duration_s={duration_s!r}: must be in (0, {limits.max_duration_s}] s",
                field="duration_s", value=duration_s,
            )
        user = new_scene_message(prompt, duration_s=duration_s)
        call = _Call(self._messages(history, user), duration_s, None, limits)
        return self._answer(call, lambda planner: planner.plan(
            prompt, duration_s=duration_s, history=history, limits=limits))

    def edit(
        self,
        plan: Plan,
        instruction: str,
        *,
        history: Sequence[Turn] = (),
        limits: PlanLimits = DEFAULT_LIMITS,
    ) -> PlanResult:
        if not instruction or not instruction.strip():
            raise InvalidInputError(
                "instruction='': say what to change", field="instruction", value=instruction
            )
        user = edit_message(plan, instruction, with_loudness=self._with_loudness)
        call = _Call(self._messages(history, user), plan.duration_s, plan, limits)
        return self._answer(call, lambda planner: planner.edit(
            plan, instruction, history=history, limits=limits))

    # ----------------------------------------------------------------- one planning call
    @property
    def _with_loudness(self) -> bool:
        return self.variant == "loudness"

    def _messages(self, history: Sequence[Turn], user: str) -> list[dict[str, str]]:
        kept = bound_history(history, budget_tokens=self.settings.history_token_budget)
        return [{"role": t.role, "content": t.content} for t in kept] + [
            {"role": "user", "content": user}
        ]

    def _answer(self, call: _Call, run_fallback: Any) -> PlanResult:
        if self._client is None and not llm_configured(self.settings):
            # Without an endpoint or a key the call can only fail (after retries): say why now.
            return self._fall_back(NOT_CONFIGURED, call.notes, run_fallback)
        try:
            plan = self._plan_with_repair(call)
        except _Failure as failure:
            return self._fall_back(str(failure), call.notes, run_fallback)
        last_end_s = max(event.end_s for event in plan.events)
        if call.previous is None and last_end_s < plan.duration_s - END_TOLERANCE_S:
            # Kept as planned (stretching a one-shot would change its sound); the mix still
            # lasts duration_s, so this is a quiet tail, not a short scene.
            call.notes.append(
                f"no event reaches the scene end: the last one ends at {last_end_s:g} s "
                f"of {plan.duration_s:g} s"
            )
        reply = plan_json(plan, with_loudness=self._with_loudness)
        return PlanResult(plan=plan, planner=self.name, notes=tuple(call.notes), reply=reply)

    def _plan_with_repair(self, call: _Call) -> Plan:
        first_text = self._chat(call)
        try:
            return self._parse(first_text, call)
        except _REJECTED as error:
            first_error, first_data = str(error), _data_or_none(first_text)
        log.info("LLM plan rejected (%s); asking the model once to fix it", first_error)
        call.messages += [
            {"role": "assistant", "content": first_text},
            {"role": "user", "content": repair_message(first_error)},
        ]
        second_text = self._chat(call)
        if first_data is not None and _data_or_none(second_text) == first_data:
            raise _Failure(f"the model returned the same invalid plan twice ({first_error})")
        try:
            plan = self._parse(second_text, call)
        except _REJECTED as error:
            raise _Failure(
                f"the model's plan was invalid twice (first: {first_error}; then: {error})"
            ) from None
        call.notes.append(f"the model corrected its plan after: {first_error}")
        return plan

    def _parse(self, text: str, call: _Call) -> Plan:
        data = plan_data(extract_json(text), duration_s=call.duration_s, previous=call.previous)
        return validate_plan(data, limits=call.limits)

    # ----------------------------------------------------------------- transport
    def _client_or_new(self) -> Any:
        if self._client is None:
            self._client = create_openai_client(self.settings)
        return self._client

    def _request(self, call: _Call) -> dict[str, Any]:
        system = load_system_prompt(
            self.variant, limits=call.limits, presets_dir=self.settings.prompt_dir or PRESETS_DIR
        )
        kwargs: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [{"role": "system", "content": system}, *call.messages],
        }
        if self.settings.temperature is not None:
            kwargs["temperature"] = self.settings.temperature
        if self.json_schema_supported:
            kwargs["response_format"] = response_format(with_loudness=self._with_loudness)
        else:
            kwargs["messages"][0]["content"] = f"{system}\n\n{PLAIN_JSON_NOTE}"
        return kwargs

    def _chat(self, call: _Call) -> str:
        """The model's answer text; raises _Failure on refusals, empty answers, give-ups."""
        import openai

        attempt = 0
        while True:
            try:
                completion = self._client_or_new().chat.completions.create(**self._request(call))
                return self._answer_text(completion)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
                if not (self.json_schema_supported and self.settings.structured_output == "auto"):
                    raise _Failure(
                        f"the LLM endpoint rejected the request ({_status_reason(error)})"
                    ) from None
                # Many local servers do not know json_schema: ask in words from now on.
                self._remember_schema_rejected()
                call.notes.append(
                    "the endpoint rejected a json_schema response_format; asked for plain JSON"
                )
                continue
            except (openai.APIConnectionError, openai.APIStatusError) as error:
                reason = self._transport_reason(error)
                if not _retryable(error):
                    raise _Failure(reason) from None
                if attempt >= self.settings.max_retries:
                    raise _Failure(f"{reason}; gave up after {attempt + 1} attempts") from None
            except openai.OpenAIError as error:  # e.g. a 200 whose body is not a completion
                raise _Failure(f"unusable answer from the LLM endpoint ({error})") from None
            delay_s = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt)
            log.info("LLM call failed (%s); retrying in %.2f s", reason, delay_s)
            time.sleep(delay_s)
            attempt += 1

    def _transport_reason(self, error: Exception) -> str:
        import openai

        if isinstance(error, openai.APITimeoutError):
            return f"the LLM did not answer within {self.settings.timeout_s:g} s"
        if isinstance(error, openai.APIConnectionError):
            return f"cannot reach the LLM endpoint ({self.settings.base_url or 'default URL'})"
        if isinstance(error, openai.RateLimitError):
            return "the LLM endpoint is rate limiting (HTTP 429)"
        return f"the LLM endpoint failed ({_status_reason(error)})"

    @staticmethod
    def _answer_text(completion: Any) -> str:
        choices = getattr(completion, "choices", None) or []
        if not choices:
            raise _Failure("the LLM returned no answer (no choices)")
        message = choices[0].message
        refusal = getattr(message, "refusal", None)
        if refusal:
            raise _Failure(f"the model refused: {str(refusal).strip()[:200]}")
        text = (message.content or "").strip()
        if not text:
            raise _Failure("the model returned an empty answer")
        if looks_like_refusal(text):
            raise _Failure(f"the model refused: {text[:200]}")
        return text

    # ----------------------------------------------------------------- fallback
    def _fallback_planner(self) -> Planner | None:
        option = self._fallback_option
        # A planner given by the caller says which fallback to use, not whether: the user's
        # fallback setting still decides that (True forces one on).
        if option is False or (option is not True and not self.settings.fallback):
            return None
        if option is None or option is True:
            from engine.planners.rules import RulePlanner

            return RulePlanner()
        return option  # type: ignore[return-value]

    def _fall_back(self, reason: str, notes: list[str], run_fallback: Any) -> PlanResult:
        planner = self._fallback_planner()
        if planner is None:
            raise PlannerError(f"LLM planner failed: {reason}", field="planner", value=self.name)
        log.warning("LLM planner failed (%s); using the %s planner", reason, planner.name)
        try:
            result: PlanResult = run_fallback(planner)
        except Exception as error:  # the fallback is the last resort: report both failures
            raise PlannerError(
                f"LLM planner failed: {reason}; the {planner.name} planner failed too: {error}",
                field="planner", value=self.name,
            ) from error
        fallback_notes = (
            *notes,
            f"LLM planner failed: {reason}",
            f"the {result.planner} planner made this plan instead",
            *result.notes,
        )
        return PlanResult(
            plan=result.plan, planner=result.planner, fell_back=True, notes=fallback_notes,
            # The conversation the model reads later holds plans as JSON, whoever made them.
            reply=plan_json(result.plan, with_loudness=self._with_loudness),
        )


def _retryable(error: Exception) -> bool:
    """Timeouts, lost connections, 408/409/429 and 5xx may pass; other statuses will not."""
    status = getattr(error, "status_code", None)
    return status is None or status in (408, 409, 429) or status >= 500


def _data_or_none(text: str) -> str | None:
    """The answer's JSON in a canonical form, to spot the same invalid plan sent twice."""
    try:
        return json.dumps(extract_json(text), sort_keys=True)
    except ReplyFormatError:
        return None
