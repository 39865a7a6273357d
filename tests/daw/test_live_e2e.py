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
