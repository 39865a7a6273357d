"""The engine's one interface for front doors: typed requests in, typed versions and views out.

The CLI, the WebSocket/OSC server and front doors still to come (an MCP server, remote render
workers) talk to the engine through what is defined here, and nothing else crosses:

- request models (``GenerateRequest``, ``EditRequest``, ``UndoRequest``, ``RedoRequest``,
  ``VideoCueRequest``): pydantic, bounded by engine.limits. The wire protocol's requests are
  these models plus the envelope fields (server/protocol), so the wire schema is generated from
  the same classes;
- ``Engine``: the protocol a front door calls (prepare, render, read sessions, record jobs);
  ``SessionEngine`` is the real one over a SessionManager (built by engine.compose);
- the results: ``PendingVersion`` and ``SessionVersion`` (engine.session) and the session views
  (engine.session_views).

Planning and rendering are two calls so a server can plan one request while its single render
worker renders another (see engine.session).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Mapping, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.edits import EventEdit
from engine.errors import ConflictError, InvalidInputError
from engine.limits import (
    CONTROL_CHARS,
    MAX_DURATION_S,
    MAX_EVENT_ID_CHARS,
    MAX_EVENTS,
    MAX_PATH_CHARS,
    MAX_POSITION_S,
    MAX_PROMPT_CHARS,
    MAX_SESSION_NAME_CHARS,
    MAX_VIDEO_BYTES,
    SEED_LIMIT,
    check_video_path,
)
from engine.session_views import InterruptedJob, SessionInfo, SessionSummary, interrupted_job
from engine.store import JobStatus

if TYPE_CHECKING:
    # Types only: the wire protocol imports this module, and `audio-agent client` must start
    # without the session stack (numpy, the cache) that rendering needs.
    from engine.planners import PlanResult
    from engine.progress import CancelToken, ProgressFn
    from engine.session import OnStem, PendingVersion, SessionManager, SessionVersion

# ---------------------------------------------------------------------------- field types
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0.0, le=MAX_POSITION_S, allow_inf_nan=False)]
Duration = Annotated[float, Field(gt=0.0, le=MAX_DURATION_S, allow_inf_nan=False)]
SessionName = Annotated[
    str, Field(min_length=1, max_length=MAX_SESSION_NAME_CHARS, pattern=f"^[^{CONTROL_CHARS}]+$")
]
Text = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]
PlannerName = Annotated[str, Field(max_length=32)]
BackendName = Annotated[str, Field(max_length=64)]
CheckpointName = Annotated[str, Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerateRequest(_Command):
    """Plan and render a new scene as the session's next version (the session is created if new)."""

    session: SessionName
    prompt: Text
    duration_s: Duration
    anchor_s: Seconds = 0.0
    planner: PlannerName | None = None
    backend: BackendName | None = None
    seed: Seed | None = None  # engine.seeds: None is seed 0


# Variations of one re-roll: each is a stem the generator renders in the same batch.
MAX_VARIATIONS = 8


class Change(_Command):
    """A structured edit of one event (the wire form of engine.edits.EventEdit)."""

    op: Literal["move", "set_loudness", "replace_text", "delete", "add", "set_seed"]
    event_id: Annotated[str, Field(max_length=MAX_EVENT_ID_CHARS)] | None = None
    start_s: Seconds | None = None
    end_s: Seconds | None = None
    target_lufs: FiniteFloat | None = None
    description: Text | None = None
    seed: Seed | None = None  # set_seed: another variation of the event's sound
    # set_seed: render these N seeds of the event in one batched generator call and return
    # each as a variation (Manifest.variations); ``seed`` (default: the first) is the active one.
    variations: Annotated[list[Seed], Field(min_length=2, max_length=MAX_VARIATIONS)] | None = None

    @model_validator(mode="after")
    def _variations_of_set_seed(self) -> "Change":
        if self.variations is None:
            return self
        if self.op != "set_seed":
            raise ValueError(f"variations: only a set_seed change renders variations, not op={self.op!r}")
        if len(set(self.variations)) != len(self.variations):
            raise ValueError(f"variations: seeds repeat ({self.variations})")
        if self.seed is None:
            object.__setattr__(self, "seed", self.variations[0])
        elif self.seed not in self.variations:
            raise ValueError(f"seed={self.seed}: the active seed must be one of variations {self.variations}")
        return self

    def to_edit(self) -> EventEdit:
        return EventEdit(**self.model_dump(exclude_none=True, exclude={"variations"}))


