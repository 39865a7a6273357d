"""The Live remote script against the fake Live Object Model, with real OSC over loopback UDP."""

from __future__ import annotations

import json
import select
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.daw.conftest import write_wav
from tests.daw.fake_live import CInstance, CuePoint, Song

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "daw_scripts" / "ableton"))
import AudioAgent  # noqa: E402
from AudioAgent import osc as live_osc  # noqa: E402
from AudioAgent.surface import AudioAgentSurface, STATE_KEY  # noqa: E402


def datagram(address: str, *args: Any) -> bytes:
    builder = OscMessageBuilder(address=address)
    for value in args:
        builder.add_arg(value)
    return builder.build().dgram


class Rig:
    """A fake Live set, the surface under test and a UDP socket playing the server."""

    def __init__(self, tmp_path: Path, *, tempo: float = 120.0, song: Song | None = None) -> None:
        self.song = song or Song(tempo=tempo)
        self.c = CInstance(self.song)
        self.server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.settimeout(2.0)
        self.surface = AudioAgentSurface(self.c, config={
            "listen_port": 0, "server_osc_port": self.server.getsockname()[1]})
        self.stem_root = tmp_path / "stems"
        self.events: dict[str, dict[str, Any]] = {}

    def received(self, *, skip_pings: bool = True) -> tuple[str, list[Any]]:
        """The next request the surface sent to the 'server' (its stem-root pings skipped)."""
        while True:
            data, _ = self.server.recvfrom(65536)
            message = OscMessage(data)
            if not (skip_pings and message.address == "/audioagent/ping"):
                return message.address, list(message.params)

    def deliver(self, *datagrams: bytes) -> None:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for data in datagrams:
            sender.sendto(data, ("127.0.0.1", self.surface.listen_port))
        sender.close()
        # Loopback UDP lands at once; wait until readable, then let Live's tick read it all.
        readable, _, _ = select.select([self.surface.sock], [], [], 2.0)
        assert readable, "datagrams were not delivered over loopback"
        self.surface.update_display()

    def stem(self, session: str, event_id: str, description: str, start_s: float, end_s: float, gain_db: float,
             *, change: str = "added", request_id: str = "r1", version: int = 1, name: str = "") -> bytes:
        path = write_wav(self.stem_root / session / (name or f"{event_id}.wav"), length_s=end_s - start_s)
        self.events[event_id] = {"id": event_id, "description": description, "start_s": start_s, "end_s": end_s,
                                 "gain_db": gain_db, "stem_path": str(path)}
        return datagram("/audioagent/stem_ready", request_id, session, version, event_id, str(path),
                        float(start_s), float(end_s), float(gain_db), -23.0, 0, change, description)

    def plan(self, session: str, diff: dict[str, str], *, request_id: str = "r1", version: int = 1) -> bytes:
        body = {"v": 1, "type": "plan", "id": request_id, "job": "j", "session": session, "version": version,
                "duration_s": 12.0, "events": [], "diff": diff}
        return datagram("/audioagent/plan", request_id, session, version, json.dumps(body))

    def done(self, session: str, event_ids: list[str], *, request_id: str = "r1", version: int = 1,
             anchor_s: float = 0.0) -> bytes:
        manifest = {"duration_s": 12.0, "sample_rate": 48000, "anchor_s": anchor_s,
                    "events": [self.events[e] for e in event_ids]}
        return datagram("/audioagent/done", request_id, session, version, json.dumps(manifest))

    def clip_of(self, description: str) -> tuple[Any, Any]:
        (found,) = [(t, c) for t, c in self.song.clips() if c.name == description]
        return found


@pytest.fixture
def rig(tmp_path: Path):
    rig = Rig(tmp_path)
    address, args = rig.received(skip_pings=False)
    assert (address, args[1]) == ("/audioagent/ping", rig.surface.listen_port)  # asks for the stem root
    yield rig
    rig.surface.disconnect()
    rig.server.close()


