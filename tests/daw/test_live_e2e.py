"""End to end for Live: a real `audio-agent serve`, the remote script on a fake Live set, real OSC."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.daw.conftest import AUDIO_AGENT, ROOT, needs_server
from tests.daw.fake_live import CInstance, CuePoint, Song
from tests.daw.test_live import AudioAgentSurface

pytestmark = needs_server


def tick_until(surface: AudioAgentSurface, c: CInstance, *, word: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(word in m for m in c.messages):
        assert time.monotonic() < deadline, f"no '{word}' from the server; messages: {c.messages[-5:]}"
        assert not any("error" in m for m in c.messages), c.messages
        surface.update_display()
        time.sleep(0.02)


def test_locator_request_and_cli_request_both_land_as_clips(server):
    song = Song(tempo=90.0)
    c = CInstance(song)
    surface = AudioAgentSurface(c, config={"listen_port": 0, "server_osc_port": server["osc_port"]})
    try:
        # From inside Live: a locator at beat 6 (4 s at 90 bpm).
        song.cue_points.append(CuePoint("aa: a kettle whistling, followed by a cup set down (4s)", 6.0))
        tick_until(surface, c, word="placed")
        clips = song.clips()
        assert len(clips) >= 2
        assert surface.stem_root == str(server["data_dir"])
        assert min(clip.start_time for _, clip in clips) == pytest.approx(6.0, abs=1e-6)
        assert all(not track.overwritten for track in song.tracks)
        assert all(clip.file_path.startswith(str(server["data_dir"])) for _, clip in clips)

        # From a terminal: `audio-agent client ... --daw ableton` mirrors the job to Live.
        count = len(clips)
        c.messages.clear()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        process = subprocess.Popen(
            [str(AUDIO_AGENT), "client", "generate", "a dog barking", "--duration", "2", "--session", "cli-dog",
             "--anchor", "10", "--url", server["url"], "--daw", "ableton", "--osc-port", str(surface.listen_port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        tick_until(surface, c, word="placed")
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        dog = [clip for _, clip in song.clips() if "dog" in clip.name.lower()]
        assert len(song.clips()) == count + 1
        assert dog and dog[0].start_time == pytest.approx(10 * 90 / 60)  # anchor 10 s at 90 bpm
    finally:
        surface.disconnect()


def test_live_sync_send_and_stale_edit_against_a_real_server(server):
    """A deleted clip comes back with `aa sync`; a clip gain the designer changed goes to the
    server with `aa send` (one version); an edit made elsewhere meanwhile makes Live's next edit
    stale: refused with conflict, and Live shows the server's version. After each, Live and the
    server agree on every event's clip, position and gain."""
    from server.client import run_request

    song = Song(tempo=120.0)
    c = CInstance(song)
    surface = AudioAgentSurface(c, config={"listen_port": 0, "server_osc_port": server["osc_port"]})

    def server_events() -> tuple[int, dict]:
        outcome = run_request({"type": "get_session", "session": session}, url=server["url"], timeout_s=30)
        info = outcome.message["info"]
        return info["current_version"], {e["id"]: e for e in info["manifest"]["events"]}

    def assert_agree() -> int:
        version, events = server_events()
        clips = {clip.file_path: clip for _, clip in song.clips()}
        assert len(clips) == len(events)
        for event in events.values():
            clip = clips[event["stem_path"]]
            assert clip.start_time == pytest.approx((2.0 + event["start_s"]) * 2)
            assert clip.gain_db == pytest.approx(event["gain_db"], abs=0.1)
        return version

    def locator(name: str, time_beats: float) -> None:
        c.messages.clear()
        song.cue_points.append(CuePoint(name, time_beats))
        tick_until(surface, c, word="placed")

    try:
        locator("aa: a kettle whistling, followed by a cup set down (4s)", 4.0)  # anchor 2 s
        session = surface.state["last_session"]
        assert assert_agree() == 1
        track, lost = song.clips()[0]
        track.delete_clip(lost)  # e.g. undone in Live, or a clip lost on the way
        locator("aa sync", 40.0)
        assert assert_agree() == 1

        _, clip = song.clips()[0]
        surface.gain_curve.apply(clip, clip.gain_db - 4.0)  # the designer pulls it down 4 dB
        locator("aa send", 44.0)
        assert assert_agree() == 2

        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        elsewhere = subprocess.run([str(AUDIO_AGENT), "client", "edit", "make everything quieter", "--session",
                                    session, "--url", server["url"]], capture_output=True, text=True, env=env,
                                   cwd=ROOT, timeout=120)
        assert elsewhere.returncode == 0, elsewhere.stderr
        c.messages.clear()
        song.cue_points.append(CuePoint("aa edit: louder kettle", 48.0))
        deadline = time.monotonic() + 90
        while not any("placed" in m for m in c.messages):
            assert time.monotonic() < deadline, c.messages
            surface.update_display()
            time.sleep(0.02)
        assert any("conflict" in m or "version 3" in m for m in c.messages), c.messages
        assert assert_agree() == 3
    finally:
        surface.disconnect()


