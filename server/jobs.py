"""Jobs: a bounded queue, planning in a small pool, ONE render worker, cancel and time limits.

Why this shape: the generator (a GPU model in production) is one resource, so exactly one thread
renders. Planning (an LLM call, or the rule planner) needs no GPU, so it runs in a small pool while
another job renders. A session's jobs run strictly in submission order — an edit is planned
against the version the previous job produced — while different sessions overlap.

The manager knows nothing about sockets: each job has a ``sink`` (a thread-safe callable the
transport gives) that receives protocol messages in order: accepted, plan, progress/stem_ready...,
then exactly one done or error.
"""

from __future__ import annotations

import collections
import enum
import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from engine.errors import AudioAgentError, BusyError, CancelledError, NotFoundError, TimeLimitError
from engine.manifest import ManifestEvent
from engine.plan import ChangeKind
from engine.progress import CancelToken, ProgressFn, ProgressThrottle
from engine.session import OnStem, PendingVersion, SessionVersion
from engine.store import JobStatus
from server import protocol as p
from server.background import Deadlines, Recorder

log = logging.getLogger("audio_agent.jobs")

Sink = Callable[[p.ServerMessage], None]
PrepareFn = Callable[[p.JobRequest], PendingVersion]


class RenderFn(Protocol):
    def __call__(
        self,
        pending: PendingVersion,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
        on_stem: OnStem | None = None,
    ) -> SessionVersion: ...


RecordFn = Callable[["Job", JobStatus, "str | None"], None]  # (job, status, error message)
ReleaseFn = Callable[[PendingVersion], None]


class JobState(enum.Enum):
    """Where a job is. QUEUED -> PLANNING -> WAITING (for the render worker) -> RUNNING, then one
    of the end states. The stored status (engine.store.JobStatus) is the coarser ``stored``."""

    QUEUED = "queued"
    PLANNING = "planning"
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the server stopped first; reported after restart


# What the store keeps of each state: planning and waiting are "queued" there (not yet running).
STORED_STATUS: dict[JobState, JobStatus] = {
    JobState.QUEUED: JobStatus.QUEUED,
    JobState.PLANNING: JobStatus.QUEUED,
    JobState.WAITING: JobStatus.QUEUED,
    JobState.RUNNING: JobStatus.RUNNING,
    JobState.DONE: JobStatus.DONE,
    JobState.FAILED: JobStatus.FAILED,
    JobState.CANCELLED: JobStatus.CANCELLED,
    JobState.INTERRUPTED: JobStatus.INTERRUPTED,
}


_TIME_LIMIT_REASON = "time limit"
_STOP_REASON = "the server stopped before this job finished; send the request again"


@dataclass
class Job:
    id: str
    request: p.JobRequest
    sink: Sink
    token: CancelToken = field(default_factory=CancelToken)
    state: JobState = JobState.QUEUED
    pending: PendingVersion | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    timer: int | None = None  # handle of its time limit in the manager's Deadlines
    progress: ProgressThrottle = field(default_factory=ProgressThrottle)
    client: str = ""  # who asked (a WebSocket connection, an OSC sender): fairness limits

    @property
    def session(self) -> str:
        return self.request.session

    @property
    def request_id(self) -> str:
        return self.request.id


class _JobIds:
    """Random job ids, so a client cannot guess another client's job to cancel it, in the form
    uuid4().hex[:12] gave. The random bytes come from the OS a thousand ids at a time: a system
    call per job on the loop let go of the interpreter lock, and under load getting it back
    cost the loop more than the rest of accepting the job."""

    _BATCH = 1024
    _BYTES = 6

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._random = b""
        self._at = 0

    def __call__(self) -> str:
        with self._lock:
            if self._at + self._BYTES > len(self._random):
                self._random, self._at = os.urandom(self._BYTES * self._BATCH), 0
            chunk = self._random[self._at:self._at + self._BYTES]
            self._at += self._BYTES
        return "j" + chunk.hex()


new_job_id = _JobIds()


def plan_message(job: Job, pending: PendingVersion) -> p.PlanMessage:
    plan = pending.plan
    diff = {change.event_id: change.kind.value for change in pending.diff.changes}
    return p.PlanMessage(
        id=job.request_id, job=job.id, session=pending.session, version=pending.version,
        duration_s=plan.duration_s, anchor_s=pending.anchor_s, events=list(plan.events),
        diff=diff, notes=list(pending.notes),
    )


