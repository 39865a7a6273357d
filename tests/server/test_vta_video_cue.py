"""The VTA generator chosen through the server's video_cue: a real server on loopback, a tiny
checkpoint trained in code through the real `vta train` commands, WebSocket requests.

The server lists its checkpoints by name (ServerConfig.vta_checkpoints, `serve --vta-checkpoint`);
clients name one. The onset planner still places the events, and the DAW gets one stem per event
at its place; edits of the session keep rendering with the same picture."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from server.cli import main
from tests.engine.video import synth, tiny_vta
from tests.server.conftest import request, ws_call

os.environ.setdefault("HF_HUB_OFFLINE", "1")
UNITS = tiny_vta.UNITS
FLASHES_S = [0.5, 1.3, 2.2, 2.6]
START_S, END_S, ANCHOR_S = 0.5, 2.5, 10.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny base models, a checkpoint trained one step per stage, and a video with flashes."""
    root = tmp_path_factory.mktemp("vta-server")
    made = tiny_vta.tiny_world(root)
    data, config = made["data"], made["config"]
    centroids = root / "centroids.npy"
    np.save(centroids, np.random.default_rng(3).standard_normal((UNITS, tiny_vta.HUBERT_DIM)).astype(np.float32))
    checkpoint = root / "ckpt"
    common = ["--out", str(checkpoint), "--steps", "1"]
    assert main(["vta", "train", "stage1", str(data), *common, "--centroids", str(centroids),
                 "--config", str(config)]) == 0
    assert main(["vta", "train", "stage2", str(data), *common]) == 0
    video, truth = synth.flashes(root / "flashes.mp4", FLASHES_S)
    return {"checkpoint": checkpoint, "video": video, "truth": truth}


def _cue(**fields):
    return request("video_cue", session="foley", video_path=str(fields.pop("video")), start_s=START_S,
                   end_s=END_S, anchor_s=ANCHOR_S, hint="hand claps", **fields)


