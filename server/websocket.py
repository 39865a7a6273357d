"""WebSocket transport (websockets' asyncio server): JSON text frames in, JSON text frames out.

Handshake checks block the two ways a web page could reach a local server: an Origin that is not
localhost (a page on some site) and a Host that is not a loopback name or the bound address (DNS
rebinding). When a token is configured, the client sends it as an ``Authorization: Bearer`` or
``X-Audio-Agent-Token`` header, or as a first {"type": "auth", "token": ...} message.
"""

from __future__ import annotations

import asyncio
import http
import ipaddress
import logging
import threading
import weakref
from typing import AsyncIterator, Callable
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from server import protocol as p
from server.loop_mailbox import LoopMailbox
from server.protocol import Connection, State, tokens_match

log = logging.getLogger("audio_agent.websocket")

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
# Frames between MAX_FRAME_BYTES and this are answered with a too_large error and the connection
# stays open; above it websockets itself closes the connection (close code 1009).
HARD_MAX_FRAME_BYTES = 1024 * 1024
# Server messages (a manifest of 64 events) are far below this; the client accepts up to it.
CLIENT_MAX_FRAME_BYTES = 16 * 1024 * 1024
# With a token configured, a connection that has not authenticated gets this long to send its
# auth message: an unauthenticated peer must not hold a connection open for free.
AUTH_TIMEOUT_S = 10.0
# A client that stops reading must not make the server hold its replies without limit: past this
# many encoded bytes waiting for it, the connection is closed with SLOW_CONSUMER_CLOSE_CODE
# (docs/protocol.md). A whole scene's messages (a manifest of 64 events, stems, progress) are
# well under it; the client's jobs still finish and are stored, and a resync gets the results.
MAX_OUTBOX_BYTES = 4 * 1024 * 1024
SLOW_CONSUMER_CLOSE_CODE = 4008
Sink = Callable[[p.ServerMessage], None]
Handle = Callable[[p.Request, Sink, str], None]  # (request, sink, client)


def _hostname(value: str) -> str:
    """'example.com:8765' / '[::1]:8765' / '127.0.0.1' -> bare lower-case host name ('' if
    unparseable, e.g. '[::1' — refused like any unknown name, not a 500). A Host header has no
    user info: 'evil.example:P@127.0.0.1' would parse as host 127.0.0.1, so it is refused."""
    if "@" in value:
        return ""
    try:
        return (urlsplit("//" + value.strip()).hostname or "").lower()
    except ValueError:
        return ""


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def host_allowed(host_header: str, *, bound_host: str) -> bool:
    name = _hostname(host_header)
    if name in LOOPBACK_NAMES or name == bound_host.lower():
        return True
    # Bound to every interface: a client may use any literal address of the machine. A hostname
    # is refused, since a rebinding attack always arrives with the attacker's hostname.
    return bound_host in ("0.0.0.0", "::", "") and _is_ip(name)


def origin_allowed(origin: str | None) -> bool:
    if origin is None:
        return True  # native clients (DAW scripts, the CLI) send no Origin
    try:
        parts = urlsplit(origin.strip())
        hostname = (parts.hostname or "").lower()
    except ValueError:  # 'http://[::1' and the like
        return False
    return parts.scheme in ("http", "https") and hostname in LOOPBACK_NAMES


def token_from_headers(request: Request) -> str | None:
    auth = request.headers.get_all("Authorization")
    if auth and auth[0].lower().startswith("bearer "):
        return auth[0][7:].strip()
    custom = request.headers.get_all("X-Audio-Agent-Token")
    return custom[0].strip() if custom else None


def _encode_or_error(message: p.ServerMessage) -> str:
    """Encode, or say why not: the client must never wait forever for a message that vanished."""
    try:
        return p.encode(message)
    except Exception as error:  # e.g. a NaN that JSON cannot carry
        log.exception("could not encode %r", message)
        return p.encode(p.error_message(error, request_id=message.id, job=p.job_of(message)))


