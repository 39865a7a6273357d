"""Wire error codes and the protocol's own error.

Engine errors carry a stable ``code`` (engine/errors.py); the wire sends the same words, so the
one table here is the list of codes a client may see. A code not in it (an engine error added
without a wire code) is sent as ``internal`` rather than leak a name clients cannot handle.
"""

from __future__ import annotations

import enum

from engine.errors import InvalidInputError


class ErrorCode(str, enum.Enum):
    # engine errors (AudioAgentError.code)
    INTERNAL = "internal"
    INVALID_INPUT = "invalid_input"
    INVALID_PLAN = "invalid_plan"
    PLANNER_FAILED = "planner_failed"
    GENERATOR_FAILED = "generator_failed"
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    BUSY = "busy"
    TIMEOUT = "timeout"
    CONFLICT = "conflict"
    STORAGE_ERROR = "storage_error"
    STORAGE_FULL = "storage_full"
    # protocol errors (raised by the parser and the transports)
    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_FIELD = "unknown_field"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    UNAVAILABLE = "unavailable"


WIRE_CODES: frozenset[str] = frozenset(code.value for code in ErrorCode)


def wire_code(engine_code: str) -> str:
    return engine_code if engine_code in WIRE_CODES else ErrorCode.INTERNAL.value


class ProtocolError(InvalidInputError):
    """A request that cannot be parsed or breaks a protocol rule; answered with an error message.

    ``reply_port``: for OSC, the port the client asked replies on (0: its source port), found
    even when the request itself was refused, so the error reaches where the client listens."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | str = ErrorCode.BAD_REQUEST,
        field: str | None = None,
        value: object = None,
        request_id: str = "",
        reply_port: int = 0,
    ) -> None:
        super().__init__(message, field=field, value=value)
        self.code = code.value if isinstance(code, ErrorCode) else code
        self.request_id = request_id
        self.reply_port = reply_port
