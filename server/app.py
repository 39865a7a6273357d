"""Wiring: one SessionManager, one JobManager, and both transports on one asyncio loop.

The loop runs in its own thread so tests and ``audio-agent serve`` start and stop the whole server
the same way (``start()`` returns once both sockets are bound; port 0 picks free ports).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from engine.errors import AudioAgentError, InvalidInputError
from server import protocol as p
from server.jobs import Job, JobManager
from server.osc import OscProtocol, is_loopback, start_osc
from server.websocket import WebSocketTransport

if TYPE_CHECKING:
    from engine.session import SessionManager

log = logging.getLogger("audio_agent.server")
SERVER_VERSION = "0.1.0"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    ws_port: int = 8765
    osc_port: int = 9000
    data_dir: Path = Path("~/.local/share/audio-agent")
    planner: str = "rules"
    llm_model: str | None = None
    backend: str = "procedural"
    token: str | None = None
    osc_allow: list[str] = field(default_factory=list)
    cache_max_mb: float | None = None
    max_jobs: int = 32
    planner_threads: int = 2
    time_limit_s: float = 900.0
    max_video_bytes: int = 8 * 1024**3

    def check(self) -> None:
        """Refuse unsafe or impossible settings before binding anything."""
        if not is_loopback(self.host) and not self.token:
            raise InvalidInputError(
                f"host={self.host!r}: binding beyond loopback needs --token (and --osc-allow for OSC)",
                field="host", value=self.host,
            )
        for address in self.osc_allow:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise InvalidInputError(
                    f"osc_allow={address!r}: not an IP address", field="osc_allow", value=address
                ) from None
        for name in ("ws_port", "osc_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise InvalidInputError(f"{name}={getattr(self, name)}: not a port", field=name)


def default_session_manager(config: ServerConfig) -> SessionManager:
    """The real engine, built by the composition root (engine.compose) from the same settings
    `audio-agent render` honours (README "Settings"), with the server's own choices on top."""
    from engine.compose import build_session_manager
    from engine.settings import load_settings

    max_bytes = int(config.cache_max_mb * 1024 * 1024) if config.cache_max_mb else None
    return build_session_manager(
        load_settings(), data_dir=config.data_dir, planner=config.planner, backend=config.backend,
        llm_model=config.llm_model, cache_max_bytes=max_bytes,
    )


