"""The Model Context Protocol front door: an assistant plans, renders and edits scenes as tools.

Thin on purpose. Every job tool builds the same request model the WebSocket and OSC transports
parse (server.protocol, which are engine.api's models plus the envelope) and hands it to the same
``Dispatcher`` and ``JobManager`` that `audio-agent serve` uses, so planning, seeds, the single
render worker, cancellation, time limits and job records are the server's, not a copy. What this
module adds is only the MCP shape: input schemas an LLM can fill (units in every name), progress
notifications from the job's messages, cancellation when the client cancels the call, results as
structured content plus a short text summary, and scenes as resources.

Sessions live in the data dir's SQLite store (WAL), so `audio-agent serve` and `audio-agent mcp`
pointed at the same data dir see the same scenes: start one from the assistant, refine it from
REAPER. Each process renders its own jobs (see docs/mcp.md for what that means for a GPU).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Awaitable, Literal, TypeVar
from urllib.parse import quote

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import CallToolResult, ResourceLink, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from engine.api import BackendName, Engine
from engine.errors import AudioAgentError, InvalidInputError
from engine.limits import (
    MAX_DURATION_S,
    MAX_JOB_ID_CHARS,
    MAX_POSITION_S,
    MAX_PROMPT_CHARS,
    MAX_SESSION_NAME_CHARS,
    MAX_TARGET_LUFS,
    MIN_TARGET_LUFS,
    SEED_LIMIT,
)
from engine.manifest import Manifest
from engine.session_views import InterruptedJob, SessionSummary
from server import protocol as p
from server.app import Dispatcher, ServerConfig, default_engine
from server.jobs import Sink

URI_SCHEME = "audio-agent"
SCENE_URI = URI_SCHEME + "://scenes/{session}"
T = TypeVar("T")

# ---------------------------------------------------------------------------- tool arguments
# Field descriptions are what an assistant reads to fill a call: say the unit and the meaning.
SessionArg = Annotated[str, Field(
    min_length=1, max_length=MAX_SESSION_NAME_CHARS,
    description="Scene name (one per shot or cue). Reusing a name makes a new version of that scene.",
)]
PromptArg = Annotated[str, Field(
    min_length=1, max_length=MAX_PROMPT_CHARS,
    description="The scene in plain words, with times where they matter, e.g. "
                "'rain throughout, thunder at 4 s, a door slams at 9 s'.",
)]
DurationArg = Annotated[float, Field(
    gt=0, le=MAX_DURATION_S, description="Length of the scene in seconds.",
)]
AnchorArg = Annotated[float, Field(
    ge=0, le=MAX_POSITION_S,
    description="Where the scene starts on the DAW timeline, in seconds; stems are stamped "
                "anchor_s + start_s.",
)]
SeedArg = Annotated[int | None, Field(
    ge=0, lt=SEED_LIMIT,
    description="Seed for the renders; the same prompt, seed and settings give the same stems "
                "from every front door. Omit for seed 0.",
)]
BaseVersionArg = Annotated[int | None, Field(
    ge=0, description="The scene version you last saw; the edit is refused with a conflict if "
                      "the scene has moved on since. Omit to edit whatever is current.",
)]


class StemInfo(BaseModel):
    """One event's stem, where a DAW should place it."""

    event_id: str
    description: str
    start_s: float = Field(description="Start relative to the scene start, seconds.")
    end_s: float = Field(description="End relative to the scene start, seconds.")
    timeline_start_s: float = Field(description="anchor_s + start_s: where the DAW item starts.")
    gain_db: float = Field(description="Item gain to apply on top of the stem file, dB.")
    target_lufs: float
    stem_path: str = Field(description="Absolute path of the WAV stem (BWF, timestamped).")
    stem_uri: str = Field(description="The stem as an MCP resource.")
    change: str = Field(description="What this version did to the event: added, changed, moved, "
                                    "regained, unchanged.")
    cache_hit: bool


class FailedStem(BaseModel):
    event_id: str
    description: str
    error: str


class SceneResult(BaseModel):
    """A rendered scene version: every stem with its timeline position and gain."""

    session: str
    version: int
    job: str
    duration_s: float
    anchor_s: float
    stems: list[StemInfo]
    removed_event_ids: list[str] = Field(description="Events this version deleted: remove their items.")
    failed: list[FailedStem]
    mix_path: str | None
    manifest_uri: str
    plan_uri: str
    notes: list[str]


