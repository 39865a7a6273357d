"""Fixtures: the real server on free loopback ports, and small real clients (websockets, OSC/UDP).

``start_server`` starts AudioAgentServer in-process (its asyncio loop runs in a thread) on port 0
for both transports and stops it at teardown. By default it runs over a small fake session
manager (transport and job tests); e2e tests pass ``real=True`` for the real engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message import OscMessage

from engine.errors import InvalidInputError, NotFoundError
from engine.manifest import FailedEvent, Manifest, ManifestEvent
from engine.plan import ChangeKind, Event, Plan, diff_plans, validate_plan
from server import protocol as p
from server.app import AudioAgentServer, ServerConfig
from server.osc import build_datagram

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ------------------------------------------------------------------------------ fake engine
class FakePending:
    def __init__(self, session: str, version: int, plan: Plan, old: Plan | None, base: int | None) -> None:
        self.session, self.version, self.plan = session, version, plan
        self.diff = diff_plans(old, plan)
        self.notes: tuple[str, ...] = ()
        self.base = base  # the version a restore points at (undo), else None


class FakeVersion:
    def __init__(self, version: int, plan: Plan, manifest: Manifest) -> None:
        self.version, self.plan, self.manifest = version, plan, manifest


class FakeManager:
    """Plans 'a, b, c' prompts as one event per comma part; 'render' writes a tiny WAV per event.

    Knobs for tests: ``stem_delay_s`` (sleep per stem, checking cancel), ``fail_word`` (events whose
    description contains it fail), ``gate`` (render waits on it: holds the single worker).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.versions: dict[str, list[FakeVersion]] = {}
        self.current: dict[str, int] = {}
        self.generated: list[str] = []
        self.stem_delay_s = 0.0
        self.fail_word = "explode"
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()

    def _plan(self, session: str) -> Plan | None:
        versions = self.versions.get(session)
        return versions[self.current[session] - 1].plan if versions else None

    def prepare_generate(self, session: str, *, prompt: str, duration_s: float, anchor_s: float = 0.0,
                         planner: Any = None, backend: Any = None, seed: Any = None) -> FakePending:
        parts = [part.strip() for part in prompt.split(",") if part.strip()]
        step = duration_s / len(parts)
        events = [Event(id=f"e{i + 1}", description=text, start_s=i * step, end_s=(i + 1) * step)
                  for i, text in enumerate(parts)]
        plan = validate_plan(Plan(duration_s=duration_s, events=tuple(events)))
        return FakePending(session, len(self.versions.get(session, [])) + 1, plan, self._plan(session), None)

    def prepare_edit(self, session: str, *, instruction: str | None = None, change: Any = None) -> FakePending:
        from engine.edits import EventEdit, apply_edit

        old = self._plan(session)
        if old is None:
            raise NotFoundError(f"session={session!r}: no such session", field="session", value=session)
        if change is None:  # tiny grammar: "e2: new text"
            event_id, _, text = str(instruction).partition(":")
            change = EventEdit(op="replace_text", event_id=event_id.strip(), description=text.strip())
        plan = apply_edit(old, change)
        return FakePending(session, len(self.versions[session]) + 1, plan, old, None)

    def prepare_undo(self, session: str) -> FakePending:
        if self.current.get(session, 0) < 2:
            raise InvalidInputError("nothing to undo", field="session", value=session)
        target = self.current[session] - 1
        plan = self.versions[session][target - 1].plan
        return FakePending(session, target, plan, self._plan(session), target)

    prepare_redo = prepare_undo

    def render(self, pending: FakePending, *, progress: Any = None, cancel: Any = None,
               on_stem: Any = None) -> FakeVersion:
        while self.gate is not None and not self.gate.wait(0.05):
            if cancel is not None:
                cancel.raise_if_cancelled()
        events, failed = [], []
        out_dir = self.data_dir / "sessions" / f"s{abs(hash(pending.session)) % 10**8}" / f"v{pending.version}"
        out_dir.mkdir(parents=True, exist_ok=True)
        for index, event in enumerate(pending.plan.events):
            if cancel is not None:
                cancel.raise_if_cancelled()
            kind = pending.diff.kind_of(event.id)
            needs = pending.base is None and kind in (ChangeKind.CHANGED, ChangeKind.ADDED)
            if needs and self.fail_word in event.description:
                failed.append(FailedEvent(id=event.id, description=event.description, error="boom"))
                continue
            if needs:
                with self.lock:
                    self.generated.append(event.description)
            path = out_dir / f"{event.id}.wav"
            sf.write(path, np.zeros((480, 1), dtype=np.float32), 48000, subtype="PCM_24")
            stem = ManifestEvent(id=event.id, description=event.description, start_s=event.start_s,
                                 end_s=event.end_s, target_lufs=-23.0, measured_lufs=-23.0,
                                 true_peak_dbtp=-3.0, stem_path=str(path), cache_hit=not needs)
            events.append(stem)
            if on_stem is not None:
                on_stem(stem, kind)
            if progress is not None:
                progress("render", (index + 1) / len(pending.plan.events))
            end = time.monotonic() + self.stem_delay_s
            while time.monotonic() < end:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                time.sleep(0.01)
        manifest = Manifest(duration_s=pending.plan.duration_s, sample_rate=48000, events=events, failed=failed)
        version = FakeVersion(pending.version, pending.plan, manifest)
        if pending.base is None:
            self.versions.setdefault(pending.session, []).append(version)
        self.current[pending.session] = pending.version
        return version

    def get(self, session: str) -> dict[str, Any]:
        if session not in self.versions:
            raise NotFoundError(f"session={session!r}: no such session", field="session", value=session)
        return {"name": session, "current_version": self.current[session]}

    def list(self) -> list[dict[str, Any]]:
        return [{"name": name, "current_version": self.current[name]} for name in sorted(self.versions)]


