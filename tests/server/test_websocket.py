"""WebSocket transport against the real server (fake engine): frames, handshake checks, tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.server.conftest import OscPeer, collect, ping_ok, request, ws_call


def raw_handshake(port: int, headers: dict[str, str]) -> int:
    """Send a WebSocket upgrade request by hand (so Host/Origin are exactly ours); HTTP status."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET / HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1])


def test_generate_streams_accepted_plan_stems_done(start_server):
    server = start_server()
    messages = ws_call(server.ws_port, request("generate", id="g1", session="a", prompt="rain, door, car", duration_s=6))
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "accepted" and kinds[1] == "plan" and kinds[-1] == "done"
    assert all(m["id"] == "g1" for m in messages) and all(m["v"] == 1 for m in messages)
    job = messages[0]["job"]
    assert all(m["job"] == job for m in messages)
    stems = [m for m in messages if m["type"] == "stem_ready"]
    assert [s["event_id"] for s in stems] == ["e1", "e2", "e3"]
    assert [s["change"] for s in stems] == ["added"] * 3
    assert all(os.path.isfile(s["stem_path"]) for s in stems)
    assert messages[1]["diff"] == {"e1": "added", "e2": "added", "e3": "added"}
    assert [e["id"] for e in messages[-1]["manifest"]["events"]] == ["e1", "e2", "e3"]


@pytest.mark.parametrize("headers,status", [
    ({"Host": "127.0.0.1:1"}, 101),
    ({"Host": "localhost"}, 101),
    ({"Host": "127.0.0.1", "Origin": "http://localhost:3000"}, 101),
    ({"Host": "evil.example.com"}, 403),  # DNS rebinding: attacker's name resolving to 127.0.0.1
    ({"Host": "127.0.0.1", "Origin": "https://evil.example.com"}, 403),
    ({"Host": "127.0.0.1", "Origin": "null"}, 403),
    ({"Host": "[::1]:8765", "Origin": "http://[::1]:3000"}, 101),
    ({"Host": "LOCALHOST:8765", "Origin": "HTTP://LOCALHOST"}, 101),
    ({"Host": "[::1"}, 403),  # unparseable: refused, not a 500
    ({"Host": "127.0.0.1", "Origin": "http://[::1"}, 403),
    ({"Host": "localhost.evil.example"}, 403),
    ({"Host": "127.0.0.1", "Origin": "http://localhost.evil.example"}, 403),
])
def test_host_and_origin_checks(start_server, headers, status):
    server = start_server()
    assert raw_handshake(server.ws_port, headers) == status
    assert ping_ok(server)


def test_token_header_or_first_auth_message(start_server):
    server = start_server(token="s3cret")
    port = server.ws_port

    async def scenario():
        # Right header: served at once.
        async with connect(f"ws://127.0.0.1:{port}", additional_headers={"Authorization": "Bearer s3cret"}) as ws:
            await ws.send(json.dumps(request("ping", id="p1")))
            assert (await collect(ws))[-1]["type"] == "pong"
        async with connect(f"ws://127.0.0.1:{port}", additional_headers={"X-Audio-Agent-Token": "s3cret"}) as ws:
            await ws.send(json.dumps(request("ping", id="p2")))
            assert (await collect(ws))[-1]["type"] == "pong"
        # Wrong header: refused in the handshake.
        with pytest.raises(InvalidStatus):
            async with connect(f"ws://127.0.0.1:{port}", additional_headers={"Authorization": "Bearer nope"}):
                pass
        # No header: the first message must be auth.
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send(json.dumps({"v": 1, "type": "auth", "id": "a", "token": "s3cret"}))
            assert (await collect(ws))[-1]["type"] == "auth_ok"
            await ws.send(json.dumps(request("ping", id="p3")))
            assert (await collect(ws))[-1]["type"] == "pong"
        # No header and no auth: an error naming the token, then the connection closes.
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send(json.dumps(request("ping", id="p4")))
            reply = (await collect(ws))[-1]
            assert (reply["type"], reply["code"], reply["field"]) == ("error", "unauthorized", "token")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008

    asyncio.run(scenario())