def start_scene_from_locator(rig: Rig) -> tuple[str, str]:
    rig.song.cue_points.append(CuePoint("aa: rain on a tin roof, a car door (12s)", 8.0))
    for _ in range(5):
        rig.surface.update_display()  # the locator scan runs every few ticks
    address, args = rig.received()
    assert address == "/audioagent/generate"
    request_id, session, prompt, duration_s, anchor_s, reply_port = args
    assert (prompt, duration_s, anchor_s, reply_port) == ("rain on a tin roof, a car door", 12.0, 4.0,
                                                          rig.surface.listen_port)
    return request_id, session


SCENE = [("rain", "steady rain", 0.0, 12.0, -3.0), ("door", "car door slam", 4.5, 6.0, 2.5),
         ("engine", "engine starts", 5.0, 7.0, 0.0), ("dog", "dog barks", 8.0, 9.0, -8.0)]


def place_scene(rig: Rig) -> str:
    request_id, session = start_scene_from_locator(rig)
    rig.deliver(rig.plan(session, {e[0]: "added" for e in SCENE}, request_id=request_id))
    rig.deliver(*[rig.stem(session, *e, request_id=request_id) for e in SCENE])
    rig.deliver(rig.done(session, [e[0] for e in SCENE], request_id=request_id, anchor_s=4.0))
    return session


def test_stems_land_as_clips_at_their_beats_with_their_gain(rig):
    place_scene(rig)
    # 120 bpm: beat = (anchor 4 s + start_s) * 2
    expected = {"steady rain": 8.0, "car door slam": 17.0, "engine starts": 18.0, "dog barks": 24.0}
    for description, beat in expected.items():
        track, clip = rig.clip_of(description)
        assert clip.start_time == pytest.approx(beat)
        assert clip.warping is False
    for _, description, _, _, gain_db in SCENE:
        assert rig.clip_of(description)[1].gain_db == pytest.approx(gain_db, abs=0.15)
    # Overlapping events sit on separate tracks; nothing was overwritten.
    lanes = {d: rig.clip_of(d)[0].name for d in expected}
    assert len({lanes["steady rain"], lanes["car door slam"], lanes["engine starts"]}) == 3
    assert lanes["dog barks"] == lanes["car door slam"]  # free again by then: no new track
    assert len(rig.song.tracks) == 3
    assert all(not t.overwritten for t in rig.song.tracks)
    state = json.loads(rig.song.data[STATE_KEY])
    assert set(state["sessions"][state["last_session"]]["events"]) == {"rain", "door", "engine", "dog"}


def test_edits_replace_only_changed_clips(rig):
    session = place_scene(rig)
    rain_clip = rig.clip_of("steady rain")[1]
    engine_clip = rig.clip_of("engine starts")[1]
    door_clip = rig.clip_of("car door slam")[1]
    rain_gain_sets = rain_clip.gain_sets
    # An edit started by `audio-agent client edit ... --daw ableton`: not our request id.
    rig.deliver(rig.plan(session, {"rain": "unchanged", "door": "regained", "engine": "moved",
                                   "dog": "removed", "thunder": "added"}, request_id="cli-7", version=2))
    rig.deliver(
        rig.stem(session, "door", "car door slam", 4.5, 6.0, -1.0, change="regained", request_id="cli-7", version=2),
        rig.stem(session, "engine", "engine starts", 6.0, 8.0, 0.0, change="moved", request_id="cli-7", version=2),
        rig.stem(session, "thunder", "distant thunder", 9.0, 11.0, -6.0, request_id="cli-7", version=2),
    )
    rig.deliver(rig.done(session, ["rain", "door", "engine", "thunder"], request_id="cli-7", version=2, anchor_s=4.0))
    assert rig.clip_of("steady rain")[1] is rain_clip and rain_clip.gain_sets == rain_gain_sets
    assert rig.clip_of("car door slam")[1] is door_clip
    assert door_clip.gain_db == pytest.approx(-1.0, abs=0.15)
    new_engine = rig.clip_of("engine starts")[1]
    assert new_engine is not engine_clip and new_engine.start_time == pytest.approx(20.0)
    assert [c for _, c in rig.song.clips() if c.name == "dog barks"] == []
    assert rig.clip_of("distant thunder")[1].start_time == pytest.approx(26.0)
    assert all(not t.overwritten for t in rig.song.tracks)


