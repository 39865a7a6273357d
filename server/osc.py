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
import socket
import threading
import time
from typing import Callable, Iterable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from server import protocol as p
from server.loop_mailbox import LoopMailbox

log = logging.getLogger("audio_agent.osc")

# The largest reply datagram we send. macOS refuses UDP datagrams over net.inet.udp.maxdgram
# (9216 bytes by default) even on loopback, where Linux and Windows take ~64 KiB; a bigger reply
# would vanish there without a trace. Oversized plan/done replies are sent in a compact form
# (protocol.compact_osc_forms); anything else oversized becomes a too_large error.
MAX_UDP_PAYLOAD = 9216
# Type tags python-osc decodes (a wrong one for a field is then refused by name). Any other tag
# is refused before decoding: python-osc logs one warning per unknown tag and skips it without
# consuming its bytes, so an 8 KiB datagram of odd tags cost ~0.5 MB of log and misread every
# later argument.
ACCEPTED_TYPE_TAGS = frozenset("ihfdsbrmtTFN[]")
# Addresses the server itself sends. A datagram to one of them is somebody's reply (or our own,
# looped back): answering it could start an endless error ping-pong, so it is dropped.
REPLY_ADDRESSES = frozenset(
    p.OSC_PREFIX + model.model_fields["type"].default for model in p.SERVER_MESSAGE_MODELS
)
Sink = Callable[[p.ServerMessage], None]
Handle = Callable[[p.Request, Sink, str], None]  # (request, sink, client)


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


def plain_host(host: str) -> str:
    """An address as the rules compare it: no IPv6 zone, and an IPv4-mapped IPv6 address
    (what a dual-stack socket bound to '::' reports for IPv4 senders) as plain IPv4."""
    bare = host.split("%")[0]
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(plain_host(host)).is_loopback
    except ValueError:
        return host == "localhost"


class RateLimitedLog:
    """At most ``burst`` lines per ``window_s`` for each kind of warning; the rest are counted
    and reported in one line when the window ends. A flood of bad datagrams costs a few lines."""

    def __init__(self, logger: logging.Logger, *, burst: int = 5, window_s: float = 10.0) -> None:
        self._log = logger
        self._burst = burst
        self._window_s = window_s
        self._windows: dict[str, tuple[float, int]] = {}  # kind -> (window start, lines in it)

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        start, count = self._windows.get(kind, (now, 0))
        if now - start >= self._window_s:
            if count > self._burst:
                self._log.warning("%d more %r warnings in the last %.0f s", count - self._burst, kind,
                                  now - start)
            start, count = now, 0
        count += 1
        self._windows[kind] = (start, count)
        if count <= self._burst:
            self._log.warning(message, *args)