def test_protocol_errors_keep_the_connection_open(start_server):
    server = start_server()

    async def scenario():
        async with connect(f"ws://127.0.0.1:{server.ws_port}", max_size=2**24) as ws:
            for frame, code in [("{oops", "bad_json"), ('{"v":1,"type":"dance","id":"d"}', "unknown_type"),
                                ('{"v":9,"type":"ping","id":"d"}', "unsupported_version"),
                                (b'\xff\xfe binary garbage', "bad_json"),
                                (json.dumps(request("ping", pad="x" * 70_000)), "too_large")]:
                await ws.send(frame)
                reply = (await collect(ws))[-1]
                assert (reply["type"], reply["code"]) == ("error", code)
            await ws.send(json.dumps(request("ping", id="still")))
            reply = (await collect(ws))[-1]
            assert (reply["type"], reply["id"]) == ("pong", "still")

    asyncio.run(scenario())
    assert ping_ok(server)


def test_frames_over_the_hard_limit_close_only_that_connection(start_server):
    server = start_server()

    async def scenario():
        async with connect(f"ws://127.0.0.1:{server.ws_port}", max_size=2**24) as ws:
            await ws.send("x" * (2 * 1024 * 1024))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009  # message too big

    asyncio.run(scenario())
    assert ping_ok(server)


def test_notify_osc_port_mirrors_the_job_as_osc(start_server):
    server = start_server()
    live = OscPeer(server.osc_port)  # stands in for the Live script's listening socket
    try:
        messages = ws_call(server.ws_port, request("generate", id="n1", session="live", prompt="wind, bird",
                                                   duration_s=4, notify_osc_port=live.port))
        assert messages[-1]["type"] == "done"
        mirrored = live.collect(until={"done"})
    finally:
        live.close()
    kinds = [m["type"] for m in mirrored]
    assert kinds[0] == "accepted" and kinds.count("stem_ready") == 2 and kinds[-1] == "done"
    stem = next(m for m in mirrored if m["type"] == "stem_ready")
    assert stem["_args"][:4] == ["n1", "live", 1, "e1"] and stem["cache_hit"] is False


def test_get_and_list_sessions(start_server):
    server = start_server()
    ws_call(server.ws_port, request("generate", session="a", prompt="rain", duration_s=2))
    info = ws_call(server.ws_port, request("get_session", session="a"))[-1]
    assert info["type"] == "session" and info["info"]["current_version"] == 1
    listing = ws_call(server.ws_port, request("list_sessions"))[-1]
    assert [s["name"] for s in listing["sessions"]] == ["a"]
    missing = ws_call(server.ws_port, request("get_session", session="nope"))[-1]
    assert (missing["type"], missing["code"], missing["field"]) == ("error", "not_found", "session")


def test_client_library_exit_codes_and_events_file(start_server, tmp_path):
    from server.client import DEFAULT_URL, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, run_request
    from server.commands.client import DEFAULT_URL as CLI_DEFAULT_URL

    assert CLI_DEFAULT_URL == DEFAULT_URL
    server = start_server()
    url = f"ws://127.0.0.1:{server.ws_port}"
    events = tmp_path / "ev.jsonl"
    ok = run_request({"type": "generate", "session": "c", "prompt": "rain, door", "duration_s": 2},
                     url=url, events_path=events)
    assert ok.exit_code == EXIT_OK and ok.message["type"] == "done"
    bad = run_request({"type": "generate", "session": "c", "prompt": "rain", "duration_s": -2},
                      url=url, events_path=events)
    assert bad.exit_code == EXIT_BAD_INPUT and bad.message["field"] == "duration_s"
    failed = run_request({"type": "edit", "session": "nobody", "instruction": "e1: x"}, url=url, events_path=events)
    assert failed.exit_code == EXIT_FAILED and failed.message["code"] == "not_found"
    lines = events.read_text().splitlines()
    assert all(line.endswith("}") for line in lines)
    kinds = [json.loads(line)["type"] for line in lines]
    assert kinds[0] == "accepted" and kinds.count("done") == 1 and kinds.count("error") == 2