# ------------------------------------------------------------------------------ server fixture
@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., AudioAgentServer]]:
    started: list[AudioAgentServer] = []

    def start(*, data_dir: Path | None = None, manager: Any = None, real: bool = False,
              **options: Any) -> AudioAgentServer:
        directory = data_dir or tmp_path / "data"
        config = ServerConfig(host="127.0.0.1", ws_port=0, osc_port=0, data_dir=directory, **options)
        if manager is None and not real:
            manager = FakeManager(directory)
        server = AudioAgentServer(config, manager=manager).start()
        started.append(server)
        return server

    yield start
    for server in started:
        try:
            server.stop()
        except Exception:
            pass


# ------------------------------------------------------------------------------ clients
TERMINAL = {"done", "error", "pong", "session", "sessions", "cancel_ack", "auth_ok"}


def request(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "type": kind, "id": fields.pop("id", f"r-{kind}-{time.monotonic_ns()}"), **fields}


async def ws_exchange(port: int, message: dict[str, Any] | str | bytes, *, headers: Any = None,
                      timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """Send one frame and collect every message until a terminal one."""
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}", additional_headers=headers, max_size=2**24) as ws:
        await ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))
        return await collect(ws, timeout_s=timeout_s)


async def collect(ws: Any, *, timeout_s: float = 20.0, until: set[str] = TERMINAL) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        out.append(message)
        if message["type"] in until:
            return out


def ws_call(port: int, message: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return asyncio.run(ws_exchange(port, message, **kwargs))


class OscPeer:
    """A UDP socket that sends OSC to the server and reads its replies (as contract dicts)."""

    def __init__(self, server_port: int) -> None:
        self.server = ("127.0.0.1", server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(20.0)
        self.port = self.sock.getsockname()[1]

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build_datagram(address, args), self.server)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def recv(self) -> tuple[str, list[Any]]:
        data, _ = self.sock.recvfrom(65535)
        message = OscMessage(data)
        return message.address, list(message.params)

    def collect(self, *, until: set[str] = TERMINAL) -> list[dict[str, Any]]:
        out = []
        while True:
            address, args = self.recv()
            message = p.osc_to_message(address, args)
            message["_args"] = args
            out.append(message)
            if message["type"] in until:
                return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def osc_peer() -> Iterator[Callable[[int], OscPeer]]:
    peers: list[OscPeer] = []

    def make(port: int) -> OscPeer:
        peer = OscPeer(port)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


def ping_ok(server: AudioAgentServer) -> bool:
    """The server still answers ping on both transports."""
    messages = ws_call(server.ws_port, request("ping", id="alive"))
    peer = OscPeer(server.osc_port)
    try:
        peer.send("/audioagent/ping", "alive-osc", 0)
        address, args = peer.recv()
    finally:
        peer.close()
    return messages[-1]["type"] == "pong" and address == "/audioagent/pong" and args[0] == "alive-osc"
