"""A scripted OpenAI-compatible chat server on 127.0.0.1 for tests (no network, no model).

    with FakeOpenAIServer() as server:
        server.add_reply('{"events": [...]}')           # a 200 answer with this content
        server.add_error(429, "slow down")              # an HTTP error with an OpenAI error body
        server.add_reply("...", delay_s=2.0)            # answer late (client timeouts)
        server.add_reply(None, refusal="I can't help")  # a refusal
        server.add_raw({"unexpected": True})            # any JSON body, as-is
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        ...
        server.requests  # every JSON body received, in order (chat_requests: chat ones only)

POST /v1/chat/completions pops the next scripted reply; when none is left it answers 500 with
"no scripted reply left" so a test that calls more often than it meant to fails loudly.
GET /v1/models lists one model. Used by the LLM planner tests; reusable by anyone.

Server profiles. ``FakeOpenAIServer(profile=NAME, context_tokens=N, api_key=KEY)`` answers the
way a real local server does before the scripted "model" speaks: a response_format it does not
know is refused with that server's status and body, a prompt over its context is refused (or,
for Ollama, silently shortened), an answer longer than max_tokens or the rest of the context is
cut with finish_reason "length", a wrong key gets that server's 401, and GET /v1/models
reports the context where that server does. Refused requests do not use up a scripted reply;
``server.refusals`` lists them. The sources of each behaviour are cited in PROFILES below.
Token counts here are characters / 4 (English prose); the planner's own estimate is higher.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

CHARS_PER_TOKEN = 4


@dataclass
class ScriptedReply:
    status: int = 200
    content: str | None = None
    refusal: str | None = None
    error_message: str = ""
    error_body: Any = None  # sent as-is (JSON) instead of the usual body when set
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Refusal:
    """A protocol-level answer of a profile: the status and the JSON body the server sends."""

    status: int
    body: Any


def _tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_tokens(body: dict[str, Any]) -> int:
    """Tokens of a chat request's messages as the fake servers count them."""
    messages = body.get("messages") or []
    return sum(_tokens(str(m.get("content") or "")) + 4 for m in messages if isinstance(m, dict))


def _format_type(body: dict[str, Any]) -> str | None:
    fmt = body.get("response_format")
    return fmt.get("type") if isinstance(fmt, dict) else None


# ---------------------------------------------------------------------------- response_format
def _pydantic_literal_500(body: dict[str, Any]) -> Refusal | None:
    # llama-cpp-python (abetlen/llama-cpp-python): llama_cpp/llama_types.py
    # ChatCompletionRequestResponseFormat has `type: Literal["text", "json_object"]` (plus an
    # optional "schema" it turns into a grammar, llama_chat_format.py
    # _grammar_for_response_format). FastAPI's validation error is raised inside the custom
    # route of llama_cpp/server/errors.py (RouteErrorHandler), whose catch-all answers 500
    # "internal_server_error" with str(exc): pydantic's multi-line dump plus the endpoint.
    # The text below is what llama-cpp-python 0.3.36 sent to benchmarks/llm_servers.py.
    kind = _format_type(body)
    if kind in (None, "text", "json_object"):
        return None
    message = (
        "1 validation error:\n"
        f"  {{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
        f"'msg': \"Input should be 'text' or 'json_object'\", 'input': '{kind}', "
        "'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n"
        '  File "/usr/lib/python3/site-packages/llama_cpp/server/app.py", line 376, in '
        "create_chat_completion\n    POST /v1/chat/completions"
    )
    return Refusal(500, {"error": {"message": message, "type": "internal_server_error",
                                   "param": None, "code": None}})


def _llama_server_old(body: dict[str, Any]) -> Refusal | None:
    # llama.cpp llama-server builds before json_schema support (ggml-org/llama.cpp PR #9527,
    # Sept. 2024; forks like ikawrakow/ik_llama.cpp issue #778 until 2025): the parser threw a
    # std::runtime_error, which the handler wrapper turned into ERROR_TYPE_SERVER, a 500:
    # {"error": {"code": 500, "message": "response_format type must be one of \"text\" or
    # \"json_object\", but got: json_schema", "type": "server_error"}}.
    kind = _format_type(body)
    if kind in (None, "text", "json_object"):
        return None
    message = f'response_format type must be one of "text" or "json_object", but got: {kind}'
    return Refusal(500, {"error": {"code": 500, "message": message, "type": "server_error"}})


