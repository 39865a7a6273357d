"""What a front door shows of a session: typed read-only views built from the store's rows.

These are the models the wire carries (`get_session`, `list_sessions`), so the server needs no
conversion of its own and the wire schema (docs/protocol.schema.json) is generated from them.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from engine.manifest import Manifest
from engine.plan import Plan
from engine.planners import Turn
from engine.store import JobRow, SessionRow, SessionStore, VersionRow


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TurnView(_View):
    role: Literal["user", "assistant"]
    content: str


class VersionSummary(_View):
    version: int
    kind: str
    instruction: str
    created: float
    event_count: int


class JobView(_View):
    """A stored job (e.g. one a server restart interrupted)."""

    job_id: str
    session: str
    request_json: str
    status: str
    error: str
    created: float
    updated: float


class InterruptedJob(_View):
    """A job the previous server process did not finish: the client may send it again."""

    job: str
    session: str
    request: JsonValue
    error: str


class SessionInfo(_View):
    name: str
    current_version: int  # 0 until the first render lands
    plan: Plan | None
    manifest: Manifest | None
    history: list[TurnView]
    versions: list[VersionSummary]
    planner: str
    backend: str
    anchor_s: float
    created: float
    updated: float
    can_undo: bool
    can_redo: bool
    interrupted_jobs: list[JobView] = []
    directory: str = ""


class SessionSummary(_View):
    name: str
    current_version: int
    version_count: int
    event_count: int
    duration_s: float | None
    updated: float
    can_undo: bool
    can_redo: bool


# ---------------------------------------------------------------------------- building views
def history(store: SessionStore, row: SessionRow | None) -> list[Turn]:
    """The live conversation: turns of versions up to the current one (undone ones are not)."""
    if row is None:
        return []
    turns = store.list_turns(row.name, up_to_version=row.current_version)
    # Roles are checked by the store's schema, so the Literal holds.
    return [Turn(turn.role, turn.content) for turn in turns]  # type: ignore[arg-type]


def neighbours(versions: list[VersionRow], current: int) -> tuple[int | None, int | None]:
    """The stored versions before and after ``current`` (undo and redo targets)."""
    numbers = [v.version for v in versions]
    if current not in numbers:
        return None, (numbers[0] if numbers else None)
    index = numbers.index(current)
    before = numbers[index - 1] if index > 0 else None
    after = numbers[index + 1] if index + 1 < len(numbers) else None
    return before, after


def job_view(row: JobRow) -> JobView:
    return JobView(
        job_id=row.job_id, session=row.session, request_json=row.request_json, status=row.status,
        error=row.error, created=row.created, updated=row.updated,
    )


def interrupted_job(row: JobRow) -> InterruptedJob:
    try:
        request: JsonValue = json.loads(row.request_json)
    except ValueError:
        request = row.request_json  # stored by an older build as plain text: show it as it is
    return InterruptedJob(job=row.job_id, session=row.session, request=request, error=row.error)


def session_info(
    store: SessionStore, row: SessionRow, *, plan: Plan | None, manifest: Manifest | None, directory: str
) -> SessionInfo:
    versions = store.list_versions(row.name)
    before, after = neighbours(versions, row.current_version)
    return SessionInfo(
        name=row.name,
        current_version=row.current_version,
        plan=plan,
        manifest=manifest,
        history=[TurnView(role=t.role, content=t.content) for t in history(store, row)],
        versions=[
            VersionSummary(
                version=v.version, kind=v.kind, instruction=v.instruction, created=v.created,
                event_count=len(Plan.model_validate_json(v.plan_json).events),
            )
            for v in versions
        ],
        planner=row.planner,
        backend=row.backend,
        anchor_s=row.anchor_s,
        created=row.created,
        updated=row.updated,
        can_undo=before is not None,
        can_redo=after is not None,
        interrupted_jobs=[job_view(j) for j in store.list_jobs(session=row.name, status="interrupted")],
        directory=directory,
    )


def session_summary(store: SessionStore, row: SessionRow, *, plan: Plan | None) -> SessionSummary:
    versions = store.list_versions(row.name)
    before, after = neighbours(versions, row.current_version)
    return SessionSummary(
        name=row.name,
        current_version=row.current_version,
        version_count=len(versions),
        event_count=len(plan.events) if plan else 0,
        duration_s=plan.duration_s if plan else None,
        updated=row.updated,
        can_undo=before is not None,
        can_redo=after is not None,
    )
