"""End to end: a real `audio-agent serve` on loopback, the REAPER scripts under lupa, and
ExecProcess really running the `audio-agent client` command lines they build.

Each drift scenario of a DAW and a server (a lost stem message, a stopped run after the server
committed, a Ctrl+Z in REAPER, a stem that could not be placed, the designer's own moves, trims,
volume changes and deletions, a stale edit, two project tabs) ends with the project and the
server agreeing on every event's item, position and gain."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from server.client import run_request
from server.commands.install_daw import install
from tests.daw.conftest import AUDIO_AGENT, ROOT, needs_server
from tests.daw.fake_reaper import FakeReaper

pytestmark = needs_server


def drive(reaper: FakeReaper, *, until: Callable[[], bool] | None = None, timeout_s: float = 90) -> None:
    """Run REAPER's defer loop (its clock moving with ours) until the script ends or `until`."""
    started, base = time.monotonic(), reaper.clock_s
    while reaper.running and not (until and until()):
        assert time.monotonic() < started + timeout_s, f"run did not finish; console: {reaper.console[-5:]}"
        reaper.clock_s = base + time.monotonic() - started
        reaper.run_deferred()
        time.sleep(0.02)


def job_files(reaper: FakeReaper) -> list[Path]:
    return sorted((reaper.resource_path / "AudioAgent" / "jobs").glob("*.jsonl"), key=lambda p: p.stat().st_mtime)


def server_scene(url: str, session: str) -> dict:
    outcome = run_request({"type": "get_session", "session": session}, url=url, timeout_s=30)
    assert outcome.exit_code == 0, outcome.message
    return outcome.message["info"]


def assert_agree(reaper: FakeReaper, url: str, session: str, *, anchor_s: float, project=None) -> dict:
    """Every event of the server's current version has exactly one item, at anchor + start_s,
    at its gain, playing its stem; no item of the scene is left over; the project records it."""
    info = server_scene(url, session)
    items = reaper.items_of_session(session, project)
    events = {event["id"]: event for event in info["manifest"]["events"]}
    assert set(items) == set(events)
    for event_id, event in events.items():
        item = items[event_id]
        assert item.values["D_POSITION"] == pytest.approx(anchor_s + event["start_s"], abs=1e-6), event_id
        assert item.values["D_VOL"] == pytest.approx(10 ** (event["gain_db"] / 20), rel=1e-6), event_id
        # The active take plays the event's render: its file, or the same render (cache key)
        # kept under an earlier version's folder.
        assert (item.take.source.root().filename == event["stem_path"]
                or item.take.ext.get("P_EXT:audioagent_cache") == event["cache_key"]), event_id
        assert item.values["D_LENGTH"] == pytest.approx(event["end_s"] - event["start_s"], abs=1e-6)
    meta = json.loads((project or reaper.active).ext[("AudioAgent", f"session:{session}")])
    assert meta["version"] == info["current_version"]
    return info


def run_action(reaper: FakeReaper, scripts: Path, name: str, *inputs: str) -> None:
    for text in inputs:
        reaper.user_inputs.append((True, text))
    reaper.run_script(name, scripts)


def run_until_job_ends(reaper: FakeReaper, scripts: Path, name: str, *inputs: str) -> None:
    """Start an action and let it start its client job (status, then the job), then wait for the
    client to finish without letting REAPER read what it wrote: the test steps in between."""
    count = len(reaper.processes)
    run_action(reaper, scripts, name, *inputs)
    drive(reaper, until=lambda: len(reaper.processes) >= count + 2)
    reaper.processes[-1].wait(timeout=90)


@pytest.fixture
def rig(server, tmp_path):
    scripts = tmp_path / "Scripts" / "AudioAgent"
    install("reaper", scripts, url=server["url"])
    reaper = FakeReaper(resource_path=tmp_path / "reaper")
    return {"reaper": reaper, "scripts": scripts, "url": server["url"]}


def generate(rig, prompt: str = "a kettle whistling, followed by a cup set down", cursor_s: float = 3.0) -> str:
    reaper = rig["reaper"]
    reaper.cursor_s = cursor_s
    run_action(reaper, rig["scripts"], "AudioAgent_Generate_scene.lua", f"{prompt}\n4")
    drive(reaper)
    assert reaper.message_boxes == [], reaper.message_boxes
    return json.loads(job_files(reaper)[-1].read_text().splitlines()[-1])["session"]