def stem_message(job: Job, pending: PendingVersion, event: ManifestEvent, change: ChangeKind) -> p.StemReady:
    return p.StemReady(
        id=job.request_id, job=job.id, session=pending.session, version=pending.version,
        event_id=event.id, description=event.description, stem_path=event.stem_path,
        start_s=event.start_s, end_s=event.end_s, target_lufs=event.target_lufs, gain_db=event.gain_db,
        cache_hit=event.cache_hit, change=change.value,
    )


class JobManager:
    """Runs jobs; ``submit`` and ``cancel`` are safe from any thread (the transports' loop)."""

    def __init__(
        self,
        *,
        prepare: PrepareFn,
        render: RenderFn,
        data_dir: Path | None = None,
        max_jobs: int = 256,
        max_jobs_per_client: int = 8,
        planner_threads: int = 2,
        time_limit_s: float = 900.0,
        record: RecordFn | None = None,
        release: ReleaseFn | None = None,
    ) -> None:
        """``release``: told of each planned version that will not be rendered (its job was
        cancelled while waiting for the render worker): engine.api.Engine.release."""
        self._prepare = prepare
        self._render = render
        self._release: ReleaseFn = release if release is not None else (lambda pending: None)
        self._data_dir = data_dir.resolve() if data_dir else None
        self._max_jobs = max_jobs
        self._max_jobs_per_client = max_jobs_per_client
        self._time_limit_s = time_limit_s
        self._recorder = Recorder(record) if record is not None else None
        self._deadlines = Deadlines()
        self._per_client: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._session_queues: dict[str, collections.deque[Job]] = {}
        self._render_queue: queue.Queue[Job | None] = queue.Queue()
        self._pool = ThreadPoolExecutor(max_workers=planner_threads, thread_name_prefix="aa-plan")
        self._worker = threading.Thread(target=self._render_loop, name="aa-render", daemon=True)
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._worker.start()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Cancel every job, let the worker finish its current step, and join it."""
        with self._lock:
            self._stopped = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job.token.cancel(_STOP_REASON)
        self._render_queue.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout_s)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._deadlines.stop()
        if self._recorder is not None:
            self._recorder.stop(timeout_s=timeout_s)

    # ------------------------------------------------------------------ API
    def submit(self, request: p.JobRequest, sink: Sink, *, client: str = "") -> Job:
        """Queue a job; raises BusyError when ``max_jobs`` are queued or running, or when this
        ``client`` already has ``max_jobs_per_client`` of them (one client cannot fill the
        queue for everyone else)."""
        with self._lock:
            if self._stopped:
                raise BusyError("the server is stopping")
            if len(self._jobs) >= self._max_jobs:
                raise BusyError(
                    f"{len(self._jobs)} jobs queued or running (limit {self._max_jobs}); retry later",
                    field="queue", value=len(self._jobs),
                )
            if client and self._per_client[client] >= self._max_jobs_per_client:
                raise BusyError(
                    f"this client has {self._per_client[client]} jobs queued or running (limit "
                    f"{self._max_jobs_per_client} per client); wait for one to finish",
                    field="queue", value=self._per_client[client],
                )
            job = Job(id=new_job_id(), request=request, sink=sink, client=client)
            self._jobs[job.id] = job
            if client:
                self._per_client[client] += 1
            line = self._session_queues.setdefault(job.session, collections.deque())
            line.append(job)
            first_in_line = len(line) == 1
        sink(p.Accepted(id=job.request_id, job=job.id))
        self._note(job, JobState.QUEUED)
        if first_in_line:
            self._begin(job)
        return job

    def cancel(self, job_id: str) -> JobState:
        """Cancel a queued or running job; returns the state it was in. The job itself then ends
        with an error message of code 'cancelled' to its own client."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFoundError(f"job={job_id!r}: no queued or running job", field="job", value=job_id)
            state = job.state
            waiting_in_line = state is JobState.QUEUED and self._session_queues[job.session][0] is not job
            if waiting_in_line:
                self._session_queues[job.session].remove(job)
                del self._jobs[job.id]
                if job.client:
                    self._per_client[job.client] -= 1
                job.state = JobState.CANCELLED
        job.token.cancel("cancelled by client")
        if waiting_in_line:
            self._note(job, JobState.CANCELLED, "cancelled by client")
            job.sink(p.error_message(CancelledError("cancelled by client"), request_id=job.request_id, job=job.id))
        return state

    def active(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    # ------------------------------------------------------------------ internals
    def _note(self, job: Job, state: JobState, error: str | None = None) -> None:
        # Off the caller's thread (the event loop, for QUEUED): see server.background.
        if self._recorder is not None:
            self._recorder.put(job, STORED_STATUS[state], error)

    def _arm(self, job: Job) -> None:
        """(Re)start the job's time limit. Planning and rendering each get the full limit, so
        time spent waiting for the render worker never counts against a job."""
        self._disarm(job)
        job.timer = self._deadlines.schedule(
            self._time_limit_s, lambda: job.token.cancel(_TIME_LIMIT_REASON))

    def _disarm(self, job: Job) -> None:
        if job.timer is not None:
            self._deadlines.cancel(job.timer)
            job.timer = None

    def _begin(self, job: Job) -> None:
        """The job reached the head of its session's line: arm its time limit and plan it."""
        job.state = JobState.PLANNING
        self._arm(job)
        try:
            self._pool.submit(self._plan, job)
        except RuntimeError:  # pool shut down
            self._finish(job, CancelledError(_STOP_REASON))

    def _plan(self, job: Job) -> None:
        try:
            job.token.raise_if_cancelled()
            pending = self._prepare(job.request)
        except BaseException as error:  # noqa: BLE001 - every failure becomes an error message
            self._finish(job, error)
            return
        if job.token.cancelled:  # cancelled while planning: the plan is never rendered
            self._release(pending)
            self._finish(job, CancelledError(job.token.reason))
            return
        job.pending = pending
        job.state = JobState.WAITING
        # Waiting for the render worker is not the job's fault: the limit restarts in _run.
        self._disarm(job)
        job.sink(plan_message(job, pending))
        self._render_queue.put(job)

    def _render_loop(self) -> None:
        while True:
            job = self._render_queue.get()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        assert job.pending is not None  # only planned jobs reach the render queue
        pending = job.pending
        if job.token.cancelled:
            self._release(pending)
            self._finish(job, CancelledError(job.token.reason))
            return
        job.state = JobState.RUNNING
        self._arm(job)
        self._note(job, JobState.RUNNING)
        try:
            version = self._render(
                pending,
                progress=lambda stage, fraction: self._progress(job, stage, fraction),
                cancel=job.token,
                on_stem=lambda event, change: self._stem(job, event, change),
            )
        except BaseException as error:  # noqa: BLE001
            self._finish(job, error)
            return
        done = p.Done(
            id=job.request_id, job=job.id, session=pending.session, version=version.version,
            manifest=version.manifest,
        )
        self._finish(job, None, done)

    def _progress(self, job: Job, stage: str, fraction: float) -> None:
        # A stage change, every 5 %, and the end of a stage (once): enough for a progress bar.
        admitted = job.progress.admit(stage, fraction)
        if admitted is not None:
            job.sink(p.Progress(id=job.request_id, job=job.id, stage=str(stage), fraction=admitted))

    def _stem(self, job: Job, event: ManifestEvent, change: ChangeKind) -> None:
        self._check_inside(event.stem_path)
        assert job.pending is not None  # stems land only while a planned job renders
        job.sink(stem_message(job, job.pending, event, change))

    def _check_inside(self, path: str) -> None:
        """Defence in depth: never announce a file outside the data dir, whatever a name did."""
        if self._data_dir is None:
            return
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self._data_dir):
            raise AudioAgentError(f"stem path escapes the data dir: {path!r}", field="stem_path")

    def _finish(self, job: Job, error: BaseException | None, done: p.Done | None = None) -> None:
        self._disarm(job)
        if error is not None and job.token.cancelled and job.token.reason == _TIME_LIMIT_REASON:
            error = TimeLimitError(
                f"job {job.id} ran past its time limit of {self._time_limit_s:g} s", field="job", value=job.id
            )
        if error is not None and not isinstance(error, AudioAgentError):
            log.error("job %s failed", job.id, exc_info=error)
        if error is None:
            state = JobState.DONE
        elif isinstance(error, CancelledError):
            # Stopped with the server: reported after restart, so the client can send it again.
            state = JobState.INTERRUPTED if job.token.reason == _STOP_REASON else JobState.CANCELLED
        else:
            state = JobState.FAILED
        job.state = state
        self._note(job, state, None if error is None else str(error))
        if error is None:
            assert done is not None
            job.sink(done)
        else:
            job.sink(p.error_message(error, request_id=job.request_id, job=job.id))
        next_job = self._advance(job)
        if next_job is not None:
            self._begin(next_job)

    def _advance(self, job: Job) -> Job | None:
        with self._lock:
            if self._jobs.pop(job.id, None) is not None and job.client:
                self._per_client[job.client] -= 1
                if self._per_client[job.client] <= 0:
                    del self._per_client[job.client]
            line = self._session_queues.get(job.session)
            if line and line[0] is job:
                line.popleft()
            if not line:
                self._session_queues.pop(job.session, None)
                return None
            return line[0]
