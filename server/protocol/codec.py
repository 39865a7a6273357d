"""JSON text <-> message models: parsing with named errors, encoding, error replies, the schema.

Sans-I/O on purpose (the websockets habit): nothing here touches a socket, so every rule of the
protocol (versions, unknown fields, size limits) is tested with bytes and strings alone.
"""

from __future__ import annotations

import json
from typing import Annotated, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from engine.errors import AudioAgentError, storage_error
from engine.limits import MAX_FRAME_BYTES, MAX_ID_CHARS
from server.protocol.errors import ErrorCode, ProtocolError, wire_code
from server.protocol.messages import (
    PROTOCOL_VERSION,
    REQUEST_TYPES,
    EditRequest,
    ErrorMessage,
    Request,
    ServerMessage,
    VideoCueRequest,
)

# Parsed JSON: what json.loads can return.
Json = Union[dict[str, "Json"], list["Json"], str, int, float, bool, None]

_REQUEST_ADAPTER: TypeAdapter[Request] = TypeAdapter(Annotated[Request, Field(discriminator="type")])
_SERVER_ADAPTER: TypeAdapter[ServerMessage] = TypeAdapter(
    Annotated[ServerMessage, Field(discriminator="type")]
)


def _field_of(loc: tuple[int | str, ...]) -> str:
    # loc starts with the discriminator tag ("generate", ...); drop it.
    parts = [str(part) for part in loc[1:]] or [str(part) for part in loc]
    return ".".join(parts)


def _from_validation(error: ValidationError, request_id: str) -> ProtocolError:
    first = error.errors()[0]
    field_name = _field_of(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        return ProtocolError(
            f"unknown field {field_name!r}", code=ErrorCode.UNKNOWN_FIELD, field=field_name,
            request_id=request_id,
        )
    value = first.get("input")
    shown = value if not isinstance(value, str) else (value[:40] + "..." if len(value) > 40 else value)
    return ProtocolError(
        f"{field_name}={shown!r}: {first['msg']}", code=ErrorCode.INVALID_INPUT, field=field_name,
        value=shown, request_id=request_id,
    )


def _request_id(data: dict[str, Json]) -> str:
    value = data.get("id", "")
    return printable(value[:MAX_ID_CHARS]) if isinstance(value, str) else ""


def printable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD. JSON's "\\ud800" escape decodes to a
    string that no UTF-8 encoder takes, so an id echoed as is would make the reply unsendable."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _first_unencodable(decoded: Json) -> str | None:
    """The first string (key or value) holding a lone surrogate, or None. Iterative: the decoder
    already bounded the depth, and a request is at most MAX_FRAME_BYTES."""
    pending: list[Json] = [decoded]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            texts: list[str] = [item]
        elif isinstance(item, dict):
            texts = list(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            texts = []
            pending.extend(item)
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return text
    return None


def request_from_dict(data: Json) -> Request:
    """Validate one decoded JSON object as a request (see parse_request)."""
    if not isinstance(data, dict):
        raise ProtocolError("a request must be a JSON object", code=ErrorCode.BAD_REQUEST)
    request_id = _request_id(data)
    if "v" not in data:
        raise ProtocolError(
            "missing field 'v' (protocol version)", code=ErrorCode.BAD_REQUEST, field="v",
            request_id=request_id,
        )
    version = data["v"]
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(
            f"v={version!r}: unsupported protocol version; this server speaks v={PROTOCOL_VERSION}",
            code=ErrorCode.UNSUPPORTED_VERSION, field="v", value=version, request_id=request_id,
        )
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in REQUEST_TYPES:
        raise ProtocolError(
            f"type={kind!r}: unknown message type; expected one of {', '.join(sorted(REQUEST_TYPES))}",
            code=ErrorCode.UNKNOWN_TYPE, field="type", value=kind, request_id=request_id,
        )
    if not isinstance(data.get("id", ""), str):
        raise ProtocolError("id must be a string", code=ErrorCode.INVALID_INPUT, field="id")
    try:
        request = _REQUEST_ADAPTER.validate_python(data)
    except ValidationError as error:
        raise _from_validation(error, request_id) from None
    _check_combination(request)
    return request


def _check_combination(request: Request) -> None:
    """Rules across fields that a single field type cannot say."""
    if isinstance(request, EditRequest) and sum(
            value is not None for value in (request.instruction, request.change, request.changes)) != 1:
        raise ProtocolError(
            "edit needs exactly one of 'instruction', 'change' or 'changes'", code=ErrorCode.INVALID_INPUT,
            field="instruction", request_id=request.id,
        )
    if isinstance(request, VideoCueRequest) and request.end_s <= request.start_s:
        raise ProtocolError(
            f"end_s={request.end_s}: must be > start_s ({request.start_s})",
            code=ErrorCode.INVALID_INPUT, field="end_s", value=request.end_s, request_id=request.id,
        )


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_request(data: bytes | str) -> Request:
    """Parse one client frame into a request model, or raise ProtocolError with code and field."""
    size = len(data.encode("utf-8", "replace") if isinstance(data, str) else data)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"message is {size} bytes; the limit is {MAX_FRAME_BYTES}", code=ErrorCode.TOO_LARGE,
            value=size,
        )
    try:
        # NaN/Infinity are not JSON; refuse them here rather than as a confusing range error.
        decoded = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise ProtocolError(f"invalid JSON: {error}", code=ErrorCode.BAD_JSON) from None
    except RecursionError:
        # '[[[[...' within the size limit nests past the parser's depth; no request nests like that.
        raise ProtocolError("invalid JSON: nested too deeply", code=ErrorCode.BAD_JSON) from None
    bad = _first_unencodable(decoded)
    if bad is not None:
        raise ProtocolError(
            f"invalid JSON: {printable(bad)[:40]!r} holds a lone UTF-16 surrogate (\\ud800-\\udfff "
            "without its pair); send valid Unicode", code=ErrorCode.BAD_JSON,
            request_id=_request_id(decoded) if isinstance(decoded, dict) else "",
        )
    return request_from_dict(decoded)


def dumps(data: Json) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def encode(message: BaseModel) -> str:
    """One message as compact JSON text (one WebSocket text frame, one events-file line)."""
    return dumps(message.model_dump(mode="json"))


def parse_server_message(data: bytes | str) -> ServerMessage:
    """Client side: one server frame into its model (unknown extra fields are refused too)."""
    return _SERVER_ADAPTER.validate_json(data)


def error_message(error: BaseException, *, request_id: str = "", job: str | None = None) -> ErrorMessage:
    """The wire error for any exception; unexpected ones become 'internal' without internals."""
    if isinstance(error, ProtocolError):
        return ErrorMessage(
            id=request_id or error.request_id, code=wire_code(error.code), message=error.message,
            field=error.field, job=job,
        )
    error = storage_error(error) or error  # disk full / read-only: say so, not 'internal'
    if isinstance(error, AudioAgentError):
        return ErrorMessage(
            id=request_id, code=wire_code(error.code), message=error.message, field=error.field, job=job
        )
    return ErrorMessage(
        id=request_id, code=ErrorCode.INTERNAL.value, message=f"internal error ({type(error).__name__})", job=job
    )


def json_schema() -> dict[str, Json]:
    """JSON Schema of every request and server message (docs/protocol.schema.json)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Audio-Agent wire protocol v1",
        "requests": _REQUEST_ADAPTER.json_schema(),
        "server_messages": _SERVER_ADAPTER.json_schema(),
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