def _llama_server(body: dict[str, Any]) -> Refusal | None:
    # llama.cpp llama-server today: tools/server/server-common.cpp (oaicompat_chat_params_parse)
    # takes "json_object" (with an optional "schema", compiled to a grammar), "json_schema"
    # (json_schema.schema) and "text"; anything else throws std::invalid_argument, which
    # tools/server/server.cpp ex_wrapper maps to a 400 "invalid_request_error".
    kind = _format_type(body)
    if kind in (None, "text", "json_object", "json_schema"):
        return None
    message = f'response_format type must be one of "text" or "json_object", but got: {kind}'
    return Refusal(400, {"error": {"code": 400, "message": message,
                                   "type": "invalid_request_error"}})


def _ollama_format(body: dict[str, Any]) -> Refusal | None:
    # Ollama (ollama/ollama): openai/openai.go FromChatRequest maps "json_object" to format
    # "json" (any other key, like "schema", is dropped by Go's JSON decoding), "json_schema" to
    # the schema itself, and ignores any other type: nothing is ever refused.
    return None


def _vllm_old(body: dict[str, Any]) -> Refusal | None:
    # vLLM before structured-output support (vllm-project/vllm,
    # vllm/entrypoints/openai/protocol.py: `class ResponseFormat: type: Literal["text",
    # "json_object"]`): the request fails validation and api_server.py's
    # validation_exception_handler answers 400 with a bare ErrorResponse body
    # {"object": "error", "message": str(exc), "type": "BadRequestError", "code": 400}.
    # Extra keys such as "schema" are dropped with a warning, so json_object + schema passes.
    kind = _format_type(body)
    if kind in (None, "text", "json_object"):
        return None
    message = (
        "1 validation error for ChatCompletionRequest\nresponse_format.type\n  Input should be "
        f"'text' or 'json_object' [type=literal_error, input_value='{kind}', input_type=str]"
    )
    return Refusal(400, {"object": "error", "message": message, "type": "BadRequestError",
                         "param": None, "code": 400})


def _vllm_format(body: dict[str, Any]) -> Refusal | None:
    # vLLM today: ResponseFormat type in text/json_object/json_schema/structural_tag (vllm/
    # entrypoints/openai/protocol.py); json_object's extra "schema" key is ignored.
    return None


# ---------------------------------------------------------------------------- context
def _context_llama_cpp_python(body: dict[str, Any], n_ctx: int) -> Refusal | None:
    # llama_cpp/llama.py raises "Requested tokens (P) exceed context window of N" when the
    # prompt alone reaches n_ctx; llama_cpp/server/errors.py rewrites it as a 400
    # context_length_exceeded in OpenAI's words. A max_tokens beyond the rest is shortened,
    # not refused (llama.py: "Truncate max_tokens if requested tokens would exceed").
    prompt = prompt_tokens(body)
    if prompt < n_ctx:
        return None
    completion = body.get("max_tokens")
    message = (
        f"This model's maximum context length is {n_ctx} tokens. However, you requested "
        f"{prompt + (completion or 0)} tokens ({prompt} in the messages, {completion} in the "
        "completion). Please reduce the length of the messages or completion."
    )
    return Refusal(400, {"error": {"message": message, "type": "invalid_request_error",
                                   "param": "messages", "code": "context_length_exceeded"}})


def _context_llama_server(body: dict[str, Any], n_ctx: int) -> Refusal | None:
    # tools/server/server-context.cpp: a prompt of n_ctx tokens or more is refused with
    # ERROR_TYPE_EXCEED_CONTEXT_SIZE, a 400 "exceed_context_size_error" whose body also carries
    # n_prompt_tokens and n_ctx (server-task.cpp server_task_result_error::to_json). Generation
    # that reaches the context stops with finish_reason "length".
    prompt = prompt_tokens(body)
    if prompt < n_ctx:
        return None
    message = (f"request ({prompt} tokens) exceeds the available context size ({n_ctx} "
               "tokens), try increasing it")
    return Refusal(400, {"error": {"code": 400, "message": message,
                                   "type": "exceed_context_size_error",
                                   "n_prompt_tokens": prompt, "n_ctx": n_ctx}})


