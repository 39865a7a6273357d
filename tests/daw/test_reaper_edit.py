"""Edit / undo / redo / sync / send-my-changes under the fake REAPER with a scripted client.

An existing scene is brought to the server's version in one go when the version is done (one
undo point, none when nothing changes), keyed by the event ids on the items: the designer's
fades, FX and names stay; their own moves and volume trims go to the server first."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.daw.conftest import ScriptedClient, write_wav
from tests.daw.fake_reaper import FakeReaper, Track
from tests.daw.test_reaper_generate import done, session_of, start_generate, stem

EDIT = "AudioAgent_Edit_scene.lua"
UNDO = "AudioAgent_Undo_scene_edit.lua"
REDO = "AudioAgent_Redo_scene_edit.lua"
SYNC = "AudioAgent_Sync_scene.lua"
SEND = "AudioAgent_Send_my_changes.lua"

SCENE = [  # event id, description, start_s, end_s, gain_db
    ("rain", "steady rain", 0.0, 12.0, -3.0),
    ("door", "car door slam", 4.5, 6.0, 2.5),
    ("engine", "engine starts", 6.0, 9.0, 0.0),
    ("tyres", "tyres on wet road", 8.0, 12.0, -1.0),
    ("dog", "distant dog bark", 2.0, 3.0, -8.0),
]


@pytest.fixture
def scene(reaper: FakeReaper, client: ScriptedClient, scripts_dir: Path, stem_root: Path) -> dict:
    reaper.cursor_s = 10.0
    start_generate(reaper, scripts_dir, "a man drives away in the rain", "12")
    session = session_of(client)
    stems = [stem(client, stem_root, *row, session=session) for row in SCENE]
    for s in stems:
        client.send(s)
    client.send(done(stems))
    reaper.run_deferred()
    assert not reaper.running and reaper.message_boxes == []
    return {"session": session, "stems": {s["event_id"]: s for s in stems}}


def run(reaper: FakeReaper, script: str, scripts_dir: Path, *inputs: str) -> None:
    for text in inputs:
        reaper.user_inputs.append((True, text))
    reaper.run_script(script, scripts_dir)
    reaper.run_deferred()  # status answered: the job starts


def words(client: ScriptedClient) -> list[str]:
    argv = client.job["argv"]
    return argv[argv.index("client") + 1:argv.index("--events-file")]


def finish(reaper: FakeReaper, client: ScriptedClient, stems: dict, *, version: int, session: str) -> None:
    message = done(list(stems.values()), version=version)
    message["session"] = session
    client.send(message)
    reaper.run_deferred()


def user_touches(reaper: FakeReaper, session: str) -> None:
    """What a sound designer does that stays theirs: fades, FX, a selection (no moves)."""
    items = reaper.items_of_session(session)
    items["rain"].values["D_FADEINLEN"] = 1.5
    items["door"].values["D_FADEOUTLEN"] = 0.2
    items["engine"].track.fx_count = 2
    items["tyres"].values["D_FADEINLEN"] = 0.3
    items["door"].selected = True


def new_stem(client, stem_root, scene, event_id, **fields):
    out = {**scene["stems"][event_id], **fields}
    if "stem_path" not in fields and fields.get("description"):
        path = write_wav(stem_root / scene["session"] / f"{event_id}-v2.wav")
        out["stem_path"] = str(path)
    return out


def test_edit_applies_the_new_version_in_one_undo_point(reaper, client, scripts_dir, stem_root, scene):
    session = scene["session"]
    user_touches(reaper, session)
    before = {k: item.snapshot() for k, item in reaper.items_of_session(session).items()}
    old_tyres_source = reaper.items_of_session(session)["tyres"].take.source

    run(reaper, EDIT, scripts_dir, "the engine a second later, louder dog, gravel tyres, no door, thunder")
    assert words(client) == ["edit", "the engine a second later, louder dog, gravel tyres, no door, thunder",
                             "--session", session, "--base-version", "1"]
    client.send({"type": "accepted", "id": "r2", "job": "j2"})
    client.send({"type": "plan", "id": "r2", "job": "j2", "session": session, "version": 2, "duration_s": 12.0,
                 "events": [], "diff": {}})
    engine = new_stem(client, stem_root, scene, "engine", start_s=7.0, end_s=10.0, change="moved")
    tyres = new_stem(client, stem_root, scene, "tyres", description="tyres on gravel", end_s=11.5, gain_db=-2.0)
    dog = new_stem(client, stem_root, scene, "dog", gain_db=4.0, change="regained")
    thunder = stem(client, stem_root, "thunder", "distant thunder", 1.0, 5.0, -4.0, session=session)
    for message in (engine, tyres, dog):
        client.send(message)
    reaper.run_deferred()
    # An edit changes nothing until its version is complete.
    assert reaper.running and {k: i.snapshot() for k, i in reaper.items_of_session(session).items()} == before
    stems = {k: v for k, v in scene["stems"].items() if k != "door"}
    stems.update(engine=engine, tyres=tyres, dog=dog, thunder=thunder)
    finish(reaper, client, stems, version=2, session=session)
    assert not reaper.running and reaper.message_boxes == []

    after = reaper.items_of_session(session)
    assert after["rain"].snapshot() == before["rain"]
    assert after["engine"].values["D_POSITION"] == 17.0 and after["engine"].track.fx_count == 2
    assert math.isclose(after["dog"].values["D_VOL"], 10 ** (4 / 20))
    assert after["dog"].snapshot()["source"] == before["dog"]["source"]
    assert after["tyres"].take.source.filename == tyres["stem_path"] and after["tyres"].values["D_LENGTH"] == 3.5
    assert after["tyres"].values["D_FADEINLEN"] == 0.3 and after["tyres"].take.name == "tyres on gravel"
    assert old_tyres_source.destroyed and after["tyres"].take.source.peaks_built
    assert "door" not in after and "car door slam" not in [t.name for t in reaper.tracks]
    assert after["thunder"].values["D_POSITION"] == 11.0
    assert [t.depth for t in reaper.tracks] == [1, 0, 0, 0, 0, -1]
    assert reaper.active.undo_points()[-1] == "AudioAgent: Edit scene"
    assert reaper.active.empty_undo_points() == []
    assert json.loads(reaper.proj_ext[("AudioAgent", f"session:{session}")])["version"] == 2


def test_failed_edit_changes_nothing_and_makes_no_undo_point(reaper, client, scripts_dir, stem_root, scene):
    session = scene["session"]
    user_touches(reaper, session)
    before = {k: item.snapshot() for k, item in reaper.items_of_session(session).items()}
    points = reaper.active.undo_points()
    run(reaper, EDIT, scripts_dir, "swap the tyres")
    client.send(new_stem(client, stem_root, scene, "tyres", description="tyres on gravel"))
    client.send({"type": "error", "id": "r2", "code": "planner_failed", "message": "the planner gave no plan",
                 "field": None})
    reaper.run_deferred()
    assert {k: item.snapshot() for k, item in reaper.items_of_session(session).items()} == before
    assert reaper.active.undo_points() == points
    assert reaper.message_boxes == [("AudioAgent: Edit scene failed", "the planner gave no plan")]


def test_edit_uses_the_last_session_when_nothing_is_selected(reaper, client, scripts_dir, scene):
    run(reaper, EDIT, scripts_dir, "quieter rain")
    assert words(client)[2:4] == ["--session", scene["session"]]


def test_edit_without_any_session_says_so_and_leaves_no_undo_point(reaper, client, scripts_dir):
    reaper.run_script(EDIT, scripts_dir)
    assert reaper.message_boxes[0][0] == "AudioAgent: Edit scene"
    assert "generate a scene first" in reaper.message_boxes[0][1]
    assert reaper.exec_commands == [] and reaper.active.undo_points() == []


def test_undo_and_redo_sync_to_the_version_the_server_restores(reaper, client, scripts_dir, scene):
    session = scene["session"]
    user_touches(reaper, session)
    before = {k: item.snapshot() for k, item in reaper.items_of_session(session).items()}
    run(reaper, UNDO, scripts_dir)
    assert words(client) == ["undo", "--session", session, "--base-version", "1"]
    stems = dict(scene["stems"])
    stems["door"] = {**stems["door"], "start_s": 3.0, "end_s": 4.5}
    stems["dog"] = {**stems["dog"], "gain_db": -12.0}
    finish(reaper, client, stems, version=3, session=session)
    after = reaper.items_of_session(session)
    assert after["door"].values["D_POSITION"] == 13.0 and after["door"].values["D_FADEOUTLEN"] == 0.2
    assert math.isclose(after["dog"].values["D_VOL"], 10 ** (-12 / 20))
    for key in ("rain", "engine", "tyres"):
        assert after[key].snapshot() == before[key]
    assert reaper.active.undo_points()[-1] == "AudioAgent: Undo scene edit"
    run(reaper, REDO, scripts_dir)
    assert words(client) == ["redo", "--session", session, "--base-version", "3"]
    finish(reaper, client, scene["stems"], version=1, session=session)
    assert reaper.items_of_session(session)["door"].values["D_POSITION"] == 14.5


def test_hand_moves_trims_volume_and_deletions_go_first_as_one_version(reaper, client, scripts_dir, stem_root,
                                                                      scene):
    session = scene["session"]
    items = reaper.items_of_session(session)
    items["engine"].values["D_POSITION"] += 0.5  # nudged to picture
    items["dog"].values["D_VOL"] *= 10 ** (-2 / 20)  # pulled down 2 dB
    items["rain"].values["D_LENGTH"] = 10.0  # trimmed
    door = items["door"]
    door.track.items.remove(door)  # deleted
    run(reaper, EDIT, scripts_dir, "engine a second later")
    changes_job = client.job
    argv = changes_job["argv"]
    assert words(client)[0] == "edit" and argv[argv.index("--base-version") + 1] == "1"
    sent = json.loads(Path(argv[argv.index("--changes-file") + 1]).read_text())
    by_op = {(c["op"], c["event_id"]): c for c in sent}
    assert set(by_op) == {("move", "engine"), ("set_loudness", "dog"), ("move", "rain"), ("delete", "door")}
    assert by_op[("move", "engine")]["start_s"] == pytest.approx(6.5)
    assert by_op[("move", "engine")]["end_s"] == pytest.approx(9.5)
    assert by_op[("set_loudness", "dog")]["target_lufs"] == pytest.approx(-25.0)
    assert by_op[("move", "rain")]["end_s"] == pytest.approx(10.0)
    # The server takes them as version 2 (the trimmed rain is rendered at its new length).
    v2 = {k: v for k, v in scene["stems"].items() if k != "door"}
    v2["engine"] = {**v2["engine"], "start_s": 6.5, "end_s": 9.5}
    v2["dog"] = {**v2["dog"], "gain_db": -10.0}
    v2["rain"] = new_stem(client, stem_root, scene, "rain", description="steady rain", end_s=10.0)
    finish(reaper, client, v2, version=2, session=session)
    after = reaper.items_of_session(session)
    # Nothing jumped: the items show what the designer made, now as the server's version 2.
    assert after["engine"].values["D_POSITION"] == pytest.approx(16.5)
    assert after["dog"].values["D_VOL"] == pytest.approx(10 ** (-10 / 20))
    assert after["rain"].values["D_LENGTH"] == 10.0 and after["rain"].take.source.filename == v2["rain"]["stem_path"]
    # Then the instruction itself, based on version 2.
    reaper.run_deferred()
    assert client.job is not changes_job
    assert words(client) == ["edit", "engine a second later", "--session", session, "--base-version", "2"]
    v3 = {**v2, "engine": {**v2["engine"], "start_s": 7.5, "end_s": 10.5}}
    finish(reaper, client, v3, version=3, session=session)
    assert reaper.items_of_session(session)["engine"].values["D_POSITION"] == pytest.approx(17.5)
    assert reaper.active.undo_points()[-2:] == ["AudioAgent: Send my changes", "AudioAgent: Edit scene"]
    assert reaper.active.empty_undo_points() == []


def test_send_my_changes_with_nothing_to_send_starts_nothing(reaper, client, scripts_dir, scene):
    reaper.run_script(SEND, scripts_dir)
    assert len(client.jobs) == 1 and reaper.active.undo_points() == ["AudioAgent: Generate scene"]


def test_a_stale_edit_is_refused_and_the_project_syncs(reaper, client, scripts_dir, stem_root, scene):
    session = scene["session"]
    run(reaper, EDIT, scripts_dir, "louder rain")
    client.send({"type": "error", "id": "r2", "code": "conflict", "field": "base_version",
                 "message": "base_version=1: the session is at version 4; sync first"})
    reaper.run_deferred()
    title, message = reaper.message_boxes[0]
    assert title == "AudioAgent: Edit scene failed" and "Sync scene" in message
    reaper.run_deferred()  # the sync's status answer
    assert words(client) == ["get-session", "--session", session]
    v4 = {k: v for k, v in scene["stems"].items() if k != "dog"}
    v4["rain"] = {**v4["rain"], "gain_db": 0.0}
    events = done(list(v4.values()), version=4)["manifest"]
    client.send({"type": "session", "id": "r3", "session": session,
                 "info": {"name": session, "current_version": 4, "anchor_s": 10.0, "manifest": events}})
    reaper.run_deferred()
    after = reaper.items_of_session(session)
    assert "dog" not in after and math.isclose(after["rain"].values["D_VOL"], 1.0)
    assert json.loads(reaper.proj_ext[("AudioAgent", f"session:{session}")])["version"] == 4


def sync(reaper, client, scripts_dir, session, stems, version):
    run(reaper, SYNC, scripts_dir)
    assert words(client) == ["get-session", "--session", session]
    manifest = done(list(stems.values()), version=version)["manifest"]
    client.send({"type": "session", "id": "r9", "session": session,
                 "info": {"name": session, "current_version": version, "anchor_s": 10.0, "manifest": manifest}})
    reaper.run_deferred()
    assert not reaper.running


def assert_matches(reaper, session, stems, anchor_s=10.0):
    items = reaper.items_of_session(session)
    assert set(items) == set(stems)
    for event_id, s in stems.items():
        item = items[event_id]
        assert item.values["D_POSITION"] == pytest.approx(anchor_s + s["start_s"])
        assert item.values["D_VOL"] == pytest.approx(10 ** (s["gain_db"] / 20))
        assert item.take.source.root().filename == s["stem_path"]


def test_ctrl_z_of_an_applied_edit_heals_on_the_next_sync(reaper, client, scripts_dir, stem_root, scene):
    session = scene["session"]
    run(reaper, EDIT, scripts_dir, "no dog, door later")
    v2 = {k: v for k, v in scene["stems"].items() if k != "dog"}
    v2["door"] = {**v2["door"], "start_s": 5.5, "end_s": 7.0}
    finish(reaper, client, v2, version=2, session=session)
    assert_matches(reaper, session, v2)
    assert reaper.ctrl_z() == "AudioAgent: Edit scene"  # REAPER puts the project back: dog and old door
    assert "dog" in reaper.items_of_session(session)
    sync(reaper, client, scripts_dir, session, v2, 2)
    assert_matches(reaper, session, v2)
    assert reaper.active.empty_undo_points() == []


def test_a_version_placed_half_way_heals_on_the_next_sync(reaper, client, scripts_dir, stem_root, scene):
    """The server committed version 2 but one stem could not be placed (its file was missing
    when the done message was read): the rest is placed, the designer is told, and a sync
    places the missing one."""
    session = scene["session"]
    run(reaper, EDIT, scripts_dir, "add thunder")
    thunder = stem(client, stem_root, "thunder", "distant thunder", 1.0, 5.0, -4.0, session=session)
    Path(thunder["stem_path"]).rename(thunder["stem_path"] + ".later")
    v2 = {**scene["stems"], "thunder": thunder, "dog": {**scene["stems"]["dog"], "gain_db": -4.0}}
    finish(reaper, client, v2, version=2, session=session)
    assert "stem file not found" in reaper.message_boxes[0][1] and "Sync scene" in reaper.message_boxes[0][1]
    assert "thunder" not in reaper.items_of_session(session)
    assert reaper.items_of_session(session)["dog"].values["D_VOL"] == pytest.approx(10 ** (-4 / 20))
    jobs = len(client.jobs)
    reaper.run_script(SEND, scripts_dir)  # the missing item is not a deletion of the designer's
    assert len(client.jobs) == jobs
    Path(thunder["stem_path"] + ".later").rename(thunder["stem_path"])
    sync(reaper, client, scripts_dir, session, v2, 2)
    assert_matches(reaper, session, v2)


def test_a_sync_with_nothing_to_change_makes_no_undo_point(reaper, client, scripts_dir, scene):
    points = reaper.active.undo_points()
    sync(reaper, client, scripts_dir, scene["session"], scene["stems"], 1)
    assert reaper.active.undo_points() == points


def test_switching_project_tabs_mid_job_sends_nothing_to_the_other_tab(reaper, client, scripts_dir, stem_root):
    first = reaper.active
    start_generate(reaper, scripts_dir, "harbour", "8")
    session = session_of(client)
    gulls = stem(client, stem_root, "gulls", "gulls", 0.0, 8.0, 0.0, session=session)
    second = reaper.new_project("other")  # the designer opens another tab while it renders
    client.send(gulls)
    client.send(done([gulls]))
    reaper.run_deferred(3)
    assert second.tracks == [] and second.ext == {} and second.undo_points() == []
    assert first.tracks == [] and reaper.running  # waits for its own tab
    reaper.switch_to(first)
    reaper.run_deferred()
    assert not reaper.running and [i.strings["P_EXT:audioagent_event"] for i in first.all_items()] == ["gulls"]
    assert first.ext[("AudioAgent", "last_session")] == session
    assert first.undo_points() == ["AudioAgent: Generate scene"] and second.undo_points() == []


def test_an_edit_keeps_the_designers_reverse_and_section(reaper, client, scripts_dir, stem_root, scene):
    session = scene["session"]
    rain = reaper.items_of_session(session)["rain"]
    reversed_source = reaper.reverse_item(rain)
    run(reaper, EDIT, scripts_dir, "heavier rain")
    rain2 = new_stem(client, stem_root, scene, "rain", description="heavy rain")
    finish(reaper, client, {**scene["stems"], "rain": rain2}, version=2, session=session)
    assert reaper.message_boxes == []
    take = reaper.items_of_session(session)["rain"].take
    assert take.source is reversed_source and take.source.section[2] is True  # still reversed
    assert take.source.root().filename == rain2["stem_path"]


def test_removing_the_last_event_keeps_the_designers_outer_folder(reaper, client, scripts_dir, scene):
    """The designer put our scene folder inside a folder of their own ("SFX"), with a track of
    theirs after it: removing our last track must keep both folders closing where they did."""
    session = scene["session"]
    outer = Track(name="SFX", depth=1)
    reaper.tracks.insert(0, outer)
    reaper.tracks[-1].depth = -2  # our last child now closes our folder and theirs
    reaper.tracks.append(Track(name="music"))
    run(reaper, EDIT, scripts_dir, "no dog")
    finish(reaper, client, {k: v for k, v in scene["stems"].items() if k != "dog"}, version=2, session=session)
    assert [t.name for t in reaper.tracks] == ["SFX", "AudioAgent: a man drives away in the rain", "steady rain",
                                               "car door slam", "engine starts", "tyres on wet road", "music"]
    assert [t.depth for t in reaper.tracks] == [1, 1, 0, 0, 0, -2, 0]


def test_project_start_offset_is_sent_with_the_anchor_but_not_applied_twice(reaper, client, scripts_dir,
                                                                            stem_root):
    reaper.active.time_offset_s = 3600.0  # project starts at 01:00:00:00
    reaper.cursor_s = 10.0
    start_generate(reaper, scripts_dir, "wind", "4")
    argv = client.job["argv"]
    assert argv[argv.index("--anchor") + 1] == "3610"  # BWF stamps match the project's timecode
    wind = stem(client, stem_root, "wind", "wind", 1.0, 3.0, 0.0, session=session_of(client))
    client.send(wind)
    client.send(done([wind]))
    reaper.run_deferred()
    assert reaper.all_items()[0].values["D_POSITION"] == 11.0


def test_stopping_a_run_cancels_the_server_job(reaper, client, scripts_dir, stem_root):
    start_generate(reaper, scripts_dir, "wind", "4")
    client.send({"type": "accepted", "id": "r1", "job": "job-42"})
    client.send(stem(client, stem_root, "wind", "wind", 1.0, 3.0, 0.0, session=session_of(client)))
    reaper.run_deferred()
    reaper.exit_script()
    cancel = client.calls[-1]
    assert cancel[cancel.index("client") + 1:cancel.index("client") + 4] == ["cancel", "--job", "job-42"]
    assert reaper.all_items() == []


def test_fades_the_plan_asks_for_are_applied_unless_the_designer_set_their_own(reaper, client, scripts_dir,
                                                                              stem_root, scene):
    session = scene["session"]
    reaper.items_of_session(session)["door"].values["D_FADEOUTLEN"] = 0.3  # the designer's own
    run(reaper, EDIT, scripts_dir, "soften the edges")
    message = done(list(scene["stems"].values()), version=2)
    for event in message["manifest"]["events"]:  # optional manifest fields of the plan
        event.update(fade_in_s=0.01, fade_out_s=0.05)
    client.send({**message, "session": session})
    reaper.run_deferred()
    items = reaper.items_of_session(session)
    assert items["rain"].values["D_FADEINLEN"] == 0.01 and items["rain"].values["D_FADEOUTLEN"] == 0.05
    assert items["door"].values["D_FADEOUTLEN"] == 0.3


def test_cancel_action_cancels_the_running_job_and_the_toolbar_shows_it(reaper, client, scripts_dir, stem_root):
    start_generate(reaper, scripts_dir, "wind", "4")
    generate_button = (0, reaper.command_id)
    assert reaper.toggle_states[generate_button] == 1  # the toolbar shows a job running
    client.send({"type": "accepted", "id": "r1", "job": "job-7"})
    client.send(stem(client, stem_root, "wind", "wind", 1.0, 3.0, 0.0, session=session_of(client)))
    reaper.run_deferred()
    reaper.run_script("AudioAgent_Cancel_running_job.lua", scripts_dir)
    assert client.calls[-1][-3:] == ["cancel", "--job", "job-7"]
    client.send({"type": "error", "id": "r1", "code": "cancelled", "message": "cancelled by client", "field": None,
                 "job": "job-7"})
    reaper.run_deferred()
    assert not reaper.running and reaper.all_items() == []
    assert reaper.toggle_states[generate_button] == 0 and reaper.ext_state == {}
    reaper.run_script("AudioAgent_Cancel_running_job.lua", scripts_dir)
    assert reaper.message_boxes[-1] == ("AudioAgent: Cancel running job", "no Audio-Agent job is running")
    assert reaper.active.empty_undo_points() == []


def test_regenerate_with_new_words_sends_one_change_for_the_selected_event(reaper, client, scripts_dir,
                                                                         stem_root, scene):
    session = scene["session"]
    item = reaper.items_of_session(session)["door"]
    item.selected = True
    item.values["D_FADEOUTLEN"] = 0.2
    run(reaper, "AudioAgent_Regenerate_selected_with_new_words.lua", scripts_dir, "a heavy wooden door")
    assert reaper.user_input_requests[-1][3] == "car door slam"  # the current words offered
    argv = client.job["argv"]
    assert words(client)[0] == "edit" and argv[argv.index("--base-version") + 1] == "1"
    sent = json.loads(Path(argv[argv.index("--changes-file") + 1]).read_text())
    assert sent == [{"op": "replace_text", "event_id": "door", "description": "a heavy wooden door"}]
    door = new_stem(client, stem_root, scene, "door", description="a heavy wooden door")
    finish(reaper, client, {**scene["stems"], "door": door}, version=2, session=session)
    after = reaper.items_of_session(session)["door"]
    assert after.take.source.filename == door["stem_path"] and after.take.name == "a heavy wooden door"
    assert after.values["D_FADEOUTLEN"] == 0.2


def test_a_request_chained_after_the_designers_changes_stays_with_its_project(reaper, client, scripts_dir,
                                                                            stem_root, scene):
    session = scene["session"]
    first = reaper.active
    reaper.items_of_session(session)["rain"].values["D_POSITION"] += 0.5  # a hand move
    run(reaper, EDIT, scripts_dir, "heavier rain")
    assert "--changes-file" in client.job["argv"]
    second = reaper.new_project("other")  # the designer switches tabs while it runs
    v2 = {**scene["stems"], "rain": {**scene["stems"]["rain"], "start_s": 0.5}}
    finish(reaper, client, v2, version=2, session=session)
    assert reaper.running and second.tracks == []  # waits for its own tab
    reaper.switch_to(first)
    reaper.run_deferred()  # version 2 applied; the instruction starts (status first)
    reaper.switch_to(second)
    reaper.run_deferred()
    assert words(client) == ["edit", "heavier rain", "--session", session, "--base-version", "2"]
    finish(reaper, client, {**v2, "rain": {**v2["rain"], "gain_db": 0.0}}, version=3, session=session)
    reaper.switch_to(first)
    reaper.run_deferred()
    assert not reaper.running and second.tracks == [] and second.undo_points() == []
    assert reaper.items_of_session(session, first)["rain"].values["D_VOL"] == pytest.approx(1.0)


@pytest.mark.parametrize("sws", [True, False])
def test_reroll_auditions_each_new_take_before_keeping_it(tmp_path, client, scripts_dir, stem_root, sws):
    """With audition_rerolls on, each new variation is played (SWS preview, else the Media
    Explorer) and the designer keeps it or not; a take not kept stays, the earlier take plays."""
    reaper = FakeReaper(resource_path=tmp_path / "res", exec_handler=client, sws=sws)
    config = scripts_dir / "AudioAgent_config.lua"
    config.write_text(config.read_text().replace("return {", "return {\n  audition_rerolls = true,"))
    reaper.cursor_s = 10.0
    start_generate(reaper, scripts_dir, "a dog and a door", "6")
    session = session_of(client)
    dog = stem(client, stem_root, "dog", "dog bark", 0.0, 1.0, 0.0, session=session)
    door = stem(client, stem_root, "door", "door slam", 2.0, 3.0, 0.0, session=session)
    plan_events = [{"id": "dog", "description": "dog bark", "start_s": 0.0, "end_s": 1.0, "seed": 11},
                   {"id": "door", "description": "door slam", "start_s": 2.0, "end_s": 3.0, "seed": 12}]
    client.send({"type": "plan", "id": "r1", "job": "j1", "session": session, "version": 1, "duration_s": 6.0,
                 "events": plan_events, "diff": {}})
    client.send(done([dog, door]))
    reaper.run_deferred()
    for item in reaper.items_of_session(session).values():
        item.selected = True
    run(reaper, "AudioAgent_Reroll_selected_events.lua", scripts_dir)
    argv = client.job["argv"]
    sent = json.loads(Path(argv[argv.index("--changes-file") + 1]).read_text())
    assert sorted(c["event_id"] for c in sent) == ["dog", "door"] and {c["op"] for c in sent} == {"set_seed"}
    dog2 = {**dog, "stem_path": str(write_wav(stem_root / session / "dog-2.wav"))}
    door2 = {**door, "stem_path": str(write_wav(stem_root / session / "door-2.wav"))}
    seeds = {c["event_id"]: c["seed"] for c in sent}
    client.send({"type": "plan", "id": "r2", "job": "j2", "session": session, "version": 2, "duration_s": 6.0,
                 "events": [{**e, "seed": seeds[e["id"]]} for e in plan_events], "diff": {}})
    reaper.answers = [6, 7]  # keep the new dog, not the new door (events in manifest order)
    finish(reaper, client, {"dog": dog2, "door": door2}, version=2, session=session)
    items = reaper.items_of_session(session)
    assert [len(items[k].takes) for k in ("dog", "door")] == [2, 2]
    assert items["dog"].take.source.filename == dog2["stem_path"]
    assert items["door"].take.source.filename == door["stem_path"]  # the earlier take plays
    heard = [path for _, path, _ in reaper.previews]
    assert heard == [dog2["stem_path"], door2["stem_path"]]
    if sws:
        assert reaper.stopped_previews == heard and all(playing for _, _, playing in reaper.previews)
    else:
        assert {kind for kind, _, _ in reaper.previews} == {"explorer"}
    # The door's earlier take is what the designer chose: it goes back with the next request.
    changes = reaper.lua.globals().dofile(str(scripts_dir / "AudioAgent_lib.lua")).hand_changes(session)
    assert [(c.op, c.event_id, c.seed) for c in changes.values()] == [("set_seed", "door", 12)]
