"""The wire protocol as plain data: message models, parsing, encoding, OSC argument tables.

Sans-I/O on purpose (the websockets habit): nothing here touches a socket, so every rule of the
protocol (versions, unknown fields, size limits, the OSC argument lists, authentication) is
tested with bytes and strings alone, and both transports (server/websocket.py, server/osc.py)
stay thin glue. Rooms:

- ``messages``: every message model (job requests are engine.api's models plus the envelope);
- ``codec``: JSON parsing with named errors, encoding, error replies, the JSON Schema;
- ``osc_map``: the OSC request and reply argument tables and the functions that read them;
- ``connection``: a connection's authentication ``State`` machine;
- ``errors``: wire error codes and ProtocolError.

Run ``python -m server.protocol --schema`` to print the JSON Schema kept in docs/.
"""

from __future__ import annotations

from engine.limits import (
    MAX_DATAGRAM_BYTES,
    MAX_DURATION_S,
    MAX_FRAME_BYTES,
    MAX_ID_CHARS,
    MAX_PATH_CHARS,
    MAX_POSITION_S,
    MAX_PROMPT_CHARS,
    MAX_SESSION_NAME_CHARS,
)
from server.protocol.codec import (
    Json,
    encode,
    error_message,
    json_schema,
    parse_request,
    parse_server_message,
    request_from_dict,
    schema_text,
)
from server.protocol.connection import Connection, Received, State, tokens_match
from server.protocol.errors import WIRE_CODES, ErrorCode, ProtocolError, wire_code
from server.protocol.messages import (
    JOB_REQUESTS,
    JOB_TYPES,
    PROTOCOL_VERSION,
    REQUEST_TYPES,
    SERVER_MESSAGE_MODELS,
    Accepted,
    AuthOk,
    AuthRequest,
    CancelAck,
    CancelRequest,
    Change,
    Done,
    EditRequest,
    ErrorMessage,
    GenerateRequest,
    GetSessionRequest,
    JobRequest,
    ListSessionsRequest,
    PingRequest,
    PlanEvent,
    PlanMessage,
    Pong,
    Progress,
    RedoRequest,
    Request,
    ServerMessage,
    SessionMessage,
    SessionsMessage,
    StemReady,
    UndoRequest,
    VideoCueRequest,
    job_of,
)
from server.protocol.osc_map import (
    DEFAULT_REPLY_ARGS,
    OSC_PREFIX,
    OSC_REPLY_ARGS,
    OSC_REQUEST_ARGS,
    OscArg,
    ReplyArg,
    compact_osc_forms,
    message_to_osc,
    osc_to_message,
    reply_args,
    request_from_osc,
)

MAX_SESSION_CHARS = MAX_SESSION_NAME_CHARS

__all__ = [
    "Accepted", "AuthOk", "AuthRequest", "CancelAck", "CancelRequest", "Change", "Connection",
    "DEFAULT_REPLY_ARGS", "Done", "EditRequest", "ErrorCode", "ErrorMessage", "GenerateRequest",
    "GetSessionRequest", "JOB_REQUESTS", "JOB_TYPES", "JobRequest", "Json", "ListSessionsRequest",
    "MAX_DATAGRAM_BYTES", "MAX_DURATION_S", "MAX_FRAME_BYTES", "MAX_ID_CHARS", "MAX_PATH_CHARS",
    "MAX_POSITION_S", "MAX_PROMPT_CHARS", "MAX_SESSION_CHARS", "OSC_PREFIX", "OSC_REPLY_ARGS",
    "OSC_REQUEST_ARGS", "OscArg", "PROTOCOL_VERSION", "PingRequest", "PlanEvent", "PlanMessage",
    "Pong", "Progress", "ProtocolError", "REQUEST_TYPES", "Received", "RedoRequest", "ReplyArg",
    "Request", "SERVER_MESSAGE_MODELS", "ServerMessage", "SessionMessage", "SessionsMessage",
    "State", "StemReady", "UndoRequest", "VideoCueRequest", "WIRE_CODES", "compact_osc_forms",
    "encode", "error_message", "job_of", "json_schema", "message_to_osc", "osc_to_message",
    "parse_request", "parse_server_message", "reply_args", "request_from_dict",
    "request_from_osc", "schema_text", "tokens_match", "wire_code",
]