class SceneList(BaseModel):
    scenes: list[SessionSummary]


class SceneView(BaseModel):
    """A scene's current plan and manifest (null until its first render lands)."""

    session: str
    current_version: int
    can_undo: bool
    can_redo: bool
    plan: dict[str, object] | None
    manifest: dict[str, object] | None
    manifest_uri: str
    plan_uri: str


class CancelResult(BaseModel):
    job: str
    state: str = Field(description="The job's state after the request: cancelled, done, failed...")


class LibraryHit(BaseModel):
    path: str
    cat_id: str = Field(description="UCS category id from the file name, '' when none.")
    length_s: float
    channels: int
    score: float = Field(description="0..1, higher is a better match.")


class LibraryHits(BaseModel):
    query: str
    hits: list[LibraryHit]


class ChangeArg(BaseModel):
    """One structured change of one event (use it instead of words when you know the numbers)."""

    op: Literal["move", "set_loudness", "replace_text", "delete", "add"] = Field(
        description="move: new start_s/end_s; set_loudness: new target_lufs; replace_text: new "
                    "description (re-rendered); delete; add: a new event (description, start_s, end_s).")
    event_id: str | None = Field(None, description="The event to change (from a scene result); not for add.")
    start_s: float | None = Field(None, ge=0, description="Seconds from the scene start.")
    end_s: float | None = Field(None, ge=0, description="Seconds from the scene start.")
    target_lufs: float | None = Field(None, ge=MIN_TARGET_LUFS, le=MAX_TARGET_LUFS,
                                       description="Loudness target, LUFS.")
    description: str | None = Field(None, max_length=MAX_PROMPT_CHARS)


# ---------------------------------------------------------------------------- URIs
def scene_uri(session: str, part: str) -> str:
    return f"{URI_SCHEME}://scenes/{quote(session, safe='')}/{part}"


def stem_uri(session: str, stem_path: str) -> str:
    return f"{URI_SCHEME}://scenes/{quote(session, safe='')}/stems/{quote(Path(stem_path).name, safe='')}"


@dataclass
class _JobOutcome:
    done: p.Done
    changes: dict[str, str]  # event id -> change kind, from the plan message


