"""The server side of DAW sync, through a real `audio-agent serve` and the real client: requests
carry the version the DAW shows (`base_version`) and a stale one is refused with `conflict`;
the designer's hand edits arrive as one version (`changes`); `get-session` and `cancel` exist
for the scripts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from engine.api import EditRequest
from server.client import run_request
from server.protocol import parse_request
from tests.daw.conftest import AUDIO_AGENT, ROOT, needs_server

pytestmark = needs_server


def client(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AUDIO_AGENT), "client", *args, "--url", url], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_stale_requests_are_refused_and_hand_edits_land_as_one_version(server, tmp_path):
    url = server["url"]
    made = client("generate", "a kettle whistling, followed by a cup set down", "--duration", "4",
                  "--session", "s1", url=url)
    assert made.returncode == 0, made.stderr
    info = json.loads(client("get-session", "--session", "s1", url=url).stdout)["info"]
    assert info["current_version"] == 1
    first, second = info["manifest"]["events"][:2]

    # Hand edits: a move with a trim, a loudness change and a deletion, as one version.
    changes = [
        {"op": "move", "event_id": first["id"], "start_s": first["start_s"] + 0.25,
         "end_s": first["end_s"] - 0.1},
        {"op": "set_loudness", "event_id": first["id"], "target_lufs": first["target_lufs"] - 3},
        {"op": "delete", "event_id": second["id"]},
    ]
    path = tmp_path / "changes.json"
    path.write_text(json.dumps(changes))
    sent = client("edit", "--changes-file", str(path), "--session", "s1", "--base-version", "1", url=url)
    assert sent.returncode == 0, sent.stderr
    info = json.loads(client("get-session", "--session", "s1", url=url).stdout)["info"]
    assert info["current_version"] == 2 and len(info["versions"]) == 2
    events = {e["id"]: e for e in info["manifest"]["events"]}
    assert second["id"] not in events
    assert events[first["id"]]["start_s"] == pytest.approx(first["start_s"] + 0.25)
    assert events[first["id"]]["end_s"] == pytest.approx(first["end_s"] - 0.1)
    assert events[first["id"]]["target_lufs"] == pytest.approx(first["target_lufs"] - 3)

    # A request based on version 1 now changes a scene the DAW is not showing: refused.
    for words in (["edit", "louder", "--base-version", "1"], ["undo", "--base-version", "1"],
                  ["redo", "--base-version", "7"]):
        refused = client(*words, "--session", "s1", url=url)
        assert refused.returncode == 1
        assert "conflict" in refused.stderr and "base_version=" in refused.stderr
        assert "version 2" in refused.stderr
    assert json.loads(client("get-session", "--session", "s1", url=url).stdout)["info"]["current_version"] == 2
    # Based on the current version, it goes through.
    undone = client("undo", "--session", "s1", "--base-version", "2", url=url)
    assert undone.returncode == 0, undone.stderr

    # Cancel answers for any job id (a job that already ended is simply not running).
    cancel = client("cancel", "--job", "no-such-job", url=url)
    assert cancel.returncode in (0, 1) and (cancel.stdout or cancel.stderr)


def test_a_bad_changes_file_is_named_before_anything_is_sent(tmp_path):
    path = tmp_path / "changes.json"
    path.write_text('{"op": "move"}')
    result = client("edit", "--changes-file", str(path), "--session", "s", url="ws://127.0.0.1:9")
    assert result.returncode == 2
    assert "changes_file=" in result.stderr and "JSON list" in result.stderr
    neither = client("edit", "--session", "s", url="ws://127.0.0.1:9")
    assert neither.returncode == 2 and "--changes-file" in neither.stderr


def test_an_edit_takes_exactly_one_of_instruction_change_or_changes():
    base = {"v": 1, "type": "edit", "id": "r", "session": "s"}
    move = {"op": "move", "event_id": "e1", "start_s": 1.0}
    assert parse_request(json.dumps({**base, "changes": [move], "base_version": 3})).base_version == 3
    for bad in ({"instruction": "louder", "changes": [move]}, {"change": move, "changes": [move]},
                {"changes": []}, {}):
        with pytest.raises(Exception) as info:
            parse_request(json.dumps({**base, **bad}))
        assert getattr(info.value, "code", "") == "invalid_input"
    assert EditRequest(session="s", changes=[move]).changes[0].event_id == "e1"
