"""A client connection's authentication state as a small sans-I/O state machine.

The websockets habit: a connection is an object with an explicit ``State`` that takes frames in
and says what to do (answer, dispatch, close), so every rule is tested with strings alone and
the transport (server/websocket.py) only moves bytes. OSC has no connections: each datagram
stands alone behind an address allowlist, so it needs none of this.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field

from server.protocol.codec import error_message, parse_request
from server.protocol.errors import ErrorCode, ProtocolError
from server.protocol.messages import AuthOk, AuthRequest, ErrorMessage, Request, ServerMessage


class State(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"  # a token is configured and none was shown yet
    OPEN = "open"  # requests are dispatched
    CLOSING = "closing"  # the peer failed to authenticate: send the replies, then close


def tokens_match(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass
class Received:
    """What one frame asks of the transport: send ``replies``, then dispatch ``request``."""

    replies: list[ServerMessage] = field(default_factory=list)
    request: Request | None = None


class Connection:
    """One client's protocol state. ``token``: the server's token (None: no auth needed);
    ``authenticated``: the handshake already carried the right token."""

    def __init__(self, *, token: str | None, authenticated: bool = False) -> None:
        self.token = token
        self.state = State.OPEN if token is None or authenticated else State.AWAITING_AUTH

    def receive(self, frame: str | bytes) -> Received:
        """Handle one frame. Before authentication anything but a valid auth message moves the
        connection to CLOSING (after its error reply)."""
        if self.state is State.CLOSING:
            return Received()
        try:
            request = parse_request(frame)
        except ProtocolError as error:
            return self._refused(error_message(error))
        if isinstance(request, AuthRequest):
            if self.token is None or tokens_match(request.token, self.token):
                self.state = State.OPEN
                return Received([AuthOk(id=request.id)])
            self.state = State.CLOSING
            return Received([ErrorMessage(id=request.id, code=ErrorCode.UNAUTHORIZED.value,
                                          message="bad token", field="token")])
        if self.state is State.AWAITING_AUTH:
            self.state = State.CLOSING
            return Received([ErrorMessage(
                id=request.id, code=ErrorCode.UNAUTHORIZED.value, field="token",
                message="this server needs a token: send it as a header or a first auth message",
            )])
        return Received(request=request)

    def _refused(self, reply: ErrorMessage) -> Received:
        if self.state is State.AWAITING_AUTH:
            self.state = State.CLOSING
        return Received([reply])
