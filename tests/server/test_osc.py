"""OSC transport against the real server (fake engine), driven by real UDP datagrams."""

from __future__ import annotations

from pythonosc.udp_client import SimpleUDPClient

from engine.manifest import Manifest
from server import protocol as p
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


def test_big_plans_and_manifests_still_fit_one_macos_sized_datagram(start_server, osc_peer):
    """macOS drops UDP datagrams over 9216 bytes even on loopback: every reply must fit, and a
    scene with many long descriptions still ends with /audioagent/done (compact, truncated)."""
    import json

    from server.osc import MAX_UDP_PAYLOAD, build_datagram

    server = start_server()
    peer = osc_peer(server.osc_port)
    parts = [f"layer {i} the slow distant rumble of heavy machinery" for i in range(36)]
    request = {"v": 1, "type": "generate", "id": "big", "session": "Reel 3 / Scene 12",
               "prompt": ", ".join(parts), "duration_s": 60.0}
    peer.send("/audioagent/request", json.dumps(request), peer.port)
    sizes, messages = [], []
    while not messages or messages[-1]["type"] not in {"done", "error"}:
        data, _ = peer.sock.recvfrom(65535)
        sizes.append(len(data))
        from pythonosc.osc_message import OscMessage
        decoded = OscMessage(data)
        messages.append(p.osc_to_message(decoded.address, list(decoded.params)))
    assert max(sizes) <= MAX_UDP_PAYLOAD <= 9216
    stems = [m for m in messages if m["type"] == "stem_ready"]
    done = messages[-1]
    assert done["type"] == "done" and done["manifest"]["truncated"] is True
    assert len(stems) == len(parts)
    full = p.Done(id="big", job=done["id"], session=done["session"], version=1,
                  manifest=server.engine.versions["Reel 3 / Scene 12"][0].manifest)
    assert len(build_datagram(*p.message_to_osc(full))) > MAX_UDP_PAYLOAD  # the compact form was needed
    plan = next(m for m in messages if m["type"] == "plan")
    assert plan["diff"] and set(plan["diff"]) == {s["event_id"] for s in stems}
    if done["manifest"]["events"]:  # the slim form keeps what a DAW needs to place each stem
        assert {e["id"] for e in done["manifest"]["events"]} == {s["event_id"] for s in stems}
        assert {"stem_path", "start_s", "end_s", "gain_db"} <= set(done["manifest"]["events"][0])
    else:
        assert done["manifest"]["event_count"] == len(stems)


def test_compact_forms_keep_what_a_daw_needs_to_place_stems():
    from engine.manifest import Manifest, ManifestEvent
    from engine.plan import Event
    from pythonosc.osc_message import OscMessage

    from server.osc import MAX_UDP_PAYLOAD, build_datagram, encode_message

    root = "/Users/someone/Library/Application Support/audio-agent/sessions/reel-3-scene-12-0123456789ab/v7"
    events = [ManifestEvent(id=f"e{i}", description=f"event number {i} " + "x" * 40, start_s=float(i),
                            end_s=i + 1.0, target_lufs=-23.0, measured_lufs=-23.01, true_peak_dbtp=-3.2,
                            gain_db=0.5, stem_path=f"{root}/e{i}_0123456789ab.wav", cache_hit=True,
                            cache_key="f" * 64) for i in range(24)]
    done = p.Done(id="d", job="j", session="s", version=7,
                  manifest=Manifest(duration_s=30.0, sample_rate=48000, anchor_s=12.0, events=events).model_dump(mode="json"))
    assert len(build_datagram(*p.message_to_osc(done))) > MAX_UDP_PAYLOAD
    datagram = encode_message(done)
    message = OscMessage(datagram)
    assert len(datagram) <= MAX_UDP_PAYLOAD and message.address == "/audioagent/done"
    manifest = p.osc_to_message(message.address, list(message.params))["manifest"]
    assert manifest["truncated"] is True and manifest["anchor_s"] == 12.0
    assert [e["id"] for e in manifest["events"]] == [f"e{i}" for i in range(24)]
    assert manifest["events"][3] == {"id": "e3", "description": events[3].description, "start_s": 3.0, "end_s": 4.0,
                                     "target_lufs": -23.0, "gain_db": 0.5, "stem_path": events[3].stem_path,
                                     "cache_hit": True}

    plan_events = [Event(id=f"e{i}", description="y" * 300, start_s=0.0, end_s=1.0) for i in range(64)]
    plan = p.PlanMessage(id="q", job="j", session="s", version=2, duration_s=1.0, events=plan_events,
                         diff={f"e{i}": "added" for i in range(64)})
    message = OscMessage(encode_message(plan))
    decoded = p.osc_to_message(message.address, list(message.params))
    assert message.address == "/audioagent/plan" and decoded["truncated"] is True
    assert decoded["diff"] == plan.diff and [e["id"] for e in decoded["events"]] == list(plan.diff)
    small = p.Done(id="d", job="j", session="s", version=1,
                   manifest=Manifest(duration_s=1.0, sample_rate=48000, events=[]))
    assert "truncated" not in p.osc_to_message(*p.message_to_osc(small))["manifest"]


def test_video_cue_over_osc_names_a_checkpoint_and_refuses_ambiguity(start_server, osc_peer, tmp_path):
    server = start_server()  # offers no VTA checkpoint
    peer = osc_peer(server.osc_port)
    listener = osc_peer(server.osc_port)
    video = tmp_path / "reel.mp4"
    video.write_bytes(b"\0" * 64)
    # A checkpoint name selects the vta generator: refused before accepting, at the reply port.
    peer.send("/audioagent/video_cue", "v1", "reel", str(video), 1.0, 3.0, 10.0, "claps", "foley", 0.7,
              listener.port)
    refused = listener.collect(until={"error", "done"})
    assert [m["type"] for m in refused] == ["error"] and refused[0]["id"] == "v1"
    assert "--vta-checkpoint NAME=DIR" in refused[0]["message"] and refused[0]["field"] == "checkpoint"
    # An integer where anchor_s could be, with nothing after it: anchor or reply port? Refused.
    peer.send("/audioagent/video_cue", "v2", "reel", str(video), 1.0, 3.0, listener.port)
    ambiguous = peer.collect(until={"error", "done"})
    assert [m["type"] for m in ambiguous] == ["error"] and ambiguous[0]["field"] == "anchor_s"
    assert "ambiguous" in ambiguous[0]["message"]
    # The text generator's cue reaches the engine as a video_cue (this fake engine plans none).
    peer.send("/audioagent/video_cue", "v3", "reel", str(video), 1.0, 3.0, 10.0, "", "", "", listener.port)
    reached = listener.collect(until={"error", "done"})
    assert [m["type"] for m in reached] == ["accepted", "error"]
    assert "video cues are not faked" in reached[-1]["message"]
