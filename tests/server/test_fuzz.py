"""Our own fuzz suite: seeded, bounded batches of malformed OSC datagrams and WebSocket frames
against a real server on loopback (FakeEngine behind it), with four checks after every batch:

1. the server still answers ping on both transports;
2. no traceback was logged (a log record with exc_info, or the word 'Traceback');
3. every request that expects an answer got exactly one well-formed first answer (OSC: a reply
   datagram python-osc decodes into a known server message; WebSocket: a frame the client-side
   codec validates), and datagrams that must not be answered (reply-type addresses) were not;
4. the process's CPU returns to idle once the jobs the batch started are over: a request that
   starts a loop (the self-addressed reply ping-pong) keeps a core busy and fails here.

The generators are plain functions of a ``random.Random`` so the same seed gives the same
batch; benchmarks/fuzz_server.py runs them at a larger count and prints figures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pythonosc.osc_message import OscMessage
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server import app as app_module
from server import protocol as p
from server.app import AudioAgentServer
from server.osc import REPLY_ADDRESSES, build_datagram
from tests.server.conftest import ping_ok

OSC_KINDS = sorted(p.OSC_REQUEST_ARGS)
REQUEST_TYPES = ["ping", "generate", "edit", "undo", "redo", "cancel", "get_session", "list_sessions",
                 "auth", "video_cue", "nope", ""]
# Answers that open a request's reply stream. Later job messages (plan, progress, stem_ready,
# done, a job's error) carry the job id and are not counted as answers to a new frame.
FIRST_ANSWERS = {"pong", "session", "sessions", "cancel_ack", "auth_ok", "accepted"}
IDLE_WINDOW_S = 0.5
IDLE_CPU_S = 0.05  # idle measures ~0.001; the self-loop burned 0.12 (busy machine) to 0.5 s


def osc_string(text: str | bytes) -> bytes:
    data = (text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text) + b"\x00"
    return data + b"\x00" * (-len(data) % 4)


# ------------------------------------------------------------------------------ OSC generators
def _safe_int(rng: random.Random) -> int:
    # Never a valid port: a fuzzed reply_port must not send replies to some other program on
    # this machine (0 means "answer the sender"; the others are out of range or negative).
    return rng.choice([0, -1, 65536, 2**31 - 1, -(2**31)])


def _random_text(rng: random.Random, size: int) -> str:
    alphabet = "abc xyz/\\\"'{}[],:;\x00\x01\x7f\x9b\u00e9\u2028\ufffd\U0001f50a"
    return "".join(rng.choice(alphabet) for _ in range(size))


def raw_datagram(address: str, args: list[Any]) -> bytes:
    """An OSC message built by hand: unlike python-osc's builder it does not parse its own
    output, so strings holding NUL bytes or odd characters go out exactly as made."""
    tags, payload = ",", b""
    for value in args:
        if isinstance(value, int):
            tags, payload = tags + "i", payload + struct.pack(">i", value)
        elif isinstance(value, float):
            tags, payload = tags + "f", payload + struct.pack(">f", value)
        else:
            tags, payload = tags + "s", payload + osc_string(str(value))
    return osc_string(address) + osc_string(tags) + payload


def _valid_osc(rng: random.Random, kind: str) -> bytes:
    """A well-formed request datagram of ``kind`` answered at its sender (reply_port 0)."""
    values = {"id": f"f{rng.randrange(10**6)}", "session": f"fz{rng.randrange(4)}", "prompt": "rain, wind",
              "duration_s": 2.0, "anchor_s": 0.0, "instruction": "e1: rain", "job": "j0",
              "json": json.dumps({"v": 1, "type": "ping", "id": "in-json"}), "reply_port": 0,
              # video_cue: no such file (refused before a job), text generator ("" = none)
              "video_path": "/nonexistent/fuzz.mp4", "start_s": 0.0, "end_s": 1.0, "hint": "",
              "checkpoint": "", "vta_lambda": ""}
    return build_datagram(p.OSC_PREFIX + kind, [values[name] for name, _ in p.OSC_REQUEST_ARGS[kind]])


def osc_random_bytes(rng: random.Random, server_port: int) -> bytes:
    return rng.randbytes(rng.randrange(0, 600))


def osc_valid_prefix(rng: random.Random, server_port: int) -> bytes:
    return osc_string(p.OSC_PREFIX + rng.choice(OSC_KINDS)) + rng.randbytes(rng.randrange(0, 200))


def osc_truncated(rng: random.Random, server_port: int) -> bytes:
    datagram = _valid_osc(rng, rng.choice(OSC_KINDS))
    return datagram[:rng.randrange(1, len(datagram))]


def osc_flipped(rng: random.Random, server_port: int) -> bytes:
    datagram = bytearray(_valid_osc(rng, rng.choice(OSC_KINDS)))
    for _ in range(rng.randrange(1, 5)):
        # Not the trailing reply_port word: a flip there could name another program's port.
        datagram[rng.randrange(0, len(datagram) - 4)] = rng.randrange(256)
    return bytes(datagram)


def osc_odd_tags(rng: random.Random, server_port: int) -> bytes:
    tags = "," + "".join(rng.choice("ifsbhdtTFNI[]qxS\x00\x7f,") for _ in range(rng.randrange(0, 40)))
    return (osc_string(p.OSC_PREFIX + rng.choice(OSC_KINDS)) + osc_string(tags.replace("\x00", "n"))
            + rng.randbytes(rng.randrange(0, 160)))


def osc_wrong_args(rng: random.Random, server_port: int) -> bytes:
    makers: list[Callable[[], Any]] = [
        lambda: _safe_int(rng), lambda: rng.uniform(-1e30, 1e30), lambda: float("nan"), lambda: float("-inf"),
        lambda: _random_text(rng, rng.randrange(0, 40)), lambda: "",
    ]
    args = [rng.choice(makers)() for _ in range(rng.randrange(0, 8))]
    return raw_datagram(p.OSC_PREFIX + rng.choice(OSC_KINDS + ["nope", "../ping"]), args)


def osc_huge_strings(rng: random.Random, server_port: int) -> bytes:
    size = rng.choice([200, 2_000, 7_900, 9_000, 30_000])  # around and over MAX_DATAGRAM_BYTES
    kind = rng.choice(["generate", "ping", "request", "edit"])
    spec = p.OSC_REQUEST_ARGS[kind]
    args = ["x" * size if tag == "s" else (0 if name == "reply_port" else 1.0) for name, tag in spec]
    return build_datagram(p.OSC_PREFIX + kind, args)


def osc_self_reply(rng: random.Random, server_port: int) -> bytes:
    """A request whose reply_port names the server's own OSC port: answered at the sender, once."""
    kind = rng.choice(["ping", "list_sessions", "get_session", "generate"])
    values = {"id": "self", "session": "s", "prompt": "rain", "duration_s": 2.0, "anchor_s": 0.0,
              "reply_port": server_port}
    return build_datagram(p.OSC_PREFIX + kind, [values[name] for name, _ in p.OSC_REQUEST_ARGS[kind]])