def test_a_request_started_elsewhere_waits_for_the_anchor_in_the_manifest(rig):
    rig.deliver(rig.plan("cli-session", {"wind": "added"}, request_id="c1"))
    rig.deliver(rig.stem("cli-session", "wind", "gusty wind", 1.0, 3.0, 0.0, request_id="c1"))
    assert rig.song.clips() == []
    rig.deliver(rig.done("cli-session", ["wind"], request_id="c1", anchor_s=3.0))
    assert rig.clip_of("gusty wind")[1].start_time == pytest.approx(8.0)


def test_state_survives_a_new_surface_on_the_same_set(rig, tmp_path):
    session = place_scene(rig)
    dog_clip = rig.clip_of("dog barks")[1]
    rig.surface.disconnect()
    again = Rig(tmp_path, song=rig.song)
    again.events = rig.events
    try:
        again.deliver(again.stem(session, "dog", "dog barks", 8.0, 9.0, 3.0, change="regained", request_id="x"))
        assert again.clip_of("dog barks")[1] is dog_clip
        assert dog_clip.gain_db == pytest.approx(3.0, abs=0.15)
    finally:
        again.surface.disconnect()
        again.server.close()


def test_edit_locator_sends_an_edit_for_the_last_scene(rig):
    session = place_scene(rig)
    rig.song.cue_points.append(CuePoint("aa edit: heavier rain", 30.0))
    for _ in range(5):
        rig.surface.update_display()
    address, args = rig.received()
    assert address == "/audioagent/request" and args[1] == rig.surface.listen_port
    body = json.loads(args[0])
    assert (body["type"], body["session"], body["instruction"]) == ("edit", session, "heavier rain")
    assert body["base_version"] == 1  # the version this set shows
    for _ in range(10):  # sent once, not on every scan
        rig.surface.update_display()
    rig.server.settimeout(0.05)
    with pytest.raises(socket.timeout):
        rig.received()


def test_malformed_osc_never_raises_into_live(rig, tmp_path):
    rig.deliver(datagram("/audioagent/pong", "p", json.dumps({"stem_root": str(rig.stem_root)})))
    outside = write_wav(tmp_path / "elsewhere" / "x.wav")
    bad = [
        b"\x00\x01\x02",  # not a multiple of four
        b"garbage!",  # no address
        b"#bundle\x00" + b"\x00" * 8 + b"\x00\x00\x01\x00",  # bundle element past the end
        datagram("/audioagent/stem_ready", "r", "s", 1, "e"),  # too few arguments
        datagram("/audioagent/stem_ready", "r", "s", 1, "e", str(outside), 0.0, 1.0, 0.0, -23.0, 0, "added", "x"),
        datagram("/audioagent/stem_ready", "r", "s", 1, "e", f"{rig.stem_root}/../x.wav", 0.0, 1.0, 0.0, -23.0, 0,
                 "added", "x"),
        datagram("/audioagent/stem_ready", "r", "s", 1, "e", "p", "zero", 1.0, 0.0, -23.0, 0, "added", "x"),
        datagram("/audioagent/plan", "r", "s", 1, "{not json"),
        datagram("/audioagent/done", "r", "s", 1, "[]"),
        datagram("/audioagent/bogus", 1),
        datagram("/other/thing"),
        live_osc.encode_message("/audioagent/error", []),
    ]
    rig.deliver(*bad)
    for _ in range(3):
        rig.surface.update_display()
    assert rig.song.clips() == []
    assert len(rig.surface.log_lines) >= len(bad) - 1
    # ...and the surface still works afterwards.
    rig.deliver(rig.stem("s2", "ok", "fine", 0.0, 1.0, 0.0, request_id="q"))
    rig.deliver(rig.done("s2", ["ok"], request_id="q", anchor_s=0.0))
    assert rig.clip_of("fine")[1].start_time == 0.0