def test_generate_edit_undo_and_redo_agree_with_the_server(rig):
    reaper, url = rig["reaper"], rig["url"]
    session = generate(rig)
    info = assert_agree(reaper, url, session, anchor_s=3.0)
    assert len(info["manifest"]["events"]) >= 2
    assert reaper.active.empty_undo_points() == []
    assert all(item.take.source.peaks_built for item in reaper.all_items())

    items = reaper.items_of_session(session)
    kettle = next(e for e in info["manifest"]["events"] if "kettle" in e["description"])
    others = [e for e in info["manifest"]["events"] if e is not kettle]
    for event in others:
        items[event["id"]].values["D_FADEINLEN"] = 0.05  # the designer's own fade stays
    items[kettle["id"]].selected = True
    run_action(reaper, rig["scripts"], "AudioAgent_Edit_scene.lua", "make the kettle louder")
    drive(reaper)
    assert reaper.message_boxes == []
    edited = assert_agree(reaper, url, session, anchor_s=3.0)
    assert edited["current_version"] == 2
    assert next(e for e in edited["manifest"]["events"] if e["id"] == kettle["id"])["gain_db"] > kettle["gain_db"]
    for event in others:
        assert reaper.items_of_session(session)[event["id"]].values["D_FADEINLEN"] == 0.05

    run_action(reaper, rig["scripts"], "AudioAgent_Undo_scene_edit.lua")
    drive(reaper)
    assert assert_agree(reaper, url, session, anchor_s=3.0)["current_version"] == 1
    run_action(reaper, rig["scripts"], "AudioAgent_Redo_scene_edit.lua")
    drive(reaper)
    assert assert_agree(reaper, url, session, anchor_s=3.0)["current_version"] == 2
    assert reaper.active.undo_points()[-3:] == [
        "AudioAgent: Edit scene", "AudioAgent: Undo scene edit", "AudioAgent: Redo scene edit"]
    assert reaper.active.empty_undo_points() == []