def jsonable(value: Any) -> Any:
    """SessionInfo/SessionSummary (pydantic models or dataclasses) -> plain JSON data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # enums
        return value.value
    return value


def check_video_path(path_text: str, *, max_bytes: int) -> Path:
    """A file a client names must exist, be a regular file and be of a sane size."""
    path = Path(path_text).expanduser()
    try:
        info = path.stat()
    except (OSError, ValueError):
        raise InvalidInputError(f"video_path={path_text!r}: no such file", field="video_path", value=path_text) from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError(f"video_path={path_text!r}: not a regular file", field="video_path", value=path_text)
    if info.st_size == 0 or info.st_size > max_bytes:
        raise InvalidInputError(
            f"video_path={path_text!r}: {info.st_size} bytes; must be 1..{max_bytes}",
            field="video_path", value=path_text,
        )
    if not os.access(path, os.R_OK):
        raise InvalidInputError(f"video_path={path_text!r}: not readable", field="video_path", value=path_text)
    return path.resolve()


class Dispatcher:
    """Turns requests into jobs or direct answers. Called on the loop thread by both transports."""

    def __init__(self, *, manager: Any, config: ServerConfig, notify: Callable[[int], Callable[[Any], None]]) -> None:
        self.manager = manager
        self.config = config
        self._notify = notify  # port -> sink sending OSC to 127.0.0.1:port
        self.store = getattr(manager, "store", None)
        self.jobs = JobManager(
            prepare=self.prepare,
            render=manager.render,
            data_dir=config.data_dir.expanduser(),
            max_jobs=config.max_jobs,
            planner_threads=config.planner_threads,
            time_limit_s=config.time_limit_s,
            record=self._record if self.store is not None else None,
        )

    # ------------------------------------------------------------------ requests
    def handle(self, request: Any, sink: Callable[[Any], None]) -> None:
        try:
            self._handle(request, sink)
        except AudioAgentError as error:
            sink(p.error_message(error, request_id=request.id))

    def _handle(self, request: Any, sink: Callable[[Any], None]) -> None:
        kind = request.type
        if kind in p.JOB_TYPES:
            if kind == "video_cue":  # refuse a bad path before accepting (checked again later)
                check_video_path(request.video_path, max_bytes=self.config.max_video_bytes)
            port = getattr(request, "notify_osc_port", None)
            self.jobs.submit(request, _tee(sink, self._notify(port)) if port else sink)
        elif kind == "ping":
            sink(p.Pong(
                id=request.id, server_version=SERVER_VERSION,
                stem_root=str(self.config.data_dir.expanduser().resolve()),
                planner=self.config.planner, backend=self.config.backend,
            ))
        elif kind == "cancel":
            state = self.jobs.cancel(request.job)
            sink(p.CancelAck(id=request.id, job=request.job, state=state))
        elif kind == "get_session":
            info = jsonable(self.manager.get(request.session))
            sink(p.SessionMessage(
                id=request.id, session=request.session, info=info,
                interrupted_jobs=self._interrupted(request.session),
            ))
        elif kind == "list_sessions":
            sessions = [jsonable(summary) for summary in self.manager.list()]
            sink(p.SessionsMessage(id=request.id, sessions=sessions, interrupted_jobs=self._interrupted(None)))
        elif kind == "auth":
            sink(p.AuthOk(id=request.id))  # OSC has no tokens (an address allowlist instead)
        else:  # pragma: no cover - parse_request only yields the types above
            raise p.ProtocolError(f"type={kind!r}: not handled", code="unknown_type", field="type")

    def _interrupted(self, session: str | None) -> list[dict[str, Any]]:
        if self.store is None:
            return []
        rows = self.store.list_jobs(session=session, status="interrupted")
        return [
            {"job": row.job_id, "session": row.session, "request": row.request, "error": row.error}
            for row in rows
        ]

    def _record(self, job: Job, status: str, error: str | None) -> None:
        if status == "queued":
            self.store.add_job(job.id, session=job.session, request=p.encode(job.request), status="queued")
        else:
            self.store.update_job(job.id, status=status, error=error or "")

    # ------------------------------------------------------------------ planning (pool threads)
    def prepare(self, request: Any) -> Any:
        manager = self.manager
        if request.type == "generate":
            return manager.prepare_generate(
                request.session, prompt=request.prompt, duration_s=request.duration_s,
                anchor_s=request.anchor_s, planner=request.planner, backend=request.backend, seed=request.seed,
            )
        if request.type == "edit":
            change = None
            if request.change is not None:
                from engine.edits import EventEdit

                change = EventEdit(**request.change.model_dump())
            return manager.prepare_edit(request.session, instruction=request.instruction, change=change)
        if request.type == "undo":
            return manager.prepare_undo(request.session)
        if request.type == "redo":
            return manager.prepare_redo(request.session)
        return self._prepare_video(request)

    def _prepare_video(self, request: Any) -> Any:
        path = check_video_path(request.video_path, max_bytes=self.config.max_video_bytes)
        from engine.video.cue import plan_from_video

        # A server started with the LLM planner lets its (vision-capable) model name the hits;
        # with the rule planner the offline onset planner answers.
        default_planner = getattr(self.manager, "planner", None)
        planner = default_planner() if callable(default_planner) else None
        result = plan_from_video(
            path, start_s=request.start_s, end_s=request.end_s, hint=request.hint, planner=planner
        )
        prepare_plan = getattr(self.manager, "prepare_plan", None)
        if prepare_plan is None:
            raise AudioAgentError("this engine cannot render a given plan as a session version", field="video_path")
        words = f"video cue {path.name} {request.start_s:g}-{request.end_s:g} s"
        if request.hint:
            words += f": {request.hint}"
        return prepare_plan(request.session, result, instruction=words, anchor_s=request.anchor_s)


def _bind_error(name: str, host: str, port: int, error: OSError) -> InvalidInputError:
    """A port already taken (a second `serve`, another OSC app) said in one line, not a traceback."""
    flag = "--" + name.replace("_", "-")
    return InvalidInputError(
        f"{name}={port}: cannot listen on {host}:{port} ({error.strerror or error}); is another "
        f"audio-agent serve running? choose another port with {flag}",
        field=name, value=port,
    )


def _tee(first: Callable[[Any], None], second: Callable[[Any], None]) -> Callable[[Any], None]:
    def sink(message: Any) -> None:
        first(message)
        second(message)

    return sink


class AudioAgentServer:
    """The whole server. ``start()`` binds and returns; ``stop()`` closes sockets and jobs."""

    def __init__(self, config: ServerConfig, *, manager: Any | None = None) -> None:
        config.check()
        self.config = config
        self.manager = manager if manager is not None else default_session_manager(config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aa-loop", daemon=True)
        self.osc: OscProtocol | None = None
        self._osc_transport: asyncio.DatagramTransport | None = None
        self.websocket = WebSocketTransport(handle=self._handle, host=config.host, token=config.token)
        self.dispatcher = Dispatcher(manager=self.manager, config=config, notify=self._notify_sink)
        self.interrupted: list[Any] = []
        self.ws_port = 0
        self.osc_port = 0

    def _handle(self, request: Any, sink: Callable[[Any], None]) -> None:
        self.dispatcher.handle(request, sink)

    def _notify_sink(self, port: int) -> Callable[[Any], None]:
        assert self.osc is not None
        return self.osc.sender(("127.0.0.1", port))

    def start(self) -> "AudioAgentServer":
        store = self.dispatcher.store
        if store is not None:
            self.interrupted = list(store.mark_interrupted())
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._bind(), self.loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        self.dispatcher.jobs.start()
        log.info("serving WebSocket on %s:%d and OSC on %s:%d", self.config.host, self.ws_port,
                 self.config.host, self.osc_port)
        return self

    async def _bind(self) -> None:
        try:
            await self.websocket.start(port=self.config.ws_port)
        except OSError as error:
            raise _bind_error("ws_port", self.config.host, self.config.ws_port, error) from None
        self.ws_port = self.websocket.port
        try:
            self._osc_transport, self.osc = await start_osc(
                host=self.config.host, port=self.config.osc_port, handle=self._handle,
                allow=self.config.osc_allow,
            )
        except OSError as error:
            raise _bind_error("osc_port", self.config.host, self.config.osc_port, error) from None
        self.osc_port = int(self._osc_transport.get_extra_info("sockname")[1])

    def stop(self) -> None:
        self.dispatcher.jobs.stop()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._unbind(), self.loop).result(timeout=15)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=15)
        close = getattr(self.manager, "close", None)
        if callable(close):
            close()

    async def _unbind(self) -> None:
        if self._osc_transport is not None:
            self._osc_transport.close()
        await self.websocket.close()

    def __enter__(self) -> "AudioAgentServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
