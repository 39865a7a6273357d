"""The OSC form of the protocol: two tables (request arguments, reply arguments) and the small
functions that read them. Adding a field to an OSC message is one table row; the Live remote
script's copy of the stem_ready list is checked against ``OSC_REPLY_ARGS`` by a test.
"""

from __future__ import annotations

import json
from typing import NamedTuple, Sequence, Union

from pydantic import BaseModel

from engine.limits import MAX_ID_CHARS
from server.protocol.codec import Json, dumps, parse_request, request_from_dict
from server.protocol.errors import ErrorCode, ProtocolError
from server.protocol.messages import PROTOCOL_VERSION, Request

OSC_PREFIX = "/audioagent/"
# One OSC argument as python-osc hands it over or takes it.
OscArg = Union[str, int, float, bool, bytes, None]


# ---------------------------------------------------------------------------- requests
# Positional argument lists of the OSC requests (after the address). Each entry: (field, kind);
# kinds: "s" string, "f" number (int or float), "i" integer, "o" string or "" for none, "fo" number
# or "" for none (OSC has no null: "" lets a client skip one optional argument and still give a
# later one). reply_port 0 or absent means "reply to the sender's address and port".
OSC_REQUEST_ARGS: dict[str, list[tuple[str, str]]] = {
    "generate": [("id", "s"), ("session", "s"), ("prompt", "s"), ("duration_s", "f"), ("anchor_s", "f"), ("reply_port", "i")],
    "edit": [("id", "s"), ("session", "s"), ("instruction", "s"), ("reply_port", "i")],
    "undo": [("id", "s"), ("session", "s"), ("reply_port", "i")],
    "redo": [("id", "s"), ("session", "s"), ("reply_port", "i")],
    # A non-empty checkpoint (a name the server offers, never a path) selects generator "vta".
    "video_cue": [("id", "s"), ("session", "s"), ("video_path", "s"), ("start_s", "f"), ("end_s", "f"),
                  ("anchor_s", "f"), ("hint", "o"), ("checkpoint", "o"), ("vta_lambda", "fo"), ("reply_port", "i")],
    "ping": [("id", "s"), ("reply_port", "i")],
    "cancel": [("id", "s"), ("job", "s"), ("reply_port", "i")],
    "get_session": [("id", "s"), ("session", "s"), ("reply_port", "i")],
    "list_sessions": [("id", "s"), ("reply_port", "i")],
    "request": [("json", "s"), ("reply_port", "i")],
}
# Trailing arguments a client may leave out (None: the field is left out of the request).
_OSC_OPTIONAL: dict[str, float | int | None] = {
    "anchor_s": 0.0, "hint": None, "checkpoint": None, "vta_lambda": None, "reply_port": 0,
}
_NUMBER_KINDS = ("f", "fo")


def _osc_value(address: str, name: str, kind: str, value: OscArg) -> str | float | int | None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind in ("o", "fo") and value == "":
        return None
    if kind in ("s", "o") and isinstance(value, str):
        return value
    if kind == "s" and name == "id" and is_int:
        return str(value)  # some OSC senders cannot send strings easily; an integer id is fine
    if kind in _NUMBER_KINDS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "i" and isinstance(value, int) and is_int:
        return value
    expected = {"s": "a string", "f": "a number", "i": "an integer", "o": 'a string ("" for none)',
                "fo": 'a number ("" for the default)'}[kind]
    raise ProtocolError(
        f"{address} argument {name}={value!r}: expected {expected}", code=ErrorCode.INVALID_INPUT,
        field=name, value=value,
    )


def _guess_reply(address: str, args: Sequence[OscArg]) -> tuple[str, int]:
    """The request id and reply port of a request that failed validation, so its error still
    reaches the port the client listens on."""
    spec = OSC_REQUEST_ARGS.get(address[len(OSC_PREFIX):], [])
    first = args[0] if args else None
    rid = first if isinstance(first, (str, int)) and not isinstance(first, bool) else ""
    index = len(spec) - 1
    port = args[index] if spec and len(args) > index else 0
    valid_port = isinstance(port, int) and not isinstance(port, bool) and 0 < port <= 65535
    request_id = str(rid)[:MAX_ID_CHARS] if spec and spec[0][0] == "id" else ""
    return request_id, (int(port) if valid_port and isinstance(port, int) else 0)


def request_from_osc(address: str, args: Sequence[OscArg]) -> tuple[Request, int]:
    """An OSC request (address + typed args) -> (request model, reply_port or 0).

    A ProtocolError raised here carries the request id and ``reply_port`` (0 if unknown)."""
    try:
        return _request_from_osc(address, args)
    except ProtocolError as error:
        rid, port = _guess_reply(address, args)
        error.request_id = error.request_id or rid
        error.reply_port = port
        raise


