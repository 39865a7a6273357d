"""`audio-agent install-daw-scripts`: destinations per OS, files written, configs the scripts read."""

from __future__ import annotations

import json
from pathlib import Path

import lupa.lua54 as lua54

from server.cli import main
from server.commands import install_daw
from server.commands.install_daw import destination


def test_destinations_follow_each_platforms_user_folders(tmp_path):
    home = tmp_path / "home"
    assert destination("reaper", platform="linux", env={}, home=home) == home / ".config/REAPER/Scripts/AudioAgent"
    assert destination("reaper", platform="linux", env={"XDG_CONFIG_HOME": "/x"}, home=home) == Path(
        "/x/REAPER/Scripts/AudioAgent")
    assert destination("reaper", platform="darwin", env={}, home=home) == (
        home / "Library/Application Support/REAPER/Scripts/AudioAgent")
    assert destination("reaper", platform="win32", env={"APPDATA": "C:/Users/a/AppData/Roaming"}, home=home) == Path(
        "C:/Users/a/AppData/Roaming/REAPER/Scripts/AudioAgent")
    assert destination("ableton", platform="darwin", env={}, home=home) == (
        home / "Music/Ableton/User Library/Remote Scripts/AudioAgent")
    assert destination("ableton", platform="win32", env={"USERPROFILE": "C:/Users/a"}, home=home) == Path(
        "C:/Users/a/Documents/Ableton/User Library/Remote Scripts/AudioAgent")
    assert destination("ableton", dest=tmp_path, several=True) == tmp_path / "ableton" / "AudioAgent"
    assert destination("reaper", dest=tmp_path) == tmp_path / "AudioAgent"


def test_install_copies_both_and_writes_configs(tmp_path, capsys):
    code = main(["install-daw-scripts", "--dest", str(tmp_path), "--url", "ws://127.0.0.1:9999",
                 "--server-osc-port", "9100", "--listen-port", "9101"])
    assert code == 0
    reaper_dir, live_dir = tmp_path / "reaper" / "AudioAgent", tmp_path / "ableton" / "AudioAgent"
    assert {p.name for p in reaper_dir.iterdir()} == {
        "AudioAgent_lib.lua", "AudioAgent_Generate_scene.lua", "AudioAgent_Edit_scene.lua",
        "AudioAgent_Undo_scene_edit.lua", "AudioAgent_Redo_scene_edit.lua", "AudioAgent_Sync_scene.lua",
        "AudioAgent_Send_my_changes.lua", "AudioAgent_Foley_from_selected_video_item.lua", "AudioAgent_config.lua"}
    assert {"__init__.py", "surface.py", "osc.py", "gain.py", "config.json"} <= {p.name for p in live_dir.iterdir()}
    config = lua54.LuaRuntime().execute(f"return dofile({json.dumps(str(reaper_dir / 'AudioAgent_config.lua'))})")
    assert config.url == "ws://127.0.0.1:9999"
    assert list(config.client.values()) == install_daw.client_command()
    live = json.loads((live_dir / "config.json").read_text())
    assert (live["server_osc_port"], live["listen_port"], live["view"]) == (9100, 9101, "arrangement")
    assert "reaper: installed 9 files" in capsys.readouterr().out


def test_print_says_where_and_copies_nothing(tmp_path, capsys):
    assert main(["install-daw-scripts", "--daw", "reaper", "--dest", str(tmp_path), "--print"]) == 0
    assert capsys.readouterr().out.strip() == f"reaper: {tmp_path / 'AudioAgent'}"
    assert list(tmp_path.iterdir()) == []


def test_bad_port_is_refused(tmp_path, capsys):
    assert main(["install-daw-scripts", "--dest", str(tmp_path), "--listen-port", "70000"]) == 2
    assert "listen_port=70000" in capsys.readouterr().err
