"""Every message of the wire protocol as a pydantic model.

Every message is a JSON object with "v" (protocol version), "type" and "id" (the request id the
client chose; every notification about a job carries the id of the request that started it).
Job requests are the engine's own request models (engine.api) plus this envelope, so what the
wire accepts is exactly what the engine takes, and the schema is generated from one set of classes.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field

from engine import api
from engine.limits import MAX_ID_CHARS, MAX_JOB_ID_CHARS
from engine.manifest import Manifest
from engine.plan import Event
from engine.session_views import InterruptedJob, SessionInfo, SessionSummary

PROTOCOL_VERSION = 1

RequestId = Annotated[str, Field(max_length=MAX_ID_CHARS)]
Port = Annotated[int, Field(ge=1, le=65535)]
# Re-exported field types (clients and tests build requests with them).
SessionName = api.SessionName
Text = api.Text
Seconds = api.Seconds
Duration = api.Duration
FiniteFloat = api.FiniteFloat


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = PROTOCOL_VERSION
    id: RequestId = ""


# ---------------------------------------------------------------------------- requests
class GenerateRequest(_Message, api.GenerateRequest):
    type: Literal["generate"] = "generate"
    notify_osc_port: Port | None = None


Change = api.Change


class EditRequest(_Message, api.EditRequest):
    type: Literal["edit"] = "edit"
    notify_osc_port: Port | None = None


class UndoRequest(_Message, api.UndoRequest):
    type: Literal["undo"] = "undo"
    notify_osc_port: Port | None = None


class RedoRequest(_Message, api.RedoRequest):
    type: Literal["redo"] = "redo"
    notify_osc_port: Port | None = None


class VideoCueRequest(_Message, api.VideoCueRequest):
    type: Literal["video_cue"] = "video_cue"
    notify_osc_port: Port | None = None


class CancelRequest(_Message):
    type: Literal["cancel"] = "cancel"
    job: Annotated[str, Field(min_length=1, max_length=MAX_JOB_ID_CHARS)]


class GetSessionRequest(_Message):
    type: Literal["get_session"] = "get_session"
    session: api.SessionName


class ListSessionsRequest(_Message):
    type: Literal["list_sessions"] = "list_sessions"


class PingRequest(_Message):
    type: Literal["ping"] = "ping"


class AuthRequest(_Message):
    """First WebSocket message when the token was not sent as an HTTP header."""

    type: Literal["auth"] = "auth"
    token: Annotated[str, Field(max_length=512)]


JobRequest = Union[GenerateRequest, EditRequest, UndoRequest, RedoRequest, VideoCueRequest]
Request = Union[
    GenerateRequest, EditRequest, UndoRequest, RedoRequest, CancelRequest, GetSessionRequest,
    ListSessionsRequest, PingRequest, VideoCueRequest, AuthRequest,
]
_REQUEST_MODELS: tuple[type[_Message], ...] = get_args(Request)  # listed once, in the Union
REQUEST_TYPES: dict[str, type[_Message]] = {
    model.model_fields["type"].default: model for model in _REQUEST_MODELS
}
# Requests that start a job (answered by accepted{job}, then notifications, then done or error).
JOB_REQUESTS = (GenerateRequest, EditRequest, UndoRequest, RedoRequest, VideoCueRequest)
JOB_TYPES = frozenset(model.model_fields["type"].default for model in JOB_REQUESTS)


# ---------------------------------------------------------------------------- server messages
class Accepted(_Message):
    type: Literal["accepted"] = "accepted"
    job: str


# The wire carries events exactly as the engine plans them (one model, so they cannot drift).
PlanEvent = Event


class PlanMessage(_Message):
    type: Literal["plan"] = "plan"
    job: str
    session: str
    version: int
    duration_s: float
    anchor_s: float = 0.0  # where the scene starts on the DAW timeline
    events: list[PlanEvent]
    diff: dict[str, str]  # event id -> unchanged|moved|regained|changed|added|removed
    notes: list[str] = []


class Progress(_Message):
    type: Literal["progress"] = "progress"
    job: str
    stage: str
    fraction: float


class StemReady(_Message):
    type: Literal["stem_ready"] = "stem_ready"
    job: str
    session: str
    version: int
    event_id: str
    description: str
    stem_path: str
    start_s: float
    end_s: float
    target_lufs: float
    gain_db: float
    cache_hit: bool
    change: str


class Done(_Message):
    type: Literal["done"] = "done"
    job: str
    session: str
    version: int
    manifest: Manifest


class ErrorMessage(_Message):
    type: Literal["error"] = "error"
    code: str
    message: str
    field: str | None = None
    job: str | None = None  # set when a job failed after it was accepted


class Pong(_Message):
    type: Literal["pong"] = "pong"
    server_version: str
    stem_root: str
    planner: str
    backend: str
    # The VTA checkpoint names a video_cue may give as "checkpoint" (sorted; empty: none offered).
    vta_checkpoints: list[str] = []


class SessionMessage(_Message):
    """Answer to get_session: the session's state, plus jobs a server restart interrupted."""

    type: Literal["session"] = "session"
    session: str
    info: SessionInfo
    interrupted_jobs: list[InterruptedJob] = []


class SessionsMessage(_Message):
    type: Literal["sessions"] = "sessions"
    sessions: list[SessionSummary]
    interrupted_jobs: list[InterruptedJob] = []


class CancelAck(_Message):
    """Answer to cancel: the job's state when the cancel arrived (it then ends with error cancelled)."""

    type: Literal["cancel_ack"] = "cancel_ack"
    job: str
    state: str


class AuthOk(_Message):
    type: Literal["auth_ok"] = "auth_ok"


ServerMessage = Union[
    Accepted, PlanMessage, Progress, StemReady, Done, ErrorMessage, Pong, SessionMessage,
    SessionsMessage, CancelAck, AuthOk,
]
SERVER_MESSAGE_MODELS: tuple[type[_Message], ...] = get_args(ServerMessage)

def job_of(message: ServerMessage) -> str | None:
    """The job a server message is about (None for answers that are about none)."""
    if isinstance(message, (Accepted, PlanMessage, Progress, StemReady, Done, CancelAck, ErrorMessage)):
        return message.job
    return None