def _check_unambiguous(address: str, spec: list[tuple[str, str]], args: Sequence[OscArg],
                       request_id: str) -> None:
    """When a request stops before its reply_port, an integer as its last argument, in an
    optional number's place, could be either: a client meaning "reply to port 9001" would get a
    scene anchored at 9001 s (generate's anchor_s, video_cue's anchor_s or vta_lambda). A float
    there is that number; an integer is refused as ambiguous. Strings cannot be mistaken for a
    port, and required arguments are never skipped, so only this case needs the rule."""
    if not args or len(args) >= len(spec) or spec[-1][0] != "reply_port":
        return
    name, kind = spec[len(args) - 1]
    last = args[-1]
    if name in _OSC_OPTIONAL and kind in _NUMBER_KINDS and isinstance(last, int) and not isinstance(last, bool):
        names = ", ".join(name for name, _ in spec)
        raise ProtocolError(
            f"{address}: argument {len(args)} ({last}) is ambiguous: {name} or reply_port? "
            f"send {name} as a float, or all of: {names}",
            code=ErrorCode.INVALID_INPUT, field=name, request_id=request_id,
        )


def _request_from_osc(address: str, args: Sequence[OscArg]) -> tuple[Request, int]:
    if not address.startswith(OSC_PREFIX) or address[len(OSC_PREFIX):] not in OSC_REQUEST_ARGS:
        raise ProtocolError(
            f"address {address[:80]!r}: unknown OSC address", code=ErrorCode.UNKNOWN_TYPE, field="address"
        )
    kind = address[len(OSC_PREFIX):]
    spec = OSC_REQUEST_ARGS[kind]
    values: dict[str, Json | None] = {}
    for index, (name, type_tag) in enumerate(spec):
        if index < len(args):
            values[name] = _osc_value(address, name, type_tag, args[index])
        elif name in _OSC_OPTIONAL:
            values[name] = _OSC_OPTIONAL[name]
        else:
            raise ProtocolError(
                f"{address}: missing argument {name} (expects {', '.join(n for n, _ in spec)})",
                code=ErrorCode.INVALID_INPUT, field=name, request_id=str(values.get("id", "")),
            )
    if len(args) > len(spec):
        raise ProtocolError(
            f"{address}: {len(args)} arguments; expects at most {len(spec)}", code=ErrorCode.INVALID_INPUT,
            field="args", request_id=str(values.get("id", "")),
        )
    _check_unambiguous(address, spec, args, str(values.get("id", "")))
    reply_port = values.pop("reply_port")
    assert isinstance(reply_port, int)  # the table says "i"
    if not 0 <= reply_port <= 65535:
        raise ProtocolError(
            f"reply_port={reply_port}: out of range", code=ErrorCode.INVALID_INPUT, field="reply_port"
        )
    if kind == "request":
        text = values["json"]
        assert isinstance(text, str)  # the table says "s"
        return parse_request(text), reply_port
    given: dict[str, Json] = {name: value for name, value in values.items() if value is not None}
    if kind == "video_cue" and "checkpoint" in given:
        given["generator"] = "vta"  # naming a checkpoint is choosing the picture-driven generator
    return request_from_dict({"v": PROTOCOL_VERSION, "type": kind, **given}), reply_port


# ---------------------------------------------------------------------------- replies
class ReplyArg(NamedTuple):
    """One positional argument of a reply. ``kind``: "s" string, "f" float, "i" int, "b" bool
    sent as int 0/1, "o" optional string ("" for null), "json" the ``field`` as JSON text,
    "message" the whole message as JSON text. ``field``: the message field (default ``name``)."""

    name: str
    kind: str
    field: str = ""

    @property
    def source(self) -> str:
        return self.field or self.name


_ID = ReplyArg("id", "s")
# Reply address (after OSC_PREFIX) -> its arguments, in order. Replies not listed are sent as
# DEFAULT_REPLY_ARGS: the id and the whole message as JSON.
OSC_REPLY_ARGS: dict[str, tuple[ReplyArg, ...]] = {
    "accepted": (_ID, ReplyArg("job", "s")),
    "progress": (_ID, ReplyArg("job", "s"), ReplyArg("stage", "s"), ReplyArg("fraction", "f")),
    "plan": (_ID, ReplyArg("session", "s"), ReplyArg("version", "i"), ReplyArg("plan_json", "message")),
    "stem_ready": (
        _ID, ReplyArg("session", "s"), ReplyArg("version", "i"), ReplyArg("event_id", "s"),
        ReplyArg("stem_path", "s"), ReplyArg("start_s", "f"), ReplyArg("end_s", "f"),
        ReplyArg("gain_db", "f"), ReplyArg("target_lufs", "f"), ReplyArg("cache_hit", "b"),
        ReplyArg("change", "s"), ReplyArg("description", "s"),
    ),
    "done": (_ID, ReplyArg("session", "s"), ReplyArg("version", "i"),
             ReplyArg("manifest_json", "json", "manifest")),
    "error": (_ID, ReplyArg("code", "s"), ReplyArg("message", "s"), ReplyArg("field", "o")),
}
DEFAULT_REPLY_ARGS: tuple[ReplyArg, ...] = (_ID, ReplyArg("message_json", "message"))