def osc_reply_address(rng: random.Random, server_port: int) -> bytes:
    """Somebody's reply (or ours looped back): must never be answered."""
    return build_datagram(rng.choice(sorted(REPLY_ADDRESSES)), ["x", rng.choice([0, "y", 1.5])])


OSC_GENERATORS = [osc_random_bytes, osc_valid_prefix, osc_truncated, osc_flipped, osc_odd_tags,
                  osc_wrong_args, osc_huge_strings, osc_self_reply, osc_reply_address]


def osc_address_of(datagram: bytes) -> str:
    end = datagram.find(b"\x00")
    return datagram[:end].decode("utf-8", "replace") if end > 0 else ""


# ------------------------------------------------------------------------------ WebSocket generators
def _random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(8 if depth < 4 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**53, 10**30, rng.randrange(-10**6, 10**6)])
    if choice == 3:
        return rng.choice([0.0, -0.0, 1e308, -1e-308, rng.uniform(-1e6, 1e6)])
    if choice == 4:
        return _random_text(rng, rng.randrange(0, 30))
    if choice in (5, 6):
        return {_random_text(rng, rng.randrange(0, 8)): _random_json(rng, depth + 1)
                for _ in range(rng.randrange(0, 5))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randrange(0, 5))]


def ws_random_json(rng: random.Random) -> str | bytes:
    return json.dumps(_random_json(rng))


def ws_wrong_types(rng: random.Random) -> str | bytes:
    """Request-shaped objects whose fields hold the wrong kinds of value."""
    message: dict[str, Any] = {"v": rng.choice([1, 1, "1", 2, None, 1.0]), "type": rng.choice(REQUEST_TYPES),
                               "id": rng.choice([f"w{rng.randrange(10**6)}", 7, None, [], {"a": 1}])}
    for name in rng.sample(["session", "prompt", "duration_s", "anchor_s", "instruction", "change", "job",
                            "backend", "token", "video_path", "notify_osc_port", "seed", "extra"],
                           rng.randrange(0, 6)):
        message[name] = _random_json(rng, 2)
    return json.dumps(message)