class _Outbox(asyncio.Queue[str]):
    """A connection's encoded replies waiting to be sent, bounded by MAX_OUTBOX_BYTES. Used on
    the loop thread only (job threads hand messages over through the transport's LoopMailbox)."""

    def __init__(self, connection: ServerConnection, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._connection = connection
        self._loop = loop
        self.bytes_waiting = 0
        self.overflowed = False

    def put(self, text: str) -> None:  # type: ignore[override]
        if self.overflowed:
            return
        if self.bytes_waiting + len(text) > MAX_OUTBOX_BYTES:
            self.overflowed = True
            log.warning("closing a WebSocket client that stopped reading (%d bytes of replies waiting)",
                        self.bytes_waiting)
            self._loop.create_task(self._connection.close(
                SLOW_CONSUMER_CLOSE_CODE, "too many unread messages; read your replies"))
            return
        self.bytes_waiting += len(text)
        self.put_nowait(text)

    def task_done(self, text: str = "") -> None:  # type: ignore[override]
        self.bytes_waiting -= len(text)
        super().task_done()


class WebSocketTransport:
    auth_timeout_s = AUTH_TIMEOUT_S

    def __init__(self, *, handle: Handle, host: str, token: str | None = None) -> None:
        self._handle = handle
        self._host = host
        self._token = token
        # Connections whose handshake carried the right token. Weak, keyed by the object: a
        # handshake that passes here and then fails must not leave an entry (an id() would be
        # reused by a later, unauthenticated connection).
        self._authed: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        self.server: Server | None = None
        self._mailbox: LoopMailbox | None = None

    async def start(self, *, port: int) -> Server:
        self._mailbox = LoopMailbox(asyncio.get_running_loop())
        self.server = await serve(
            self._serve_connection,
            self._host,
            port,
            process_request=self._check_handshake,
            max_size=HARD_MAX_FRAME_BYTES,
            compression=None,  # frames are small; skip deflate and its memory per connection
        )
        return self.server

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(next(iter(self.server.sockets)).getsockname()[1])

    # ------------------------------------------------------------------ handshake
    def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        hosts = request.headers.get_all("Host")
        if len(hosts) != 1 or not host_allowed(hosts[0], bound_host=self._host):
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Host header not allowed\n")
        origins = request.headers.get_all("Origin")
        if len(origins) > 1 or not origin_allowed(origins[0] if origins else None):
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        if self._token is not None:
            given = token_from_headers(request)
            if given is not None and not tokens_match(given, self._token):
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "bad token\n")
            if given is not None:
                self._authed.add(connection)
        return None

    # ------------------------------------------------------------------ messages
    async def _serve_connection(self, connection: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        outbox = _Outbox(connection, loop)

        loop_thread = threading.get_ident()
        mailbox = self._mailbox
        assert mailbox is not None  # set by start(), which serves the connections

        def sink(message: p.ServerMessage) -> None:  # called from job threads and from the loop
            text = _encode_or_error(message)  # encoded here: off the loop for job messages
            if threading.get_ident() == loop_thread:
                # An answer made on the loop (accepted, pong, an error) goes in now: handed
                # over it waited one more loop pass, and under load every pass can wait
                # milliseconds for the interpreter lock held by planner/render threads.
                outbox.put(text)
            else:
                mailbox.post(outbox.put, text)

        sender = asyncio.create_task(self._send_all(connection, outbox))
        state = Connection(token=self._token, authenticated=connection in self._authed)
        client = f"ws:{connection.id}"
        try:
            async for frame in self._frames(connection, state):
                self._on_frame(frame, sink, state, client)
                # One frame at a time for everyone: a client with many frames buffered must not
                # keep the loop from the other connections.
                await asyncio.sleep(0)
                if state.state is State.CLOSING:
                    await asyncio.sleep(0)  # let the error reach the outbox before closing
                    await outbox.join()
                    await connection.close(1008, "unauthorized")
                    break
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            await connection.close(1008, "no auth message in time")
        finally:
            self._authed.discard(connection)
            await self._drain(outbox)
            sender.cancel()

    async def _frames(self, connection: ServerConnection, state: Connection) -> AsyncIterator[str | bytes]:
        """The connection's frames; before authentication the first must come in time."""
        if state.state is State.AWAITING_AUTH:
            yield await asyncio.wait_for(connection.recv(), self.auth_timeout_s)
        async for frame in connection:
            yield frame

    def _on_frame(self, frame: str | bytes, sink: Sink, state: Connection, client: str = "") -> None:
        """Handle one frame: the connection's state machine says what to answer and whether a
        request goes to the dispatcher (server.protocol.connection)."""
        try:
            received = state.receive(frame)
        except Exception as error:  # a parser surprise must cost one error reply, not the connection
            log.exception("could not parse a frame")
            sink(p.error_message(error))
            if state.state is State.AWAITING_AUTH:
                state.state = State.CLOSING
            return
        for reply in received.replies:
            sink(reply)
        if received.request is None:
            return
        try:
            self._handle(received.request, sink, client)
        except Exception as error:  # the dispatcher answers its own errors; this is a last guard
            log.exception("WebSocket request failed")
            sink(p.error_message(error, request_id=received.request.id))

    @staticmethod
    async def _send_all(connection: ServerConnection, outbox: "_Outbox") -> None:
        while True:
            text = await outbox.get()
            try:
                await connection.send(text)
            except ConnectionClosed:
                pass  # the client left; its jobs still finish and are stored
            finally:
                outbox.task_done(text)

    @staticmethod
    async def _drain(outbox: "_Outbox") -> None:
        # Give queued messages a moment to go out when the client closes first.
        try:
            await asyncio.wait_for(outbox.join(), timeout=0.5)
        except (asyncio.TimeoutError, Exception):
            pass

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