def test_live_reroll_lands_variations_on_scratch_tracks_and_keep_tells_the_server(server):
    """`aa reroll 3` over a clip: one request, one batched render of three seeds; each variation
    on a scratch track right after the event's track, named "<event> v<number>", at the event's
    time. `aa keep 2` makes that variation the event's sound on the server and in the set."""
    from server.client import run_request

    song = Song(tempo=120.0)
    c = CInstance(song)
    surface = AudioAgentSurface(c, config={"listen_port": 0, "server_osc_port": server["osc_port"]})

    def server_info() -> dict:
        outcome = run_request({"type": "get_session", "session": session}, url=server["url"], timeout_s=30)
        return outcome.message["info"]

    def locator(name: str, time_beats: float, word: str = "placed") -> None:
        c.messages.clear()
        song.cue_points.append(CuePoint(name, time_beats))
        tick_until(surface, c, word=word)

    try:
        locator("aa: a kettle whistling, followed by a cup set down (4s)", 4.0)  # anchor 2 s
        session = surface.state["last_session"]
        record_id, record = sorted(surface.state["sessions"][session]["events"].items())[0]
        event_tracks = len(song.tracks)
        sent = len(surface.requests)
        locator("aa reroll 3", record["start_beats"] + 0.01, word="variation(s) placed")
        assert len(surface.requests) == sent + 1  # one request for the three variations

        info = server_info()
        variations = [v for v in info["manifest"]["variations"] if v["event_id"] == record_id]
        assert [v["number"] for v in variations] == [1, 2, 3]
        assert all(not v["cache_hit"] for v in variations)  # rendered, in the one batch
        event = next(e for e in info["manifest"]["events"] if e["id"] == record_id)
        assert event["cache_hit"] and event["cache_key"] == variations[-1]["cache_key"]  # the last is active

        names = [track.name for track in song.tracks]
        assert len(song.tracks) == event_tracks + 3
        home = [surface._track_id(t) for t in song.tracks].index(surface.state["sessions"][session]["events"][record_id]["track"])
        description = record["description"]
        assert names[home + 1: home + 4] == [f"{description} v{n}" for n in (1, 2, 3)]
        for track, v in zip(song.tracks[home + 1: home + 4], variations):
            (clip,) = track.arrangement_clips
            assert clip.file_path == v["stem_path"] and clip.name == f"{description} v{v['number']}"
            assert clip.start_time == pytest.approx(record["start_beats"])
        # The event's own track plays the active variation's render.
        played = {clip.file_path for _, clip in song.clips()} & {e["stem_path"] for e in info["manifest"]["events"]}
        assert event["stem_path"] in played

        locator("aa keep 2", 60.0)
        info = server_info()
        assert next(e["seed"] for e in info["plan"]["events"] if e["id"] == record_id) == variations[1]["seed"]
        event = next(e for e in info["manifest"]["events"] if e["id"] == record_id)
        assert event["cache_key"] == variations[1]["cache_key"]
        assert event["stem_path"] in {clip.file_path for _, clip in song.clips()}
        assert len(song.tracks) == event_tracks + 3  # the scratch tracks stay for more listening
    finally:
        surface.disconnect()