def test_a_handshake_refused_after_the_token_check_leaves_no_auth_behind(start_server):
    """The token check runs before websockets validates the upgrade; if the upgrade then fails,
    nothing may remain that a later connection without a token could inherit."""
    import gc
    import time

    server = start_server(token="s3cret")
    lines = ["GET / HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Version: 13", "Authorization: Bearer s3cret"]  # no Sec-WebSocket-Key
    with socket.create_connection(("127.0.0.1", server.ws_port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert sock.recv(4096).split(b" ", 2)[1] == b"400"
    deadline = time.monotonic() + 10  # the server tears the connection down on its own loop
    while server.websocket._authed and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.02)
    assert len(server.websocket._authed) == 0
    reply = ws_call(server.ws_port, request("list_sessions", id="sneaky"))[-1]
    assert (reply["type"], reply["code"]) == ("error", "unauthorized")


def test_bound_to_another_loopback_address_with_a_token(tmp_path):
    """127.0.0.2 is loopback too: Host must name it (or localhost), and the token still rules."""
    from server.app import AudioAgentServer, ServerConfig
    from tests.server.conftest import FakeEngine

    config = ServerConfig(host="127.0.0.2", ws_port=0, osc_port=0, data_dir=tmp_path, token="t0k")
    with AudioAgentServer(config, engine=FakeEngine(tmp_path)) as server:
        url = f"ws://127.0.0.2:{server.ws_port}"

        async def scenario():
            async with connect(url, additional_headers={"Authorization": "Bearer t0k"}) as ws:
                await ws.send(json.dumps(request("ping", id="in")))
                pong = (await collect(ws))[-1]
            async with connect(url) as ws:
                await ws.send(json.dumps(request("ping", id="out")))
                refused = (await collect(ws))[-1]
            return pong, refused

        pong, refused = asyncio.run(scenario())
        assert (pong["type"], refused["code"]) == ("pong", "unauthorized")
        for host, status in [(f"127.0.0.2:{server.ws_port}", 101), ("127.0.0.3", 403), ("rebind.example", 403)]:
            key = base64.b64encode(os.urandom(16)).decode()
            head = ["GET / HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                    f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
            with socket.create_connection(("127.0.0.2", server.ws_port), timeout=10) as sock:
                sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
                assert int(sock.recv(4096).split(b" ", 2)[1]) == status, host


def test_without_a_token_a_connection_must_authenticate_first_and_soon(start_server):
    server = start_server(token="s3cret")
    server.websocket.auth_timeout_s = 0.3

    async def scenario():
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as silent:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(silent.recv(), 10)
            silent_code = silent.close_code
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as garbled:
            await garbled.send("{not json")
            reply = json.loads(await asyncio.wait_for(garbled.recv(), 10))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(garbled.recv(), 10)
            return silent_code, reply, garbled.close_code

    silent_code, reply, garbled_code = asyncio.run(scenario())
    assert silent_code == 1008
    assert (reply["code"], garbled_code) == ("bad_json", 1008)
    pong = ws_call(server.ws_port, request("ping", id="ok"), headers={"Authorization": "Bearer s3cret"})[-1]
    assert pong["type"] == "pong"


def test_half_sent_handshakes_and_frames_do_not_hold_up_others(start_server):
    """Slowloris-style peers (a handshake without its blank line, a frame header without its
    payload) each wait on their own; everyone else is still served."""
    server = start_server()
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    stalled = []
    try:
        for _ in range(20):
            half = socket.create_connection(("127.0.0.1", server.ws_port), timeout=10)
            half.sendall(upgrade.encode())  # never finished
            stalled.append(half)
        framed = socket.create_connection(("127.0.0.1", server.ws_port), timeout=10)
        framed.sendall((upgrade + "\r\n").encode())
        assert b" 101 " in framed.recv(4096)
        framed.sendall(bytes([0x81, 0xFE, 0x10]))  # text frame, 16-bit length cut short, no mask/payload
        stalled.append(framed)
        assert ping_ok(server)
    finally:
        for sock in stalled:
            sock.close()
    assert ping_ok(server)
