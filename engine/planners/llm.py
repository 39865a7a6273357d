"""The LLM planner: any OpenAI-compatible chat endpoint turns a scene prompt (or a revision of
a plan) into a validated Plan.

One planning call is: send -> parse -> validate; on a parse or validation error (or an answer
cut off at max_tokens) the model gets that error once and one more try, shortened to fit the
context the server reported. Transport trouble (timeouts, 429, 5xx) is retried with
exponential backoff. Structured output is negotiated per endpoint + model down a ladder
(llm_endpoint: json_schema, json_object with a schema, json_object, plain JSON), stepping down
only when the server refused the response_format itself; context overflows, bad keys and
rate limits get their own one-line reasons (llm_errors) and leave structured output alone.
When the model still cannot give a valid plan, the rule planner answers and the PlanResult
says so (fell_back=True, notes); with fallback disabled a PlannerError with a
one-line reason is raised instead. Nothing the model writes is ever executed: it is parsed as
JSON, shaped by llm_parse and checked by engine.plan.validate_plan.

Configuration (environment, see llm_config.LLMSettings):
    AUDIO_AGENT_LLM_BASE_URL / OPENAI_BASE_URL   e.g. http://127.0.0.1:8080/v1 (llama.cpp, vLLM)
    AUDIO_AGENT_LLM_API_KEY  / OPENAI_API_KEY    not needed by most local servers
    AUDIO_AGENT_LLM_MODEL, _VARIANT (loudness|plain), _STRUCTURED_OUTPUT (auto or a rung),
    _MAX_TOKENS, _CONTEXT_TOKENS, _ENDPOINT_CACHE, _TIMEOUT_S, _MAX_RETRIES, _BACKOFF_BASE_S,
    _HISTORY_TOKEN_BUDGET, _FALLBACK, _PROMPT_DIR
Then `audio-agent llm check` to see what the endpoint supports, and
`audio-agent plan "PROMPT" --planner llm [--llm-model NAME]`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from engine.errors import InvalidInputError, PlannerError, PlanValidationError
from engine.plan import DEFAULT_LIMITS, Plan, PlanLimits, validate_plan
from engine.planners.base import Planner, PlanResult, Turn
from engine.planners.llm_config import (
    LLMSettings,
    Variant,
    create_openai_client,
    llm_configured,
)
from engine.planners.llm_endpoint import (
    MEMORY,
    RUNG_WORDS,
    EndpointInfo,
    cache_file_for,
    endpoint_key,
    list_models,
    matching_model,
    reported_context_tokens,
)
from engine.planners.llm_errors import (
    EndpointError,
    ErrorKind,
    classify,
    one_line,
    retry_after_s,
)
from engine.planners.llm_parse import (
    ReplyFormatError,
    extract_json,
    extract_whole_json,
    looks_like_refusal,
    plan_data,
    plan_max_tokens,
    response_format,
    schema_note,
)
from engine.planners.llm_prompt import (
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


# Output tokens asked for when neither the settings nor the server's context say otherwise:
# room for a long plan; a server's own default may be far smaller (llama-cpp-python: 16).
DEFAULT_MAX_TOKENS = 4096
# The least room for an answer worth asking for; with less the request is not sent.
MIN_ANSWER_TOKENS = 192
# Our token estimate for text sent (deliberately high: prompts mix prose and JSON).
_CHARS_PER_TOKEN = 3.2
_TOKENS_PER_MESSAGE = 8
# Kept of a cut or rejected first answer when the repair round must fit a small context.
_MIN_QUOTED_CHARS = 200
_PROBE_TIMEOUT_S = 5.0


def estimate_tokens(messages: Sequence[dict[str, str]]) -> int:
    """A conservative token count for ``messages`` (no tokenizer of the model is at hand)."""
    chars = sum(len(m.get("content") or "") for m in messages)
    return math.ceil(chars / _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * len(messages)


@dataclass
class _Call:
    """One planning request: the conversation so far and what a valid answer must fit."""

    messages: list[dict[str, str]]
    duration_s: float
    previous: Plan | None
    limits: PlanLimits
    notes: list[str] = field(default_factory=list)
    max_tokens_cap: int | None = None  # lowered when the server said the answer did not fit


@dataclass(frozen=True)
class _Answer:
    text: str
    cut_off: bool  # finish_reason == "length": the server stopped at max_tokens or the context
    max_tokens: int


def _status_reason(error: Any) -> str:
    """'HTTP 503: <the endpoint's own error message, on one line>'."""
    return classify(error, sent_format=False).reason


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
        planner), False for none; settings.fallback still switches falling back on or off.
        ``client`` is an openai client to reuse (built from settings when omitted)."""
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
        self._cache_file_resolved = False
        self._cache_file: Path | None = None

    # ----------------------------------------------------------------- endpoint knowledge
    @property
    def endpoint_key(self) -> str:
        return endpoint_key(self.settings.base_url, self.settings.model)

    @property
    def cache_file(self) -> Path | None:
        if not self._cache_file_resolved:
            self._cache_file = cache_file_for(self.settings.endpoint_cache)
            self._cache_file_resolved = True
        return self._cache_file

    def endpoint_info(self) -> EndpointInfo:
        """What is known of this endpoint + model, with the settings' overrides applied."""
        info = MEMORY.get(self.endpoint_key, cache_file=self.cache_file)
        if self.settings.structured_output != "auto":
            info = replace(info, rung=self.settings.structured_output)
        if self.settings.context_tokens:
            info = replace(info, context_tokens=self.settings.context_tokens)
        return info

    def _remember(self, **changes: Any) -> EndpointInfo:
        MEMORY.update(self.endpoint_key, cache_file=self.cache_file, **changes)
        return self.endpoint_info()

    def forget_endpoint(self) -> None:
        """Forget what was learnt about this endpoint (``llm check`` probes afresh)."""
        MEMORY.forget(self.endpoint_key, cache_file=self.cache_file)

    def probe_context(self) -> int | None:
        """The context size the models list reports for this model (read once per process)."""
        if not MEMORY.first_probe(self.endpoint_key):
            return self.endpoint_info().context_tokens
        try:
            models = list_models(
                self._client_or_new(), timeout_s=min(_PROBE_TIMEOUT_S, self.settings.timeout_s)
            )
        except Exception as error:  # an optional hint: a server without /models is fine
            log.debug("no models list from %s (%s)", self.settings.base_url, error)
            return self.endpoint_info().context_tokens
        entry = matching_model(models, self.settings.model)
        reported = reported_context_tokens(entry) if entry else None
        if reported:
            return self._remember(context_tokens=reported).context_tokens
        return self.endpoint_info().context_tokens

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
        first = self._chat(call)
        try:
            return self._parse(first, call)
        except _REJECTED as error:
            first_error, first_data = str(error), _data_or_none(first.text)
        log.info("LLM plan rejected (%s); asking the model once to fix it", first_error)
        call.messages = self._repair_messages(call, first.text, first_error)
        second = self._chat(call)
        if first_data is not None and _data_or_none(second.text) == first_data:
            raise _Failure(f"the model returned the same invalid plan twice ({first_error})")
        try:
            plan = self._parse(second, call)
        except _REJECTED as error:
            raise _Failure(
                f"the model's plan was invalid twice (first: {first_error}; then: {error})"
            ) from None
        call.notes.append(f"the model corrected its plan after: {first_error}")
        return plan

    def _parse(self, answer: _Answer, call: _Call) -> Plan:
        if answer.cut_off and not _whole_json(answer.text):
            # A cut answer's fragments may still hold a complete inner object; never take it.
            raise ReplyFormatError(
                f"your answer was cut off at the output limit ({answer.max_tokens} tokens) "
                "before the JSON was complete; send a shorter plan: fewer events, shorter "
                "descriptions"
            )
        data = plan_data(extract_json(answer.text), duration_s=call.duration_s,
                         previous=call.previous)
        return validate_plan(data, limits=call.limits)

    def _repair_messages(
        self, call: _Call, first_text: str, error: str
    ) -> list[dict[str, str]]:
        """The conversation plus the rejected answer and the repair request, shortened to
        leave room for an answer in the context the server reported: older turns go first,
        then the quoted answer is cut."""
        repair = {"role": "user", "content": repair_message(error)}
        history, current = call.messages[:-1], call.messages[-1]
        kept_chars = len(first_text)
        context = self.endpoint_info().context_tokens
        system = self._system_prompt(call, self.endpoint_info().rung)
        while True:
            quoted = first_text if kept_chars == len(first_text) else (
                first_text[:kept_chars] + " …")
            messages = [*history, current, {"role": "assistant", "content": quoted}, repair]
            sent = [{"role": "system", "content": system}, *messages]
            if context is None or estimate_tokens(sent) + MIN_ANSWER_TOKENS <= context:
                return messages
            if history:
                history = history[1:]
            elif kept_chars > _MIN_QUOTED_CHARS:
                kept_chars = max(_MIN_QUOTED_CHARS, kept_chars // 2)
            else:
                raise _Failure(
                    f"no room for a repair round in the model's {context}-token context (the "
                    f"first answer was rejected: {error}); give the server a larger context"
                )

    # ----------------------------------------------------------------- transport
    def _client_or_new(self) -> Any:
        if self._client is None:
            self._client = create_openai_client(self.settings)
        return self._client

    def _system_prompt(self, call: _Call, rung: str) -> str:
        system = load_system_prompt(
            self.variant, limits=call.limits, presets_dir=self.settings.prompt_dir or PRESETS_DIR
        )
        if rung in ("json_object", "plain"):  # the server will not enforce the schema
            note = schema_note(with_loudness=self._with_loudness, limits=call.limits)
            system = f"{system}\n\n{note}"
        return system

    def _request(self, call: _Call, info: EndpointInfo) -> dict[str, Any]:
        messages = [{"role": "system", "content": self._system_prompt(call, info.rung)},
                    *call.messages]
        kwargs: dict[str, Any] = {"model": self.settings.model, "messages": messages}
        if self.settings.temperature is not None:
            kwargs["temperature"] = self.settings.temperature
        fmt = response_format(info.rung, with_loudness=self._with_loudness, limits=call.limits)
        if fmt is not None:
            kwargs["response_format"] = fmt
        kwargs[info.token_param] = self._max_tokens(call, info, messages)
        return kwargs

    def _max_tokens(
        self, call: _Call, info: EndpointInfo, messages: list[dict[str, str]]
    ) -> int:
        wanted = self.settings.max_tokens or min(
            DEFAULT_MAX_TOKENS,
            plan_max_tokens(with_loudness=self._with_loudness, limits=call.limits),
        )
        if call.max_tokens_cap is not None:
            wanted = min(wanted, call.max_tokens_cap)
        if info.context_tokens is None:
            return wanted
        room = info.context_tokens - estimate_tokens(messages)
        if room < MIN_ANSWER_TOKENS:
            raise _Failure(
                f"the request (about {estimate_tokens(messages)} tokens) leaves no room for an "
                f"answer in the model's {info.context_tokens}-token context; {_CONTEXT_FIX}"
            )
        return max(MIN_ANSWER_TOKENS, min(wanted, room))

    def _chat(self, call: _Call) -> _Answer:
        """The model's answer; raises _Failure on refusals, empty answers, give-ups."""
        import openai

        if self.endpoint_info().context_tokens is None:
            self.probe_context()
        attempt = 0
        refit = False
        while True:
            error: Exception
            problem: EndpointError | None = None
            with MEMORY.first_use(self.endpoint_key) as confirm:
                info = self.endpoint_info()  # another thread may have stepped down meanwhile
                kwargs = self._request(call, info)
                try:
                    completion = self._client_or_new().chat.completions.create(**kwargs)
                except openai.APIStatusError as status_error:
                    error = status_error
                    problem = classify(error, sent_format="response_format" in kwargs)
                    if problem.kind is ErrorKind.FORMAT_REFUSED:
                        self._step_down(info, problem, call)
                        continue
                    confirm()  # the server did not refuse the format: the rung holds
                except openai.APIConnectionError as connection_error:  # timeouts included
                    error = connection_error
                except openai.OpenAIError as other:  # e.g. a 200 whose body is no completion
                    raise _Failure(
                        f"unusable answer from the LLM endpoint ({one_line(other)})"
                    ) from None
                else:
                    confirm()
                    return self._answer_text(completion, kwargs[info.token_param])
            if problem is None:
                reason, wait_s = self._transport_reason(error, None), None
            elif problem.kind is ErrorKind.CONTEXT:
                if not refit and self._refit(problem, call):
                    refit = True
                    continue
                raise _Failure(
                    f"the request does not fit the model's context ({problem.reason}); "
                    f"{_CONTEXT_FIX}"
                ) from None
            elif problem.kind is ErrorKind.TOKEN_LIMIT and not refit and problem.token_cap:
                refit = True
                call.max_tokens_cap = max(MIN_ANSWER_TOKENS, problem.token_cap)
                continue
            elif problem.kind is ErrorKind.TOKEN_PARAM and info.token_param == "max_tokens":
                self._remember(token_param="max_completion_tokens")
                continue
            elif problem.kind not in (ErrorKind.RATE_LIMIT, ErrorKind.RETRYABLE):
                raise _Failure(self._refusal_reason(problem)) from None
            else:
                reason = self._transport_reason(error, problem)
                wait_s = retry_after_s(error)
            if attempt >= self.settings.max_retries:
                raise _Failure(f"{reason}; gave up after {attempt + 1} attempts") from None
            delay_s = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt)
            if wait_s is not None:  # the server said when: wait that long, within our cap
                delay_s = min(self.settings.backoff_max_s, max(delay_s, wait_s))
            log.info("LLM call failed (%s); retrying in %.2f s", reason, delay_s)
            time.sleep(delay_s)
            attempt += 1

    def _step_down(self, info: EndpointInfo, problem: EndpointError, call: _Call) -> None:
        """Remember the next rung down after the server refused this one's response_format."""
        below = info.below()
        if self.settings.structured_output != "auto":
            raise _Failure(
                f"the LLM endpoint rejected the request ({problem.reason}); structured_output "
                f"is set to {self.settings.structured_output}: set it to auto to let the "
                "planner find what the server supports"
            )
        if below is None:  # "plain" sends no response_format, so this cannot happen
            raise _Failure(f"the LLM endpoint rejected the request ({problem.reason})")
        stepped = MEMORY.step_down(
            self.endpoint_key, from_rung=info.rung, to_rung=below, cache_file=self.cache_file
        )
        call.notes.append(
            f"the endpoint refused response_format {RUNG_WORDS[info.rung]} ({problem.reason}); "
            f"using {RUNG_WORDS[stepped.rung]} from now on"
        )

    def _refit(self, problem: EndpointError, call: _Call) -> bool:
        """After a context refusal: remember the context the server reported and, when the
        prompt itself fits (vLLM refuses a max_tokens beyond the rest), ask for fewer
        output tokens once. False when nothing smaller could fit."""
        if problem.context_tokens:
            self._remember(context_tokens=problem.context_tokens)
        if problem.context_tokens and problem.prompt_tokens:
            room = problem.context_tokens - problem.prompt_tokens
            if room >= MIN_ANSWER_TOKENS:
                call.max_tokens_cap = room
                return True
        return False

    def _refusal_reason(self, problem: EndpointError) -> str:
        if problem.kind is ErrorKind.AUTH:
            return (
                f"the LLM endpoint refused the API key ({problem.reason}); set "
                "AUDIO_AGENT_LLM_API_KEY (or OPENAI_API_KEY) to a key it accepts"
            )
        if problem.kind is ErrorKind.NO_MODEL:
            return (
                f"the LLM endpoint has no model {self.settings.model!r} ({problem.reason}); "
                "set AUDIO_AGENT_LLM_MODEL or --llm-model to one that `audio-agent llm check` "
                "lists"
            )
        if problem.kind in (ErrorKind.TOKEN_PARAM, ErrorKind.TOKEN_LIMIT):
            return (
                f"the LLM endpoint refused the output token limit ({problem.reason}); set "
                "AUDIO_AGENT_LLM_MAX_TOKENS to what the model allows"
            )
        return f"the LLM endpoint rejected the request ({problem.reason})"

    def _transport_reason(self, error: Exception, problem: EndpointError | None) -> str:
        import openai

        if isinstance(error, openai.APITimeoutError):
            return f"the LLM did not answer within {self.settings.timeout_s:g} s"
        if isinstance(error, openai.APIConnectionError):
            return f"cannot reach the LLM endpoint ({self.settings.base_url or 'default URL'})"
        assert problem is not None
        if problem.kind is ErrorKind.RATE_LIMIT:
            return f"the LLM endpoint is rate limiting ({problem.reason})"
        return f"the LLM endpoint failed ({problem.reason})"

    @staticmethod
    def _answer_text(completion: Any, max_tokens: int) -> _Answer:
        choices = getattr(completion, "choices", None) or []
        if not choices:
            raise _Failure("the LLM returned no answer (no choices)")
        choice = choices[0]
        message = choice.message
        refusal = getattr(message, "refusal", None)
        if refusal:
            raise _Failure(f"the model refused: {one_line(refusal)}")
        text = (message.content or "").strip()
        cut_off = getattr(choice, "finish_reason", None) == "length"
        if not text:
            if cut_off:
                raise _Failure(
                    f"the model's answer was cut off before it began (max_tokens={max_tokens})"
                )
            raise _Failure("the model returned an empty answer")
        if looks_like_refusal(text):
            raise _Failure(f"the model refused: {one_line(text)}")
        return _Answer(text=text, cut_off=cut_off, max_tokens=max_tokens)

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
        reason = " ".join(reason.split())  # one line, whatever a server or model put in it
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


_CONTEXT_FIX = (
    "give the server a larger context (llama.cpp: --ctx-size, Ollama: num_ctx, vLLM: "
    "--max-model-len) or lower AUDIO_AGENT_LLM_HISTORY_TOKEN_BUDGET"
)


def _whole_json(text: str) -> bool:
    """True when the answer, or its one fenced block, is one complete JSON value."""
    try:
        extract_whole_json(text)
    except ReplyFormatError:
        return False
    return True


def _data_or_none(text: str) -> str | None:
    """The answer's JSON in a canonical form, to spot the same invalid plan sent twice."""
    try:
        return json.dumps(extract_json(text), sort_keys=True)
    except ReplyFormatError:
        return None
