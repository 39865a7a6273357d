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

from engine import api
from engine.edits import EventEdit, apply_edit
from engine.errors import InvalidInputError, NotFoundError
from engine.manifest import FailedEvent, Manifest, ManifestEvent
from engine.plan import ChangeKind, Event, Plan, diff_plans, validate_plan
from engine.progress import CancelToken, ProgressFn
from engine.session import OnStem, PendingVersion, SessionVersion, VersionKind
from engine.session_views import InterruptedJob, SessionInfo, SessionSummary
from engine.store import JobStatus
from server import protocol as p
from server.app import AudioAgentServer, ServerConfig
from server.osc import build_datagram

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ------------------------------------------------------------------------------ fake engine
class FakeEngine:
    """An engine.api.Engine that plans 'a, b, c' prompts as one event per comma part and
    'renders' a tiny WAV per event, for transport and job tests (no DSP, no SQLite).

    Knobs for tests: ``stem_delay_s`` (sleep per stem, checking cancel), ``fail_word`` (events whose
    description contains it fail), ``gate`` (render waits on it: holds the single worker).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.versions: dict[str, list[SessionVersion]] = {}
        self.current: dict[str, int] = {}
        self.generated: list[str] = []
        self.jobs: dict[str, tuple[str, JobStatus]] = {}
        self.stem_delay_s = 0.0
        self.fail_word = "explode"
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()
        self.released: list[tuple[str, int]] = []  # planned versions dropped unrendered

    def _plan(self, session: str) -> Plan | None:
        versions = self.versions.get(session)
        return versions[self.current[session] - 1].plan if versions else None

    def _pending(self, session: str, version: int, plan: Plan, kind: VersionKind) -> PendingVersion:
        return PendingVersion(session=session, version=version, kind=kind, plan=plan,
                              diff=diff_plans(self._plan(session), plan))

    def prepare(self, request: api.JobRequest) -> PendingVersion:
        session = request.session
        if isinstance(request, api.GenerateRequest):
            parts = [part.strip() for part in request.prompt.split(",") if part.strip()]
            step = request.duration_s / len(parts)
            events = [Event(id=f"e{i + 1}", description=text, start_s=i * step, end_s=(i + 1) * step)
                      for i, text in enumerate(parts)]
            plan = validate_plan(Plan(duration_s=request.duration_s, events=tuple(events)))
            return self._pending(session, len(self.versions.get(session, [])) + 1, plan, "generate")
        if isinstance(request, api.EditRequest):
            old = self._plan(session)
            if old is None:
                raise NotFoundError(f"session={session!r}: no such session", field="session", value=session)
            if request.change is not None:
                change = request.change.to_edit()
            else:  # tiny grammar: "e2: new text"
                event_id, _, text = str(request.instruction).partition(":")
                change = EventEdit(op="replace_text", event_id=event_id.strip(), description=text.strip())
            plan = apply_edit(old, change)
            return self._pending(session, len(self.versions[session]) + 1, plan, "edit")
        if isinstance(request, (api.UndoRequest, api.RedoRequest)):
            if self.current.get(session, 0) < 2:
                raise InvalidInputError("nothing to undo", field="session", value=session)
            target = self.current[session] - 1
            return self._pending(session, target, self.versions[session][target - 1].plan, "undo")
        raise InvalidInputError("video cues are not faked", field="video_path")

    def release(self, pending: PendingVersion) -> None:
        with self.lock:
            self.released.append((pending.session, pending.version))

    def backends(self) -> list[str]:
        from engine.generators import available_generators

        return available_generators()

    def render(self, pending: PendingVersion, *, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None, on_stem: OnStem | None = None) -> SessionVersion:
        while self.gate is not None and not self.gate.wait(0.05):
            if cancel is not None:
                cancel.raise_if_cancelled()
        events, failed = [], []
        restore = pending.kind == "undo"
        out_dir = self.data_dir / "sessions" / f"s{abs(hash(pending.session)) % 10**8}" / f"v{pending.version}"
        out_dir.mkdir(parents=True, exist_ok=True)
        for index, event in enumerate(pending.plan.events):
            if cancel is not None:
                cancel.raise_if_cancelled()
            kind = pending.diff.kind_of(event.id)
            needs = not restore and kind in (ChangeKind.CHANGED, ChangeKind.ADDED)
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
        version = SessionVersion(pending.session, pending.version, pending.kind, pending.plan, manifest)
        if not restore:
            self.versions.setdefault(pending.session, []).append(version)
        self.current[pending.session] = pending.version
        return version

    def session(self, name: str) -> SessionInfo:
        if name not in self.versions:
            raise NotFoundError(f"session={name!r}: no such session", field="session", value=name)
        current = self.versions[name][self.current[name] - 1]
        return SessionInfo(name=name, current_version=self.current[name], plan=current.plan,
                           manifest=current.manifest, history=[], versions=[], planner="", backend="",
                           anchor_s=0.0, created=0.0, updated=0.0, can_undo=self.current[name] > 1,
                           can_redo=self.current[name] < len(self.versions[name]))

    def sessions(self) -> list[SessionSummary]:
        return [SessionSummary(name=name, current_version=self.current[name], version_count=len(versions),
                               event_count=0, duration_s=None, updated=0.0, can_undo=False, can_redo=False)
                for name, versions in sorted(self.versions.items())]

    def record_job(self, job_id: str, *, session: str, status: JobStatus, request_json: str = "",
                   error: str = "") -> None:
        self.jobs[job_id] = (session, status)

    def interrupted_jobs(self, session: str | None = None) -> list[InterruptedJob]:
        return []

    def mark_interrupted(self) -> list[InterruptedJob]:
        return []

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------ server fixture
@pytest.fixture
def start_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., AudioAgentServer]]:
    started: list[AudioAgentServer] = []

    def start(*, data_dir: Path | None = None, engine: FakeEngine | None = None, real: bool = False,
              **options: Any) -> AudioAgentServer:
        directory = data_dir or tmp_path / "data"
        if real:  # the real engine runs in a worker process: it imports the test module's backends
            options.setdefault("plugins", (request.module.__name__,))
        config = ServerConfig(host="127.0.0.1", ws_port=0, osc_port=0, data_dir=directory, **options)
        if engine is None and not real:
            engine = FakeEngine(directory)
        server = AudioAgentServer(config, engine=engine).start()
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
