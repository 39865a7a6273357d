"""Requests that once looped, flooded, stalled or silenced the server, each against a real server
on loopback through real sockets. Every test here failed before the fix it names."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from engine.debris import TMP_GRACE_S
from server import websocket as ws_module
from server.osc import OscProtocol, build_datagram
from tests.server.conftest import collect, ping_ok, request, ws_call
from tests.server.test_robustness import osc_string


def _cpu_busy_s(window_s: float = 1.0) -> float:
    """CPU seconds this process (the server's threads live in it) used over ``window_s``."""
    start = time.process_time()
    time.sleep(window_s)
    return time.process_time() - start


# 1 ------------------------------------------------------------------------ reply loops
def test_a_reply_port_naming_the_server_itself_starts_no_loop(start_server, osc_peer):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/ping", "loop", server.osc_port)
    address, args = peer.recv()  # answered at the sender's own port, with the reason
    assert address == "/audioagent/error" and args[3] == "reply_port"
    assert "own OSC port" in args[2]
    assert _cpu_busy_s() < 0.3  # idle: nothing bounces between the server and itself
    assert ping_ok(server)


def test_reply_type_datagrams_and_the_servers_own_socket_are_never_answered(start_server, osc_peer):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.sock.settimeout(0.5)
    for address in ("/audioagent/error", "/audioagent/pong", "/audioagent/stem_ready"):
        peer.send(address, "x", "y")
        with pytest.raises(socket.timeout):
            peer.recv()
    # A datagram that arrives from the server's own address and port is dropped as well.
    assert server.osc is not None and server.osc.is_own("127.0.0.1", server.osc_port)
    assert not server.osc.is_own("127.0.0.1", peer.port)
    assert _cpu_busy_s(0.5) < 0.2


def test_a_websocket_notify_port_naming_the_servers_osc_port_is_refused(start_server):
    server = start_server()
    messages = ws_call(server.ws_port, request("generate", session="s", prompt="rain", duration_s=2.0,
                                               notify_osc_port=server.osc_port))
    assert messages[-1]["type"] == "error" and messages[-1]["field"] == "notify_osc_port"
    assert _cpu_busy_s(0.5) < 0.2


# 2 ------------------------------------------------------------------------ lone surrogates
def test_a_lone_surrogate_id_is_answered_on_both_transports(start_server, osc_peer):
    server = start_server()
    frame = '{"v":1,"type":"ping","id":"\\ud800"}'

    async def exchange() -> list[dict]:
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            await ws.send(frame)
            first = await collect(ws)
            await ws.send(json.dumps(request("ping", id="after")))  # the connection is still open
            return first + await collect(ws)

    messages = asyncio.run(exchange())
    assert messages[0]["type"] == "error" and messages[0]["code"] == "bad_json"
    assert "surrogate" in messages[0]["message"] and messages[0]["id"] == "\ufffd"
    assert messages[-1] == {**messages[-1], "type": "pong", "id": "after"}
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/request", frame, 0)
    address, args = peer.recv()
    assert address == "/audioagent/error" and args[1] == "bad_json"


# 3 ------------------------------------------------------------------------ IPv6 hosts
def test_a_server_on_all_ipv6_addresses_still_serves_ipv4_osc(tmp_path, osc_peer):
    from server.app import AudioAgentServer, ServerConfig
    from tests.server.conftest import FakeEngine

    config = ServerConfig(host="::", ws_port=0, osc_port=0, data_dir=tmp_path / "data", token="t")
    with AudioAgentServer(config, engine=FakeEngine(tmp_path / "data")) as server:
        peer = osc_peer(server.osc_port)
        peer.send("/audioagent/ping", "v4", 0)
        address, args = peer.recv()
    assert (address, args[0]) == ("/audioagent/pong", "v4")


def test_osc_allow_matches_ipv4_senders_seen_through_a_dual_stack_socket():
    protocol = OscProtocol(handle=lambda r, s, c: None, allow=["192.168.1.20"], loop=None)  # type: ignore[arg-type]
    assert protocol.allowed("::ffff:192.168.1.20")
    assert protocol.allowed("::ffff:127.0.0.1")
    assert not protocol.allowed("::ffff:192.168.1.21")


def test_the_serve_banner_brackets_an_ipv6_host(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--host", "::1", "--ws-port", "0", "--osc-port", "0",
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "AUDIO_AGENT_CONFIG": ""}, cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert line.startswith("audio-agent serving ws://[::1]:") and " osc://[::1]:" in line, line


# 4 ------------------------------------------------------------------------ log amplification
def test_unknown_type_tags_cost_one_reply_and_one_log_line(start_server, osc_peer, caplog):
    server = start_server()
    peer = osc_peer(server.osc_port)
    tags = "," + "sq" * 2000  # 'q' is no OSC type: ~8 KiB of unknown tags
    datagram = osc_string("/audioagent/ping") + osc_string(tags)
    assert len(datagram) <= 8192
    caplog.set_level(logging.WARNING)
    for _ in range(20):
        peer.send_raw(datagram)
    for _ in range(20):
        address, args = peer.recv()
        assert address == "/audioagent/error" and args[1] == "bad_request" and "'q'" in args[2]
    logged = sum(len(record.getMessage()) for record in caplog.records)
    assert logged < 4096, logged  # was ~514 KiB per datagram
    assert ping_ok(server)


# 5 ------------------------------------------------------------------------ unread replies
def test_a_client_that_never_reads_is_closed_and_costs_bounded_memory(start_server, monkeypatch, caplog):
    monkeypatch.setattr(ws_module, "MAX_OUTBOX_BYTES", 64 * 1024)
    server = start_server()
    caplog.set_level(logging.WARNING, logger="audio_agent.websocket")

    async def flood() -> int | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and the client reads nothing
        sock.connect(("127.0.0.1", server.ws_port))
        async with connect(f"ws://127.0.0.1:{server.ws_port}", sock=sock, max_queue=1,
                           close_timeout=1) as ws:
            ping = json.dumps(request("ping", id="p" * 200))
            try:
                for _ in range(40000):  # ~10 MB of replies: more than every socket buffer holds
                    await ws.send(ping)
                await asyncio.wait_for(ws.wait_closed(), 60)  # the server lets go of us
            except ConnectionClosed:
                pass
            return ws.close_code

    started = time.monotonic()
    code = asyncio.run(asyncio.wait_for(flood(), 90))
    # The server gave up on the client rather than queue its replies without limit. The close
    # frame itself waits behind unread data, so the client may see only the lost connection.
    assert code in (ws_module.SLOW_CONSUMER_CLOSE_CODE, 1006), code
    assert any("stopped reading" in record.getMessage() for record in caplog.records)
    assert time.monotonic() - started < 90
    assert ping_ok(server)


# 6 ------------------------------------------------------------------------ fairness
def test_one_client_cannot_fill_the_queue_for_everyone(start_server):
    server = start_server()
    engine = server.engine
    engine.gate = threading.Event()  # hold the render worker: jobs stay queued

    async def greedy() -> list[dict]:
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            answers = []
            for index in range(12):
                await ws.send(json.dumps(request("generate", id=f"g{index}", session=f"s{index}",
                                                 prompt="rain", duration_s=1.0)))
            while len(answers) < 12:
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if message["type"] in ("accepted", "error"):
                    answers.append(message)
            return answers

    answers = asyncio.run(greedy())
    accepted = [m for m in answers if m["type"] == "accepted"]
    busy = [m for m in answers if m["type"] == "error"]
    assert len(accepted) == 8 and len(busy) == 4
    assert all(m["code"] == "busy" and "per client" in m["message"] for m in busy)

    async def other_client() -> dict:
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            await ws.send(json.dumps(request("generate", session="other", prompt="wind", duration_s=1.0)))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    assert asyncio.run(other_client())["type"] == "accepted"  # someone else still gets in
    engine.gate.set()


def test_a_flooding_connection_does_not_stall_the_others(start_server):
    server = start_server()

    async def run() -> float:
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as flooder:
            frame = json.dumps(request("list_sessions"))
            await asyncio.gather(*(flooder.send(frame) for _ in range(2000)))
            started = time.monotonic()
            async with connect(f"ws://127.0.0.1:{server.ws_port}") as other:
                await other.send(json.dumps(request("ping", id="me")))
                while json.loads(await asyncio.wait_for(other.recv(), 10))["id"] != "me":
                    pass
            return time.monotonic() - started

    assert asyncio.run(run()) < 1.0


# 7 ------------------------------------------------------------------------ storage
def test_a_data_dir_that_cannot_take_a_version_is_a_storage_error(start_server, tmp_path):
    server = start_server(real=True, data_dir=tmp_path / "data")
    first = ws_call(server.ws_port, request("generate", session="s", prompt="a door slams", duration_s=2.0),
                    timeout_s=60)
    assert first[-1]["type"] == "done"
    session_folder = Path(first[-1]["manifest"]["events"][0]["stem_path"]).parents[1]
    (session_folder / "v2").write_text("not a folder")  # what a broken or foreign data dir looks like
    second = ws_call(server.ws_port, request("edit", session="s", instruction="add a dog bark at 1 s"),
                     timeout_s=60)
    assert second[-1]["type"] == "error" and second[-1]["code"] == "storage_error", second[-1]
    assert ping_ok(server)


def test_disk_full_and_read_only_map_to_their_own_codes():
    import errno
    import sqlite3

    from server import protocol as p

    assert p.error_message(OSError(errno.ENOSPC, "No space left on device")).code == "storage_full"
    assert p.error_message(sqlite3.OperationalError("database or disk is full")).code == "storage_full"
    assert p.error_message(OSError(errno.EROFS, "Read-only file system")).code == "storage_error"
    assert p.error_message(sqlite3.OperationalError("attempt to write a readonly database")).code == "storage_error"
    assert p.error_message(ValueError("x")).code == "internal"


# 8 ------------------------------------------------------------------------ debris after kill -9
def test_start_up_sweeps_what_a_killed_server_left(start_server, tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(real=True, data_dir=data_dir)
    done = ws_call(server.ws_port, request("generate", session="s", prompt="a door slams", duration_s=2.0),
                   timeout_s=60)[-1]
    server.stop()
    stem = Path(done["manifest"]["events"][0]["stem_path"])
    session_folder = stem.parents[1]
    old = time.time() - TMP_GRACE_S - 60
    half = stem.parent / f".{stem.name}.abc123.tmp"  # a stem write cut short
    half.write_bytes(b"RIFF")
    empty = session_folder / "v7"  # a render killed before its first stem
    empty.mkdir()
    (empty / ".e1.wav.x.tmp").write_bytes(b"RI")
    placed = session_folder / "v8"  # a render killed after announcing one stem
    placed.mkdir()
    (placed / "e1-0123.wav").write_bytes(stem.read_bytes())
    fresh = stem.parent / f".{stem.name}.new.tmp"  # maybe a neighbour process writing right now
    fresh.write_bytes(b"R")
    for path in (half, empty / ".e1.wav.x.tmp", empty, placed / "e1-0123.wav", placed):
        os.utime(path, (old, old))
    server = start_server(real=True, data_dir=data_dir)
    assert not half.exists() and not empty.exists()
    assert (placed / "e1-0123.wav").is_file()  # complete files a DAW may hold are kept
    assert fresh.exists() and stem.is_file()
    assert ping_ok(server)


# 9 ------------------------------------------------------------------------ the smaller ones
def test_a_host_header_with_user_info_is_refused(start_server):
    server = start_server()

    async def handshake() -> int:
        try:
            async with connect(f"ws://127.0.0.1:{server.ws_port}",
                               additional_headers={"Host": f"evil.example:P@127.0.0.1:{server.ws_port}"}):
                return 101
        except Exception as error:  # websockets.InvalidStatus
            return error.response.status_code  # type: ignore[attr-defined]

    assert asyncio.run(handshake()) == 403


def test_c1_control_characters_are_refused_in_session_names(start_server):
    server = start_server()
    answer = ws_call(server.ws_port, request("generate", session="shot\x9b1", prompt="rain", duration_s=2.0))
    assert answer[-1]["type"] == "error" and answer[-1]["field"] == "session"


def test_a_lone_integer_in_generates_optional_place_is_refused_as_ambiguous(start_server, osc_peer):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/generate", "amb", "s", "rain", 4.0, peer.port)
    address, args = peer.recv()
    assert address == "/audioagent/error" and "ambiguous" in args[2] and args[0] == "amb"
    peer.send("/audioagent/generate", "float", "s2", "rain", 4.0, 12.0)  # a float is an anchor
    assert peer.recv()[0] == "/audioagent/accepted"


def test_an_unknown_backend_is_refused_before_anything_is_accepted(start_server, tmp_path):
    server = start_server(real=True, data_dir=tmp_path / "data")
    answer = ws_call(server.ws_port, request("generate", session="s", prompt="rain", duration_s=2.0,
                                             backend="no-such-backend"))
    assert [m["type"] for m in answer] == ["error"] and answer[0]["field"] == "backend"
    sessions = ws_call(server.ws_port, request("list_sessions"))[-1]
    assert sessions["sessions"] == []


def test_the_end_of_a_stage_is_reported_once(start_server):
    server = start_server(real=True)
    messages = ws_call(server.ws_port, request("generate", session="s", prompt="rain, then a door slams",
                                               duration_s=4.0), timeout_s=60)
    ends = [(m["stage"], m["fraction"]) for m in messages if m["type"] == "progress" and m["fraction"] == 1.0]
    assert ends and len(ends) == len(set(ends)), ends


def test_osc_datagram_helper_builds_what_the_peer_sends():
    # Guard for the tests above: the raw datagram helpers agree with python-osc's builder.
    assert build_datagram("/audioagent/ping", ["x", 0]) == (
        osc_string("/audioagent/ping") + osc_string(",si") + osc_string("x") + struct.pack(">i", 0))