def ws_valid_ish(rng: random.Random) -> str | bytes:
    """Real requests, sometimes with one field off: some are accepted and start jobs."""
    message: dict[str, Any] = rng.choice([
        {"type": "ping"}, {"type": "list_sessions"}, {"type": "get_session", "session": f"fz{rng.randrange(3)}"},
        {"type": "generate", "session": f"fz{rng.randrange(3)}", "prompt": "rain, a door", "duration_s": 2.0},
        {"type": "edit", "session": f"fz{rng.randrange(3)}", "instruction": "e1: wind"},
        {"type": "undo", "session": f"fz{rng.randrange(3)}"},
        {"type": "cancel", "job": "j" + "0" * 12},
    ])
    message = {"v": 1, "id": f"ok{rng.randrange(10**6)}", **message}
    if rng.random() < 0.5:
        key = rng.choice(sorted(message))
        message[key] = _random_json(rng, 3)
    return json.dumps(message)


def ws_truncated(rng: random.Random) -> str | bytes:
    text = json.dumps({"v": 1, "type": "generate", "id": "t", "session": "s", "prompt": "rain", "duration_s": 2})
    return text[:rng.randrange(0, len(text))]


def ws_deep_nesting(rng: random.Random) -> str | bytes:
    depth = rng.choice([100, 5_000, 30_000])
    inner = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth
    return '{"v":1,"type":"ping","id":"deep","x":' + inner + "}"


def ws_surrogates(rng: random.Random) -> str | bytes:
    lone = rng.choice(["\\ud800", "\\udfff", "\\udc00\\ud800", "a\\ud83d", "\\ud83d\\ude00"])
    where = rng.randrange(3)
    if where == 0:
        return '{"v":1,"type":"ping","id":"' + lone + '"}'
    if where == 1:
        return '{"v":1,"type":"generate","id":"s","session":"' + lone + '","prompt":"x","duration_s":2}'
    return '{"v":1,"type":"ping","id":"k","' + lone + '":1}'


def ws_huge(rng: random.Random) -> str | bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return json.dumps({"v": 1, "type": "ping", "id": "i" * rng.choice([129, 10_000, 60_000])})
    if kind == 1:  # an integer too long for Python's int-from-string limit
        return '{"v":1,"type":"ping","id":' + "9" * rng.choice([400, 5_000, 20_000]) + "}"
    if kind == 2:  # over MAX_FRAME_BYTES, under the hard limit: answered too_large, kept open
        return json.dumps({"v": 1, "type": "ping", "id": "big", "pad": "x" * 200_000})
    return '{"v":1,"type":"generate","id":"n","session":"s","prompt":"x","duration_s":' + \
        rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-0"]) + "}"


def ws_binary(rng: random.Random) -> str | bytes:
    if rng.random() < 0.5:
        return rng.randbytes(rng.randrange(0, 300))
    return json.dumps({"v": 1, "type": "ping", "id": "bin"}).encode()


WS_GENERATORS = [ws_random_json, ws_wrong_types, ws_valid_ish, ws_truncated, ws_deep_nesting, ws_surrogates,
                 ws_huge, ws_binary]


# ------------------------------------------------------------------------------ batches
@dataclass
class BatchResult:
    sent: int = 0
    answered: int = 0
    expected: int = 0
    unanswered: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # answers to what must not be answered


def _well_formed_osc(data: bytes) -> str | None:
    """None when ``data`` is a reply datagram a client can decode, else what is wrong."""
    try:
        message = OscMessage(data)
        if message.address not in REPLY_ADDRESSES:
            return f"unexpected address {message.address!r}"
        decoded = p.osc_to_message(message.address, list(message.params))
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return f"{type(error).__name__}: {error}"
    return None if isinstance(decoded, dict) and decoded.get("type") else "no type"


def osc_batch(server_port: int, rng: random.Random, count: int, *, timeout_s: float = 3.0) -> BatchResult:
    """Send ``count`` fuzzed datagrams, each from its own socket (so its first reply is known to
    be its own), and wait for the first reply of each one that expects an answer."""
    result = BatchResult()
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # sends what must not be answered
    quiet.bind(("127.0.0.1", 0))
    try:
        for _ in range(count):
            generator = rng.choice(OSC_GENERATORS)
            datagram = generator(rng, server_port)
            result.sent += 1
            if osc_address_of(datagram) in REPLY_ADDRESSES:
                quiet.sendto(datagram, ("127.0.0.1", server_port))
                continue
            result.expected += 1
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.settimeout(timeout_s)
                try:
                    sock.sendto(datagram, ("127.0.0.1", server_port))
                except OSError:  # over the loopback datagram limit: nothing was sent
                    result.expected -= 1
                    continue
                try:
                    reply, _ = sock.recvfrom(65535)
                except socket.timeout:
                    result.unanswered.append(f"{generator.__name__}: {datagram[:80]!r}")
                    continue
            result.answered += 1
            problem = _well_formed_osc(reply)
            if problem:
                result.malformed.append(f"{generator.__name__}: {problem}")
        quiet.settimeout(0.2)
        try:
            data, _ = quiet.recvfrom(65535)
            result.unexpected.append(repr(data[:80]))
        except socket.timeout:
            pass
    finally:
        quiet.close()
    return result