def _context_ollama(body: dict[str, Any], n_ctx: int) -> Refusal | None:
    # Ollama never refuses a long prompt: server/prompt.go chatPrompt drops the oldest messages
    # (keeping the system prompt and the last message) and the runner truncates the rest
    # ("truncating input prompt" in its log). The answer is still limited by num_predict
    # (max_tokens) and the context, and then ends with finish_reason "length".
    return None


def _context_vllm(body: dict[str, Any], n_ctx: int) -> Refusal | None:
    # vLLM's input validation (vllm/entrypoints/openai/serving_engine.py _validate_input, now
    # engine/serving.py) answers 400 BadRequestError both for a prompt over max_model_len and
    # for a max_tokens beyond what is left of it.
    prompt = prompt_tokens(body)
    if prompt > n_ctx:
        message = (f"This model's maximum context length is {n_ctx} tokens. However, your "
                   f"request has {prompt} input tokens. Please reduce the length of the input "
                   "messages.")
    else:
        wanted = body.get("max_tokens") or body.get("max_completion_tokens")
        if not wanted or wanted <= n_ctx - prompt:
            return None
        message = (f"'max_tokens' or 'max_completion_tokens' is too large: {wanted}. This "
                   f"model's maximum context length is {n_ctx} tokens and your request has "
                   f"{prompt} input tokens ({wanted} > {n_ctx} - {prompt}).")
    return Refusal(400, {"error": {"message": message, "type": "BadRequestError",
                                   "param": None, "code": 400}})


@dataclass(frozen=True)
class Profile:
    name: str
    refuse_format: Callable[[dict[str, Any]], Refusal | None]
    refuse_context: Callable[[dict[str, Any], int], Refusal | None] | None
    unauthorized: Refusal | None  # what a wrong or missing key gets (None: keys are ignored)
    model_entry: Callable[[str, int | None], dict[str, Any]]


def _entry(model: str, owner: str, **extra: Any) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": owner, **extra}


PROFILES: dict[str, Profile] = {
    "scripted": Profile("scripted", lambda body: None, None, None,
                        lambda model, ctx: _entry(model, "test")),
    "llama-cpp-python": Profile(
        "llama-cpp-python", _pydantic_literal_500, _context_llama_cpp_python,
        # llama_cpp/server/app.py authenticate(): HTTPException(401, "Invalid API key"),
        # which FastAPI sends as {"detail": ...}.
        Refusal(401, {"detail": "Invalid API key"}),
        # llama_cpp/server/app.py get_models(): id, object, owned_by "me", permissions; no
        # context size.
        lambda model, ctx: {"id": model, "object": "model", "owned_by": "me",
                            "permissions": []},
    ),
    "llama-server": Profile(
        "llama-server", _llama_server, _context_llama_server,
        # tools/server/server-http.cpp: a missing or wrong key gets 401 authentication_error.
        Refusal(401, {"error": {"message": "Invalid API Key", "type": "authentication_error",
                                "code": 401}}),
        # tools/server/server-context.cpp get_res_model_info(): meta.n_ctx is the slot context.
        lambda model, ctx: _entry(model, "llamacpp", meta={"n_ctx": ctx, "n_ctx_train": 4096}),
    ),
    "llama-server-old": Profile(
        "llama-server-old", _llama_server_old, _context_llama_server,
        Refusal(401, {"error": {"message": "Invalid API Key", "type": "authentication_error",
                                "code": 401}}),
        lambda model, ctx: _entry(model, "llamacpp", meta={"n_ctx_train": 4096}),
    ),
    "ollama": Profile(
        # openai/openai.go ToListCompletion: id, object, created, owned_by; no context size.
        "ollama", _ollama_format, _context_ollama, None,
        lambda model, ctx: _entry(model, "library"),
    ),
    "vllm": Profile(
        "vllm", _vllm_format, _context_vllm,
        # vllm/entrypoints/openai/api_server.py: with --api-key, other keys get 401
        # {"error": "Unauthorized"}.
        Refusal(401, {"error": "Unauthorized"}),
        # ModelCard carries max_model_len.
        lambda model, ctx: _entry(model, "vllm", max_model_len=ctx),
    ),
    "vllm-old": Profile(
        "vllm-old", _vllm_old, _context_vllm, Refusal(401, {"error": "Unauthorized"}),
        lambda model, ctx: _entry(model, "vllm", max_model_len=ctx),
    ),
}