def test_osc_codec_round_trips_with_python_osc():
    data = live_osc.encode_message("/audioagent/generate", ["id", "sess", "rain ☂", 12.5, 4.0, 9001, True])
    message = OscMessage(data)
    assert message.address == "/audioagent/generate"
    assert message.params == ["id", "sess", "rain ☂", 12.5, 4.0, 9001, True]
    assert live_osc.decode_packet(datagram("/a", "x", 1, 2.5)) == [("/a", ["x", 1, 2.5])]


def test_create_instance_reads_the_config_beside_the_package(monkeypatch):
    read = AudioAgent.load_config
    # Keep the shipped config but listen on any free port: 9001 may be taken on a CI box.
    monkeypatch.setattr(AudioAgent, "load_config", lambda folder: {**read(folder), "listen_port": 0})
    surface = AudioAgent.create_instance(CInstance(Song()))
    try:
        assert surface.config["server_osc_port"] == 9000
        assert surface.config["view"] == "arrangement"
    finally:
        surface.disconnect()


def test_session_view_option_puts_each_event_in_a_clip_slot(tmp_path):
    rig = Rig(tmp_path)
    rig.surface.config["view"] = "session"
    try:
        rig.deliver(rig.stem("sv", "a", "wind", 0.0, 1.0, -6.0, request_id="q"),
                    rig.stem("sv", "b", "crow", 0.5, 1.0, 0.0, request_id="q"))
        rig.deliver(rig.done("sv", ["a", "b"], request_id="q", anchor_s=0.0))
        slots = [t.clip_slots[0].clip for t in rig.song.tracks]
        assert [c.name for c in slots] == ["wind", "crow"]
        assert slots[0].gain_db == pytest.approx(-6.0, abs=0.15)
        assert rig.song.clips() == []  # nothing in the arrangement
        crow_track = rig.song.tracks[1]
        rig.deliver(rig.plan("sv", {"a": "removed", "b": "changed"}, request_id="q2", version=2))
        rig.deliver(rig.stem("sv", "b", "crow caws twice", 0.5, 1.5, -2.0, change="changed", request_id="q2",
                             version=2, name="b2.wav"))
        rig.deliver(rig.done("sv", ["b"], request_id="q2", version=2))
        assert [t.clip_slots[0].has_clip for t in rig.song.tracks] == [False, True]
        assert rig.song.tracks[1] is crow_track and crow_track.clip_slots[0].clip.name == "crow caws twice"
        assert crow_track.clip_slots[0].clip.file_path.endswith("b2.wav")
    finally:
        rig.surface.disconnect()
        rig.server.close()


def test_a_regain_keeps_the_users_own_clip_gain_trim(rig):
    session = place_scene(rig)
    door_clip = rig.clip_of("car door slam")[1]
    rig.surface.gain_curve.apply(door_clip, 2.5 - 3.0)  # the user pulled the door down 3 dB in Live
    rig.deliver(rig.plan(session, {"door": "regained"}, request_id="cli-8", version=2))
    rig.deliver(rig.stem(session, "door", "car door slam", 4.5, 6.0, 4.5, change="regained", request_id="cli-8",
                         version=2))  # the server asks for +2 dB
    assert rig.clip_of("car door slam")[1] is door_clip
    assert door_clip.gain_db == pytest.approx(2.5 - 3.0 + 2.0, abs=0.15)


