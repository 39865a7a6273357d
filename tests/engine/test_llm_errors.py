"""llm_errors.classify on the error bodies real servers send (openai.APIStatusError keeps the
body's "error" object, or the whole body when there is none)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from engine.planners.llm_errors import ErrorKind, classify, one_line


@dataclass
class StatusError:
    status_code: int | None
    body: Any
    message: str = ""


@pytest.mark.parametrize(
    ("status", "body", "sent_format", "kind"),
    [
        # OpenAI itself
        (400, {"message": "This model's maximum context length is 8192 tokens. However, your "
                          "messages resulted in 9000 tokens.", "code": "context_length_exceeded"},
         True, ErrorKind.CONTEXT),
        # LM Studio
        (400, {"message": "The number of tokens to keep from the initial prompt is greater than "
                          "the context length."}, True, ErrorKind.CONTEXT),
        # llama-server: the key check, and a format it does not know (a 400 today)
        (401, {"message": "Invalid API Key", "type": "authentication_error", "code": 401}, True,
         ErrorKind.AUTH),
        (400, {"code": 400, "message": 'response_format type must be one of "text" or '
                                       '"json_object", but got: grammar'}, True,
         ErrorKind.FORMAT_REFUSED),
        # the same 400 cannot be a format refusal when no response_format was sent
        (400, {"message": "unknown field"}, False, ErrorKind.OTHER),
        # a 5xx is a format refusal only when it names the format
        (500, {"message": "CUDA error: out of memory"}, True, ErrorKind.RETRYABLE),
        (500, {"message": "response_format: unsupported"}, True, ErrorKind.FORMAT_REFUSED),
        (503, {"message": "Loading model"}, True, ErrorKind.RETRYABLE),
        (429, {"message": "Rate limit reached"}, True, ErrorKind.RATE_LIMIT),
        (408, {"message": "timeout"}, True, ErrorKind.RETRYABLE),
        # Ollama: a model that was never pulled
        (404, {"message": 'model "qwen9:1b" not found, try pulling it first',
               "type": "not_found_error"}, True, ErrorKind.NO_MODEL),
        # llama-cpp-python: a model alias it does not serve
        (400, {"message": "The model `x` does not exist", "code": "model_not_found"}, True,
         ErrorKind.NO_MODEL),
        # vLLM: max_tokens beyond the rest of the context is a context problem, not a format one
        (400, {"object": "error", "message": "'max_tokens' or 'max_completion_tokens' is too "
               "large: 4096. This model's maximum context length is 4096 tokens and your request "
               "has 10 input tokens (4096 > 4096 - 10).", "type": "BadRequestError"}, True,
         ErrorKind.CONTEXT),
        (400, {"message": "max_tokens is too large: 9000. This model supports at most 4096 "
                          "completion tokens"}, True, ErrorKind.TOKEN_LIMIT),
    ],
)
def test_classify(status, body, sent_format, kind):
    assert classify(StatusError(status, body), sent_format=sent_format).kind is kind


def test_numbers_a_context_refusal_carries_are_read():
    problem = classify(StatusError(400, {
        "code": 400, "message": "request (3000 tokens) exceeds the available context size "
        "(2048 tokens), try increasing it", "type": "exceed_context_size_error",
        "n_prompt_tokens": 3000, "n_ctx": 2048}), sent_format=True)
    assert (problem.context_tokens, problem.prompt_tokens) == (2048, 3000)
    problem = classify(StatusError(400, {"message": "This model's maximum context length is "
        "2048 tokens. However, you requested 2300 tokens (2100 in the messages, 200 in the "
        "completion). Please reduce the length of the messages or completion."}),
        sent_format=True)
    assert (problem.context_tokens, problem.prompt_tokens) == (2048, 2100)


def test_one_line_drops_tracebacks_and_reads_pydantic_dumps():
    dump = ("1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
            "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
            "\n\n  File \"/x/app.py\", line 468, in create_chat_completion\n    POST /v1/chat")
    assert one_line(dump) == "body.response_format.type: Input should be 'text' or 'json_object'"
    assert one_line("boom\nTraceback (most recent call last):\n  File \"a.py\", line 1") == "boom"
    long = one_line("word " * 100)
    assert len(long) == 200 and long.endswith("…") and "\n" not in long
    # FastAPI's {"detail": ...} body (llama-cpp-python's 401) is read too
    assert classify(StatusError(401, {"detail": "Invalid API key"}), sent_format=True).message == (
        "Invalid API key")