def test_vta_cue_over_websocket_puts_one_stem_per_spotted_event_and_edits_keep_the_picture(
        world, start_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIO_AGENT_CACHE_DIR", str(tmp_path / "cache"))
    server = start_server(real=True, vta_checkpoints={"tiny": world["checkpoint"]})
    messages = ws_call(server.ws_port, _cue(video=world["video"], generator="vta", checkpoint="tiny",
                                            vta_lambda=0.7), timeout_s=300)
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "accepted" and kinds[-1] == "done", messages[-1]
    done = messages[-1]
    assert done["manifest"]["backend"] == "vta:tiny" and not done["manifest"]["failed"]
    stems = [m for m in messages if m["type"] == "stem_ready"]
    inside = [t - START_S for t in world["truth"] if START_S <= t < END_S]
    # The onset planner placed the events: one stem per flash, at its time in the scene (the
    # scene sits at the DAW's anchor).
    assert sorted(m["start_s"] for m in stems) == pytest.approx(inside, abs=0.041)
    assert done["manifest"]["anchor_s"] == ANCHOR_S
    for message in stems:
        audio, rate = sf.read(message["stem_path"], dtype="float32", always_2d=True)
        assert audio.shape[0] == round((message["end_s"] - message["start_s"]) * rate)
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0

    # A move keeps its stem (same generator, same cache key); new words re-render from the picture.
    first, second = sorted(stems, key=lambda m: m["start_s"])[:2]
    moved = ws_call(server.ws_port, request("edit", session="foley", changes=[
        {"op": "move", "event_id": first["event_id"], "start_s": first["start_s"] + 0.05},
        {"op": "replace_text", "event_id": second["event_id"], "description": "a single slap"},
    ]), timeout_s=300)
    assert moved[-1]["type"] == "done", moved[-1]["message"]
    by_id = {m["event_id"]: m for m in moved if m["type"] == "stem_ready"}
    assert by_id[first["event_id"]]["cache_hit"] and by_id[first["event_id"]]["change"] == "moved"
    assert by_id[first["event_id"]]["start_s"] == pytest.approx(first["start_s"] + 0.05, abs=1e-6)
    assert not by_id[second["event_id"]]["cache_hit"] and by_id[second["event_id"]]["change"] == "changed"
    assert moved[-1]["manifest"]["backend"] == "vta:tiny" and not moved[-1]["manifest"]["failed"]

    # A sound the picture never spotted cannot be rendered by VTA: refused while planning, before
    # anything renders, and the session stays where it was.
    added = ws_call(server.ws_port, request("edit", session="foley", change={
        "op": "add", "description": "a door slam", "start_s": 0.1, "end_s": 0.4}))
    assert [m["type"] for m in added] == ["accepted", "error"]
    assert "vta" in added[-1]["message"] and "video_cue again" in added[-1]["message"]
    info = ws_call(server.ws_port, request("get_session", session="foley"))[-1]["info"]
    assert info["current_version"] == moved[-1]["version"]

    undone = ws_call(server.ws_port, request("undo", session="foley"))
    assert undone[-1]["type"] == "done", undone[-1]
    assert sorted(m["start_s"] for m in undone if m["type"] == "stem_ready") == \
        pytest.approx(sorted(m["start_s"] for m in stems), abs=1e-6)

    # After a restart the picture is gone: an edit is refused naming why, the session is kept.
    server.stop()
    again = start_server(real=True, vta_checkpoints={"tiny": world["checkpoint"]})
    refused = ws_call(again.ws_port, request("edit", session="foley", change={
        "op": "set_loudness", "event_id": first["event_id"], "target_lufs": -20.0}))
    assert refused[-1]["type"] == "error" and "restarted" in refused[-1]["message"]
    assert ws_call(again.ws_port, request("get_session", session="foley"))[-1]["info"]["current_version"] == \
        undone[-1]["version"]


def test_unknown_or_missing_checkpoint_names_are_refused_before_accepting(world, start_server):
    server = start_server(real=True, vta_checkpoints={"tiny": world["checkpoint"]})
    for fields, words in (({"generator": "vta", "checkpoint": "big"}, ["'big'", "allowed: tiny"]),
                          ({"generator": "vta"}, ["needs checkpoint", "allowed: tiny"]),
                          ({"checkpoint": "tiny"}, ["vta\" only"])):
        messages = ws_call(server.ws_port, _cue(video=world["video"], **fields))
        assert [m["type"] for m in messages] == ["error"], messages
        assert all(word in messages[0]["message"] for word in words), messages[0]["message"]
        assert messages[0]["code"] == "invalid_input"
    # A path is not a name: the wire refuses it outright.
    messages = ws_call(server.ws_port, _cue(video=world["video"], generator="vta",
                                            checkpoint=str(world["checkpoint"])))
    assert [m["type"] for m in messages] == ["error"] and "checkpoint" in messages[0]["message"]
    assert ws_call(server.ws_port, request("get_session", session="foley"))[-1]["type"] == "error"

    bare = start_server(real=True, data_dir=world["checkpoint"].parent / "bare-data")
    messages = ws_call(bare.ws_port, _cue(video=world["video"], generator="vta", checkpoint="tiny"))
    assert [m["type"] for m in messages] == ["error"]
    assert "--vta-checkpoint NAME=DIR" in messages[0]["message"]


def test_serve_flag_builds_the_table_and_refuses_bad_entries(world):
    from engine.errors import InvalidInputError
    from server.cli import build_parser
    from server.commands.serve import config_from_args

    args = build_parser().parse_args(["serve", "--vta-checkpoint", f"tiny={world['checkpoint']}"])
    config = config_from_args(args)
    assert config.vta_checkpoints == {"tiny": world["checkpoint"]}
    config.check()  # a complete checkpoint passes
    for bad in ("tiny", "a b=/x", f"tiny={world['checkpoint']}"):
        args = build_parser().parse_args(["serve", "--vta-checkpoint", f"tiny={world['checkpoint']}",
                                          "--vta-checkpoint", bad])
        with pytest.raises(InvalidInputError):
            config_from_args(args)
    args = build_parser().parse_args(["serve", "--vta-checkpoint", f"x={world['video']}"])
    with pytest.raises(InvalidInputError) as missing:
        config_from_args(args).check()
    assert "not a folder" in str(missing.value)


def test_client_video_cue_sends_the_checkpoint_name_and_lambda(tmp_path):
    from server.cli import build_parser
    from server.commands.client import build_request

    args = build_parser().parse_args(["client", "video-cue", str(tmp_path / "v.mp4"), "--start", "1", "--end", "2",
                                      "--session", "s", "--generator", "vta", "--checkpoint", "foley",
                                      "--lambda", "0.7"])
    sent = build_request(args)
    assert (sent["generator"], sent["checkpoint"], sent["vta_lambda"]) == ("vta", "foley", 0.7)
    plain = build_request(build_parser().parse_args(["client", "video-cue", "v.mp4", "--start", "1", "--end", "2",
                                                     "--session", "s"]))
    assert not {"generator", "checkpoint", "vta_lambda"} & set(plain)


def _settings_file(tmp_path, monkeypatch, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("AUDIO_AGENT_CONFIG", str(path))
    return path


def test_settings_table_lists_checkpoints_and_the_flag_adds_or_overrides(world, tmp_path, monkeypatch):
    import shutil

    from server.cli import build_parser
    from server.commands.serve import config_from_args

    other = tmp_path / "other-ckpt"
    shutil.copytree(world["checkpoint"], other)
    _settings_file(tmp_path, monkeypatch, f'[vta.checkpoints]\ntiny = "{world["checkpoint"]}"\n')
    config = config_from_args(build_parser().parse_args(["serve"]))
    assert config.vta_checkpoints == {"tiny": world["checkpoint"]}
    # A new name on the command line is added; a name the file lists takes the flag's folder.
    added = config_from_args(build_parser().parse_args(["serve", "--vta-checkpoint", f"big={other}"]))
    assert added.vta_checkpoints == {"tiny": world["checkpoint"], "big": other}
    replaced = config_from_args(build_parser().parse_args(["serve", "--vta-checkpoint", f"tiny={other}"]))
    assert replaced.vta_checkpoints == {"tiny": other}
    # The inline-table spelling is the same TOML.
    _settings_file(tmp_path, monkeypatch, f'[vta]\ncheckpoints = {{ tiny = "{other}" }}\n')
    assert config_from_args(build_parser().parse_args(["serve"])).vta_checkpoints == {"tiny": other}


def test_a_relative_folder_in_the_settings_file_starts_beside_the_file(world, tmp_path, monkeypatch):
    import shutil

    from server.cli import build_parser
    from server.commands.serve import config_from_args

    settings_dir = tmp_path / "settings"
    shutil.copytree(world["checkpoint"], settings_dir / "models" / "foley")
    settings_dir.joinpath("config.toml").write_text('[vta.checkpoints]\nfoley = "models/foley"\n',
                                                    encoding="utf-8")
    monkeypatch.setenv("AUDIO_AGENT_CONFIG", str(settings_dir / "config.toml"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # `serve` started from another folder
    config = config_from_args(build_parser().parse_args(["serve"]))
    assert config.vta_checkpoints == {"foley": settings_dir / "models" / "foley"}
    # From the environment variable, a relative folder is the working folder's (the file's
    # entries keep theirs).
    shutil.copytree(world["checkpoint"], elsewhere / "env-ckpt")
    monkeypatch.setenv("AUDIO_AGENT_VTA_CHECKPOINTS", '{"env": "env-ckpt"}')
    config = config_from_args(build_parser().parse_args(["serve"]))
    assert config.vta_checkpoints == {"foley": settings_dir / "models" / "foley", "env": elsewhere / "env-ckpt"}


@pytest.mark.parametrize("table,words", [
    ('[vta.checkpoints]\nfoley = "{missing}"\n', ["'foley'", "config.toml [vta] checkpoints", "not a folder"]),
    ('[vta.checkpoints]\n"a b" = "{ckpt}"\n', ["config.toml [vta] checkpoints", "'a b'", "letters, digits"]),
    ('[vta.checkpoints]\nfoley = 3\n', ["config.toml [vta]:", "checkpoints.foley=3", "NAME = \"DIR\""]),
    ('[vta.checkpoints]\nfoley = ""\n', ["config.toml [vta] checkpoints", "foley", "no folder given"]),
    ('[vta]\ncheckpoint = {{ foley = "{ckpt}" }}\n', ["config.toml [vta]:", "checkpoint=", "not permitted"]),
])
def test_bad_settings_entries_stop_serve_before_it_binds_naming_the_entry(world, tmp_path, monkeypatch, capsys,
                                                                         table, words):
    _settings_file(tmp_path, monkeypatch, table.format(missing=tmp_path / "nowhere", ckpt=world["checkpoint"]))
    # The real command: it exits with the usage-error status and never prints its serving line.
    assert main(["serve", "--ws-port", "0", "--osc-port", "0", "--data-dir", str(tmp_path / "d")]) == 2
    out, err = capsys.readouterr()
    assert "serving" not in out
    assert all(word in err for word in words), err


def test_a_bad_flag_entry_is_named_with_its_source(world, tmp_path, monkeypatch, capsys):
    _settings_file(tmp_path, monkeypatch, f'[vta.checkpoints]\ntiny = "{world["checkpoint"]}"\n')
    assert main(["serve", "--ws-port", "0", "--osc-port", "0", "--data-dir", str(tmp_path / "d"),
                 "--vta-checkpoint", f"half={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "'half' (--vta-checkpoint)" in err and "checkpoint.json" in err, err


def test_pong_and_osc_video_cue_name_the_servers_checkpoints(world, start_server, osc_peer, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIO_AGENT_CACHE_DIR", str(tmp_path / "cache"))
    server = start_server(real=True, vta_checkpoints={"tiny": world["checkpoint"]})
    assert ws_call(server.ws_port, request("ping"))[-1]["vta_checkpoints"] == ["tiny"]
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/ping", "p", peer.port)
    assert peer.collect(until={"pong"})[-1]["vta_checkpoints"] == ["tiny"]
    # An unknown name over OSC is refused before accepting, listing the names offered.
    peer.send("/audioagent/video_cue", "c0", "osc-foley", str(world["video"]), START_S, END_S, ANCHOR_S,
              "hand claps", "big", 0.7, peer.port)
    refused = peer.collect(until={"error", "done"})
    assert [m["type"] for m in refused] == ["error"] and "allowed: tiny" in refused[0]["message"]
    peer.send("/audioagent/video_cue", "c1", "osc-foley", str(world["video"]), START_S, END_S, ANCHOR_S,
              "hand claps", "tiny", 0.7, peer.port)
    peer.sock.settimeout(300.0)  # a render on CPU between two messages
    messages = peer.collect(until={"error", "done"})
    assert messages[0]["type"] == "accepted" and messages[-1]["type"] == "done", messages[-1]
    assert messages[-1]["manifest"]["backend"] == "vta:tiny"
    inside = [t - START_S for t in world["truth"] if START_S <= t < END_S]
    stems = [m for m in messages if m["type"] == "stem_ready"]
    assert sorted(m["start_s"] for m in stems) == pytest.approx(inside, abs=0.041)