# Edits of one request: a DAW sends all of the designer's hand changes (moves, trims, loudness,
# deletions) of a scene as one version, at most a few per event.
MAX_CHANGES = 4 * MAX_EVENTS
# The version the client last applied; a request based on another one is refused (ConflictError).
BaseVersion = Annotated[int, Field(ge=0)]


def _variations(changes: list[Change]) -> dict[str, tuple[int, ...]]:
    """The seeds each re-rolled event renders as variations (set_seed changes with ``variations``)."""
    return {c.event_id: tuple(c.variations) for c in changes if c.variations and c.event_id is not None}


class EditRequest(_Command):
    """Revise the current version by exactly one of a free-text instruction, a change, or a list
    of changes (applied in order, as one new version)."""

    session: SessionName
    instruction: Text | None = None
    change: Change | None = None
    changes: Annotated[list[Change], Field(min_length=1, max_length=MAX_CHANGES)] | None = None
    base_version: BaseVersion | None = None


class UndoRequest(_Command):
    session: SessionName
    base_version: BaseVersion | None = None


class RedoRequest(_Command):
    session: SessionName
    base_version: BaseVersion | None = None


class VideoCueRequest(_Command):
    """Foley for a video range: hits spotted in the picture become the session's next version."""

    session: SessionName
    video_path: Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS)]
    start_s: Seconds
    end_s: Seconds
    anchor_s: Seconds = 0.0
    hint: Text | None = None
    # "vta": the paper's video-to-audio model renders each spotted event from its picture, with the
    # server's checkpoint named here (never a path: `serve --vta-checkpoint NAME=DIR`) and the
    # picture's weight against the text (default: the checkpoint's).
    generator: Literal["text", "vta"] = "text"
    checkpoint: CheckpointName | None = None
    vta_lambda: Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)] | None = None


JobRequest = Union[GenerateRequest, EditRequest, UndoRequest, RedoRequest, VideoCueRequest]


class Engine(Protocol):
    """What a front door may ask of the engine."""

    def prepare(self, request: JobRequest) -> PendingVersion:
        """Plan ``request`` (or pick the stored version, for undo/redo); nothing is rendered."""
        ...

    def render(
        self,
        pending: PendingVersion,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
        on_stem: OnStem | None = None,
    ) -> SessionVersion:
        """Render what ``pending``'s diff says changed and make it the current version."""
        ...

    def release(self, pending: PendingVersion) -> None:
        """``pending`` will not be rendered (its job was cancelled or failed first): free what
        it holds. An engine in another process keeps planned versions until rendered."""
        ...

    def backends(self) -> list[str]:
        """The generator backends a request may name."""
        ...

    def session(self, name: str) -> SessionInfo: ...

    def sessions(self) -> list[SessionSummary]: ...

    def record_job(self, job_id: str, *, session: str, status: JobStatus, request_json: str = "",
                   error: str = "") -> None:
        """Keep a job's state, so a restart can tell clients which jobs it interrupted."""
        ...

    def interrupted_jobs(self, session: str | None = None) -> list[InterruptedJob]: ...

    def mark_interrupted(self) -> list[InterruptedJob]:
        """On start: jobs a previous process left queued or running are interrupted, and what
        it left half-written in the data dir is swept (engine.debris)."""
        ...

    def close(self) -> None: ...


