"""What an OpenAI-compatible endpoint's error means for the LLM planner, and how to say it in
one line.

Local servers word the same trouble differently (see tests/fake_openai_server.py for the
sources): a response_format they do not know is a 400, a 422 or even a 500; a prompt over
the context is a 400 with one of several sentences; a key they do not accept is a 401 whose
body may be FastAPI's ``{"detail": ...}``. ``classify`` sorts one error into a kind the
planner handles differently: only ``format_refused`` moves it down the structured-output
ladder, so a context overflow or a bad key never switches structured output off.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

ONE_LINE_CHARS = 200


class ErrorKind(str, enum.Enum):
    FORMAT_REFUSED = "format_refused"  # the response_format of the request was not accepted
    CONTEXT = "context"  # prompt (+ max_tokens) over the model's context
    TOKEN_PARAM = "token_param"  # the model wants max_completion_tokens instead of max_tokens
    TOKEN_LIMIT = "token_limit"  # max_tokens above what the model may write
    AUTH = "auth"  # 401/403
    RATE_LIMIT = "rate_limit"  # 429
    NO_MODEL = "no_model"  # the endpoint does not serve the configured model
    RETRYABLE = "retryable"  # 408/409/5xx, lost connections, timeouts
    OTHER = "other"  # any other refusal: not retried


@dataclass(frozen=True)
class EndpointError:
    kind: ErrorKind
    status: int | None
    message: str  # one line, no traceback
    context_tokens: int | None = None  # the context the server reported, when it did
    prompt_tokens: int | None = None  # the prompt size the server counted, when it did
    token_cap: int | None = None  # the most output tokens the server allows, when it said

    @property
    def reason(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status is not None else self.message


# Sentences servers use for a request over the context (llama-cpp-python, llama-server,
# vLLM, OpenAI, LM Studio), lower-cased.
_CONTEXT_PHRASES = (
    "context_length_exceeded",
    "maximum context length",
    "exceeds the available context size",
    "exceed context window",
    "larger than the max context size",
    "exceed_context_size_error",
    "greater than the context length",
    "context window exceeds",
)
_LIMIT_NUMBER = re.compile(
    r"(?:maximum context length is|context size \(|context window of|context size is)\s*(\d+)", re.I
)
_PROMPT_NUMBER = re.compile(
    r"(?:request has|request \(|requested tokens \(|input \(|\()\s*(\d+)"
    r"(?: input| tokens\)| in the messages)",
    re.I,
)
_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object", re.I)
_TOKEN_CAP = re.compile(r"(?:at most|maximum(?: value)?(?: of| is)?|<=)\s*(\d+)", re.I)
_TOKEN_PARAM = re.compile(r"max_completion_tokens", re.I)
_MODEL_MISSING = re.compile(r"model\b.{0,80}\b(?:not found|does not exist|not exist)", re.I)
# Pydantic's text for one validation error: "{'type': ..., 'loc': (...), 'msg': '...', ...}".
_PYDANTIC_ITEM = re.compile(r"'loc':\s*\(([^)]*)\),\s*'msg':\s*(['\"])(.*?)\2")
_TRACEBACK = re.compile(r"\s*(?:Traceback \(most recent call last\)|File \"[^\"]*\", line \d+)")


def one_line(text: Any, *, limit: int = ONE_LINE_CHARS) -> str:
    """``text`` as one short line: pydantic dumps become 'loc: msg', tracebacks are cut off,
    whitespace is squeezed and the rest shortened with an ellipsis."""
    raw = str(text or "")
    item = _PYDANTIC_ITEM.search(raw)
    if item:
        parts = (part.strip().strip("'\"") for part in item.group(1).split(","))
        loc = ".".join(part for part in parts if part)
        raw = f"{loc}: {item.group(3)}" if loc else item.group(3)
    cut = _TRACEBACK.search(raw)
    if cut and cut.start() > 0:
        raw = raw[: cut.start()]
    line = " ".join(raw.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _body_dict(error: Any) -> dict[str, Any]:
    """The error object of a body: {"error": {...}}, vLLM's bare {"object": "error", ...},
    FastAPI's {"detail": ...} (the openai client already unwraps "error")."""
    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return body if isinstance(body, dict) else {}


def _message(error: Any) -> str:
    body = _body_dict(error)
    message = body.get("message") or body.get("detail") or body.get("error")
    if message is None:
        raw = getattr(error, "body", None)
        message = raw if isinstance(raw, str) and raw else getattr(error, "message", "") or error
    return str(message)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def classify(error: Any, *, sent_format: bool) -> EndpointError:
    """Sort an openai exception (or anything with status_code/body) into an EndpointError.
    ``sent_format`` says whether the failed request carried a response_format: only then can
    an error be a refusal of it."""
    status = getattr(error, "status_code", None)
    text = _message(error)
    body = _body_dict(error)
    lowered = f"{text} {body.get('code') or ''} {body.get('type') or ''}".lower()
    line = one_line(text)
    if status is None:
        return EndpointError(ErrorKind.RETRYABLE, None, line)
    if status in (400, 413) and any(phrase in lowered for phrase in _CONTEXT_PHRASES):
        limit = _int(body.get("n_ctx")) or _first_int(_LIMIT_NUMBER, text)
        prompt = _int(body.get("n_prompt_tokens")) or _first_int(_PROMPT_NUMBER, text)
        return EndpointError(ErrorKind.CONTEXT, status, line, limit, prompt)
    if status in (401, 403):
        return EndpointError(ErrorKind.AUTH, status, line)
    if status == 429:
        return EndpointError(ErrorKind.RATE_LIMIT, status, line)
    if status in (400, 422) and "max_tokens" in lowered and _TOKEN_PARAM.search(text):
        return EndpointError(ErrorKind.TOKEN_PARAM, status, line)
    if status in (400, 422) and "max_tokens" in lowered and not _FORMAT_WORDS.search(text):
        cap = _first_int(_TOKEN_CAP, text)
        return EndpointError(ErrorKind.TOKEN_LIMIT, status, line, token_cap=cap)
    if status == 404 or (body.get("code") == "model_not_found") or (
        status == 400 and _MODEL_MISSING.search(text) and not _FORMAT_WORDS.search(text)
    ):
        return EndpointError(ErrorKind.NO_MODEL, status, line)
    if sent_format and (
        (400 <= status < 500 and status not in (408, 409)) or _FORMAT_WORDS.search(text)
    ):
        return EndpointError(ErrorKind.FORMAT_REFUSED, status, line)
    if status in (408, 409) or status >= 500:
        return EndpointError(ErrorKind.RETRYABLE, status, line)
    return EndpointError(ErrorKind.OTHER, status, line)


def _first_int(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    return int(match.group(1)) if match else None


def retry_after_s(error: Any) -> float | None:
    """The Retry-After header of a 429/503 in seconds, when the server sent one."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        value = float(headers.get("retry-after"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None
