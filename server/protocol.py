"""The wire protocol as plain data: message models, parsing, encoding, OSC argument lists.

Sans-I/O on purpose (the websockets habit): nothing here touches a socket, so every rule of the
protocol — versions, unknown fields, size limits, the OSC argument lists — is tested with bytes
and strings alone, and both transports (server/websocket.py, server/osc.py) stay thin glue.

Every message is a JSON object with "v" (protocol version), "type" and "id" (the request id the
client chose; every notification about a job carries the id of the request that started it).
Run ``python -m server.protocol --schema`` to print the JSON Schema kept in docs/.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from engine.errors import AudioAgentError, InvalidInputError
from engine.limits import (
    MAX_DATAGRAM_BYTES,
    MAX_DURATION_S,
    MAX_FRAME_BYTES,
    MAX_ID_CHARS,
    MAX_PATH_CHARS,
    MAX_POSITION_S,
    MAX_PROMPT_CHARS,
    MAX_SESSION_NAME_CHARS,
    SEED_LIMIT,
)
from engine.plan import Event

PROTOCOL_VERSION = 1
# Limits on what a client may send come from engine.limits, the one home of every limit, so the
# wire never accepts what the engine refuses. Server->client messages (manifests) may be larger.
MAX_SESSION_CHARS = MAX_SESSION_NAME_CHARS
OSC_PREFIX = "/audioagent/"

# Engine error codes (AudioAgentError.code) -> wire codes. One table, so a renamed engine error
# never silently changes what DAW scripts see. Protocol-level codes are listed after them.
WIRE_ERROR_CODES: dict[str, str] = {
    "internal": "internal",
    "invalid_input": "invalid_input",
    "invalid_plan": "invalid_plan",
    "planner_failed": "planner_failed",
    "generator_failed": "generator_failed",
    "cancelled": "cancelled",
    "not_found": "not_found",
    "busy": "busy",
    "timeout": "timeout",
    # protocol errors (raised here and by the transports)
    "bad_json": "bad_json",
    "bad_request": "bad_request",
    "unknown_type": "unknown_type",
    "unknown_field": "unknown_field",
    "unsupported_version": "unsupported_version",
    "too_large": "too_large",
    "unauthorized": "unauthorized",
    "unavailable": "unavailable",
}


def wire_code(engine_code: str) -> str:
    return WIRE_ERROR_CODES.get(engine_code, "internal")


class ProtocolError(InvalidInputError):
    """A request that cannot be parsed or breaks a protocol rule; answered with an error message."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "bad_request",
        field: str | None = None,
        value: Any = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message, field=field, value=value)
        self.code = code
        self.request_id = request_id


