"""End to end: a real `audio-agent serve` on loopback, the REAPER scripts under lupa, and
ExecProcess really running the `audio-agent client` command lines they build."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from server.commands.install_daw import install
from tests.daw.conftest import needs_server
from tests.daw.fake_reaper import FakeReaper

pytestmark = needs_server


def drive(reaper: FakeReaper, *, timeout_s: float = 90) -> None:
    started, base = time.monotonic(), reaper.clock_s
    while reaper.running:
        assert time.monotonic() < started + timeout_s, f"run did not finish; console: {reaper.console[-5:]}"
        reaper.clock_s = base + time.monotonic() - started  # REAPER's clock runs while we wait
        reaper.run_deferred()
        time.sleep(0.02)


def last_done(reaper: FakeReaper) -> dict:
    jobs = reaper.resource_path / "AudioAgent" / "jobs"
    newest = max(jobs.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    lines = [json.loads(line) for line in newest.read_text().splitlines()]
    assert lines[-1]["type"] == "done", lines[-1]
    return lines[-1]


def test_generate_then_edit_against_a_real_server(server, tmp_path):
    scripts = tmp_path / "Scripts" / "AudioAgent"
    install("reaper", scripts, url=server["url"])
    reaper = FakeReaper(resource_path=tmp_path / "reaper")
    reaper.cursor_s = 3.0
    reaper.user_inputs.append((True, "a kettle whistling, followed by a cup set down\n4"))
    reaper.run_script("AudioAgent_Generate_scene.lua", scripts)
    drive(reaper)
    assert reaper.message_boxes == []

    manifest = last_done(reaper)["manifest"]
    items = {item.strings["P_EXT:audioagent_event"]: item for item in reaper.all_items()}
    assert set(items) == {event["id"] for event in manifest["events"]} and len(items) >= 2
    for event in manifest["events"]:
        item = items[event["id"]]
        assert item.values["D_POSITION"] == pytest.approx(3.0 + event["start_s"])
        assert item.values["D_VOL"] == pytest.approx(10 ** (event["gain_db"] / 20))
        source = Path(item.take.source.filename)
        assert source.is_file() and source.resolve().is_relative_to(server["data_dir"])
        assert item.take.name == event["description"]
    assert reaper.undo_log == [("begin",), ("end", "AudioAgent: Generate scene", -1)]

    # Edit the scene: only the kettle's loudness changes; the cup's item keeps the user's fade.
    kettle = next(e for e in manifest["events"] if "kettle" in e["description"])
    others = [e for e in manifest["events"] if e is not kettle]
    for event in others:
        items[event["id"]].values["D_FADEINLEN"] = 0.05
    before = {e["id"]: items[e["id"]].snapshot() for e in others}
    items[kettle["id"]].selected = True
    reaper.user_inputs.append((True, "make the kettle louder"))
    reaper.run_script("AudioAgent_Edit_scene.lua", scripts)
    drive(reaper)
    assert reaper.message_boxes == []
    edited = last_done(reaper)["manifest"]
    new_kettle = next(e for e in edited["events"] if e["id"] == kettle["id"])
    assert new_kettle["gain_db"] > kettle["gain_db"]
    after = reaper.items_of_session(items[kettle["id"]].strings["P_EXT:audioagent_session"])
    assert after[kettle["id"]].values["D_VOL"] == pytest.approx(10 ** (new_kettle["gain_db"] / 20))
    assert math.isclose(after[kettle["id"]].values["D_POSITION"], 3.0 + kettle["start_s"])
    for event in others:
        assert after[event["id"]].snapshot() == before[event["id"]]

    # And back: the server steps the session to version 1; the kettle gets its old volume again.
    reaper.run_script("AudioAgent_Undo_scene_edit.lua", scripts)
    drive(reaper)
    assert reaper.message_boxes == []
    undone = last_done(reaper)
    restored = next(e for e in undone["manifest"]["events"] if e["id"] == kettle["id"])
    assert restored["gain_db"] == pytest.approx(kettle["gain_db"])
    after = reaper.items_of_session(items[kettle["id"]].strings["P_EXT:audioagent_session"])
    assert after[kettle["id"]].values["D_VOL"] == pytest.approx(10 ** (kettle["gain_db"] / 20))
    for event in others:
        assert after[event["id"]].snapshot() == before[event["id"]]
    assert [entry[1] for entry in reaper.undo_log if entry[0] == "end"] == [
        "AudioAgent: Generate scene", "AudioAgent: Edit scene", "AudioAgent: Undo scene edit"]


def test_a_stopped_server_is_reported_and_nothing_inserted(tmp_path):
    scripts = tmp_path / "Scripts" / "AudioAgent"
    install("reaper", scripts, url="ws://127.0.0.1:9")  # nothing listens on the discard port
    reaper = FakeReaper(resource_path=tmp_path / "reaper")
    reaper.user_inputs.append((True, "rain\n4"))
    reaper.run_script("AudioAgent_Generate_scene.lua", scripts)
    assert not reaper.running and reaper.tracks == []
    (title, message), = reaper.message_boxes
    assert message.startswith("the Audio-Agent server is not reachable: audio-agent: error:")

