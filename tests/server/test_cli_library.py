"""`audio-agent library ...` and `render --backend library|hybrid` end to end, in process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from server.cli import main
from tests.engine.library import builders as b
from tests.engine.library.conftest import library_dir as _library_dir  # noqa: F401 - fixture

library_dir = _library_dir


@pytest.fixture(autouse=True)
def hermetic_settings(tmp_path, monkeypatch):
    """No user config leaks in; the data dir (and so the index) lives in the test's folder."""
    for name in list(os.environ):
        if name.startswith("AUDIO_AGENT_"):
            monkeypatch.delenv(name)
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("AUDIO_AGENT_CONFIG", str(config))
    monkeypatch.setenv("AUDIO_AGENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AUDIO_AGENT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_add_search_list_rescan_remove(library_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["library", "add", str(library_dir)]) == 0
    out, err = capsys.readouterr()
    assert "10 indexed" in out or "9 indexed" in out
    skipped = [line for line in err.splitlines() if line.startswith("skipped: ")]
    assert any("empty.wav: empty file (0 bytes)" in line for line in skipped)
    assert (tmp_path / "data" / "library.sqlite").is_file()

    assert main(["library", "search", "heavy wooden door slam", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "DOORWood_Slam Heavy_ABC_Foley.wav" in lines[0]
    scores = [float(line.split("\t")[0]) for line in lines]
    assert scores == sorted(scores, reverse=True)

    assert main(["library", "search", "rain", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["cat_id"] == "RAINConc" and hits[0]["channels"] == 2

    assert main(["library", "list"]) == 0
    assert str(library_dir) in capsys.readouterr().out

    assert main(["library", "rescan"]) == 0
    assert "0 new, 0 updated" in capsys.readouterr().out

    assert main(["library", "remove", str(library_dir)]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["library", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["library", "search", "door"]) == 1  # no index yet
    assert "library add" in capsys.readouterr().err
    assert main(["library", "add", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["library", "remove", str(tmp_path)]) == 2
    assert "not a library folder" in capsys.readouterr().err
    assert main(["library", "search", "door", "--limit", "0"]) == 2
    assert "limit=0" in capsys.readouterr().err


def test_render_with_library_backend(library_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["library", "add", str(library_dir)]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    code = main(["render", "a heavy wooden door slams, then rain on pavement", "--duration", "6",
                 "--out", str(out), "--backend", "library"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    manifest = json.loads(Path(captured.out.strip().splitlines()[-1]).read_text())
    # The planner decides how many events; each one came from the library (none failed).
    assert manifest["backend"] == "library" and manifest["events"] and not manifest["failed"]


def test_the_server_renders_from_the_library_read_only(library_dir: Path, tmp_path: Path, capsys,
                                                       start_server) -> None:
    """A DAW request on `serve --backend library`: stems from the user's files, with credit;
    the server opens the index read-only (folders are added on the command line only)."""
    from tests.server.conftest import request, ws_call

    assert main(["library", "add", str(library_dir)]) == 0
    capsys.readouterr()
    index_file = tmp_path / "data" / "library.sqlite"
    before = index_file.stat().st_mtime_ns
    server = start_server(real=True, backend="library")
    messages = ws_call(server.ws_port, request("generate", session="lib", prompt="a heavy wooden door slams",
                                               duration_s=3.0), timeout_s=60)
    done = messages[-1]
    assert done["type"] == "done", done
    events = done["manifest"]["events"]
    assert events and all(e["source"]["path"].startswith(str(library_dir)) for e in events)
    assert all(Path(e["stem_path"]).is_file() for e in events)
    assert index_file.stat().st_mtime_ns == before
