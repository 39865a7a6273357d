"""`audio-agent install-daw-scripts`: destinations per OS, files written, configs the scripts read."""

from __future__ import annotations

import json
import re
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
        "AudioAgent_Send_my_changes.lua", "AudioAgent_Foley_from_selected_video_item.lua", "AudioAgent_config.lua",
        "AudioAgent_Cancel_running_job.lua", "AudioAgent_Regenerate_selected_with_new_words.lua",
        "AudioAgent_Reroll_selected_events.lua", "AudioAgent_Reroll_N_variations.lua", "AudioAgent_Panel.lua"}
    assert {"__init__.py", "surface.py", "osc.py", "gain.py", "config.json"} <= {p.name for p in live_dir.iterdir()}
    config = lua54.LuaRuntime().execute(f"return dofile({json.dumps(str(reaper_dir / 'AudioAgent_config.lua'))})")
    assert config.url == "ws://127.0.0.1:9999"
    assert list(config.client.values()) == install_daw.client_command()
    live = json.loads((live_dir / "config.json").read_text())
    assert (live["server_osc_port"], live["listen_port"], live["view"]) == (9100, 9101, "arrangement")
    assert "reaper: installed 14 files" in capsys.readouterr().out


def test_print_says_where_and_copies_nothing(tmp_path, capsys):
    assert main(["install-daw-scripts", "--daw", "reaper", "--dest", str(tmp_path), "--print"]) == 0
    assert capsys.readouterr().out.strip() == f"reaper: {tmp_path / 'AudioAgent'}"
    assert list(tmp_path.iterdir()) == []


def test_bad_port_is_refused(tmp_path, capsys):
    assert main(["install-daw-scripts", "--dest", str(tmp_path), "--listen-port", "70000"]) == 2
    assert "listen_port=70000" in capsys.readouterr().err


# ---- ReaPack -----------------------------------------------------------------------------
def test_reapack_repository_index_follows_the_index_format(tmp_path, capsys):
    """ReaPack's index format v1 (as reapack-index writes it): <index version="1"> holding
    <category name> holding <reapack name type desc> holding <version name author time> with a
    <changelog> and one <source> per file whose text is the absolute download URL; a source
    for an extra action carries main="main" and file=<path>."""
    import xml.etree.ElementTree as ET

    code = main(["install-daw-scripts", "--reapack", str(tmp_path / "repo"),
                 "--base-url", "https://example.org/audio agent/"])
    assert code == 0
    assert "https://example.org/audio agent/index.xml" in capsys.readouterr().out
    root = ET.parse(tmp_path / "repo" / "index.xml").getroot()
    assert root.tag == "index" and root.get("version") == "1" and root.get("name")
    (category,) = root.findall("category")
    (package,) = category.findall("reapack")
    assert (package.get("name"), package.get("type")) == ("AudioAgent_Generate_scene.lua", "script")
    (version,) = package.findall("version")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version.get("version") or version.get("name"))
    assert version.get("author") and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", version.get("time"))
    assert "Sync scene" in version.findtext("changelog")
    sources = version.findall("source")
    files = [s.get("file") or package.get("name") for s in sources]
    mains = {s.get("file") or package.get("name") for s in sources if s.get("main") == "main"}
    scripts_dir = install_daw.SCRIPTS_ROOT / "reaper"
    actions = {p.name for p in scripts_dir.glob("AudioAgent_*.lua")} - {"AudioAgent_lib.lua", "AudioAgent_config.lua"}
    assert mains == actions and set(files) == actions | {"AudioAgent_lib.lua"}
    for source, name in zip(sources, files):
        assert source.text == f"https://example.org/audio%20agent/AudioAgent/{name}"
        assert (tmp_path / "repo" / "AudioAgent" / name).read_bytes() == (scripts_dir / name).read_bytes()


def test_every_reaper_script_carries_a_header_with_one_version():
    scripts_dir = install_daw.SCRIPTS_ROOT / "reaper"
    package = install_daw.read_header(scripts_dir / install_daw.REAPACK_PACKAGE)
    for path in scripts_dir.glob("AudioAgent_*.lua"):
        tags = install_daw.read_header(path)
        if path.name == install_daw.REAPACK_PACKAGE:
            continue
        assert "noindex" in tags, f"{path.name}: provided by the package, so @noindex"
        if path.name != "AudioAgent_lib.lua":
            assert tags["description"].startswith("Audio-Agent: "), path.name
            assert tags["version"] == package["version"] and tags["author"] == package["author"], path.name


def test_reapack_needs_a_base_url(tmp_path, capsys):
    assert main(["install-daw-scripts", "--reapack", str(tmp_path / "repo")]) == 2
    assert "--base-url" in capsys.readouterr().err