# ---- behaviours the real Live has that the script must respect ------------------------------
def test_each_tick_that_changes_the_set_is_one_undo_step(rig):
    place_scene(rig)
    song = rig.song
    assert song.loose_changes == []  # nothing outside a step: Ctrl+Z never takes a scene apart
    assert len(song.undo_steps) == 1  # the stems landed in one tick; done found nothing to change
    assert not song.step_open


def test_a_lost_stem_message_is_placed_from_the_done_manifest(rig):
    request_id, session = start_scene_from_locator(rig)
    stems = [rig.stem(session, *e, request_id=request_id) for e in SCENE]
    rig.deliver(*stems[:2], *stems[3:])  # the engine's stem_ready never arrived
    assert len(rig.song.clips()) == 3
    rig.deliver(rig.done(session, [e[0] for e in SCENE], request_id=request_id, anchor_s=4.0))
    assert rig.clip_of("engine starts")[1].start_time == pytest.approx((4.0 + 5.0) * 2)


def test_a_done_without_its_events_is_recovered_by_asking_for_the_session(rig):
    request_id, session = start_scene_from_locator(rig)
    stems = [rig.stem(session, *e, request_id=request_id) for e in SCENE]
    rig.deliver(stems[0])
    bare = {"duration_s": 12.0, "anchor_s": 4.0, "events": [], "event_count": 4, "truncated": True}
    rig.deliver(datagram("/audioagent/done", request_id, session, 1, json.dumps(bare)))
    address, args = rig.received()
    assert address == "/audioagent/get_session" and args[1:] == [session, rig.surface.listen_port]
    info = {"name": session, "current_version": 1, "anchor_s": 4.0,
            "manifest": {"duration_s": 12.0, "anchor_s": 4.0, "events": [rig.events[e[0]] for e in SCENE]}}
    rig.deliver(datagram("/audioagent/session", args[0], json.dumps(
        {"v": 1, "type": "session", "id": args[0], "session": session, "info": info})))
    assert sorted(c.name for _, c in rig.song.clips()) == sorted(e[1] for e in SCENE)


def test_a_sync_removes_clips_of_events_the_server_no_longer_has(rig):
    session = place_scene(rig)
    info = {"name": session, "current_version": 3, "anchor_s": 4.0,
            "manifest": {"events": [rig.events["rain"], rig.events["door"]]}}
    rig.deliver(datagram("/audioagent/session", "x", json.dumps({"session": session, "info": info})))
    assert sorted(c.name for _, c in rig.song.clips()) == ["car door slam", "steady rain"]


def test_our_tracks_are_found_after_the_user_renames_them(tmp_path):
    for track_data in (True, False):  # Track.set_data where Live has it; the file path otherwise
        rig = Rig(tmp_path, song=Song(track_data=track_data))
        try:
            session = place_scene(rig)
            track, door = rig.clip_of("car door slam")
            track.name = "my door track"
            rig.deliver(rig.stem(session, "door", "car door slam", 4.5, 6.0, -1.0, change="regained",
                                 request_id="cli-9", version=2))
            assert rig.clip_of("car door slam")[1] is door and door.gain_db == pytest.approx(-1.0, abs=0.15)
        finally:
            rig.surface.disconnect()
            rig.server.close()


def test_moving_a_locator_that_was_sent_does_not_ask_again(rig):
    start_scene_from_locator(rig)
    rig.song.cue_points[0].time = 16.0  # the user drags it elsewhere
    for _ in range(10):
        rig.surface.update_display()
    rig.server.settimeout(0.05)
    with pytest.raises(socket.timeout):
        rig.received()


def test_gain_is_found_with_a_handful_of_sets_not_a_calibration_sweep(rig):
    place_scene(rig)
    first, *others = [c for _, c in rig.song.clips()]
    counts = sorted(c.gain_sets for _, c in rig.song.clips())
    assert counts[-1] <= 12 and counts[0] <= 3, counts
    for _, clip in rig.song.clips():
        wanted = next(e[4] for e in SCENE if e[1] == clip.name)
        assert clip.gain_db == pytest.approx(wanted, abs=0.1)