class SessionEngine:
    """The real Engine: sessions in a data dir (engine.session) plus video cue planning."""

    def __init__(self, manager: SessionManager, *, max_video_bytes: int = MAX_VIDEO_BYTES,
                 vta_checkpoints: Mapping[str, Path] | None = None) -> None:
        """``vta_checkpoints``: the VTA checkpoints clients may name (engine.video.vta_choice)."""
        self.manager = manager
        self.max_video_bytes = max_video_bytes
        self.vta_checkpoints = dict(vta_checkpoints or {})

    def prepare(self, request: JobRequest) -> PendingVersion:
        manager = self.manager
        if isinstance(request, (EditRequest, UndoRequest, RedoRequest)):
            self._check_base(request.session, request.base_version)
        if isinstance(request, GenerateRequest):
            return manager.prepare_generate(
                request.session, prompt=request.prompt, duration_s=request.duration_s,
                anchor_s=request.anchor_s, planner=request.planner, backend=request.backend,
                seed=request.seed,
            )
        if isinstance(request, EditRequest):
            if request.changes is not None:
                if request.instruction is not None or request.change is not None:
                    raise InvalidInputError("changes: give an instruction, a change or changes, not several",
                                            field="changes")
                edits = [change.to_edit() for change in request.changes]
                return manager.prepare_edit(request.session, changes=edits,
                                            variations=_variations(request.changes))
            change = request.change.to_edit() if request.change is not None else None
            return manager.prepare_edit(request.session, instruction=request.instruction, change=change,
                                        variations=_variations([request.change] if request.change else []))
        if isinstance(request, UndoRequest):
            return manager.prepare_undo(request.session)
        if isinstance(request, RedoRequest):
            return manager.prepare_redo(request.session)
        return self._prepare_video(request)

    def _check_base(self, session: str, base_version: int | None) -> None:
        """Refuse a request made against a version that is not the session's current one: it
        would change a scene the client is not showing."""
        if base_version is None:
            return
        current = self.manager.current_version(session)
        if current != base_version:
            raise ConflictError(
                f"base_version={base_version}: session {session!r} is at version {current}; "
                "sync to it and ask again",
                field="base_version", value=base_version,
            )

    def _prepare_video(self, request: VideoCueRequest) -> PendingVersion:
        path = check_video_path(request.video_path, max_bytes=self.max_video_bytes)
        from engine.video.vta_choice import choose_checkpoint

        checkpoint = choose_checkpoint(request.generator, request.checkpoint, request.vta_lambda,
                                       self.vta_checkpoints)
        from engine.video.cue import plan_from_video  # decoding and vision load on first use

        # A server started with the LLM planner lets its (vision-capable) model name the hits;
        # with the rule planner the offline onset planner answers.
        result: PlanResult = plan_from_video(
            path, start_s=request.start_s, end_s=request.end_s, hint=request.hint,
            planner=self.manager.planner(),
        )
        words = f"video cue {path.name} {request.start_s:g}-{request.end_s:g} s"
        if request.hint:
            words += f": {request.hint}"
        if checkpoint is None:
            return self.manager.prepare_plan(
                request.session, result, instruction=words, anchor_s=request.anchor_s
            )
        # The onset planner placed the events; the picture of each range makes its sound. The
        # generator is bound to this version (and kept by the session for its later edits).
        from dataclasses import replace

        from engine.video.vta_choice import BACKEND_PREFIX
        from engine.video.vta_generator import vta_for_cue

        plan, generator = vta_for_cue(result.plan, video_path=path, start_s=request.start_s,
                                      end_s=request.end_s, checkpoint=checkpoint,
                                      visual_scale=request.vta_lambda)
        return self.manager.prepare_plan(
            request.session, replace(result, plan=plan), instruction=words + " (vta)",
            anchor_s=request.anchor_s, backend=BACKEND_PREFIX + str(request.checkpoint),
            generator=generator,
        )

    def render(
        self,
        pending: PendingVersion,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
        on_stem: OnStem | None = None,
    ) -> SessionVersion:
        return self.manager.render(pending, progress=progress, cancel=cancel, on_stem=on_stem)

    def release(self, pending: PendingVersion) -> None:
        """Nothing to free: the planned version is the caller's object."""

    def backends(self) -> list[str]:
        from engine.generators import available_generators

        return available_generators()

    def session(self, name: str) -> SessionInfo:
        return self.manager.get(name)

    def sessions(self) -> list[SessionSummary]:
        return self.manager.list()

    def record_job(self, job_id: str, *, session: str, status: JobStatus, request_json: str = "",
                   error: str = "") -> None:
        store = self.manager.store
        if status == JobStatus.QUEUED:
            store.add_job(job_id, session=session, request=request_json, status=status)
        else:
            store.update_job(job_id, status=status, error=error)

    def interrupted_jobs(self, session: str | None = None) -> list[InterruptedJob]:
        rows = self.manager.store.list_jobs(session=session, status=JobStatus.INTERRUPTED)
        return [interrupted_job(row) for row in rows]

    def mark_interrupted(self) -> list[InterruptedJob]:
        from engine.debris import sweep

        interrupted = [interrupted_job(row) for row in self.manager.store.mark_interrupted()]
        sweep(self.manager.data_dir, self.manager.store)
        return interrupted

    def close(self) -> None:
        self.manager.close()
