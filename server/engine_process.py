"""The engine in its own process: planning and rendering never hold the server's interpreter lock.

Why: the transports' event loop must answer ``accepted`` within a few milliseconds while a scene
renders. In one process the render and planner threads held the interpreter lock most of the
time (and their garbage paused every thread), so under 50 clients the loop waited 50-100 ms.
``EngineProcess`` is an engine.api.Engine whose every call runs in a child process holding the
real engine; the server process keeps only sockets, job bookkeeping and the wire codec.

The boundary is a duplex pipe of pickled tuples (multiprocessing's connection: framed, and every
value that crosses it, pydantic models and engine dataclasses, pickles as is):

    server -> worker   ("call", call_id, method, args)      a method of engine.api.Engine
                       ("tell", method, args)                one that answers nothing (record_job,
                                                             release): run in order, on one thread
                       ("cancel", call_id, reason)           cancel that call's CancelToken
                       ("stop",)
    worker -> server   ("ready", backends) | ("broken", error)   once, after building the engine
                       ("progress", call_id, stage, fraction)
                       ("stem", call_id, event, change)
                       ("result", call_id, value) | ("error", call_id, error)   once per call

A planned version stays in the worker (it may hold a generator bound to a video, which does not
pickle); the server gets a copy without it and names the original by a ticket when it renders or
releases it. Callbacks (progress, stems) run on the server's one reader thread, in the order the
worker sent them, so a job's stems always reach its client before its ``done``.

If the worker dies (killed, out of memory, a crash in native code), every call in flight ends
with an error saying so, and the next call starts a fresh worker: the server keeps serving.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import importlib
import itertools
import logging
import math
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Callable, Sequence

from engine.errors import AudioAgentError, InvalidInputError
from engine.progress import CancelToken, ProgressThrottle

if TYPE_CHECKING:
    from engine.api import Engine, JobRequest
    from engine.progress import ProgressFn
    from engine.session import OnStem, PendingVersion, SessionVersion
    from engine.session_views import InterruptedJob, SessionInfo, SessionSummary
    from engine.store import JobStatus

log = logging.getLogger("audio_agent.engine_process")

EngineBuilder = Callable[[], "Engine"]

# Calls the worker runs at once: the job manager's planners (2) and render worker (1), the
# server's readers (2) and job recorder (1); more only wait their turn.
WORKER_THREADS = 8
# How often a waiting call looks at its CancelToken (a cancel reaches the worker within this).
CANCEL_POLL_S = 0.05
# A cancelled call still running this long after is stuck (native code): the worker is replaced.
CANCEL_GRACE_S = 120.0
# The server died: how long the worker lets cancelled calls stop cleanly before it exits anyway.
ORPHAN_GRACE_S = 2.0
# The worker yields the CPU to the transports' loop (and to the DAW) whenever both want it:
# rendering is throughput work, a reply to a request is latency work. With the worker at the
# same priority, a render's threads on this 2-core machine held both cores and the loop waited
# for a scheduler slice (a few ms) before it could answer. Ten steps of nice gives the loop
# about ten times the worker's share under contention and nothing is lost when the CPU is free.
WORKER_NICE = 10
START_TIMEOUT_S = 300.0  # building the engine imports the render stack (first start: slower)


class EngineProcessError(AudioAgentError):
    """The engine's worker process is gone or could not start (its log says why)."""

    code = "internal"