def test_a_live_older_than_12_0_5_is_told_so_and_nothing_is_placed(tmp_path, monkeypatch):
    from tests.daw.fake_live import fake_live_module

    monkeypatch.setitem(sys.modules, "Live", fake_live_module((12, 0, 1)))
    rig = Rig(tmp_path)
    try:
        assert any("needs Live 12.0.5 or newer" in m and "12.0.1" in m for m in rig.c.messages)
        rig.deliver(rig.stem("s", "a", "wind", 0.0, 1.0, 0.0, request_id="q"))
        rig.deliver(rig.done("s", ["a"], request_id="q"))
        assert rig.song.tracks == []
    finally:
        rig.surface.disconnect()
        rig.server.close()
    monkeypatch.setitem(sys.modules, "Live", fake_live_module((12, 0, 5)))
    rig = Rig(tmp_path)
    try:
        assert not rig.surface.unsupported and rig.c.messages == []
    finally:
        rig.surface.disconnect()
        rig.server.close()


def test_the_receive_buffer_holds_a_burst_of_stem_messages(rig, tmp_path):
    assert rig.surface.receive_buffer_bytes >= 256 * 1024  # asked for 4 MiB; the OS may cap it
    request_id, session = start_scene_from_locator(rig)
    burst = [rig.stem(session, f"e{i}", f"hit {i}", i * 0.5, i * 0.5 + 0.25, 0.0, request_id=request_id)
             for i in range(40)]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for data in burst:  # all sent before Live's next tick reads any
        sender.sendto(data, ("127.0.0.1", rig.surface.listen_port))
    sender.close()
    select.select([rig.surface.sock], [], [], 2.0)
    rig.surface.update_display()
    assert len(rig.song.clips()) == 40


def test_the_fake_trims_overlapped_clips_like_live(tmp_path):
    song = Song(tempo=60.0)
    track = song.create_audio_track()
    long_file = write_wav(tmp_path / "long.wav", length_s=4.0)
    short_file = write_wav(tmp_path / "short.wav", length_s=1.0)
    first = track.create_audio_clip(str(long_file), 0.0)
    track.create_audio_clip(str(short_file), 1.0)
    spans = [(c.start_time, c.end_time, c.file_path) for c in track.arrangement_clips]
    assert spans == [(0.0, 1.0, str(long_file)), (1.0, 2.0, str(short_file)), (2.0, 4.0, str(long_file))]
    assert track.overwritten == [first]
    slot_clip = track.clip_slots[0].create_audio_clip(str(short_file))
    assert slot_clip is track.clip_slots[0].clip


def test_hand_changes_go_first_then_the_instruction_on_the_new_version(rig):
    session = place_scene(rig)
    song = rig.song
    door_track, door = rig.clip_of("car door slam")
    dog_track, dog = rig.clip_of("dog barks")
    rig.surface.gain_curve.apply(door, 2.5 - 3.0)  # the designer pulls the door down 3 dB
    dog_track.delete_clip(dog)  # and deletes the dog
    rig.song.cue_points.append(CuePoint("aa edit: heavier rain", 30.0))
    for _ in range(5):
        rig.surface.update_display()
    address, args = rig.received()
    body = json.loads(args[0])
    assert body["base_version"] == 1 and "instruction" not in body
    by_op = {(c["op"], c["event_id"]): c for c in body["changes"]}
    assert set(by_op) == {("set_loudness", "door"), ("delete", "dog")}
    assert by_op[("set_loudness", "door")]["target_lufs"] == pytest.approx(-26.0, abs=0.1)
    # Version 2 has them: nothing moves or changes gain again in the set.
    rig.events["door"]["gain_db"] = door.gain_db
    rig.deliver(rig.done(session, ["rain", "door", "engine"], request_id=body["id"], version=2, anchor_s=4.0))
    assert rig.clip_of("car door slam")[1] is door and door.gain_db == pytest.approx(-0.5, abs=0.1)
    # ...and then the instruction, on version 2.
    address, args = rig.received()
    body = json.loads(args[0])
    assert (body["instruction"], body["base_version"]) == ("heavier rain", 2) and "changes" not in body
    del song


