"""A small WebSocket client for the server: what `audio-agent client` runs.

DAW scripts without sockets start this as a process, so its outputs are a contract:
- with an events file, every server message about the request is appended as one JSON line,
  flushed per line (a script polls the file);
- on success stdout gets one line: the final manifest JSON (``status``: the pong JSON);
- on failure stderr gets one line ``audio-agent: error: CODE: MESSAGE``, the events file gets an
  {"type": "error", ...} line, and the exit status is non-zero (see EXIT_CODES).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

# The client speaks plain JSON dicts and never validates with the message models, so it does not
# import server.protocol (pydantic models, engine.api and their adapters: ~300 ms, most of a DAW's
# status poll). These two copies are checked against their sources in tests/server/test_websocket.py.
PROTOCOL_VERSION = 1  # server.protocol.PROTOCOL_VERSION
CLIENT_MAX_FRAME_BYTES = 16 * 1024 * 1024  # server.websocket.CLIENT_MAX_FRAME_BYTES

DEFAULT_URL = "ws://127.0.0.1:8765"
EXIT_OK = 0
EXIT_FAILED = 1  # the job or request failed on the server (generator, planner, cancelled, ...)
EXIT_BAD_INPUT = 2  # the server refused the request as malformed or invalid
EXIT_UNREACHABLE = 3  # no server answered at the URL (not running, refused the handshake)
_BAD_INPUT_CODES = {
    "invalid_input", "invalid_plan", "bad_json", "bad_request", "unknown_type", "unknown_field",
    "unsupported_version", "too_large",
}
_TERMINAL = {"done", "error", "pong", "session", "sessions", "cancel_ack"}


@dataclass
class Outcome:
    exit_code: int
    message: dict[str, Any]  # the final server message (done / pong / error ...)


def new_request_id() -> str:
    return "c" + uuid.uuid4().hex[:12]


class EventsFile:
    """Append-only JSON lines, flushed per line, so a polling reader never sees half a line
    except at the very end (readers keep the last unterminated fragment for the next poll)."""

    def __init__(self, path: Path | None) -> None:
        self._handle: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "a", encoding="utf-8")

    def write(self, message: dict[str, Any]) -> None:
        if self._handle is not None:
            self._handle.write(json.dumps(message, separators=(",", ":")) + "\n")
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _error(request_id: str, code: str, message: str, field_name: str | None = None) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "type": "error", "id": request_id, "code": code,
            "message": message, "field": field_name}


def exit_code_for(message: dict[str, Any]) -> int:
    if message.get("type") != "error":
        return EXIT_OK
    if message.get("code") == "unavailable":
        return EXIT_UNREACHABLE
    return EXIT_BAD_INPUT if message.get("code") in _BAD_INPUT_CODES else EXIT_FAILED


async def _exchange(url: str, request: dict[str, Any], events: EventsFile, token: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with connect(url, additional_headers=headers, max_size=CLIENT_MAX_FRAME_BYTES, compression=None,
                       open_timeout=10) as websocket:
        await websocket.send(json.dumps(request))
        async for frame in websocket:
            message = json.loads(frame)
            if message.get("id") not in (request["id"], ""):
                continue  # not ours (cannot happen on a private connection, but cheap to check)
            events.write(message)
            if message.get("type") in _TERMINAL:
                return message
    return _error(request["id"], "unavailable", "the server closed the connection before answering")


def run_request(
    request: dict[str, Any],
    *,
    url: str = DEFAULT_URL,
    events_path: Path | None = None,
    token: str | None = None,
    timeout_s: float | None = None,
) -> Outcome:
    """Send one request and wait for its final message; never raises for server-side failures."""
    request = {"v": PROTOCOL_VERSION, "id": new_request_id(), **request}
    events = EventsFile(events_path)
    try:
        try:
            final = asyncio.run(asyncio.wait_for(_exchange(url, request, events, token), timeout_s))
        except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed) as error:
            final = _error(request["id"], "unavailable", f"cannot reach the server at {url}: {error}")
            events.write(final)
        except asyncio.TimeoutError:
            final = _error(request["id"], "timeout", f"no answer within {timeout_s:g} s")
            events.write(final)
        return Outcome(exit_code_for(final), final)
    finally:
        events.close()


def token_from_env() -> str | None:
    return os.environ.get("AUDIO_AGENT_TOKEN") or None