# ---------------------------------------------------------------------------- field types
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0.0, le=MAX_POSITION_S, allow_inf_nan=False)]
Duration = Annotated[float, Field(gt=0.0, le=MAX_DURATION_S, allow_inf_nan=False)]
SessionName = Annotated[str, Field(min_length=1, max_length=MAX_SESSION_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$")]
RequestId = Annotated[str, Field(max_length=MAX_ID_CHARS)]
Port = Annotated[int, Field(ge=1, le=65535)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = PROTOCOL_VERSION
    id: RequestId = ""


# ---------------------------------------------------------------------------- requests
class GenerateRequest(_Message):
    type: Literal["generate"] = "generate"
    session: SessionName
    prompt: Text
    duration_s: Duration
    anchor_s: Seconds = 0.0
    planner: Annotated[str, Field(max_length=32)] | None = None
    backend: Annotated[str, Field(max_length=64)] | None = None
    seed: Annotated[int, Field(ge=0, lt=SEED_LIMIT)] | None = None
    notify_osc_port: Port | None = None


class Change(BaseModel):
    """A structured edit of one event (mirrors engine.edits.EventEdit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["move", "set_loudness", "replace_text", "delete", "add"]
    event_id: Annotated[str, Field(max_length=64)] | None = None
    start_s: Seconds | None = None
    end_s: Seconds | None = None
    target_lufs: FiniteFloat | None = None
    description: Text | None = None


class EditRequest(_Message):
    type: Literal["edit"] = "edit"
    session: SessionName
    instruction: Text | None = None
    change: Change | None = None
    notify_osc_port: Port | None = None


class UndoRequest(_Message):
    type: Literal["undo"] = "undo"
    session: SessionName
    notify_osc_port: Port | None = None


class RedoRequest(_Message):
    type: Literal["redo"] = "redo"
    session: SessionName
    notify_osc_port: Port | None = None


class CancelRequest(_Message):
    type: Literal["cancel"] = "cancel"
    job: Annotated[str, Field(min_length=1, max_length=64)]


class GetSessionRequest(_Message):
    type: Literal["get_session"] = "get_session"
    session: SessionName


class ListSessionsRequest(_Message):
    type: Literal["list_sessions"] = "list_sessions"


class PingRequest(_Message):
    type: Literal["ping"] = "ping"


class VideoCueRequest(_Message):
    type: Literal["video_cue"] = "video_cue"
    session: SessionName
    video_path: Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS)]
    start_s: Seconds
    end_s: Seconds
    anchor_s: Seconds = 0.0
    hint: Text | None = None
    notify_osc_port: Port | None = None


class AuthRequest(_Message):
    """First WebSocket message when the token was not sent as an HTTP header."""

    type: Literal["auth"] = "auth"
    token: Annotated[str, Field(max_length=512)]


_REQUEST_MODELS = (
    GenerateRequest,
    EditRequest,
    UndoRequest,
    RedoRequest,
    CancelRequest,
    GetSessionRequest,
    ListSessionsRequest,
    PingRequest,
    VideoCueRequest,
    AuthRequest,
)
Request = Annotated[Union[_REQUEST_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]
REQUEST_TYPES: dict[str, type[_Message]] = {
    model.model_fields["type"].default: model for model in _REQUEST_MODELS
}
# Requests that start a job (answered by accepted{job}, then notifications, then done or error).
JOB_TYPES = frozenset({"generate", "edit", "undo", "redo", "video_cue"})


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
    manifest: dict[str, Any]


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


class SessionMessage(_Message):
    """Answer to get_session: the session's state, plus jobs a server restart interrupted."""

    type: Literal["session"] = "session"
    session: str
    info: dict[str, Any]
    interrupted_jobs: list[dict[str, Any]] = []


class SessionsMessage(_Message):
    type: Literal["sessions"] = "sessions"
    sessions: list[dict[str, Any]]
    interrupted_jobs: list[dict[str, Any]] = []


class CancelAck(_Message):
    """Answer to cancel: the job's state when the cancel arrived (it then ends with error cancelled)."""

    type: Literal["cancel_ack"] = "cancel_ack"
    job: str
    state: str


class AuthOk(_Message):
    type: Literal["auth_ok"] = "auth_ok"


ServerMessage = Annotated[
    Union[
        Accepted,
        PlanMessage,
        Progress,
        StemReady,
        Done,
        ErrorMessage,
        Pong,
        SessionMessage,
        SessionsMessage,
        CancelAck,
        AuthOk,
    ],
    Field(discriminator="type"),
]
_REQUEST_ADAPTER: TypeAdapter[Any] = TypeAdapter(Request)
_SERVER_ADAPTER: TypeAdapter[Any] = TypeAdapter(ServerMessage)


# ---------------------------------------------------------------------------- parsing
def _field_of(loc: tuple[Any, ...]) -> str:
    # loc starts with the discriminator tag ("generate", ...); drop it.
    parts = [str(part) for part in loc[1:]] or [str(part) for part in loc]
    return ".".join(parts)


def _from_validation(error: ValidationError, request_id: str) -> ProtocolError:
    first = error.errors()[0]
    field_name = _field_of(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        return ProtocolError(
            f"unknown field {field_name!r}", code="unknown_field", field=field_name, request_id=request_id
        )
    value = first.get("input")
    shown = value if not isinstance(value, str) else (value[:40] + "..." if len(value) > 40 else value)
    return ProtocolError(
        f"{field_name}={shown!r}: {first['msg']}", code="invalid_input", field=field_name,
        value=shown, request_id=request_id,
    )


def _request_id(data: dict[str, Any]) -> str:
    value = data.get("id", "")
    return value[:MAX_ID_CHARS] if isinstance(value, str) else ""


def request_from_dict(data: Any) -> Any:
    """Validate one decoded JSON object as a request (see parse_request)."""
    if not isinstance(data, dict):
        raise ProtocolError("a request must be a JSON object", code="bad_request")
    request_id = _request_id(data)
    if "v" not in data:
        raise ProtocolError("missing field 'v' (protocol version)", code="bad_request", field="v", request_id=request_id)
    if data["v"] != PROTOCOL_VERSION or isinstance(data["v"], bool):
        raise ProtocolError(
            f"v={data['v']!r}: unsupported protocol version; this server speaks v={PROTOCOL_VERSION}",
            code="unsupported_version", field="v", value=data["v"], request_id=request_id,
        )
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in REQUEST_TYPES:
        raise ProtocolError(
            f"type={kind!r}: unknown message type; expected one of {', '.join(sorted(REQUEST_TYPES))}",
            code="unknown_type", field="type", value=kind, request_id=request_id,
        )
    if not isinstance(data.get("id", ""), str):
        raise ProtocolError("id must be a string", code="invalid_input", field="id", request_id="")
    try:
        request = _REQUEST_ADAPTER.validate_python(data)
    except ValidationError as error:
        raise _from_validation(error, request_id) from None
    _check_combination(request)
    return request


def _check_combination(request: Any) -> None:
    """Rules across fields that a single field type cannot say."""
    if isinstance(request, EditRequest) and (request.instruction is None) == (request.change is None):
        raise ProtocolError(
            "edit needs exactly one of 'instruction' or 'change'", code="invalid_input",
            field="instruction", request_id=request.id,
        )
    if isinstance(request, VideoCueRequest) and request.end_s <= request.start_s:
        raise ProtocolError(
            f"end_s={request.end_s}: must be > start_s ({request.start_s})", code="invalid_input",
            field="end_s", value=request.end_s, request_id=request.id,
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_request(data: bytes | str) -> Any:
    """Parse one client frame into a request model, or raise ProtocolError with code and field."""
    size = len(data.encode("utf-8", "replace") if isinstance(data, str) else data)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"message is {size} bytes; the limit is {MAX_FRAME_BYTES}", code="too_large", value=size
        )
    try:
        # NaN/Infinity are not JSON; refuse them here rather than as a confusing range error.
        decoded = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise ProtocolError(f"invalid JSON: {error}", code="bad_json") from None
    except RecursionError:
        # '[[[[...' within the size limit nests past the parser's depth; no request nests like that.
        raise ProtocolError("invalid JSON: nested too deeply", code="bad_json") from None
    return request_from_dict(decoded)


def encode(message: BaseModel) -> str:
    """One message as compact JSON text (one WebSocket text frame, one events-file line)."""
    return json.dumps(message.model_dump(mode="json"), separators=(",", ":"), allow_nan=False)


def parse_server_message(data: bytes | str) -> Any:
    """Client side: one server frame into its model (unknown extra fields are refused too)."""
    return _SERVER_ADAPTER.validate_json(data)


def error_message(error: BaseException, *, request_id: str = "", job: str | None = None) -> ErrorMessage:
    """The wire error for any exception; unexpected ones become 'internal' without internals."""
    if isinstance(error, ProtocolError):
        return ErrorMessage(
            id=request_id or error.request_id, code=wire_code(error.code), message=error.message,
            field=error.field, job=job,
        )
    if isinstance(error, AudioAgentError):
        return ErrorMessage(
            id=request_id, code=wire_code(error.code), message=error.message, field=error.field, job=job
        )
    return ErrorMessage(
        id=request_id, code="internal", message=f"internal error ({type(error).__name__})", job=job
    )


# ---------------------------------------------------------------------------- OSC mapping
# Positional argument lists of the OSC requests (after the address). Each entry: (field, kinds);
# kinds: "s" string, "f" number (int or float), "i" integer. reply_port 0 or absent means "reply
# to the sender's address and port".
OSC_REQUEST_ARGS: dict[str, list[tuple[str, str]]] = {
    "generate": [("id", "s"), ("session", "s"), ("prompt", "s"), ("duration_s", "f"), ("anchor_s", "f"), ("reply_port", "i")],
    "edit": [("id", "s"), ("session", "s"), ("instruction", "s"), ("reply_port", "i")],
    "undo": [("id", "s"), ("session", "s"), ("reply_port", "i")],
    "redo": [("id", "s"), ("session", "s"), ("reply_port", "i")],
    "ping": [("id", "s"), ("reply_port", "i")],
    "cancel": [("id", "s"), ("job", "s"), ("reply_port", "i")],
    "get_session": [("id", "s"), ("session", "s"), ("reply_port", "i")],
    "list_sessions": [("id", "s"), ("reply_port", "i")],
    "request": [("json", "s"), ("reply_port", "i")],
}
# Trailing arguments a client may leave out.
_OSC_OPTIONAL = {"anchor_s": 0.0, "reply_port": 0}


def _osc_value(address: str, name: str, kind: str, value: Any) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "s" and isinstance(value, str):
        return value
    if kind == "s" and name == "id" and is_int:
        return str(value)  # some OSC senders cannot send strings easily; an integer id is fine
    if kind == "f" and (is_int or isinstance(value, float)):
        return float(value)
    if kind == "i" and is_int:
        return value
    expected = {"s": "a string", "f": "a number", "i": "an integer"}[kind]
    raise ProtocolError(
        f"{address} argument {name}={value!r}: expected {expected}", code="invalid_input", field=name, value=value
    )


def _guess_reply(address: str, args: list[Any] | tuple[Any, ...]) -> tuple[str, int]:
    """The request id and reply port of a request that failed validation, so its error still
    reaches the port the client listens on."""
    spec = OSC_REQUEST_ARGS.get(address[len(OSC_PREFIX):], [])
    rid = args[0] if args and isinstance(args[0], (str, int)) and not isinstance(args[0], bool) else ""
    index = len(spec) - 1
    port = args[index] if spec and len(args) > index else 0
    valid_port = isinstance(port, int) and not isinstance(port, bool) and 0 < port <= 65535
    return (str(rid)[:MAX_ID_CHARS] if spec and spec[0][0] == "id" else ""), (port if valid_port else 0)


def request_from_osc(address: str, args: list[Any] | tuple[Any, ...]) -> tuple[Any, int]:
    """An OSC request (address + typed args) -> (request model, reply_port or 0).

    A ProtocolError raised here carries ``reply_port`` (0 if unknown) and the request id."""
    try:
        return _request_from_osc(address, args)
    except ProtocolError as error:
        rid, port = _guess_reply(address, args)
        error.request_id = error.request_id or rid
        error.reply_port = port  # type: ignore[attr-defined]
        raise


def _request_from_osc(address: str, args: list[Any] | tuple[Any, ...]) -> tuple[Any, int]:
    if not address.startswith(OSC_PREFIX) or address[len(OSC_PREFIX):] not in OSC_REQUEST_ARGS:
        raise ProtocolError(f"address {address[:80]!r}: unknown OSC address", code="unknown_type", field="address")
    kind = address[len(OSC_PREFIX):]
    spec = OSC_REQUEST_ARGS[kind]
    values: dict[str, Any] = {}
    for index, (name, type_tag) in enumerate(spec):
        if index < len(args):
            values[name] = _osc_value(address, name, type_tag, args[index])
        elif name in _OSC_OPTIONAL:
            values[name] = _OSC_OPTIONAL[name]
        else:
            raise ProtocolError(
                f"{address}: missing argument {name} (expects {', '.join(n for n, _ in spec)})",
                code="invalid_input", field=name, request_id=str(values.get("id", "")),
            )
    if len(args) > len(spec):
        raise ProtocolError(
            f"{address}: {len(args)} arguments; expects at most {len(spec)}", code="invalid_input",
            field="args", request_id=str(values.get("id", "")),
        )
    reply_port = int(values.pop("reply_port"))
    if not 0 <= reply_port <= 65535:
        raise ProtocolError(f"reply_port={reply_port}: out of range", code="invalid_input", field="reply_port")
    if kind == "request":
        return parse_request(values["json"]), reply_port
    return request_from_dict({"v": PROTOCOL_VERSION, "type": kind, **values}), reply_port


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def message_to_osc(message: BaseModel) -> tuple[str, list[Any]]:
    """A server message -> (OSC address, typed args) exactly as the contract lists them."""
    data = message.model_dump(mode="json")
    kind = data["type"]
    rid = data["id"]
    address = OSC_PREFIX + kind
    if kind == "accepted":
        return address, [rid, data["job"]]
    if kind == "progress":
        return address, [rid, data["job"], data["stage"], float(data["fraction"])]
    if kind == "plan":
        return address, [rid, data["session"], int(data["version"]), _dumps(data)]
    if kind == "stem_ready":
        return address, [
            rid, data["session"], int(data["version"]), data["event_id"], data["stem_path"],
            float(data["start_s"]), float(data["end_s"]), float(data["gain_db"]),
            float(data["target_lufs"]), int(bool(data["cache_hit"])), data["change"], data["description"],
        ]
    if kind == "done":
        return address, [rid, data["session"], int(data["version"]), _dumps(data["manifest"])]
    if kind == "error":
        return address, [rid, data["code"], data["message"], data["field"] or ""]
    # pong, session, sessions, cancel_ack, auth_ok: the id and the whole message as JSON.
    return address, [rid, _dumps(data)]


# What a DAW needs to place a stem; the compact forms keep only these per event.
_PLACEMENT_FIELDS = ("id", "description", "start_s", "end_s", "target_lufs", "gain_db", "stem_path", "cache_hit")


def _slim_events(events: list[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{key: event[key] for key in fields if key in event} for event in events]


def compact_osc_forms(message: BaseModel) -> list[tuple[str, list[Any]]]:
    """Smaller OSC forms of a plan or done message, largest first, for when the full form would
    not fit one UDP datagram. Same address and argument list; the JSON argument drops detail
    and says ``"truncated": true`` (WebSocket or `audio-agent client` carry the whole message).
    Every stem was already announced by its own stem_ready, so 'done' still ends the job."""
    data = message.model_dump(mode="json")
    kind, rid = data["type"], data["id"]
    address = OSC_PREFIX + kind
    forms: list[tuple[str, list[Any]]] = []
    if kind == "done":
        manifest = dict(data["manifest"])
        failed = [{"id": f.get("id")} for f in manifest.get("failed", [])]
        slim = {**manifest, "events": _slim_events(manifest.get("events", []), _PLACEMENT_FIELDS),
                "failed": failed, "notes": [], "truncated": True}
        bare = {**slim, "events": [], "event_count": len(manifest.get("events", []))}
        for variant in (slim, bare):
            forms.append((address, [rid, data["session"], int(data["version"]), _dumps(variant)]))
    elif kind == "plan":
        slim = {**data, "events": _slim_events(data["events"], ("id", "start_s", "end_s")), "notes": [],
                "truncated": True}
        bare = {**slim, "events": []}
        for variant in (slim, bare):
            forms.append((address, [rid, data["session"], int(data["version"]), _dumps(variant)]))
    return forms


def osc_to_message(address: str, args: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
    """Client side (tests, tools): a server OSC message back into a dict of named fields."""
    kind = address[len(OSC_PREFIX):]
    if kind == "accepted":
        return {"type": kind, "id": args[0], "job": args[1]}
    if kind == "progress":
        return {"type": kind, "id": args[0], "job": args[1], "stage": args[2], "fraction": args[3]}
    if kind == "plan":
        return {**json.loads(args[3]), "type": kind}
    if kind == "stem_ready":
        names = ["id", "session", "version", "event_id", "stem_path", "start_s", "end_s", "gain_db",
                 "target_lufs", "cache_hit", "change", "description"]
        out = dict(zip(names, args))
        out["cache_hit"] = bool(out["cache_hit"])
        return {"type": kind, **out}
    if kind == "done":
        return {"type": kind, "id": args[0], "session": args[1], "version": args[2], "manifest": json.loads(args[3])}
    if kind == "error":
        return {"type": kind, "id": args[0], "code": args[1], "message": args[2], "field": args[3] or None}
    return {**json.loads(args[1]), "type": kind}


# ---------------------------------------------------------------------------- schema
def json_schema() -> dict[str, Any]:
    """JSON Schema of every request and server message (docs/protocol.schema.json)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Audio-Agent wire protocol v1",
        "requests": _REQUEST_ADAPTER.json_schema(),
        "server_messages": _SERVER_ADAPTER.json_schema(),
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover - exercised by the schema test through subprocess
    if sys.argv[1:] == ["--schema"]:
        sys.stdout.write(schema_text())
        sys.exit(0)
    print("usage: python -m server.protocol --schema", file=sys.stderr)
    sys.exit(2)