class McpFront:
    """Owns the engine, the dispatcher and the MCP server object with its tools and resources."""

    def __init__(self, config: ServerConfig, *, engine: Engine | None = None) -> None:
        config.check()
        self.config = config
        self.data_dir = config.data_dir.expanduser().resolve()
        self.engine = engine if engine is not None else default_engine(config)
        self.dispatcher = Dispatcher(engine=self.engine, config=config, notify=self._no_notify)
        self.interrupted: list[InterruptedJob] = []
        self.server = MCPServer(
            "audio-agent",
            instructions=(
                "Audio-Agent plans a sound scene as timed events and renders each as its own WAV "
                "stem. Call generate_scene with the scene in words and its length in seconds; the "
                "result lists every stem with timeline_start_s and gain_db for a DAW. Refine with "
                "edit_scene (words or a structured change); undo/redo restore versions without "
                "rendering."
            ),
        )
        self._register()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        # Jobs a crashed process left behind are reported as interrupted, as `serve` does; the
        # live jobs of a `serve` sharing the data dir are not touched (engine.store owners).
        self.interrupted = self.engine.mark_interrupted()
        self.dispatcher.jobs.start()

    def stop(self) -> None:
        self.dispatcher.close()
        self.engine.close()

    @staticmethod
    def _no_notify(port: int) -> Sink:
        raise InvalidInputError("notify_osc_port: not available over MCP", field="notify_osc_port",
                                value=port)

    # ------------------------------------------------------------------ jobs
    async def _run_job(self, request: p.JobRequest, ctx: Context) -> _JobOutcome:
        """Submit ``request`` like a WebSocket client would and follow its messages to the end."""
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[p.ServerMessage] = asyncio.Queue()

        def sink(message: p.ServerMessage) -> None:  # called from the job threads
            loop.call_soon_threadsafe(inbox.put_nowait, message)

        self.dispatcher.handle(request, sink, "mcp")
        job_id: str | None = None
        changes: dict[str, str] = {}
        stems = 0
        fraction = 0.0
        try:
            while True:
                message = await inbox.get()
                if isinstance(message, p.Accepted):
                    job_id = message.job
                elif isinstance(message, p.PlanMessage):
                    changes = dict(message.diff)
                    await ctx.report_progress(0, 100, f"planned {len(message.events)} events")
                elif isinstance(message, p.Progress):
                    fraction = max(fraction, message.fraction)  # progress never runs backwards
                    await ctx.report_progress(round(100 * fraction, 1), 100, message.stage)
                elif isinstance(message, p.StemReady):
                    stems += 1
                    await ctx.report_progress(round(100 * fraction, 1), 100,
                                              f"stem {stems}: {message.event_id} ({message.change})")
                elif isinstance(message, p.ErrorMessage):
                    raise ToolError(f"{message.code}: {message.message}")
                elif isinstance(message, p.Done):
                    return _JobOutcome(done=message, changes=changes)
        except anyio.get_cancelled_exc_class():
            # The client cancelled the call (or went away): stop the render between steps.
            if job_id is not None:
                self.dispatcher.jobs.cancel(job_id)
            raise

    def _scene_result(self, outcome: _JobOutcome) -> CallToolResult:
        done = outcome.done
        manifest = done.manifest
        stems = [
            StemInfo(
                event_id=event.id, description=event.description, start_s=event.start_s,
                end_s=event.end_s, timeline_start_s=round(manifest.anchor_s + event.start_s, 6),
                gain_db=event.gain_db, target_lufs=event.target_lufs, stem_path=event.stem_path,
                stem_uri=stem_uri(done.session, event.stem_path),
                change=outcome.changes.get(event.id, "unchanged"), cache_hit=event.cache_hit,
            )
            for event in manifest.events
        ]
        result = SceneResult(
            session=done.session, version=done.version, job=done.job,
            duration_s=manifest.duration_s, anchor_s=manifest.anchor_s, stems=stems,
            removed_event_ids=sorted(e for e, kind in outcome.changes.items() if kind == "removed"),
            failed=[FailedStem(event_id=f.id, description=f.description, error=f.error)
                    for f in manifest.failed],
            mix_path=manifest.mix_path, manifest_uri=scene_uri(done.session, "manifest"),
            plan_uri=scene_uri(done.session, "plan"), notes=list(manifest.notes),
        )
        return CallToolResult(
            content=[TextContent(text=_summary(result)), *self._stem_links(result)],
            structured_content=result.model_dump(mode="json"),
        )

    @staticmethod
    def _stem_links(result: SceneResult) -> list[ResourceLink]:
        return [
            ResourceLink(uri=stem.stem_uri, name=Path(stem.stem_path).name, mime_type="audio/wav",
                         description=f"{stem.description} at {stem.timeline_start_s:g} s")
            for stem in result.stems
        ]

    def _envelope(self) -> str:
        return "mcp-" + uuid.uuid4().hex[:10]

    # ------------------------------------------------------------------ reads
    async def _session(self, session: str) -> SceneView:
        info = await anyio.to_thread.run_sync(self.engine.session, session)
        return SceneView(
            session=info.name, current_version=info.current_version, can_undo=info.can_undo,
            can_redo=info.can_redo,
            plan=info.plan.model_dump(mode="json") if info.plan is not None else None,
            manifest=info.manifest.model_dump(mode="json") if info.manifest is not None else None,
            manifest_uri=scene_uri(info.name, "manifest"), plan_uri=scene_uri(info.name, "plan"),
        )

    def _stem_file(self, session: str, name: str) -> Path:
        """A stem of ``session``'s current manifest, by file name; never a path outside the data dir."""
        info = self.engine.session(session)
        manifest: Manifest | None = info.manifest
        for event in manifest.events if manifest is not None else ():
            path = Path(event.stem_path)
            if path.name == name:
                resolved = path.resolve()
                if not resolved.is_relative_to(self.data_dir):
                    raise ResourceError(f"stem {name!r} lies outside the data dir; refused")
                return resolved
        raise ResourceError(f"scene {session!r} has no current stem named {name!r}")

    # ------------------------------------------------------------------ registration
    def _register(self) -> None:  # noqa: C901 - one place lists every tool and resource
        server = self.server
        job_tool = ToolAnnotations(destructiveHint=False, idempotentHint=False, openWorldHint=False)
        read_tool = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

        async def run(request: p.JobRequest, ctx: Context) -> CallToolResult:
            try:
                return self._scene_result(await self._run_job(request, ctx))
            except AudioAgentError as error:  # refused before a job existed
                raise ToolError(str(error)) from None

        @server.tool(annotations=job_tool, description=(
            "Plan a sound scene from words and render every event as its own stem. Returns each "
            "stem's path, timeline_start_s (seconds on the DAW timeline) and gain_db."))
        async def generate_scene(
            session: SessionArg, prompt: PromptArg, duration_s: DurationArg, ctx: Context,
            anchor_s: AnchorArg = 0.0,
            planner: Annotated[Literal["rules", "llm"] | None, Field(
                description="rules (offline) or llm (the configured endpoint); omit for the server's")] = None,
            backend: Annotated[BackendName | None, Field(
                description="Generator: procedural, library, hybrid, auffusion, stable-audio, "
                            "audioldm2; omit for the server's default")] = None,
            seed: SeedArg = None,
        ) -> Annotated[CallToolResult, SceneResult]:
            return await run(_request(p.GenerateRequest, id=self._envelope(), session=session,
                                      prompt=prompt, duration_s=duration_s, anchor_s=anchor_s,
                                      planner=planner, backend=backend, seed=seed), ctx)

        @server.tool(annotations=job_tool, description=(
            "Revise a scene: either an instruction in words ('make the rain heavier', 'move the "
            "door to 6 s', 'remove the dog') or one or more structured changes. Only events whose "
            "sound changed are rendered again; moves and loudness changes reuse the stems."))
        async def edit_scene(
            session: SessionArg, ctx: Context,
            instruction: Annotated[str | None, Field(
                max_length=MAX_PROMPT_CHARS, description="The edit in plain words.")] = None,
            changes: Annotated[list[ChangeArg] | None, Field(
                description="Structured changes, applied in order as one new version.")] = None,
            base_version: BaseVersionArg = None,
        ) -> Annotated[CallToolResult, SceneResult]:
            if (instruction is None) == (not changes):
                raise ToolError("give exactly one of instruction or changes")
            wire_changes = None
            if changes:
                wire_changes = [p.Change(**change.model_dump(exclude_none=True)) for change in changes]
            return await run(_request(p.EditRequest, id=self._envelope(), session=session,
                                      instruction=instruction, changes=wire_changes,
                                      base_version=base_version), ctx)

        @server.tool(annotations=job_tool, description=(
            "Restore the scene's previous version (no rendering; stems are reused)."))
        async def undo(session: SessionArg, ctx: Context,
                       base_version: BaseVersionArg = None) -> Annotated[CallToolResult, SceneResult]:
            return await run(_request(p.UndoRequest, id=self._envelope(), session=session,
                                      base_version=base_version), ctx)

        @server.tool(annotations=job_tool, description="Re-apply the version that undo stepped back from.")
        async def redo(session: SessionArg, ctx: Context,
                       base_version: BaseVersionArg = None) -> Annotated[CallToolResult, SceneResult]:
            return await run(_request(p.RedoRequest, id=self._envelope(), session=session,
                                      base_version=base_version), ctx)

        @server.tool(annotations=job_tool, description=(
            "Foley for a range of a local video file: hits seen in the picture become synchronised "
            "events of the scene's next version."))
        async def video_cue(
            session: SessionArg, ctx: Context,
            video_path: Annotated[str, Field(min_length=1, description="Absolute path of a local video file.")],
            start_s: Annotated[float, Field(ge=0, description="Range start in the video, seconds.")],
            end_s: Annotated[float, Field(gt=0, description="Range end in the video, seconds.")],
            anchor_s: AnchorArg = 0.0,
            hint: Annotated[str | None, Field(max_length=MAX_PROMPT_CHARS,
                                              description="What is on screen, if you know it.")] = None,
        ) -> Annotated[CallToolResult, SceneResult]:
            return await run(_request(p.VideoCueRequest, id=self._envelope(), session=session,
                                      video_path=video_path, start_s=start_s, end_s=end_s,
                                      anchor_s=anchor_s, hint=hint), ctx)

        @server.tool(annotations=read_tool, description="A scene's current plan and manifest.")
        async def get_scene(session: SessionArg) -> SceneView:
            return await _tool_errors(self._session(session))

        @server.tool(annotations=read_tool, description="Every scene in the data dir.")
        async def list_scenes() -> SceneList:
            summaries = await anyio.to_thread.run_sync(self.engine.sessions)
            return SceneList(scenes=summaries)

        @server.tool(annotations=job_tool, description=(
            "Cancel a running job by the job id a scene result or progress message named."))
        async def cancel(job: Annotated[str, Field(min_length=1, max_length=MAX_JOB_ID_CHARS)]) -> CancelResult:
            try:
                state = self.dispatcher.jobs.cancel(job)
            except AudioAgentError as error:
                raise ToolError(str(error)) from None
            return CancelResult(job=job, state=state.value)

        self._register_library(read_tool)
        self._register_resources()

    def _register_library(self, annotations: ToolAnnotations) -> None:
        from engine.library.search import search
        from engine.library.settings import index_path
        from engine.library.store import LibraryIndex

        data_dir = self.data_dir

        def find(query: str, limit: int) -> list[LibraryHit]:
            with LibraryIndex(index_path(data_dir=data_dir), readonly=True) as index:
                return [LibraryHit(path=hit.file.display, cat_id=hit.file.cat_id,
                                   length_s=round(hit.file.length_s, 3), channels=hit.file.channels,
                                   score=round(hit.score, 4))
                        for hit in search(index, query, limit=limit)]

        @self.server.tool(annotations=annotations, description=(
            "Search the designer's indexed sound library (audio-agent library add DIR) for an "
            "event description; best matches first."))
        async def library_search(
            query: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS,
                                        description="An event description, e.g. 'heavy wooden door slam'.")],
            limit: Annotated[int, Field(ge=1, le=50, description="How many hits.")] = 10,
        ) -> LibraryHits:
            hits = await _tool_errors(anyio.to_thread.run_sync(find, query, limit))
            return LibraryHits(query=query, hits=hits)

    def _register_resources(self) -> None:
        server = self.server

        @server.resource(SCENE_URI + "/manifest", mime_type="application/json",
                         description="The scene's current manifest: stems, positions, gains.")
        async def scene_manifest(session: str) -> str:
            view = await _resource_errors(self._session(session))
            return json.dumps(view.manifest, indent=2)

        @server.resource(SCENE_URI + "/plan", mime_type="application/json",
                         description="The scene's current plan: events with start_s, end_s, loudness.")
        async def scene_plan(session: str) -> str:
            view = await _resource_errors(self._session(session))
            return json.dumps(view.plan, indent=2)

        @server.resource(SCENE_URI + "/stems/{name}", mime_type="audio/wav",
                         description="A stem of the scene's current version (WAV bytes).")
        async def scene_stem(session: str, name: str) -> bytes:
            def read() -> bytes:
                return self._stem_file(session, name).read_bytes()

            try:
                return await anyio.to_thread.run_sync(read)
            except AudioAgentError as error:
                raise ResourceError(str(error)) from None


