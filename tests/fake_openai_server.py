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
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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


class FakeOpenAIServer:
    """Serves scripted chat completions; see the module docstring."""

    def __init__(self, *, model: str = "fake-model") -> None:
        self.model = model
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
    def _next(self, body: dict[str, Any], path: str) -> ScriptedReply:
        with self._lock:
            self.requests.append(body)
            self.paths.append(path)
            if self._script:
                return self._script.popleft()
        return ScriptedReply(status=500, error_message="no scripted reply left")

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

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [
                        {"id": server.model, "object": "model", "created": 0, "owned_by": "test"}
                    ]}, {})
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
                reply = server._next(body, self.path)
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