def test_a_conflict_makes_the_set_ask_for_the_servers_version(rig):
    session = place_scene(rig)
    rig.song.cue_points.append(CuePoint("aa edit: quieter", 30.0))
    for _ in range(5):
        rig.surface.update_display()
    _, args = rig.received()
    request_id = json.loads(args[0])["id"]
    rig.deliver(datagram("/audioagent/error", request_id, "conflict",
                         "base_version=1: session is at version 3; sync to it and ask again", "base_version"))
    address, args = rig.received()
    assert address == "/audioagent/get_session" and args[1] == session
    assert any("version 3" in m for m in rig.c.messages)


def reroll_request(rig: Rig, name: str, time_beats: float) -> dict:
    rig.song.cue_points.append(CuePoint(name, time_beats))
    for _ in range(5):
        rig.surface.update_display()
    address, args = rig.received()
    assert address == "/audioagent/request"
    return json.loads(args[0])


def variations_done(rig: Rig, session: str, body: dict, *, version: int = 2) -> list[dict]:
    """The server's answer to a re-roll: each event's last seed active, all seeds as variations."""
    variations = []
    for change in body["changes"]:
        if change["op"] != "set_seed":
            continue
        event = rig.events[change["event_id"]]
        for number, seed in enumerate(change["variations"], 1):
            path = write_wav(rig.stem_root / session / "variations" / f"{change['event_id']}-{seed}.wav",
                             length_s=event["end_s"] - event["start_s"])
            variations.append({"event_id": change["event_id"], "number": number, "seed": seed,
                               "stem_path": str(path), "cache_key": f"k{seed}", "gain_db": -1.0})
    manifest = {"duration_s": 12.0, "sample_rate": 48000, "anchor_s": 4.0,
                "events": [rig.events[e[0]] for e in SCENE], "variations": variations}
    rig.deliver(datagram("/audioagent/done", body["id"], session, version, json.dumps(manifest)))
    return variations


def test_reroll_locator_asks_for_n_seeds_of_the_events_under_it_in_one_request(rig):
    session = place_scene(rig)
    door_track, door = rig.clip_of("car door slam")
    rig.surface.gain_curve.apply(door, 2.5 - 3.0)  # a hand change goes in the same version, first
    body = reroll_request(rig, "aa reroll 3", 18.5)  # over the rain (8-32), door (17-20), engine (18-22)
    assert body["type"] == "edit" and body["session"] == session and body["base_version"] == 1
    assert body["changes"][0]["op"] == "set_loudness"
    rolls = {c["event_id"]: c for c in body["changes"] if c["op"] == "set_seed"}
    assert set(rolls) == {"rain", "door", "engine"}
    for change in rolls.values():
        assert len(set(change["variations"])) == 3 and change["seed"] == change["variations"][-1]
    body = reroll_request(rig, "aa reroll", 25.0)  # over the rain and the dog; the configured count (4)
    assert [(c["event_id"], len(c["variations"])) for c in body["changes"] if c["op"] == "set_seed"] == [
        ("dog", 4), ("rain", 4)]


@pytest.mark.parametrize("name, words", [("aa reroll 9", "2 to 8"), ("aa reroll 1", "2 to 8"),
                                         ("aa reroll 3", "over a clip")])