class OscProtocol(asyncio.DatagramProtocol):
    """The server's OSC endpoint. ``allow`` lists extra client addresses accepted besides
    loopback; datagrams from anyone else are dropped without a reply (no amplification)."""

    def __init__(self, *, handle: Handle, allow: Iterable[str] = (), loop: asyncio.AbstractEventLoop) -> None:
        self._handle = handle
        self._allow = {plain_host(str(ipaddress.ip_address(a))) for a in allow}
        self._mailbox = LoopMailbox(loop)
        self.transport: asyncio.DatagramTransport | None = None
        self._loop_thread = -1
        self.own_port = 0
        self._own_host = ""
        self._warn = RateLimitedLog(log)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop_thread = threading.get_ident()
        sockname = transport.get_extra_info("sockname")
        self._own_host, self.own_port = plain_host(str(sockname[0])), int(sockname[1])

    def allowed(self, host: str) -> bool:
        host = plain_host(host)
        return is_loopback(host) or host in self._allow

    def is_own(self, host: str, port: int) -> bool:
        """Whether (host, port) is this server's own OSC socket (as a sender or a reply target)."""
        if port != self.own_port:
            return False
        host = plain_host(host)
        return is_loopback(host) or host == self._own_host or self._own_host in ("0.0.0.0", "::")

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
                self._mailbox.post(self._sendto, datagram, address)

        return send

    def _sendto(self, datagram: bytes, address: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(datagram, address)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        host, port = addr[0], addr[1]
        if not self.allowed(host):
            self._warn.warning("not allowed", "dropped OSC datagram from %s (not in --osc-allow)", host)
            return
        if self.is_own(host, port):
            self._warn.warning("own", "dropped an OSC datagram sent from this server's own socket")
            return
        if port == 0 or _address_of(data) in REPLY_ADDRESSES:
            # A reply (ours looped back, or another server's) is never answered: no ping-pong.
            self._warn.warning("reply", "dropped an OSC reply-type datagram from %s:%d", host, port)
            return
        reply_to = self.sender((host, port))
        try:
            request, reply_port = self._decode(data)
            if reply_port and self.is_own(host, reply_port):
                raise p.ProtocolError(
                    f"reply_port={reply_port}: that is this server's own OSC port; name the port "
                    "your client listens on (or 0 to be answered at the sending port)",
                    code=p.ErrorCode.INVALID_INPUT, field="reply_port", request_id=request.id,
                )
        except p.ProtocolError as error:
            target_port = error.reply_port if error.reply_port and not self.is_own(host, error.reply_port) else 0
            self._warn.warning("bad datagram", "refused an OSC datagram from %s: %s", host, error.message[:200])
            (self.sender((host, target_port)) if target_port else reply_to)(p.error_message(error))
            return
        except Exception as error:  # a decoder surprise still gets an answer; keep serving
            log.exception("could not decode an OSC datagram")
            reply_to(p.error_message(error))
            return
        sink = self.sender((host, reply_port)) if reply_port else reply_to
        try:
            self._handle(request, sink, f"osc:{plain_host(host)}:{port}")
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
        _check_type_tags(data)
        try:
            message = OscMessage(data)
            address, params = message.address, list(message.params)
        except Exception as error:  # python-osc raises ParseError, but odd bytes raise others too
            raise p.ProtocolError(f"malformed OSC datagram: {error}", code="bad_request") from None
        return p.request_from_osc(address, params)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away: nothing to do, keep serving.
        log.debug("OSC socket error: %s", exc)


def _address_of(data: bytes) -> str:
    """The OSC address of a datagram, or '' when it has none that can be read."""
    try:
        address, _ = osc_types.get_string(data, 0)
    except Exception:  # osc_types raises ParseError, odd bytes others
        return ""
    return address


def _check_type_tags(data: bytes) -> None:
    """Refuse a datagram whose type tag string names a type our requests never carry."""
    try:
        _, index = osc_types.get_string(data, 0)
        if index >= len(data):
            return
        tags, _ = osc_types.get_string(data, index)
    except Exception as error:
        raise p.ProtocolError(f"malformed OSC datagram: {error}", code="bad_request") from None
    unknown = sorted(set(tags[1:]) - ACCEPTED_TYPE_TAGS) if tags.startswith(",") else []
    if unknown:
        shown = "".join(unknown)[:16]
        raise p.ProtocolError(
            f"unknown OSC type tags {shown!r}; requests use i (int), f (float) and s (string)",
            code="bad_request", field="type_tags",
        )


def _bind_socket(host: str, port: int) -> socket.socket:
    """A UDP socket on (host, port). On '::' it is dual-stack (IPV6_V6ONLY off) everywhere, so
    IPv4 clients, loopback included, reach a server bound to all IPv6 addresses too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6 and host in ("::", "::0"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def start_osc(
    *, host: str, port: int, handle: Handle, allow: Iterable[str] = ()
) -> tuple[asyncio.DatagramTransport, OscProtocol]:
    loop = asyncio.get_running_loop()
    protocol = OscProtocol(handle=handle, allow=allow, loop=loop)
    if host in ("localhost", ""):
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=(host, port))
    else:
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=_bind_socket(host, port))
    return transport, protocol  # type: ignore[return-value]
