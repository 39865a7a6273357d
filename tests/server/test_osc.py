"""OSC transport against the real server (fake engine), driven by real UDP datagrams."""

from __future__ import annotations

from pythonosc.udp_client import SimpleUDPClient

from server.app import ServerConfig
from tests.server.conftest import ping_ok


def test_generate_over_osc_one_message_per_stem_to_the_named_reply_port(start_server, osc_peer):
    server = start_server()
    sender = osc_peer(server.osc_port)
    listener = osc_peer(server.osc_port)  # replies go here because the request names its port
    sender.send("/audioagent/generate", "g1", "osc", "rain, thunder, door", 9.0, 30.0, listener.port)
    messages = listener.collect(until={"done"})
    kinds = [m["type"] for m in messages]
    assert kinds[:2] == ["accepted", "plan"] and kinds[-1] == "done"
    stems = [m for m in messages if m["type"] == "stem_ready"]
    assert [s["event_id"] for s in stems] == ["e1", "e2", "e3"]
    first = stems[0]["_args"]
    # [id, session, version(int), event_id, stem_path, start_s, end_s, gain_db, target_lufs, cache_hit, change, description]
    assert [type(a).__name__ for a in first] == ["str", "str", "int", "str", "str", "float", "float",
                                                 "float", "float", "int", "str", "str"]
    assert first[0] == "g1" and first[1] == "osc" and first[10] == "added" and first[11] == "rain"
    assert messages[-1]["manifest"]["events"][2]["id"] == "e3"


def test_reply_port_zero_answers_the_senders_address(start_server, osc_peer):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/ping", "p0", 0)
    address, args = peer.recv()
    assert address == "/audioagent/pong" and args[0] == "p0"


def test_python_osc_client_and_edit_undo_flow(start_server, osc_peer):
    server = start_server()
    peer = osc_peer(server.osc_port)
    client = SimpleUDPClient("127.0.0.1", server.osc_port)  # python-osc's own client
    client.send_message("/audioagent/generate", ["g", "s", "rain, door", 4.0, 0.0, peer.port])
    assert peer.collect(until={"done"})[-1]["version"] == 1
    client.send_message("/audioagent/edit", ["e", "s", "e2: a creaking door", peer.port])
    edited = peer.collect(until={"done", "error"})
    stems = {m["event_id"]: m for m in edited if m["type"] == "stem_ready"}
    assert stems["e1"]["cache_hit"] is True and stems["e2"]["cache_hit"] is False
    assert stems["e2"]["change"] == "changed" and edited[-1]["version"] == 2
    client.send_message("/audioagent/undo", ["u", "s", peer.port])
    undone = peer.collect(until={"done", "error"})
    assert undone[-1]["type"] == "done" and undone[-1]["version"] == 1
    assert all(m["cache_hit"] for m in undone if m["type"] == "stem_ready")


def test_request_address_carries_any_json_request(start_server, osc_peer):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/request", '{"v":1,"type":"list_sessions","id":"L"}', peer.port)
    address, args = peer.recv()
    assert address == "/audioagent/sessions" and args[0] == "L"


def test_errors_come_back_as_osc_error_with_the_field(start_server, osc_peer):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/generate", "bad", "s", "rain", -3.0, 0.0, 0)
    address, args = peer.recv()
    assert address == "/audioagent/error" and args == ["bad", "invalid_input", args[2], "duration_s"]
    assert ping_ok(server)


def test_allowlist_drops_unknown_senders(tmp_path):
    """Loopback is always allowed; other addresses only when listed (checked without a 2nd NIC)."""
    from server.osc import OscProtocol

    protocol = OscProtocol(handle=lambda r, s: None, allow=["192.168.1.20"], loop=None)  # type: ignore[arg-type]
    assert protocol.allowed("127.0.0.1") and protocol.allowed("::1")
    assert protocol.allowed("192.168.1.20") and not protocol.allowed("192.168.1.21")


def test_non_loopback_bind_requires_a_token(tmp_path):
    import pytest
    from engine.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as caught:
        ServerConfig(host="0.0.0.0", data_dir=tmp_path).check()
    assert caught.value.field == "host"
    ServerConfig(host="0.0.0.0", data_dir=tmp_path, token="t", osc_allow=["10.0.0.2"]).check()
    with pytest.raises(InvalidInputError):
        ServerConfig(host="127.0.0.1", data_dir=tmp_path, osc_allow=["not-an-ip"]).check()


def test_validation_errors_go_to_the_named_reply_port_with_the_id(start_server, osc_peer):
    server = start_server()
    sender = osc_peer(server.osc_port)
    listener = osc_peer(server.osc_port)
    sender.send("/audioagent/generate", "g7", "s", "rain", "ten", 0.0, listener.port)
    address, args = listener.recv()
    assert address == "/audioagent/error" and args[0] == "g7" and args[3] == "duration_s"