def test_a_reroll_that_cannot_be_asked_says_why_and_sends_nothing(rig, name, words):
    place_scene(rig)
    rig.c.messages.clear()
    rig.song.cue_points.append(CuePoint(name, 100.0))  # beat 100: no clip of the scene there
    for _ in range(5):
        rig.surface.update_display()
    assert any(words in m for m in rig.c.messages), rig.c.messages
    rig.server.settimeout(0.3)
    with pytest.raises(socket.timeout):
        rig.received()


def test_variations_land_on_scratch_tracks_beside_the_events_track(rig):
    session = place_scene(rig)
    body = reroll_request(rig, "aa reroll 3", 17.5)  # the door (and the rain under it)
    before = [t.name for t in rig.song.tracks]
    variations = variations_done(rig, session, body)
    door_track, _ = rig.clip_of("car door slam")
    home = rig.song.tracks.index(door_track)
    names = [t.name for t in rig.song.tracks]
    assert names[home + 1: home + 4] == ["car door slam v1", "car door slam v2", "car door slam v3"]
    assert [n for n in names if " v" not in n] == before  # no event track moved or was added
    door_variations = [v for v in variations if v["event_id"] == "door"]
    for track, v in zip(rig.song.tracks[home + 1: home + 4], door_variations):
        (clip,) = track.arrangement_clips
        assert (clip.file_path, clip.name, clip.start_time) == (v["stem_path"], f"car door slam v{v['number']}", 17.0)
        assert clip.gain_db == pytest.approx(-1.0, abs=0.15)
    assert rig.song.undo_steps[-1]  # placed in one undo step with the rest of the tick

    # Another re-roll of the door reuses its scratch tracks (emptied), adding none.
    count = len(rig.song.tracks)
    body = reroll_request(rig, "aa reroll 3 again", 17.6)  # other words: a locator is sent once
    again = variations_done(rig, session, body, version=3)
    assert len(rig.song.tracks) == count
    assert [t.arrangement_clips[0].file_path for t in rig.song.tracks[home + 1: home + 4]] == [
        v["stem_path"] for v in again if v["event_id"] == "door"]

    # `aa keep 2`: that variation's seed becomes the event's (with any hand changes first).
    body = reroll_request(rig, "aa keep 2", 60.0)
    seeds = {v["event_id"]: v["seed"] for v in again if v["number"] == 2}
    assert body["changes"] == [{"op": "set_seed", "event_id": e, "seed": seeds[e]} for e in ("door", "rain")]


def test_variations_in_session_view_and_on_a_live_without_track_data(tmp_path):
    rig = Rig(tmp_path, song=Song(tempo=120.0, track_data=False))
    rig.surface.config["view"] = "session"
    try:
        rig.deliver(rig.stem("sv", "a", "wind", 0.0, 1.0, -6.0, request_id="q"))
        rig.deliver(rig.done("sv", ["a"], request_id="q", anchor_s=0.0))
        rig.surface.requests["r2"] = {"session": "sv", "anchor_s": 0.0, "kind": "", "then": None, "reroll": True}
        paths = [str(write_wav(rig.stem_root / "sv" / f"v{n}.wav", length_s=1.0)) for n in (1, 2)]
        manifest = {"duration_s": 1.0, "sample_rate": 48000, "events": [rig.events["a"]],
                    "variations": [{"event_id": "a", "number": n, "seed": n, "stem_path": p}
                                   for n, p in zip((1, 2), paths)]}
        rig.deliver(datagram("/audioagent/done", "r2", "sv", 2, json.dumps(manifest)))
        # Without per-track data the track's name is its id (so it is found again).
        assert [t.name for t in rig.song.tracks] == ["AA sv a", "AA sv a v1", "AA sv a v2"]
        assert [t.clip_slots[0].clip.file_path for t in rig.song.tracks[1:]] == paths
        assert [t.clip_slots[0].clip.name for t in rig.song.tracks[1:]] == ["wind v1", "wind v2"]
    finally:
        rig.surface.disconnect()
        rig.server.close()