def test_drift_is_healed_by_one_sync(rig):
    reaper, url, scripts = rig["reaper"], rig["url"], rig["scripts"]
    sync = "AudioAgent_Sync_scene.lua"

    # A stem message lost on the way: the done message places it.
    reaper.cursor_s = 3.0
    run_until_job_ends(reaper, scripts, "AudioAgent_Generate_scene.lua",
                       "a kettle whistling, followed by a cup set down\n4")
    events = job_files(reaper)[-1]
    lines = events.read_text().splitlines()
    lost = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "stem_ready")
    events.write_text("\n".join(lines[:lost] + lines[lost + 1:]) + "\n")
    drive(reaper)
    session = json.loads(lines[-1])["session"]
    assert_agree(reaper, url, session, anchor_s=3.0)

    # The server commits a version, but the designer stops the run before REAPER applies it.
    run_until_job_ends(reaper, scripts, "AudioAgent_Edit_scene.lua", "make the cup louder")
    reaper.exit_script()
    assert server_scene(url, session)["current_version"] == 2
    run_action(reaper, scripts, sync)
    drive(reaper)
    assert assert_agree(reaper, url, session, anchor_s=3.0)["current_version"] == 2

    # Ctrl+Z in REAPER takes the applied version out again; a sync puts it back.
    assert reaper.ctrl_z() == "AudioAgent: Sync scene"
    run_action(reaper, scripts, sync)
    drive(reaper)
    assert_agree(reaper, url, session, anchor_s=3.0)

    # A stem that cannot be placed (its file is gone when REAPER reads the done message):
    # the rest is placed, the designer is told; once the file is back, a sync places it.
    run_until_job_ends(reaper, scripts, "AudioAgent_Edit_scene.lua", "add a spoon stirring")
    done = json.loads(job_files(reaper)[-1].read_text().splitlines()[-1])
    assert done["type"] == "done", done
    placed = {item for item in reaper.items_of_session(session)}
    new = [e for e in done["manifest"]["events"] if e["id"] not in placed]
    assert new, "the edit added no event"
    hidden = Path(new[0]["stem_path"])
    hidden.rename(hidden.with_suffix(".hidden"))
    drive(reaper)
    assert "stem file not found" in reaper.message_boxes[-1][1]
    hidden.with_suffix(".hidden").rename(hidden)
    run_action(reaper, scripts, sync)
    drive(reaper)
    assert_agree(reaper, url, session, anchor_s=3.0)

    # The designer's own move, trim, volume change and deletion become the server's version.
    items = reaper.items_of_session(session)
    ids = sorted(items)
    moved, trimmed, louder, deleted = ids[0], ids[1], ids[0], ids[-1]
    items[moved].values["D_POSITION"] += 0.25
    items[trimmed].values["D_LENGTH"] -= 0.1
    items[louder].values["D_VOL"] *= 10 ** (-3 / 20)
    items[deleted].track.items.remove(items[deleted])
    reaper.user_action("designer's edits")
    before = server_scene(url, session)
    boxes_before = len(reaper.message_boxes)
    run_action(reaper, scripts, "AudioAgent_Send_my_changes.lua")
    drive(reaper)
    assert reaper.message_boxes[boxes_before:] == []
    after = assert_agree(reaper, url, session, anchor_s=3.0)
    assert after["current_version"] == before["current_version"] + 1
    old = {e["id"]: e for e in before["manifest"]["events"]}
    new_events = {e["id"]: e for e in after["manifest"]["events"]}
    assert deleted not in new_events
    assert new_events[moved]["start_s"] == pytest.approx(old[moved]["start_s"] + 0.25)
    assert new_events[moved]["gain_db"] == pytest.approx(old[moved]["gain_db"] - 3, abs=0.01)
    assert new_events[trimmed]["end_s"] - new_events[trimmed]["start_s"] == pytest.approx(
        old[trimmed]["end_s"] - old[trimmed]["start_s"] - 0.1)

    # A stale edit: the session moved on elsewhere (a terminal); REAPER's edit is refused with
    # conflict, and the project syncs to the server's version by itself.
    cli = subprocess.run([str(AUDIO_AGENT), "client", "edit", "make everything quieter", "--session", session,
                          "--url", url], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert cli.returncode == 0, cli.stderr
    boxes = len(reaper.message_boxes)
    run_action(reaper, scripts, "AudioAgent_Edit_scene.lua", "louder kettle")
    drive(reaper)
    drive(reaper)  # the sync it starts
    title, message = reaper.message_boxes[boxes]
    assert title == "AudioAgent: Edit scene failed" and "version" in message and "Sync scene" in message
    assert_agree(reaper, url, session, anchor_s=3.0)
    assert reaper.active.empty_undo_points() == []


def test_two_project_tabs_keep_to_their_own_scene(rig):
    reaper, url = rig["reaper"], rig["url"]
    first = reaper.active
    reaper.cursor_s = 1.0
    run_action(reaper, rig["scripts"], "AudioAgent_Generate_scene.lua", "rain on a tin roof\n3")
    drive(reaper, until=lambda: len(reaper.processes) >= 2)
    second = reaper.new_project("other tab")  # the designer opens another tab while it renders
    reaper.processes[-1].wait(timeout=90)
    for _ in range(20):
        reaper.run_deferred()
    assert second.tracks == [] and second.ext == {} and second.undo_points() == []
    assert reaper.running  # waiting for its own tab
    reaper.switch_to(first)
    drive(reaper)
    session = json.loads(job_files(reaper)[-1].read_text().splitlines()[-1])["session"]
    assert_agree(reaper, url, session, anchor_s=1.0, project=first)
    assert second.tracks == []


def test_a_stopped_server_is_reported_and_nothing_inserted(tmp_path):
    scripts = tmp_path / "Scripts" / "AudioAgent"
    install("reaper", scripts, url="ws://127.0.0.1:9")  # nothing listens on the discard port
    reaper = FakeReaper(resource_path=tmp_path / "reaper")
    reaper.user_inputs.append((True, "rain\n4"))
    reaper.run_script("AudioAgent_Generate_scene.lua", scripts)
    drive(reaper)
    assert reaper.tracks == []
    (title, message), = reaper.message_boxes
    assert message.startswith("the Audio-Agent server is not reachable: audio-agent: error:")
    assert reaper.active.undo_points() == []


def test_reroll_into_takes_and_the_chosen_take_goes_back_to_the_server(rig):
    reaper, url, scripts = rig["reaper"], rig["url"], rig["scripts"]
    session = generate(rig)
    info = assert_agree(reaper, url, session, anchor_s=3.0)
    event_id = sorted(reaper.items_of_session(session))[0]
    item = reaper.items_of_session(session)[event_id]
    first_source = item.take.source.root().filename
    first_seed = next(e["seed"] for e in info["plan"]["events"] if e["id"] == event_id)
    item.selected = True
    run_action(reaper, scripts, "AudioAgent_Reroll_selected_events.lua")
    drive(reaper)
    assert reaper.message_boxes == []
    info = assert_agree(reaper, url, session, anchor_s=3.0)
    item = reaper.items_of_session(session)[event_id]
    assert len(item.takes) == 2 and item.active == 1  # the new variation is a new, active take
    assert item.takes[0].source.root().filename == first_source
    new_seed = next(e["seed"] for e in info["plan"]["events"] if e["id"] == event_id)
    assert new_seed != first_seed and item.take.ext["P_EXT:audioagent_seed"] == str(new_seed)
    assert item.take.name.endswith("#2")

    # The designer prefers the first take: switching to it and sending makes it the server's.
    item.active = 0
    reaper.user_action("Take: switch items to previous take")
    run_action(reaper, scripts, "AudioAgent_Send_my_changes.lua")
    drive(reaper)
    assert reaper.message_boxes == []
    info = assert_agree(reaper, url, session, anchor_s=3.0)
    assert next(e["seed"] for e in info["plan"]["events"] if e["id"] == event_id) == first_seed
    item = reaper.items_of_session(session)[event_id]
    assert len(item.takes) == 2 and item.active == 0  # no third take: that render is the first one


def test_reroll_n_variations_is_one_batch_landing_as_n_takes(rig):
    reaper, url, scripts = rig["reaper"], rig["url"], rig["scripts"]
    session = generate(rig)
    event_id = sorted(reaper.items_of_session(session))[0]
    item = reaper.items_of_session(session)[event_id]
    first_source = item.take.source.root().filename
    item.selected = True
    jobs_before = len(job_files(reaper))
    run_action(reaper, scripts, "AudioAgent_Reroll_N_variations.lua", "3")
    drive(reaper)
    assert reaper.message_boxes == [], reaper.message_boxes
    assert len(job_files(reaper)) == jobs_before + 1  # one request for all three variations
    info = assert_agree(reaper, url, session, anchor_s=3.0)
    manifest = info["manifest"]
    variations = [v for v in manifest["variations"] if v["event_id"] == event_id]
    assert [v["number"] for v in variations] == [1, 2, 3]
    # One generator call rendered all three (none was in the cache); the version's own stem for
    # the event is the active variation's, reused from that batch with no call of its own.
    assert all(not v["cache_hit"] for v in variations)
    played = next(e for e in manifest["events"] if e["id"] == event_id)
    assert played["cache_hit"] and played["cache_key"] == variations[-1]["cache_key"]
    assert all(e["cache_hit"] for e in manifest["events"])
    seed = next(e["seed"] for e in info["plan"]["events"] if e["id"] == event_id)
    assert seed == variations[-1]["seed"]  # the last variation is the active one

    item = reaper.items_of_session(session)[event_id]
    assert len(item.takes) == 4 and item.active == 3  # the first take + three, the last active
    assert item.takes[0].source.root().filename == first_source
    for take, v in zip(item.takes[1:], variations):
        assert take.ext["P_EXT:audioagent_seed"] == str(v["seed"])
        assert take.ext["P_EXT:audioagent_cache"] == v["cache_key"]
    assert [t.name.rsplit(" ", 1)[-1] for t in item.takes[1:]] == ["#2", "#3", "#4"]

    # The designer keeps the second variation: choosing its take and sending tells the server.
    item.active = 2
    reaper.user_action("Take: switch items to previous take")
    run_action(reaper, scripts, "AudioAgent_Send_my_changes.lua")
    drive(reaper)
    assert reaper.message_boxes == []
    info = assert_agree(reaper, url, session, anchor_s=3.0)
    assert next(e["seed"] for e in info["plan"]["events"] if e["id"] == event_id) == variations[1]["seed"]
    item = reaper.items_of_session(session)[event_id]
    assert len(item.takes) == 4 and item.active == 2  # no new take: that variation is already one


def test_reroll_n_variations_refuses_a_bad_count(rig):
    reaper, scripts = rig["reaper"], rig["scripts"]
    session = generate(rig)
    item = next(iter(reaper.items_of_session(session).values()))
    item.selected = True
    jobs_before = len(job_files(reaper))
    run_action(reaper, scripts, "AudioAgent_Reroll_N_variations.lua", "9")
    drive(reaper)
    assert len(reaper.message_boxes) == 1 and "2 to 8" in str(reaper.message_boxes[0])
    assert len(job_files(reaper)) == jobs_before


def test_foley_with_a_checkpoint_the_server_does_not_offer_shows_its_refusal(rig, tmp_path):
    from tests.daw.fake_reaper import Item, Source, Take, Track

    reaper = rig["reaper"]
    video_track = Track(name="picture")
    video = Item(track=video_track, selected=True)
    video.values.update({"D_POSITION": 2.0, "D_LENGTH": 4.0})
    clip = tmp_path / "cut.mp4"
    clip.write_bytes(b"\0" * 64)  # the file must exist; the checkpoint is refused before it is read
    video.takes.append(Take(source=Source(filename=str(clip), kind="VIDEO")))
    video_track.items.append(video)
    reaper.tracks.append(video_track)
    run_action(reaper, rig["scripts"], "AudioAgent_Foley_from_selected_video_item.lua", "\nfoley")
    drive(reaper)
    # This server was started without --vta-checkpoint: it says so, naming how to offer one.
    ((title, message),) = reaper.message_boxes
    assert title == "AudioAgent: Foley from video failed"
    assert "checkpoint='foley': not a VTA checkpoint this server offers" in message
    assert "--vta-checkpoint NAME=DIR" in message
    assert len(reaper.tracks) == 1  # nothing placed
