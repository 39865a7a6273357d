"""The "Edit scene" and "Undo scene edit" ReaScripts: only what the server changed is touched."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.daw.conftest import ScriptedClient
from tests.daw.fake_reaper import FakeReaper
from tests.daw.test_reaper_generate import done, session_of, start_generate, stem

EDIT = "AudioAgent_Edit_scene.lua"
UNDO = "AudioAgent_Undo_scene_edit.lua"

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


def user_touches(reaper: FakeReaper, session: str) -> None:
    """What a sound designer does between takes: fades, nudges, FX, a selection."""
    items = reaper.items_of_session(session)
    items["rain"].values["D_FADEINLEN"] = 1.5
    items["rain"].values["D_POSITION"] += 0.125
    items["door"].values["D_FADEOUTLEN"] = 0.2
    items["engine"].track.fx_count = 2
    items["tyres"].values["D_FADEINLEN"] = 0.3
    items["door"].selected = True


def test_edit_touches_only_the_events_the_server_changed(reaper, client, scripts_dir, stem_root, scene):
    session = scene["session"]
    user_touches(reaper, session)
    before = {k: item.snapshot() for k, item in reaper.items_of_session(session).items()}
    old_tyres_source = reaper.items_of_session(session)["tyres"].take.source

    reaper.user_inputs.append((True, "the engine comes in a second later, louder dog, swap tyres for gravel"))
    reaper.run_script(EDIT, scripts_dir)
    argv = client.job["argv"]
    assert argv[argv.index("client") + 1:argv.index("client") + 5] == [
        "edit", "the engine comes in a second later, louder dog, swap tyres for gravel", "--session", session]

    client.send({"type": "plan", "id": "r2", "job": "j2", "session": session, "version": 2, "duration_s": 12.0,
                 "events": [], "diff": {"rain": "unchanged", "door": "removed", "engine": "moved",
                                        "tyres": "changed", "dog": "regained", "thunder": "added"}})
    engine = {**scene["stems"]["engine"], "start_s": 7.0, "end_s": 10.0, "change": "moved", "cache_hit": True}
    tyres = stem(client, stem_root, "tyres", "tyres on gravel", 8.0, 11.5, -2.0, session=session, change="changed")
    tyres["stem_path"] = tyres["stem_path"].replace("tyres.wav", "tyres-v2.wav")
    Path(tyres["stem_path"]).write_bytes(Path(scene["stems"]["tyres"]["stem_path"]).read_bytes())
    dog = {**scene["stems"]["dog"], "gain_db": 4.0, "change": "regained", "cache_hit": True}
    thunder = stem(client, stem_root, "thunder", "distant thunder", 1.0, 5.0, -4.0, session=session)
    for message in (engine, tyres, dog):
        client.send(message)
    reaper.run_deferred()
    assert reaper.running
    client.send(thunder)
    client.send(done([scene["stems"]["rain"], engine, tyres, dog, thunder], version=2))
    reaper.run_deferred()
    assert not reaper.running and reaper.message_boxes == []

    after = reaper.items_of_session(session)
    # Untouched: exactly as the user left it (nudge and fade included).
    assert after["rain"].snapshot() == before["rain"]
    # Moved: only the position changed; the FX on its track are still there.
    assert after["engine"].values["D_POSITION"] == 17.0
    assert {k: v for k, v in after["engine"].snapshot()["values"].items() if k != "D_POSITION"} == {
        k: v for k, v in before["engine"]["values"].items() if k != "D_POSITION"}
    assert after["engine"].track.fx_count == 2
    # Regained: only the volume.
    assert math.isclose(after["dog"].values["D_VOL"], 10 ** (4 / 20))
    assert after["dog"].snapshot()["source"] == before["dog"]["source"]
    # Changed: new source and length, the user's fade-in kept, the old source freed at the end.
    assert after["tyres"].take.source.filename == tyres["stem_path"]
    assert after["tyres"].values["D_LENGTH"] == 3.5
    assert after["tyres"].values["D_FADEINLEN"] == 0.3
    assert after["tyres"].take.name == "tyres on gravel"
    assert old_tyres_source.destroyed
    # Removed: the item and its (now empty, FX-free) track are gone.
    assert "door" not in after
    assert "car door slam" not in [t.name for t in reaper.tracks]
    # Added: a new track inside the session folder, which still closes on its last track.
    assert after["thunder"].values["D_POSITION"] == 11.0
    names = [t.name for t in reaper.tracks]
    assert names == ["AudioAgent: a man drives away in the rain", "steady rain", "engine starts",
                     "tyres on wet road", "distant dog bark", "distant thunder"]
    assert [t.depth for t in reaper.tracks] == [1, 0, 0, 0, 0, -1]
    assert reaper.undo_log[-2:] == [("begin",), ("end", "AudioAgent: Edit scene", -1)]
    assert ("AudioAgent", f"event:{session}:door") not in reaper.proj_ext


def test_failed_edit_puts_every_item_back(reaper, client, scripts_dir, stem_root, scene):
    session = scene["session"]
    user_touches(reaper, session)
    before = {k: item.snapshot() for k, item in reaper.items_of_session(session).items()}
    track_names = [t.name for t in reaper.tracks]
    reaper.user_inputs.append((True, "swap the tyres"))
    reaper.run_script(EDIT, scripts_dir)
    tyres = stem(client, stem_root, "tyres", "tyres on gravel", 8.0, 11.5, -2.0, session=session, change="changed")
    tyres["stem_path"] = tyres["stem_path"].replace("tyres.wav", "tyres-v2.wav")
    Path(tyres["stem_path"]).write_bytes(Path(scene["stems"]["tyres"]["stem_path"]).read_bytes())
    thunder = stem(client, stem_root, "thunder", "distant thunder", 1.0, 5.0, -4.0, session=session)
    client.send(tyres)
    client.send(thunder)
    reaper.run_deferred()
    assert reaper.items_of_session(session)["tyres"].take.source.filename == tyres["stem_path"]
    client.send({"type": "error", "id": "r2", "code": "planner_failed", "message": "the planner gave no plan",
                 "field": None})
    reaper.run_deferred()
    assert {k: item.snapshot() for k, item in reaper.items_of_session(session).items()} == before
    assert [t.name for t in reaper.tracks] == track_names
    assert [t.depth for t in reaper.tracks] == [1, 0, 0, 0, 0, -1]
    assert reaper.message_boxes == [("AudioAgent: Edit scene failed", "the planner gave no plan")]
    new_sources = [s for s in reaper.sources if s.filename == tyres["stem_path"]]
    assert new_sources and all(s.destroyed for s in new_sources)


def test_edit_uses_the_last_session_when_nothing_is_selected(reaper, client, scripts_dir, scene):
    reaper.user_inputs.append((True, "quieter rain"))
    reaper.run_script(EDIT, scripts_dir)
    argv = client.job["argv"]
    assert argv[argv.index("--session") + 1] == scene["session"]


def test_edit_without_any_session_says_so(reaper, client, scripts_dir):
    reaper.run_script(EDIT, scripts_dir)
    assert reaper.message_boxes[0][0] == "AudioAgent: Edit scene"
    assert "generate a scene first" in reaper.message_boxes[0][1]
    assert reaper.exec_commands == []


def test_undo_reconciles_from_the_manifest_when_no_stems_are_sent(reaper, client, scripts_dir, scene):
    session = scene["session"]
    user_touches(reaper, session)
    before = {k: item.snapshot() for k, item in reaper.items_of_session(session).items()}
    reaper.run_script(UNDO, scripts_dir)
    argv = client.job["argv"]
    assert argv[argv.index("client") + 1:argv.index("client") + 4] == ["undo", "--session", session]
    client.send({"type": "plan", "id": "r3", "job": "j3", "session": session, "version": 3, "duration_s": 12.0,
                 "events": [], "diff": {"rain": "unchanged", "door": "moved", "engine": "unchanged",
                                        "tyres": "unchanged", "dog": "regained"}})
    stems = dict(scene["stems"])
    stems["door"] = {**stems["door"], "start_s": 3.0, "end_s": 4.5}
    stems["dog"] = {**stems["dog"], "gain_db": -12.0}
    client.send(done(list(stems.values()), version=3))
    reaper.run_deferred()
    after = reaper.items_of_session(session)
    assert after["door"].values["D_POSITION"] == 13.0
    assert after["door"].values["D_FADEOUTLEN"] == 0.2
    assert math.isclose(after["dog"].values["D_VOL"], 10 ** (-12 / 20))
    for key in ("rain", "engine", "tyres"):
        assert after[key].snapshot() == before[key]
    assert reaper.undo_log[-1] == ("end", "AudioAgent: Undo scene edit", -1)


def test_regain_and_move_keep_the_users_trim_and_nudge(reaper, client, scripts_dir, stem_root, scene):
    """A designer who trimmed an item's volume or nudged it to picture keeps that offset: an edit
    shifts the item by as much as the event changed, rather than resetting it."""
    session = scene["session"]
    items = reaper.items_of_session(session)
    items["dog"].values["D_VOL"] *= 10 ** (-2 / 20)  # the user pulled the dog down 2 dB
    items["engine"].values["D_POSITION"] += 0.05  # and nudged the engine 50 ms to picture
    reaper.user_inputs.append((True, "louder dog, engine a second later"))
    reaper.run_script(EDIT, scripts_dir)
    client.send({"type": "plan", "id": "r2", "job": "j2", "session": session, "version": 2, "duration_s": 12.0,
                 "events": [], "diff": {"dog": "regained", "engine": "moved"}})
    dog = {**scene["stems"]["dog"], "gain_db": -2.0, "change": "regained", "cache_hit": True}  # +6 dB
    engine = {**scene["stems"]["engine"], "start_s": 7.0, "end_s": 10.0, "change": "moved", "cache_hit": True}
    stems = {**scene["stems"], "dog": dog, "engine": engine}
    client.send(dog)
    client.send(engine)
    client.send(done(list(stems.values()), version=2))
    reaper.run_deferred()
    after = reaper.items_of_session(session)
    assert math.isclose(after["dog"].values["D_VOL"], 10 ** ((-8 - 2 + 6) / 20))
    assert math.isclose(after["engine"].values["D_POSITION"], 10.0 + 7.0 + 0.05)
    # The undo steps back by the same amounts: the user's offsets are still there.
    reaper.run_script(UNDO, scripts_dir)
    client.send({"type": "plan", "id": "r3", "job": "j3", "session": session, "version": 3, "duration_s": 12.0,
                 "events": [], "diff": {"dog": "regained", "engine": "moved"}})
    client.send(done(list(scene["stems"].values()), version=3))
    reaper.run_deferred()
    after = reaper.items_of_session(session)
    assert math.isclose(after["dog"].values["D_VOL"], 10 ** ((-8 - 2) / 20))
    assert math.isclose(after["engine"].values["D_POSITION"], 10.0 + 6.0 + 0.05)


def test_a_failed_run_puts_the_projects_event_records_back(reaper, client, scripts_dir, stem_root, scene):
    session = scene["session"]
    ext_before = dict(reaper.proj_ext)
    reaper.user_inputs.append((True, "louder dog, add thunder"))
    reaper.run_script(EDIT, scripts_dir)
    client.send({**scene["stems"]["dog"], "gain_db": 4.0, "change": "regained", "cache_hit": True})
    client.send(stem(client, stem_root, "thunder", "distant thunder", 1.0, 5.0, -4.0, session=session))
    reaper.run_deferred()
    assert reaper.proj_ext != ext_before
    client.send({"type": "error", "id": "r2", "code": "planner_failed", "message": "no plan", "field": None})
    reaper.run_deferred()
    assert reaper.proj_ext == ext_before  # a later edit must not start from numbers never applied


def test_a_move_that_also_changes_loudness_shifts_position_and_volume(reaper, client, scripts_dir, scene):
    """An LLM edit can move an event and change its loudness at once: the diff says 'moved',
    and the item must get both the new position and the gain change (kept relative)."""
    session = scene["session"]
    items = reaper.items_of_session(session)
    items["door"].values["D_VOL"] *= 10 ** (-1 / 20)  # the user's own -1 dB trim
    before_vol = items["door"].values["D_VOL"]
    reaper.user_inputs.append((True, "door a second later and 4 dB louder"))
    reaper.run_script(EDIT, scripts_dir)
    client.send({"type": "plan", "id": "r2", "job": "j2", "session": session, "version": 2, "duration_s": 12.0,
                 "events": [], "diff": {"door": "moved"}})
    door = {**scene["stems"]["door"], "start_s": 5.5, "end_s": 7.0, "gain_db": 6.5, "change": "moved",
            "cache_hit": True}
    client.send(door)
    client.send(done(list({**scene["stems"], "door": door}.values()), version=2))
    reaper.run_deferred()
    after = reaper.items_of_session(session)["door"]
    assert math.isclose(after.values["D_POSITION"], 10.0 + 5.5)
    assert math.isclose(after.values["D_VOL"], before_vol * 10 ** (4 / 20))