class FakeOpenAIServer:
    """Serves scripted chat completions; see the module docstring."""

    def __init__(
        self,
        *,
        model: str = "fake-model",
        profile: str = "scripted",
        context_tokens: int | None = None,
        api_key: str | None = None,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"profile={profile!r}: choose one of {sorted(PROFILES)}")
        self.model = model
        self.profile = PROFILES[profile]
        self.context_tokens = context_tokens
        self.api_key = api_key
        self.refusals: list[tuple[int, dict[str, Any]]] = []  # (status, request) refused
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._script: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval keeps stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # ------------------------------------------------------------------ scripting
    def add_reply(
        self,
        content: str | None,
        *,
        refusal: str | None = None,
        delay_s: float = 0.0,
        finish_reason: str = "stop",
    ) -> None:
        self._push(ScriptedReply(content=content, refusal=refusal, delay_s=delay_s,
                                 finish_reason=finish_reason))

    def add_json(self, data: Any, **options: Any) -> None:
        self.add_reply(json.dumps(data), **options)

    def add_error(
        self,
        status: int,
        message: str = "scripted error",
        *,
        body: Any = None,
        delay_s: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._push(ScriptedReply(status=status, error_message=message, error_body=body,
                                 delay_s=delay_s, headers=dict(headers or {})))

    def add_raw(self, body: Any, *, status: int = 200) -> None:
        """Send ``body`` as the JSON response as-is (malformed completions, odd error shapes)."""
        self._push(ScriptedReply(status=status, error_body=body))

    def _push(self, reply: ScriptedReply) -> None:
        with self._lock:
            self._script.append(reply)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [body for path, body in zip(self.paths, self.requests)
                if path.endswith("/chat/completions")]

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "FakeOpenAIServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a scripted delay
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP
    def _next(self, body: dict[str, Any], path: str, key: str | None) -> ScriptedReply:
        with self._lock:
            self.requests.append(body)
            self.paths.append(path)
        refusal = self._refusal(body, key)
        if refusal is not None:
            with self._lock:
                self.refusals.append((refusal.status, body))
            return ScriptedReply(status=refusal.status, error_body=refusal.body)
        with self._lock:
            if self._script:
                return self._limit(self._script.popleft(), body)
        return ScriptedReply(status=500, error_message="no scripted reply left")

    def _refusal(self, body: dict[str, Any], key: str | None) -> Refusal | None:
        profile = self.profile
        if self.api_key is not None and profile.unauthorized and key != self.api_key:
            return profile.unauthorized
        refused = profile.refuse_format(body)
        if refused is None and profile.refuse_context and self.context_tokens:
            refused = profile.refuse_context(body, self.context_tokens)
        return refused

    def _limit(self, reply: ScriptedReply, body: dict[str, Any]) -> ScriptedReply:
        """Cut the scripted answer where the server would stop: max_tokens, or the context."""
        if self.profile.name == "scripted" or reply.status != 200 or reply.content is None:
            return reply
        room = body.get("max_tokens") or body.get("max_completion_tokens")
        if self.context_tokens:
            left = max(1, self.context_tokens - min(prompt_tokens(body), self.context_tokens - 1))
            room = min(room, left) if room else left
        if room and _tokens(reply.content) > room:
            return ScriptedReply(content=reply.content[: room * CHARS_PER_TOKEN],
                                 finish_reason="length", delay_s=reply.delay_s)
        return reply

    def _completion(self, reply: ScriptedReply, body: dict[str, Any], number: int) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.refusal is not None:
            message["refusal"] = reply.refusal
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason,
                         "logprobs": None}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test): nothing to tell it

            def _key(self) -> str | None:
                auth = self.headers.get("Authorization") or ""
                return auth[7:] if auth.startswith("Bearer ") else None

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    refusal = server._refusal({}, self._key()) if server.api_key else None
                    if refusal is not None:
                        self._send(refusal.status, refusal.body, {})
                        return
                    entry = server.profile.model_entry(server.model, server.context_tokens)
                    self._send(200, {"object": "list", "data": [entry]}, {})
                else:
                    self._send(404, {"error": {"message": "not found"}}, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                    return
                reply = server._next(body, self.path, self._key())
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    return
                if reply.error_body is not None:
                    payload = reply.error_body
                elif reply.status == 200:
                    payload = server._completion(reply, body, len(server.requests))
                else:
                    payload = {
                        "error": {"message": reply.error_message, "type": "scripted",
                                  "param": None, "code": None}
                    }
                self._send(reply.status, payload, reply.headers)

        return Handler
