"""The "Generate scene" and "Foley from selected video item" ReaScripts, run under lupa."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.daw.conftest import ScriptedClient, write_wav
from tests.daw.fake_reaper import FakeReaper, Item, Source, Take, Track

GENERATE = "AudioAgent_Generate_scene.lua"
VIDEO = "AudioAgent_Foley_from_selected_video_item.lua"


def stem(client: ScriptedClient, stem_root: Path, event_id: str, description: str, start_s: float,
         end_s: float, gain_db: float, *, session: str = "s", change: str = "added") -> dict:
    path = write_wav(stem_root / session / f"{event_id}.wav")
    return {"type": "stem_ready", "id": "r1", "job": "j1", "session": session, "version": 1,
            "event_id": event_id, "description": description, "stem_path": str(path), "start_s": start_s,
            "end_s": end_s, "target_lufs": -23.0, "gain_db": gain_db, "cache_hit": False, "change": change}


def done(stems: list[dict], *, version: int = 1, failed: list | None = None) -> dict:
    events = [{"id": s["event_id"], "description": s["description"], "start_s": s["start_s"],
               "end_s": s["end_s"], "target_lufs": -23.0, "measured_lufs": -23.0, "true_peak_dbtp": -3.0,
               "gain_db": s["gain_db"], "stem_path": s["stem_path"], "cache_hit": False} for s in stems]
    return {"type": "done", "id": "r1", "job": "j1", "session": "s", "version": version,
            "manifest": {"duration_s": 12.0, "sample_rate": 48000, "events": events, "failed": failed or []}}


def start_generate(reaper: FakeReaper, scripts_dir: Path, prompt: str, duration: str) -> None:
    reaper.user_inputs.append((True, f"{prompt}\n{duration}"))
    reaper.run_script(GENERATE, scripts_dir)
    reaper.run_deferred()  # the status answer is read in the first cycle; then the job starts


def undo_blocks_wrap(reaper: FakeReaper, names: tuple[str, ...]) -> bool:
    """True when every call named in `names` happened inside an open undo block."""
    depth = 0
    for name, _ in reaper.calls:
        if name == "Undo_BeginBlock2":
            depth += 1
        elif name == "Undo_EndBlock2":
            depth -= 1
        elif name in names and depth == 0:
            return False
    return True


def session_of(client: ScriptedClient) -> str:
    argv = client.job["argv"]
    return argv[argv.index("--session") + 1]


def test_generate_places_each_stem_on_its_own_track_in_one_undo_block(reaper, client, scripts_dir, stem_root):
    reaper.time_selection = (5.0, 17.0)
    start_generate(reaper, scripts_dir, "rain on a tin roof, a car door 'slams'", "12")

    # The dialog offered the time selection length as the duration.
    assert reaper.user_input_requests[0][3].endswith("\n12")
    argv = client.job["argv"]
    assert argv[argv.index("client") + 1:argv.index("client") + 3] == ["generate", "rain on a tin roof, a car door 'slams'"]
    assert argv[argv.index("--duration") + 1] == "12"
    assert argv[argv.index("--anchor") + 1] == "5"
    assert [t for _, t in reaper.exec_commands] == [-1, -1]  # status and job: neither blocks REAPER
    session = session_of(client)

    client.send({"type": "accepted", "id": "r1", "job": "j1"})
    client.send({"type": "progress", "id": "r1", "job": "j1", "stage": "render", "fraction": 0.3})
    rain = stem(client, stem_root, "rain", "steady rain on a tin roof", 0.0, 12.0, -3.0, session=session)
    client.send(rain)
    reaper.run_deferred()
    # Partial result: the first stem is already in, the job still runs.
    assert reaper.running
    assert len(reaper.all_items()) == 1
    assert any("render 30%" in line for line in reaper.console)
    # The batch that landed is one undo point of its own, closed in the cycle that made it.
    assert reaper.undo_log == [("begin",), ("end", "AudioAgent: Generate scene", -1)] and reaper.undo_depth == 0
    assert rain_source_has_peaks(reaper)

    door = stem(client, stem_root, "door", "car door slam", 4.5, 6.0, 2.5, session=session)
    client.send(door)
    client.send(done([rain, door]))
    reaper.run_deferred()
    assert not reaper.running
    assert reaper.message_boxes == []

    folder, rain_track, door_track = reaper.tracks
    assert folder.name == "AudioAgent: rain on a tin roof, a car door 'slams'"
    assert (folder.depth, rain_track.depth, door_track.depth) == (1, 0, -1)
    assert folder.ext == {"P_EXT:audioagent_session": session, "P_EXT:audioagent_role": "folder"}
    assert (rain_track.name, door_track.name) == ("steady rain on a tin roof", "car door slam")

    rain_item, door_item = rain_track.items[0], door_track.items[0]
    assert rain_item.values["D_POSITION"] == 5.0
    assert rain_item.values["D_LENGTH"] == 12.0
    assert math.isclose(rain_item.values["D_VOL"], 10 ** (-3 / 20))
    assert door_item.values["D_POSITION"] == 9.5
    assert door_item.values["D_LENGTH"] == 1.5
    assert math.isclose(door_item.values["D_VOL"], 10 ** (2.5 / 20))
    assert door_item.take.name == "car door slam"
    assert door_item.strings["P_NOTES"] == "car door slam"
    assert door_item.take.source.filename == door["stem_path"]
    assert door_item.strings["P_EXT:audioagent_event"] == "door"
    assert door_item.strings["P_EXT:audioagent_session"] == session

    assert reaper.proj_ext[("AudioAgent", "last_session")] == session
    meta = json.loads(reaper.proj_ext[("AudioAgent", f"session:{session}")])
    assert meta["anchor_s"] == 5 and meta["version"] == 1 and meta["events"] == ["rain", "door"]
    placed = json.loads(door_item.strings["P_EXT:audioagent_placed"])
    assert placed["stem_path"] == door["stem_path"] and placed["pos"] == 9.5
    assert all(item.take.source.peaks_built for item in reaper.all_items())

    # One undo point per applied batch (the first stem, then the rest with `done`), each holding
    # exactly our change; none empty.
    assert reaper.active.undo_points() == ["AudioAgent: Generate scene"] * 2
    assert reaper.active.empty_undo_points() == []
    assert undo_blocks_wrap(reaper, ("InsertTrackAtIndex", "AddMediaItemToTrack", "SetMediaItemInfo_Value",
                                     "SetProjExtState", "DeleteTrack"))
    # Ctrl+Z of the last point takes the door out again; the rain stays.
    reaper.ctrl_z()
    assert [t.name for t in reaper.tracks] == ["AudioAgent: rain on a tin roof, a car door 'slams'",
                                               "steady rain on a tin roof"]


def rain_source_has_peaks(reaper: FakeReaper) -> bool:
    return all(item.take.source.peaks_built for item in reaper.all_items())


def test_defaults_to_cursor_and_ten_seconds_and_waits_for_whole_lines(reaper, client, scripts_dir, stem_root):
    reaper.cursor_s = 2.25
    start_generate(reaper, scripts_dir, "wind", "10")
    assert reaper.user_input_requests[0][3].endswith("\n10")
    session = session_of(client)
    wind = stem(client, stem_root, "wind", "gusty wind", 1.0, 3.0, 0.0, session=session)
    line = json.dumps({"v": 1, **wind})
    with open(client.job["events"], "a") as handle:
        handle.write(line[:40])  # the client is mid-write
    reaper.run_deferred()
    assert reaper.all_items() == [] and reaper.message_boxes == []
    with open(client.job["events"], "a") as handle:
        handle.write(line[40:] + "\n")
    reaper.run_deferred()
    assert reaper.all_items()[0].values["D_POSITION"] == 3.25


def test_server_error_removes_what_the_run_inserted(reaper, client, scripts_dir, stem_root):
    existing = Track(name="dialogue")
    reaper.tracks.append(existing)
    start_generate(reaper, scripts_dir, "harbour at night", "8")
    session = session_of(client)
    client.send(stem(client, stem_root, "gulls", "gulls", 0.0, 8.0, 0.0, session=session))
    reaper.run_deferred()
    assert len(reaper.tracks) == 3
    client.send({"type": "error", "id": "r1", "code": "generator_failed", "message": "backend ran out of memory",
                 "field": "backend"})
    reaper.run_deferred()
    assert not reaper.running
    assert reaper.tracks == [existing]
    assert reaper.message_boxes == [("AudioAgent: Generate scene failed", "backend ran out of memory (field: backend)")]
    assert reaper.active.undo_points() == ["AudioAgent: Generate scene", "AudioAgent: Generate scene (failed, removed)"]
    assert reaper.active.empty_undo_points() == [] and reaper.undo_depth == 0
    assert ("AudioAgent", "last_session") not in reaper.proj_ext
    assert reaper.proj_ext == {}  # no event record left for an item that is not there


def test_client_that_dies_without_a_word_fails_the_run(reaper, client, scripts_dir, stem_root):
    start_generate(reaper, scripts_dir, "forest", "6")
    session = session_of(client)
    client.send(stem(client, stem_root, "birds", "birdsong", 0.0, 6.0, 0.0, session=session))
    reaper.run_deferred()
    client.exit(137, "Traceback (most recent call last):\nKilled")
    reaper.run_deferred()
    assert reaper.tracks == [] and not reaper.running
    title, message = reaper.message_boxes[0]
    assert "exited (status 137) before the job finished: Killed" in message
    assert reaper.active.empty_undo_points() == [] and reaper.undo_depth == 0


def test_stalled_events_file_fails_after_the_stall_limit(reaper, client, scripts_dir, stem_root):
    start_generate(reaper, scripts_dir, "forest", "6")
    reaper.clock_s += 100
    reaper.run_deferred()
    assert reaper.running and reaper.message_boxes == []
    reaper.clock_s += 100
    reaper.run_deferred()
    assert not reaper.running
    assert "no message from the audio-agent client for 180 s" in reaper.message_boxes[0][1]


def test_server_not_running_shows_its_message_and_starts_nothing(reaper, client, scripts_dir):
    client.status_reply = "1\naudio-agent: error: cannot reach ws://127.0.0.1:8765 (connection refused)\n"
    start_generate(reaper, scripts_dir, "forest", "6")
    assert client.jobs == [] and reaper.active.undo_points() == [] and not reaper.running
    assert reaper.message_boxes == [("AudioAgent: Generate scene failed",
                                     "the Audio-Agent server is not reachable: audio-agent: error: "
                                     "cannot reach ws://127.0.0.1:8765 (connection refused)")]


def test_bad_input_is_refused_before_any_request(reaper, client, scripts_dir):
    start_generate(reaper, scripts_dir, "forest", "-3")
    assert reaper.message_boxes == [("AudioAgent: Generate scene", "duration_s=-3: must be a positive number of seconds")]
    assert reaper.exec_commands == []
    reaper.user_inputs.append((False, ""))  # the user cancels the dialog
    reaper.run_script(GENERATE, scripts_dir)
    assert reaper.exec_commands == [] and len(reaper.message_boxes) == 1
    # Early returns call defer, so REAPER adds no empty automatic "ReaScript: Run" undo point.
    assert reaper.active.undo_points() == []


def test_stems_outside_the_stem_root_are_refused(reaper, client, scripts_dir, stem_root, tmp_path):
    start_generate(reaper, scripts_dir, "forest", "6")
    session = session_of(client)
    good = stem(client, stem_root, "birds", "birdsong", 0.0, 6.0, 0.0, session=session)
    client.send(good)
    outside = write_wav(tmp_path / "elsewhere" / "x.wav")
    client.send({**good, "event_id": "x", "stem_path": str(outside)})
    reaper.run_deferred()
    assert reaper.tracks == []
    assert "outside the server's stem root" in reaper.message_boxes[0][1]

    start_generate(reaper, scripts_dir, "forest", "6")
    sneaky = f"{stem_root}/s/../../elsewhere/x.wav"
    client.send({**good, "stem_path": sneaky})
    reaper.run_deferred()
    assert reaper.tracks == []
    assert "contains '..'" in reaper.message_boxes[1][1]


def test_user_stopping_the_script_leaves_nothing_half_inserted(reaper, client, scripts_dir, stem_root):
    start_generate(reaper, scripts_dir, "forest", "6")
    client.send(stem(client, stem_root, "birds", "birdsong", 0.0, 6.0, 0.0, session=session_of(client)))
    reaper.run_deferred()
    assert reaper.all_items()
    reaper.exit_script()
    assert reaper.tracks == [] and reaper.undo_depth == 0


def test_failed_events_are_reported_but_the_rest_stays(reaper, client, scripts_dir, stem_root):
    start_generate(reaper, scripts_dir, "forest", "6")
    birds = stem(client, stem_root, "birds", "birdsong", 0.0, 6.0, 0.0, session=session_of(client))
    client.send(birds)
    client.send(done([birds], failed=[{"id": "owl", "description": "an owl", "error": "generator timed out"}]))
    reaper.run_deferred()
    assert len(reaper.all_items()) == 1
    assert reaper.message_boxes == [("AudioAgent", "Some events could not be rendered:\n- an owl: generator timed out")]


def test_done_without_stem_messages_inserts_from_the_manifest(reaper, client, scripts_dir, stem_root):
    start_generate(reaper, scripts_dir, "forest", "6")
    birds = stem(client, stem_root, "birds", "birdsong", 1.0, 6.0, -6.0, session=session_of(client))
    client.send(done([birds]))
    reaper.run_deferred()
    (item,) = reaper.all_items()
    assert item.values["D_POSITION"] == 1.0 and math.isclose(item.values["D_VOL"], 10 ** (-6 / 20))


def test_foley_from_video_uses_the_items_range_and_position(reaper, client, scripts_dir, stem_root, tmp_path):
    video_track = Track(name="picture")
    video = Item(track=video_track, selected=True)
    video.values.update({"D_POSITION": 20.0, "D_LENGTH": 8.0})
    video.takes.append(Take(source=Source(filename=str(tmp_path / "cut 3.mp4"), kind="VIDEO")))
    video.take.values["D_STARTOFFS"] = 3.0
    video_track.items.append(video)
    reaper.tracks.append(video_track)

    reaper.user_inputs.append((True, "gravel footsteps"))
    reaper.run_script(VIDEO, scripts_dir)
    reaper.run_deferred()
    argv = client.job["argv"]
    i = argv.index("video-cue")
    assert argv[i + 1:i + 8] == [str(tmp_path / "cut 3.mp4"), "--start", "3", "--end", "11", "--anchor", "20"]
    assert argv[argv.index("--hint") + 1] == "gravel footsteps"
    steps = stem(client, stem_root, "steps", "footsteps on gravel", 1.5, 4.0, -1.0, session=session_of(client))
    client.send(steps)
    client.send(done([steps]))
    reaper.run_deferred()
    placed = reaper.tracks[-1].items[0]
    assert placed.values["D_POSITION"] == 21.5
    assert reaper.tracks[1].name == "AudioAgent: video cut 3.mp4"


def test_foley_refuses_a_non_video_item(reaper, client, scripts_dir, tmp_path):
    track = Track()
    item = Item(track=track, selected=True)
    item.takes.append(Take(source=Source(filename=str(tmp_path / "a.wav"), kind="WAVE")))
    track.items.append(item)
    reaper.tracks.append(track)
    reaper.run_script(VIDEO, scripts_dir)
    assert reaper.message_boxes == [("AudioAgent: Foley from video", 'the selected item is not a video (source type "WAVE")')]
    assert reaper.exec_commands == []


def test_long_non_ascii_prompt_names_the_folder_on_a_character_boundary(reaper, client, scripts_dir, stem_root):
    prompt = "a" * 59 + "ééé pluie sur le toit"
    start_generate(reaper, scripts_dir, prompt, "6")
    assert client.job["argv"][client.job["argv"].index("generate") + 1] == prompt
    client.send(stem(client, stem_root, "rain", "pluie", 0.0, 6.0, 0.0, session=session_of(client)))
    reaper.run_deferred()
    assert reaper.message_boxes == []
    assert reaper.tracks[0].name == "AudioAgent: " + "a" * 59 + "é"


def test_tracks_the_user_deletes_mid_job_do_not_break_the_run(reaper, client, scripts_dir, stem_root):
    existing = Track(name="dialogue")
    reaper.tracks.append(existing)
    start_generate(reaper, scripts_dir, "harbour at night", "8")
    session = session_of(client)
    client.send(stem(client, stem_root, "gulls", "gulls", 0.0, 8.0, 0.0, session=session))
    client.send(stem(client, stem_root, "bell", "buoy bell", 1.0, 3.0, 0.0, session=session))
    reaper.run_deferred()
    folder, gulls, bell = reaper.tracks[1:]
    reaper.tracks.remove(gulls)  # the user deletes a track that just landed
    # A failure now still puts back everything else, touching nothing it no longer owns.
    client.send({"type": "error", "id": "r1", "code": "generator_failed", "message": "out of memory", "field": None})
    reaper.run_deferred()
    assert reaper.tracks == [existing] and not reaper.running
    assert reaper.message_boxes == [("AudioAgent: Generate scene failed", "out of memory")]


def test_a_folder_the_user_deletes_mid_job_is_made_again(reaper, client, scripts_dir, stem_root):
    start_generate(reaper, scripts_dir, "harbour at night", "8")
    session = session_of(client)
    gulls = stem(client, stem_root, "gulls", "gulls", 0.0, 8.0, 0.0, session=session)
    client.send(gulls)
    reaper.run_deferred()
    reaper.tracks.clear()  # e.g. the user's Ctrl+Z took the first stem out again
    bell = stem(client, stem_root, "bell", "buoy bell", 1.0, 3.0, 0.0, session=session)
    client.send(bell)
    client.send(done([gulls, bell]))
    reaper.run_deferred()
    assert reaper.message_boxes == [] and not reaper.running
    folder, *children = reaper.tracks
    assert folder.ext["P_EXT:audioagent_role"] == "folder" and folder.depth == 1
    # The done message's sync puts back what the Ctrl+Z took out: both events are there.
    assert [t.name for t in children] == ["gulls", "buoy bell"] and children[-1].depth == -1


def test_a_scene_is_coloured_grouped_and_has_a_region(reaper, client, scripts_dir, stem_root):
    reaper.all_items()  # an item of the designer's own in group 4 already
    own = Track(name="dialogue")
    own_item = Item(track=own)
    own_item.values["I_GROUPID"] = 4.0
    own.items.append(own_item)
    reaper.tracks.append(own)
    reaper.cursor_s = 2.0
    start_generate(reaper, scripts_dir, "harbour at night", "12")
    session = session_of(client)
    gulls = stem(client, stem_root, "gulls", "gulls", 0.0, 8.0, 0.0, session=session)
    bell = stem(client, stem_root, "bell", "buoy bell", 1.0, 3.0, 0.0, session=session)
    client.send(gulls)
    reaper.run_deferred()
    client.send(bell)
    client.send(done([gulls, bell]))
    reaper.run_deferred()
    items = reaper.items_of_session(session)
    colors = {item.values["I_CUSTOMCOLOR"] for item in items.values()}
    folder = next(t for t in reaper.tracks if t.ext.get("P_EXT:audioagent_role") == "folder")
    assert len(colors) == 1 and colors.pop() == folder.color != 0
    assert {item.values["I_GROUPID"] for item in items.values()} == {5.0}  # a group of its own
    (region,) = reaper.active.markers
    assert region["is_region"] and (region["pos"], region["end"]) == (2.0, 14.0)
    assert region["name"] == "AudioAgent: harbour at night"
    # A later sync that finds everything in place changes nothing (no second region).
    points = reaper.active.undo_points()
    from tests.daw.test_reaper_edit import sync
    sync(reaper, client, scripts_dir, session, {"gulls": gulls, "bell": bell}, 1)
    assert len(reaper.active.markers) == 1 and reaper.active.undo_points() == points


def test_stems_can_be_copied_into_the_project(reaper, client, scripts_dir, stem_root, tmp_path):
    (scripts_dir / "AudioAgent_config.lua").write_text(
        (scripts_dir / "AudioAgent_config.lua").read_text().replace("return {", "return {\n  copy_to_project = true,"))
    reaper.active.media_path = str(tmp_path / "My Project" / "Media")
    start_generate(reaper, scripts_dir, "wind", "4")
    wind = stem(client, stem_root, "wind", "wind", 0.0, 4.0, 0.0, session=session_of(client))
    client.send(wind)
    client.send(done([wind]))
    reaper.run_deferred()
    placed = Path(reaper.all_items()[0].take.source.filename)
    assert placed.parent.parent == tmp_path / "My Project" / "Media" / "AudioAgent"
    assert placed.read_bytes() == Path(wind["stem_path"]).read_bytes()


def video_item(reaper: FakeReaper, tmp_path: Path) -> Item:
    video_track = Track(name="picture")
    video = Item(track=video_track, selected=True)
    video.values.update({"D_POSITION": 20.0, "D_LENGTH": 8.0})
    video.takes.append(Take(source=Source(filename=str(tmp_path / "cut 3.mp4"), kind="VIDEO")))
    video_track.items.append(video)
    reaper.tracks.append(video_track)
    return video


def test_foley_with_a_vta_checkpoint_name_asks_for_the_vta_generator(reaper, client, scripts_dir, tmp_path):
    video_item(reaper, tmp_path)
    reaper.user_inputs.append((True, "gravel\nfoley-v2"))
    reaper.run_script(VIDEO, scripts_dir)
    reaper.run_deferred()
    argv = client.job["argv"]
    assert argv[argv.index("--generator"):argv.index("--generator") + 4] == ["--generator", "vta", "--checkpoint",
                                                                          "foley-v2"]
    assert argv[argv.index("--hint") + 1] == "gravel"
    # The server offers other names: its refusal, listing them, is what the designer reads.
    message = "checkpoint='foley-v2': not a checkpoint this server offers; it offers: foley, steps"
    client.send({"type": "error", "id": "r1", "code": "invalid_input", "message": message, "field": "checkpoint"})
    reaper.run_deferred()
    assert reaper.message_boxes == [("AudioAgent: Foley from video failed", message + " (field: checkpoint)")]


def test_foley_without_a_checkpoint_name_keeps_the_text_generator(reaper, client, scripts_dir, tmp_path):
    video_item(reaper, tmp_path)
    reaper.user_inputs.append((True, "\n"))
    reaper.run_script(VIDEO, scripts_dir)
    reaper.run_deferred()
    argv = client.job["argv"]
    assert "--generator" not in argv and "--checkpoint" not in argv and "--hint" not in argv


def test_foley_refuses_a_checkpoint_path_before_asking_the_server(reaper, client, scripts_dir, tmp_path):
    video_item(reaper, tmp_path)
    reaper.user_inputs.append((True, "\n/models/vta-ckpt"))
    reaper.run_script(VIDEO, scripts_dir)
    assert len(reaper.message_boxes) == 1 and "not a path" in reaper.message_boxes[0][1]
    assert client.jobs == []