def reply_args(kind: str) -> tuple[ReplyArg, ...]:
    return OSC_REPLY_ARGS.get(kind, DEFAULT_REPLY_ARGS)


def _encode_arg(arg: ReplyArg, data: dict[str, Json]) -> OscArg:
    if arg.kind == "message":
        return dumps(data)
    value = data[arg.source]
    if arg.kind == "json":
        return dumps(value)
    if arg.kind == "f":
        assert isinstance(value, (int, float))
        return float(value)
    if arg.kind == "i":
        assert isinstance(value, (int, float))
        return int(value)
    if arg.kind == "b":
        return int(bool(value))
    if arg.kind == "o":
        return "" if value is None else str(value)
    return str(value)


def _args_for(kind: str, data: dict[str, Json]) -> list[OscArg]:
    return [_encode_arg(arg, data) for arg in reply_args(kind)]


def message_to_osc(message: BaseModel) -> tuple[str, list[OscArg]]:
    """A server message -> (OSC address, typed args) exactly as OSC_REPLY_ARGS lists them."""
    data = message.model_dump(mode="json")
    kind = str(data["type"])
    return OSC_PREFIX + kind, _args_for(kind, data)


def osc_to_message(address: str, args: Sequence[OscArg]) -> dict[str, Json]:
    """Client side (tests, tools): a server OSC message back into a dict of named fields."""
    kind = address[len(OSC_PREFIX):]
    out: dict[str, Json] = {}
    for arg, value in zip(reply_args(kind), args):
        if arg.kind == "message":
            assert isinstance(value, str)
            decoded = json.loads(value)
            assert isinstance(decoded, dict)
            out.update(decoded)
        elif arg.kind == "json":
            assert isinstance(value, str)
            out[arg.source] = json.loads(value)
        elif arg.kind == "b":
            out[arg.source] = bool(value)
        elif arg.kind == "o":
            out[arg.source] = value or None
        else:
            assert not isinstance(value, bytes)
            out[arg.source] = value
    out["type"] = kind
    return out


# What a DAW needs to place a stem; the compact forms keep only these per event.
_PLACEMENT_FIELDS = ("id", "description", "start_s", "end_s", "target_lufs", "gain_db", "stem_path", "cache_hit")


def _slim_events(events: Json, fields: tuple[str, ...]) -> list[Json]:
    assert isinstance(events, list)
    return [{key: event[key] for key in fields if key in event} for event in events if isinstance(event, dict)]


def compact_osc_forms(message: BaseModel) -> list[tuple[str, list[OscArg]]]:
    """Smaller OSC forms of a plan or done message, largest first, for when the full form would
    not fit one UDP datagram. Same address and argument list; the JSON argument drops detail
    and says ``"truncated": true`` (WebSocket or `audio-agent client` carry the whole message).
    Every stem was already announced by its own stem_ready, so 'done' still ends the job."""
    data = message.model_dump(mode="json")
    kind = str(data["type"])
    variants: list[dict[str, Json]] = []
    if kind == "done":
        manifest = data["manifest"]
        assert isinstance(manifest, dict)
        failed_list = manifest.get("failed", [])
        assert isinstance(failed_list, list)
        failed: list[Json] = [{"id": f.get("id")} for f in failed_list if isinstance(f, dict)]
        events = manifest.get("events", [])
        assert isinstance(events, list)
        slim = {**manifest, "events": _slim_events(events, _PLACEMENT_FIELDS), "failed": failed,
                "notes": [], "truncated": True}
        bare = {**slim, "events": [], "event_count": len(events)}
        variants = [{**data, "manifest": slim}, {**data, "manifest": bare}]
    elif kind == "plan":
        slim = {**data, "events": _slim_events(data["events"], ("id", "start_s", "end_s")), "notes": [],
                "truncated": True}
        variants = [slim, {**slim, "events": []}]
    return [(OSC_PREFIX + kind, _args_for(kind, variant)) for variant in variants]
