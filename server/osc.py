"""OSC over UDP: datagrams in, protocol requests to the dispatcher, typed OSC replies out.

python-osc decodes and encodes the datagrams; the argument tables live in server/protocol/osc_map.py.
Replies go to the port the client names (its last argument) on the sender's address, or back to
the sender's own address and port when it names 0. A datagram that cannot be decoded is answered
with /audioagent/error to its sender, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from typing import Callable, Iterable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from server import protocol as p

log = logging.getLogger("audio_agent.osc")

# The largest reply datagram we send. macOS refuses UDP datagrams over net.inet.udp.maxdgram
# (9216 bytes by default) even on loopback, where Linux and Windows take ~64 KiB; a bigger reply
# would vanish there without a trace. Oversized plan/done replies are sent in a compact form
# (protocol.compact_osc_forms); anything else oversized becomes a too_large error.
MAX_UDP_PAYLOAD = 9216
Sink = Callable[[p.ServerMessage], None]
Handle = Callable[[p.Request, Sink], None]


def build_datagram(address: str, args: Iterable[p.OscArg]) -> bytes:
    builder = OscMessageBuilder(address=address)
    for value in args:
        if isinstance(value, bool):
            builder.add_arg(int(value), "i")
        elif isinstance(value, int):
            builder.add_arg(value, "i")
        elif isinstance(value, float):
            builder.add_arg(value, "f")
        else:
            builder.add_arg(str(value), "s")
    return builder.build().dgram


def encode_message(message: p.ServerMessage) -> bytes:
    """A server message model -> one OSC datagram (see protocol.message_to_osc)."""
    address, args = p.message_to_osc(message)
    datagram = build_datagram(address, args)
    if len(datagram) > MAX_UDP_PAYLOAD:
        for address, args in p.compact_osc_forms(message):
            datagram = build_datagram(address, args)
            if len(datagram) <= MAX_UDP_PAYLOAD:
                return datagram
    if len(datagram) > MAX_UDP_PAYLOAD:
        error = p.ErrorMessage(
            id=message.id, code=p.ErrorCode.TOO_LARGE.value, field=None, job=p.job_of(message),
            message=f"{address} would be {len(datagram)} bytes, over the {MAX_UDP_PAYLOAD}-byte OSC reply "
                    "limit; ask over WebSocket (audio-agent client) instead",
        )
        address, args = p.message_to_osc(error)
        datagram = build_datagram(address, args)
    return datagram


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


class OscProtocol(asyncio.DatagramProtocol):
    """The server's OSC endpoint. ``allow`` lists extra client addresses accepted besides
    loopback; datagrams from anyone else are dropped without a reply (no amplification)."""

    def __init__(self, *, handle: Handle, allow: Iterable[str] = (), loop: asyncio.AbstractEventLoop) -> None:
        self._handle = handle
        self._allow = {str(ipaddress.ip_address(a)) for a in allow}
        self._loop = loop
        self.transport: asyncio.DatagramTransport | None = None
        self._loop_thread = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop_thread = threading.get_ident()

    def allowed(self, host: str) -> bool:
        return is_loopback(host) or host in self._allow

    def sender(self, address: tuple[str, int]) -> Sink:
        """A thread-safe sink sending each message as one datagram to ``address``."""

        def send(message: p.ServerMessage) -> None:
            try:
                datagram = encode_message(message)
            except Exception as error:  # a bad message must not kill the job thread that sends it
                log.exception("could not encode %r", message)
                fallback = p.error_message(error, request_id=message.id)
                datagram = encode_message(fallback)
            if threading.get_ident() == self._loop_thread:
                self._sendto(datagram, address)  # answer now, not after the handler returns
            else:
                self._loop.call_soon_threadsafe(self._sendto, datagram, address)

        return send

    def _sendto(self, datagram: bytes, address: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(datagram, address)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        host, port = addr[0], addr[1]
        if not self.allowed(host):
            log.warning("dropped OSC datagram from %s (not in --osc-allow)", host)
            return
        reply_to = self.sender((host, port))
        try:
            request, reply_port = self._decode(data)
        except p.ProtocolError as error:
            (self.sender((host, error.reply_port)) if error.reply_port else reply_to)(p.error_message(error))
            return
        except Exception as error:  # a decoder surprise still gets an answer; keep serving
            log.exception("could not decode an OSC datagram")
            reply_to(p.error_message(error))
            return
        sink = self.sender((host, reply_port)) if reply_port else reply_to
        try:
            self._handle(request, sink)
        except Exception as error:  # the dispatcher answers its own errors; this is a last guard
            log.exception("OSC request failed")
            sink(p.error_message(error, request_id=request.id))

    @staticmethod
    def _decode(data: bytes) -> tuple[p.Request, int]:
        if len(data) > p.MAX_DATAGRAM_BYTES:
            raise p.ProtocolError(
                f"datagram is {len(data)} bytes; the limit is {p.MAX_DATAGRAM_BYTES}", code="too_large"
            )
        if data.startswith(b"#bundle"):
            raise p.ProtocolError("OSC bundles are not accepted; send one message per datagram")
        try:
            message = OscMessage(data)
            address, params = message.address, list(message.params)
        except Exception as error:  # python-osc raises ParseError, but odd bytes raise others too
            raise p.ProtocolError(f"malformed OSC datagram: {error}", code="bad_request") from None
        return p.request_from_osc(address, params)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away: nothing to do, keep serving.
        log.debug("OSC socket error: %s", exc)


async def start_osc(
    *, host: str, port: int, handle: Handle, allow: Iterable[str] = ()
) -> tuple[asyncio.DatagramTransport, OscProtocol]:
    loop = asyncio.get_running_loop()
    protocol = OscProtocol(handle=handle, allow=allow, loop=loop)
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=(host, port))
    return transport, protocol  # type: ignore[return-value]