async def _ws_batch(port: int, frames: list[tuple[str, str | bytes]], timeout_s: float) -> BatchResult:
    result = BatchResult(sent=len(frames), expected=len(frames))
    async with connect(f"ws://127.0.0.1:{port}", max_size=2**24) as ws:
        for _, frame in frames:
            await ws.send(frame)
        deadline = time.monotonic() + timeout_s
        try:
            while result.answered < result.expected:
                text = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
                try:
                    message = p.parse_server_message(text)
                except Exception as error:  # noqa: BLE001 - the finding
                    result.malformed.append(f"{type(error).__name__}: {str(text)[:120]}")
                    continue
                if message.type in FIRST_ANSWERS or (message.type == "error" and message.job is None):
                    result.answered += 1
        except (asyncio.TimeoutError, ConnectionClosed) as error:
            close = f" (closed {ws.close_code} {ws.close_reason!r})" if isinstance(error, ConnectionClosed) else ""
            result.unanswered.append(f"{result.expected - result.answered} of {result.expected} frames{close}")
    return result


def ws_batch(port: int, rng: random.Random, count: int, *, timeout_s: float = 10.0) -> BatchResult:
    """Send ``count`` fuzzed frames on one connection, then read until each has its first answer.
    Every frame here is under the hard frame limit, so the connection must stay open."""
    frames = []
    for _ in range(count):
        generator = rng.choice(WS_GENERATORS)
        frames.append((generator.__name__, generator(rng)))
    return asyncio.run(_ws_batch(port, frames, timeout_s))


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    return [f"{record.name}: {record.getMessage()[:200]}" for record in records
            if record.exc_info or "Traceback" in record.getMessage()]


def settle(server: AudioAgentServer, *, timeout_s: float = 20.0) -> None:
    """Wait for the jobs a batch started and for the start-up warm-up thread: the idle check
    measures what is left running after them."""
    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if thread.name == "aa-warm":
            thread.join(max(0.0, deadline - time.monotonic()))
    while server.dispatcher.jobs.active() and time.monotonic() < deadline:
        time.sleep(0.02)


def idle_cpu_s(window_s: float = IDLE_WINDOW_S) -> float:
    """CPU seconds this process (the server's threads live in it) used over ``window_s``."""
    start = time.process_time()
    time.sleep(window_s)
    return time.process_time() - start


# ------------------------------------------------------------------------------ the test
SEED = 1207
BATCHES = 3
OSC_PER_BATCH = 60
WS_PER_BATCH = 60


def test_fuzzed_datagrams_and_frames_leave_the_server_answering_quiet_and_idle(start_server, caplog,
                                                                             monkeypatch):
    # The FakeEngine needs no render warm-up; skipping it keeps seconds of imports out of the run.
    warmed = threading.Event()
    warmed.set()
    monkeypatch.setattr(app_module, "_warmed", warmed)
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="audio_agent")
    server = start_server()
    rng = random.Random(SEED)
    started = time.monotonic()
    for batch in range(BATCHES):
        osc = osc_batch(server.osc_port, rng, OSC_PER_BATCH)
        ws = ws_batch(server.ws_port, rng, WS_PER_BATCH)
        where = f"batch {batch} (seed {SEED})"
        assert osc.expected > 0 and ws.expected > 0
        assert not osc.unanswered and osc.answered == osc.expected, (where, osc.unanswered)
        assert not osc.malformed and not osc.unexpected, (where, osc.malformed, osc.unexpected)
        assert not ws.unanswered and ws.answered == ws.expected, (where, ws.unanswered)
        assert not ws.malformed, (where, ws.malformed)
        assert ping_ok(server), where
        assert not tracebacks(caplog.records), (where, tracebacks(caplog.records))
        settle(server)
        busy_s = idle_cpu_s()
        assert busy_s < IDLE_CPU_S, (where, busy_s)
    assert time.monotonic() - started < 60  # bounded: a hang shows as a failure, not a stuck run


def test_generators_are_deterministic_and_cover_every_kind():
    first = [g(random.Random(5), 9000) for g in OSC_GENERATORS] + [g(random.Random(5)) for g in WS_GENERATORS]
    again = [g(random.Random(5), 9000) for g in OSC_GENERATORS] + [g(random.Random(5)) for g in WS_GENERATORS]
    assert first == again
    assert struct.unpack(">i", _valid_osc(random.Random(1), "ping")[-4:]) == (0,)  # answered at the sender
    assert any(isinstance(frame, bytes) for frame in (ws_binary(random.Random(s)) for s in range(10)))