# ---------------------------------------------------------------------------- worker side
def _serve(conn: Connection, build: EngineBuilder, plugins: Sequence[str], log_level: int) -> None:
    """The worker's main: build the engine, then answer calls until "stop" or the server goes."""
    # Ctrl-C in a terminal reaches the whole process group; the server decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The engine says everything through logs (stderr). A library's stray print must not reach
    # stdout: it carries `audio-agent mcp`'s protocol, and `serve`'s banner for launchers.
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` writes every thread's stack to stderr
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _lower_priority(WORKER_NICE)
    try:
        import_plugins(plugins)
        engine = build()
        from engine.generators import available_generators

        conn.send(("ready", available_generators()))
    except BaseException as error:  # noqa: BLE001 - the server reports it and refuses to start
        if not isinstance(error, AudioAgentError):
            log.exception("the engine could not be built")
        conn.send(("broken", _portable(error)))
        return
    _Worker(conn, engine).run()


def _lower_priority(steps: int) -> None:
    """Lower this process's CPU priority by ``steps`` of nice (POSIX; Windows has no os.nice and
    keeps the default)."""
    if steps <= 0 or not hasattr(os, "nice"):
        return
    try:
        os.nice(steps)
    except OSError as error:  # a container or policy that refuses: run at the normal priority
        log.warning("could not lower the engine process's priority: %s", error)


def import_plugins(plugins: Sequence[str]) -> None:
    """Import each plugin module (they may register generator backends, engine.generators); one
    that cannot be imported is an InvalidInputError naming it, not a traceback."""
    for module in plugins:
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001 - whatever the module raised, say which one
            raise InvalidInputError(f"plugins: cannot import {module!r} ({type(error).__name__}: {error})",
                                    field="plugins", value=module) from None


class _Worker:
    def __init__(self, conn: Connection, engine: Engine) -> None:
        self._conn = conn
        self._engine = engine
        self._send_lock = threading.Lock()
        self._tokens: dict[int, CancelToken] = {}
        self._pending: dict[int, PendingVersion] = {}  # ticket -> the full planned version
        self._tickets = itertools.count(1)
        self._pool = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="aa-engine")
        # Job states are written in the order the server sent them (queued before running ...).
        self._ordered = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aa-engine-record")
        self._running = 0  # calls not yet answered
        self._idle = threading.Condition()

    def run(self) -> None:
        # The render path is imported and primed while the first request is still on its way.
        threading.Thread(target=warm_render_path, name="aa-warm", daemon=True).start()
        orphaned = False
        try:
            while True:
                try:
                    message = self._conn.recv()
                except (EOFError, OSError):  # the server is gone (killed): nobody to answer
                    orphaned = True
                    break
                if message[0] == "stop":
                    break
                if message[0] == "cancel":
                    token = self._tokens.get(message[1])
                    if token is not None:
                        token.cancel(message[2])
                    continue
                if message[0] == "tell":
                    self._ordered.submit(self._told, message[1], message[2])
                    continue
                _, call_id, method, args = message
                self._tokens[call_id] = CancelToken()
                with self._idle:
                    self._running += 1
                self._pool.submit(self._call, call_id, method, args)
        finally:
            for token in list(self._tokens.values()):
                token.cancel("the server stopped")
            if orphaned:
                self._leave()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._ordered.shutdown(wait=True)  # what the server told us last is still written
            self._engine.close()

    def _leave(self) -> None:
        """The server died: stop soon. The next server marks the jobs of a dead process
        interrupted (engine.store), so lingering in a long render step would hide them from it.
        Half-written files are swept at its start (engine.debris); SQLite rolls back."""
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout=ORPHAN_GRACE_S)
            if self._running:
                log.warning("the server is gone; leaving %d engine calls unfinished", self._running)
                os._exit(1)

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - a value that does not pickle: say what it was
            failure = EngineProcessError(f"the engine's answer could not be sent ({type(error).__name__}: {error})")
            data = pickle.dumps(("error", message[1], failure))
        with self._send_lock:
            try:
                self._conn.send_bytes(data)
            except OSError:  # the server went away mid-answer; run() ends on its next recv
                pass

    def _call(self, call_id: int, method: str, args: tuple[Any, ...]) -> None:
        token = self._tokens[call_id]
        try:
            value = getattr(self, "_" + method)(call_id, token, *args)
        except BaseException as error:  # noqa: BLE001 - every failure goes back as the call's error
            if not isinstance(error, AudioAgentError):
                log.error("engine call %s failed", method, exc_info=error)
            self._send(("error", call_id, _portable(error)))
        else:
            self._send(("result", call_id, value))
        finally:
            self._tokens.pop(call_id, None)
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _told(self, method: str, args: tuple[Any, ...]) -> None:
        try:
            if method == "record_job":
                job_id, kwargs = args
                self._engine.record_job(job_id, **kwargs)
            elif method == "release":
                self._pending.pop(args[0], None)
            else:
                raise EngineProcessError(f"{method!r}: not something the engine can be told")
        except Exception:  # noqa: BLE001 - bookkeeping: nobody waits for it, the log says it failed
            log.exception("engine %s failed", method)

    # Each method mirrors engine.api.Engine; prepare/render/release trade tickets.
    def _prepare(self, call_id: int, token: CancelToken, request: JobRequest) -> tuple[int, PendingVersion]:
        pending = self._engine.prepare(request)
        ticket = next(self._tickets)
        self._pending[ticket] = pending
        return ticket, dataclasses.replace(pending, generator=None)

    def _render(self, call_id: int, token: CancelToken, ticket: int) -> SessionVersion:
        pending = self._pending.pop(ticket, None)
        if pending is None:
            raise EngineProcessError(f"ticket {ticket}: no such planned version in this engine process")
        # Only what the server's own throttle would pass crosses the pipe: a render reports
        # progress per step and per event, and each report would cost the server's loop.
        throttle = ProgressThrottle()

        def progress(stage: str, fraction: float) -> None:
            admitted = throttle.admit(stage, fraction)
            if admitted is not None:
                self._send(("progress", call_id, stage, admitted))

        return self._engine.render(
            pending, cancel=token, progress=progress,
            on_stem=lambda event, change: self._send(("stem", call_id, event, change)),
        )

    def _session(self, call_id: int, token: CancelToken, name: str) -> SessionInfo:
        return self._engine.session(name)

    def _sessions(self, call_id: int, token: CancelToken) -> list[SessionSummary]:
        return self._engine.sessions()

    def _interrupted_jobs(self, call_id: int, token: CancelToken, session: str | None) -> list[InterruptedJob]:
        return self._engine.interrupted_jobs(session)

    def _mark_interrupted(self, call_id: int, token: CancelToken) -> list[InterruptedJob]:
        return self._engine.mark_interrupted()


def warm_render_path() -> None:
    """Import and prime the render path (engine.render.warm_up), off whatever thread serves
    requests: otherwise the first job pays it. The engine process and a server that renders
    in its own process both call it."""
    try:
        from engine.render import warm_up

        warm_up()
    except Exception:  # a failed warm-up only costs the first job the time it would have saved
        log.exception("render path warm-up failed")


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling (every AudioAgentError does), else an
    EngineProcessError carrying its type and words."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001
        return EngineProcessError(f"{type(error).__name__}: {error}")
    return error


# ---------------------------------------------------------------------------- server side
@dataclasses.dataclass
class _Call:
    progress: ProgressFn | None = None
    on_stem: OnStem | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None
    callback_error: BaseException | None = None  # raised by on_stem here: ends the call


class EngineProcess:
    """An engine.api.Engine running in a child process; safe to call from any thread."""

    def __init__(self, build: EngineBuilder, *, plugins: Sequence[str] = (),
                 start_timeout_s: float = START_TIMEOUT_S) -> None:
        """``build``: a picklable callable (a module-level function, a functools.partial of one)
        that builds the real engine in the worker. ``plugins``: modules the worker imports first
        (they may register generator backends)."""
        self._build = build
        self._plugins = tuple(plugins)
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()  # guards the worker's start and the call table
        self._send_lock = threading.Lock()
        self._reap_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._tickets: dict[int, tuple[PendingVersion, int, int]] = {}  # id(copy) -> (copy, generation, ticket)
        self._backends: list[str] = []
        self._generation = 0
        self._conn: Connection | None = None
        self._process: Any = None
        self._closed = False
        self._start()

    # ------------------------------------------------------------------ the worker's life
    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that has threads
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=_serve, args=(theirs, self._build, self._plugins, logging.getLogger().getEffectiveLevel()),
            name="audio-agent-engine", daemon=True,
        )
        process.start()
        theirs.close()
        if not ours.poll(self._start_timeout_s):
            process.kill()
            raise EngineProcessError(f"the engine process did not start within {self._start_timeout_s:g} s")
        try:
            kind, payload = ours.recv()
        except (EOFError, OSError):
            process.join(5)
            raise EngineProcessError(
                f"the engine process exited while starting (exit code {process.exitcode}); see the log"
            ) from None
        if kind == "broken":
            process.join(5)
            raise payload
        self._backends = list(payload)
        self._conn, self._process = ours, process
        self._generation += 1
        threading.Thread(target=self._read, args=(ours, process, self._generation),
                         name="aa-engine-reader", daemon=True).start()
        log.info("engine process %d started", process.pid)

    def _read(self, conn: Connection, process: Any, generation: int) -> None:
        """The one reader: routes each answer to its call, in order."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind, call_id = message[0], message[1]
            with self._lock:
                call = self._calls.get(call_id)
            if call is None:
                continue
            if kind == "progress":
                self._progress(call, message[2], message[3])
            elif kind == "stem":
                self._stem(call_id, call, message[2], message[3])
            else:
                if kind == "result":
                    call.value = message[2]
                else:
                    call.error = message[2]
                call.done.set()
        self._lost(process, generation)

    @staticmethod
    def _progress(call: _Call, stage: str, fraction: float) -> None:
        if call.progress is None:
            return
        try:
            call.progress(stage, fraction)
        except Exception:  # noqa: BLE001 - a progress bar's failure never costs the render
            log.exception("progress callback failed")

    def _stem(self, call_id: int, call: _Call, event: Any, change: Any) -> None:
        if call.on_stem is None or call.callback_error is not None:
            return
        try:
            call.on_stem(event, change)
        except BaseException as error:  # noqa: BLE001 - as in-process: the stem's refusal ends the render
            call.callback_error = error
            self._post(("cancel", call_id, str(error)))

    def _lost(self, process: Any, generation: int) -> None:
        """The worker's pipe closed: fail what was in flight (unless we were stopping it)."""
        self._reap(process, 5)
        with self._lock:
            if generation != self._generation:
                return
            self._conn = None
            calls, self._calls = self._calls, {}
            closed = self._closed
        if not closed:
            log.error("the engine process %s stopped unexpectedly (exit code %s)", process.pid, process.exitcode)
        for call in calls.values():
            call.error = EngineProcessError(
                f"the engine process stopped (exit code {process.exitcode}) before this finished; "
                "send the request again")
            call.done.set()

    def _reap(self, process: Any, timeout_s: float) -> None:
        """Wait for ``process`` to end. One waiter at a time: two threads waiting on one child
        make the loser see it as still running (its waitpid finds nothing to collect)."""
        with self._reap_lock:
            process.join(timeout_s)

    def _post(self, message: tuple[Any, ...]) -> None:
        conn = self._conn
        if conn is None:
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            try:
                conn.send_bytes(data)
            except OSError:  # the reader sees the pipe close and fails the calls in flight
                pass

    def _invoke(self, method: str, *args: Any, cancel: CancelToken | None = None,
                progress: ProgressFn | None = None, on_stem: OnStem | None = None) -> Any:
        call = _Call(progress=progress, on_stem=on_stem)
        with self._lock:
            if self._closed:
                raise EngineProcessError("the engine is closed")
            if self._conn is None:
                self._start()  # the worker died earlier: a fresh one for this call
            call_id = next(self._ids)
            self._calls[call_id] = call
        self._post(("call", call_id, method, args))
        stuck_after = math.inf
        while not call.done.wait(CANCEL_POLL_S if cancel is not None else None):
            if cancel is None or not cancel.cancelled:
                continue
            if stuck_after == math.inf:
                self._post(("cancel", call_id, cancel.reason))
                stuck_after = time.monotonic() + CANCEL_GRACE_S
            elif time.monotonic() > stuck_after:
                self._kill_stuck(method)
                stuck_after = -math.inf
        with self._lock:
            self._calls.pop(call_id, None)
        if call.callback_error is not None:
            raise call.callback_error
        if call.error is not None:
            raise call.error
        return call.value

    def _tell(self, method: str, *args: Any) -> None:
        with self._lock:
            if self._closed:
                log.warning("engine %s after close: dropped", method)
                return
            if self._conn is None:
                self._start()  # a job's end is still recorded after its worker died
        self._post(("tell", method, args))

    def _kill_stuck(self, method: str) -> None:
        """A cancelled call that never returns is stuck in native code (a driver, a model): only
        a new worker frees it. The other calls in flight fail with "send again"."""
        process = self._process
        log.error("engine call %s did not stop within %g s of being cancelled; restarting the engine "
                  "process", method, CANCEL_GRACE_S)
        if process is not None:
            process.kill()

    # ------------------------------------------------------------------ engine.api.Engine
    def prepare(self, request: JobRequest) -> PendingVersion:
        with self._lock:
            generation = self._generation
        ticket, pending = self._invoke("prepare", request)
        self._tickets[id(pending)] = (pending, generation, ticket)
        return pending

    def render(self, pending: PendingVersion, *, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None, on_stem: OnStem | None = None) -> SessionVersion:
        ticket = self._ticket(pending)
        return self._invoke("render", ticket, cancel=cancel, progress=progress, on_stem=on_stem)

    def release(self, pending: PendingVersion) -> None:
        entry = self._tickets.get(id(pending))
        if entry is not None and entry[0] is pending:
            self._ticket(pending)
            if entry[1] == self._generation and self._conn is not None:  # a dead worker freed it
                self._tell("release", entry[2])

    def _ticket(self, pending: PendingVersion) -> int:
        entry = self._tickets.pop(id(pending), None)
        if entry is None or entry[0] is not pending:
            raise EngineProcessError("this version was not planned by this engine process")
        _, generation, ticket = entry
        if generation != self._generation:
            raise EngineProcessError("the engine process restarted after planning this; send the request again")
        return ticket

    def backends(self) -> list[str]:
        return list(self._backends)

    def session(self, name: str) -> SessionInfo:
        return self._invoke("session", name)

    def sessions(self) -> list[SessionSummary]:
        return self._invoke("sessions")

    def record_job(self, job_id: str, *, session: str, status: JobStatus, request_json: str = "",
                   error: str = "") -> None:
        # Told, not asked: the recorder does not wait for SQLite (nor hold the server's
        # interpreter lock for a round trip); the worker writes job states in order.
        self._tell("record_job", job_id, {"session": session, "status": status,
                                          "request_json": request_json, "error": error})

    def interrupted_jobs(self, session: str | None = None) -> list[InterruptedJob]:
        return self._invoke("interrupted_jobs", session)

    def mark_interrupted(self) -> list[InterruptedJob]:
        return self._invoke("mark_interrupted")

    def close(self, *, timeout_s: float = 30.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            process = self._process
        self._post(("stop",))
        if process is not None:
            self._reap(process, timeout_s)
            if process.is_alive():
                log.warning("the engine process did not stop within %g s; killing it (its threads' "
                            "stacks follow on stderr)", timeout_s)
                if hasattr(signal, "SIGUSR1"):
                    os.kill(process.pid, signal.SIGUSR1)
                    self._reap(process, 1)
                process.kill()
                self._reap(process, 5)
        if self._conn is not None:
            self._conn.close()

    @property
    def pid(self) -> int | None:
        """The worker's process id (tests and the benchmark watch it)."""
        return None if self._process is None else self._process.pid
