"""Wiring: one Engine (engine.api), one JobManager, and both transports on one asyncio loop.

The loop runs in its own thread so tests and ``audio-agent serve`` start and stop the whole server
the same way (``start()`` returns once both sockets are bound; port 0 picks free ports). No engine
logic lives here: requests go to the Engine as they are (the wire's job requests are engine.api
models), and the engine's typed views go back as they are.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.api import Engine
from engine.errors import AudioAgentError, InvalidInputError
from engine.limits import MAX_VIDEO_BYTES, check_video_path
from engine.session_views import InterruptedJob
from engine.store import JobStatus
from engine.video.vta_choice import choose_checkpoint
from server import protocol as p
from server.jobs import Job, JobManager, Sink
from server.osc import OscProtocol, is_loopback, start_osc
from server.websocket import WebSocketTransport

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
    max_jobs: int = 256
    max_jobs_per_client: int = 8
    planner_threads: int = 2
    time_limit_s: float = 900.0
    max_video_bytes: int = MAX_VIDEO_BYTES
    # VTA checkpoints clients may name in video_cue (name -> folder; engine.video.vta_choice).
    vta_checkpoints: dict[str, Path] = field(default_factory=dict)
    # Plan and render in a worker process (server.engine_process), so the transports' loop never
    # waits on the interpreter lock the render holds. False: in this process (debugging).
    engine_process: bool = True
    # Modules the engine imports before it is built: they may register generator backends.
    plugins: tuple[str, ...] = ()

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
        for name, port in (("ws_port", self.ws_port), ("osc_port", self.osc_port)):
            if not 0 <= port <= 65535:
                raise InvalidInputError(f"{name}={port}: not a port", field=name, value=port)
        if self.vta_checkpoints:
            from engine.video.vta_choice import check_vta_table

            check_vta_table(self.vta_checkpoints)


def default_engine(config: ServerConfig) -> Engine:
    """The real engine: in a worker process unless ``config.engine_process`` is False."""
    if not config.engine_process:
        return build_engine_here(config)
    from functools import partial

    from server.engine_process import EngineProcess

    return EngineProcess(partial(build_engine_here, config), plugins=config.plugins)


def build_engine_here(config: ServerConfig) -> Engine:
    """The real engine in this process, built by the composition root (engine.compose) from the
    same settings `audio-agent render` honours (README "Settings"), with the server's own
    choices on top."""
    from engine.compose import build_engine
    from engine.settings import load_settings
    from server.engine_process import import_plugins

    import_plugins(config.plugins)  # again in a worker process: a no-op there
    max_bytes = int(config.cache_max_mb * 1024 * 1024) if config.cache_max_mb else None
    return build_engine(
        load_settings(), data_dir=config.data_dir, planner=config.planner, backend=config.backend,
        llm_model=config.llm_model, cache_max_bytes=max_bytes, max_video_bytes=config.max_video_bytes,
        vta_checkpoints=config.vta_checkpoints,
    )


class Dispatcher:
    """Turns requests into jobs or direct answers. Called on the loop thread by both transports."""

    def __init__(self, *, engine: Engine, config: ServerConfig, notify: Callable[[int], Sink]) -> None:
        self.engine = engine
        self.config = config
        self._notify = notify  # port -> sink sending OSC to 127.0.0.1:port
        self.jobs = JobManager(
            prepare=engine.prepare,
            render=engine.render,
            data_dir=config.data_dir.expanduser(),
            max_jobs=config.max_jobs,
            max_jobs_per_client=config.max_jobs_per_client,
            planner_threads=config.planner_threads,
            time_limit_s=config.time_limit_s,
            record=self._record,
            release=engine.release,
        )
        self._reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aa-read")
        # Resolved once: resolve() walks the file system, and pong is answered on the loop.
        self._stem_root = str(config.data_dir.expanduser().resolve())

    # ------------------------------------------------------------------ requests
    def handle(self, request: p.Request, sink: Sink, client: str = "") -> None:
        try:
            self._handle(request, sink, client)
        except AudioAgentError as error:
            sink(p.error_message(error, request_id=request.id))

    def _handle(self, request: p.Request, sink: Sink, client: str) -> None:
        if isinstance(request, p.JOB_REQUESTS):
            # Refuse what can be refused before accepting: a job that fails at once would leave
            # an empty session behind.
            if isinstance(request, p.VideoCueRequest):
                check_video_path(request.video_path, max_bytes=self.config.max_video_bytes)
                choose_checkpoint(request.generator, request.checkpoint, request.vta_lambda,
                                  self.config.vta_checkpoints)
            if isinstance(request, p.GenerateRequest) and request.backend is not None:
                _check_backend(request.backend, self.engine.backends())
            port = request.notify_osc_port
            self.jobs.submit(request, _tee(sink, self._notify(port)) if port else sink, client=client)
        elif isinstance(request, p.PingRequest):
            sink(p.Pong(
                id=request.id, server_version=SERVER_VERSION,
                stem_root=self._stem_root,
                planner=self.config.planner, backend=self.config.backend,
                vta_checkpoints=sorted(self.config.vta_checkpoints),
            ))
        elif isinstance(request, p.CancelRequest):
            state = self.jobs.cancel(request.job)
            sink(p.CancelAck(id=request.id, job=request.job, state=state.value))
        elif isinstance(request, (p.GetSessionRequest, p.ListSessionsRequest)):
            # SQLite and JSON of whole sessions: on a reader thread, never on the transports' loop.
            self._reads.submit(self._answer_read, request, sink)
        else:  # AuthRequest: OSC has no tokens (an address allowlist instead)
            sink(p.AuthOk(id=request.id))

    def _answer_read(self, request: p.GetSessionRequest | p.ListSessionsRequest, sink: Sink) -> None:
        try:
            if isinstance(request, p.GetSessionRequest):
                sink(p.SessionMessage(
                    id=request.id, session=request.session, info=self.engine.session(request.session),
                    interrupted_jobs=self.engine.interrupted_jobs(request.session),
                ))
            else:
                sink(p.SessionsMessage(
                    id=request.id, sessions=self.engine.sessions(),
                    interrupted_jobs=self.engine.interrupted_jobs(None),
                ))
        except Exception as error:  # every read gets an answer: the error, named
            if not isinstance(error, AudioAgentError):
                log.exception("reading %s failed", request.type)
            sink(p.error_message(error, request_id=request.id))

    def close(self) -> None:
        self.jobs.stop()
        self._reads.shutdown(wait=True, cancel_futures=True)

    def _record(self, job: Job, status: JobStatus, error: str | None) -> None:
        request_json = p.encode(job.request) if status == JobStatus.QUEUED else ""
        self.engine.record_job(job.id, session=job.session, status=status,
                               request_json=request_json, error=error or "")


def _bind_error(name: str, host: str, port: int, error: OSError) -> InvalidInputError:
    """A port already taken (a second `serve`, another OSC app) said in one line, not a traceback."""
    flag = "--" + name.replace("_", "-")
    return InvalidInputError(
        f"{name}={port}: cannot listen on {host}:{port} ({error.strerror or error}); is another "
        f"audio-agent serve running? choose another port with {flag}",
        field=name, value=port,
    )


def _check_backend(name: str, known: list[str]) -> None:
    if name not in known:
        raise InvalidInputError(
            f"backend={name!r}: unknown backend; expected one of {', '.join(sorted(known))}",
            field="backend", value=name,
        )


def _tee(first: Sink, second: Sink) -> Sink:
    def sink(message: p.ServerMessage) -> None:
        first(message)
        second(message)

    return sink


_warmed = threading.Event()


def _warm_render_path(*, render_here: bool) -> None:
    """Import and prime the render path once per process, off the event loop (see
    engine.render.warm_up): otherwise the first job pays it while holding the interpreter lock.
    An engine process warms its own (server.engine_process)."""
    if _warmed.is_set():
        return
    _warmed.set()
    if render_here:
        from server.engine_process import warm_render_path

        warm_render_path()
    # What is loaded by now (numpy, the engine, pydantic models) lives as long as the process.
    # Collections walking it paused every thread, the event loop too (benchmarks/server.py under
    # load: gen-1 up to 15 ms, full ones 100-280 ms); frozen, the collector never walks it again.
    gc.collect()
    gc.freeze()


class AudioAgentServer:
    """The whole server. ``start()`` binds and returns; ``stop()`` closes sockets and jobs."""

    def __init__(self, config: ServerConfig, *, engine: Engine | None = None) -> None:
        config.check()
        self.config = config
        self.engine = engine if engine is not None else default_engine(config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aa-loop", daemon=True)
        self.osc: OscProtocol | None = None
        self._osc_transport: asyncio.DatagramTransport | None = None
        self.websocket = WebSocketTransport(handle=self._handle, host=config.host, token=config.token)
        self.dispatcher = Dispatcher(engine=self.engine, config=config, notify=self._notify_sink)
        self.interrupted: list[InterruptedJob] = []
        self.ws_port = 0
        self.osc_port = 0

    def _handle(self, request: p.Request, sink: Sink, client: str = "") -> None:
        self.dispatcher.handle(request, sink, client)

    def _notify_sink(self, port: int) -> Sink:
        assert self.osc is not None
        if self.osc.is_own("127.0.0.1", port):
            # Notifications sent to our own OSC socket would be read as requests: a loop.
            raise InvalidInputError(
                f"notify_osc_port={port}: that is this server's own OSC port; name the port your "
                "client listens on", field="notify_osc_port", value=port,
            )
        return self.osc.sender(("127.0.0.1", port))

    def start(self) -> "AudioAgentServer":
        self.interrupted = self.engine.mark_interrupted()
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._bind(), self.loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        self.dispatcher.jobs.start()
        from server.engine_process import EngineProcess

        render_here = not isinstance(self.engine, EngineProcess)
        threading.Thread(target=_warm_render_path, kwargs={"render_here": render_here},
                         name="aa-warm", daemon=True).start()
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
        self.dispatcher.close()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._unbind(), self.loop).result(timeout=15)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=15)
        self.engine.close()

    async def _unbind(self) -> None:
        if self._osc_transport is not None:
            self._osc_transport.close()
        await self.websocket.close()

    def __enter__(self) -> "AudioAgentServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