def _request(model: type[p.JobRequest], **fields: object) -> p.JobRequest:
    """Build a wire request, turning a validation failure into a tool error that names the field."""
    try:
        return model(**{k: v for k, v in fields.items() if v is not None})
    except ValueError as error:  # pydantic.ValidationError
        raise ToolError(_first_error(error)) from None


def _first_error(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "input"
        return f"{where}: {first.get('msg', 'invalid')}"
    return str(error)


async def _tool_errors(awaitable: Awaitable[T]) -> T:
    """The engine's errors become tool errors: the assistant reads the message, the server goes on."""
    try:
        return await awaitable
    except AudioAgentError as error:
        raise ToolError(str(error)) from None


async def _resource_errors(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except AudioAgentError as error:
        raise ResourceError(str(error)) from None


def _summary(result: SceneResult) -> str:
    lines = [f"Scene {result.session!r} version {result.version}: {len(result.stems)} stems over "
             f"{result.duration_s:g} s (anchor {result.anchor_s:g} s)."]
    for stem in result.stems:
        lines.append(f"- {stem.event_id} {stem.description!r}: {stem.timeline_start_s:g}-"
                     f"{result.anchor_s + stem.end_s:g} s, gain {stem.gain_db:+.1f} dB, {stem.change}")
    for event_id in result.removed_event_ids:
        lines.append(f"- {event_id}: removed")
    for failed in result.failed:
        lines.append(f"- {failed.event_id} failed: {failed.error}")
    lines.extend(f"note: {note}" for note in result.notes)
    return "\n".join(lines)

