"""End to end: the real server (real SessionManager, store, cache, scene renderer, rule planner)
on loopback, driven by the websockets client, python-osc datagrams and the `audio-agent client`
subprocess. Generator calls are counted by a registered backend wrapping the procedural one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from engine.generators import GenerationRequest, GenerationResult, create_generator, register_generator
from tests.server.conftest import OscPeer, ping_ok, request, ws_call

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "Rain pouring outside as thunder rumbles in the distance, followed by a door slamming"


class CallLog:
    """The descriptions the counting backend rendered, one JSON line each in the file named by
    $AA_TEST_COUNTING_LOG: the backend runs in the server's engine process, the test reads here."""

    @staticmethod
    def _path() -> Path:
        return Path(os.environ["AA_TEST_COUNTING_LOG"])

    def extend(self, descriptions: Any) -> None:
        with self._path().open("a", encoding="utf-8") as log:
            log.writelines(json.dumps(text) + "\n" for text in descriptions)

    def clear(self) -> None:
        self._path().write_text("", encoding="utf-8")

    def _read(self) -> list[str]:
        path = self._path()
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []

    def __len__(self) -> int:
        return len(self._read())

    def __eq__(self, other: object) -> bool:
        return self._read() == other

    __hash__ = None  # type: ignore[assignment]


class CountingGenerator:
    """Counts every request it renders, delegating the samples to the procedural backend (or to
    seeded noise while that backend is not importable)."""

    name = "counting"
    calls = CallLog()
    lock = threading.Lock()

    def __init__(self) -> None:
        try:
            self.inner: Any = create_generator("procedural")
        except Exception:
            self.inner = None

    def identity(self) -> dict[str, Any]:
        return {"wraps": "procedural" if self.inner is not None else "noise"}

    def generate(self, requests: Sequence[GenerationRequest], *, progress: Any = None,
                 cancel: Any = None) -> list[GenerationResult]:
        with self.lock:
            CountingGenerator.calls.extend(r.description for r in requests)
        if self.inner is not None:
            return self.inner.generate(requests, progress=progress, cancel=cancel)
        out = []
        for r in requests:
            rng = np.random.default_rng(r.seed)
            frames = int(r.length_s * r.sample_rate)
            out.append(GenerationResult(audio=(0.1 * rng.standard_normal((1, frames))).astype(np.float32)))
        return out


register_generator("counting", lambda **_: CountingGenerator())


@pytest.fixture(autouse=True)
def _reset_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("AA_TEST_COUNTING_LOG", str(tmp_path / "counting-calls.jsonl"))
    yield


def stems_of(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["event_id"]: m for m in messages if m["type"] == "stem_ready"}


def measured_lufs(path: str) -> float:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return float(pyloudnorm.Meter(rate).integrated_loudness(audio))


def test_full_session_over_websocket_then_restart(start_server, tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(real=True, data_dir=data_dir, backend="counting")
    port = server.ws_port

    # generate: one stem message per event, each a real file at its target loudness
    messages = ws_call(port, request("generate", session="scene", prompt=PROMPT, duration_s=6.0, anchor_s=10.0))
    assert messages[-1]["type"] == "done", messages[-1]
    plan = messages[1]
    assert plan["type"] == "plan" and plan["anchor_s"] == 10.0
    ids = [e["id"] for e in plan["events"]]
    stems = stems_of(messages)
    assert sorted(stems) == sorted(ids) and len(ids) >= 3
    assert sum(1 for m in messages if m["type"] == "stem_ready") == len(ids)
    assert len(CountingGenerator.calls) == len(ids)
    first_paths = {i: s["stem_path"] for i, s in stems.items()}
    for event_id, stem in stems.items():
        assert Path(stem["stem_path"]).resolve().is_relative_to(data_dir.resolve())
        assert abs(measured_lufs(stem["stem_path"]) - stem["target_lufs"]) < 1.0

    # edit one event's text: exactly one generator call; the others are cache hits
    CountingGenerator.calls.clear()
    target = ids[-1]
    edited = ws_call(port, request("edit", session="scene",
                                   change={"op": "replace_text", "event_id": target, "description": "a car door shutting"}))
    assert edited[-1]["type"] == "done" and edited[-1]["version"] == 2
    assert CountingGenerator.calls == ["a car door shutting"]
    stems = stems_of(edited)
    assert stems[target]["cache_hit"] is False and stems[target]["change"] == "changed"
    assert all(stems[i]["cache_hit"] for i in ids if i != target)
    assert edited[1]["diff"][target] == "changed"

    # loudness-only edit: zero generator calls, the gain says the difference
    CountingGenerator.calls.clear()
    louder = ws_call(port, request("edit", session="scene",
                                   change={"op": "set_loudness", "event_id": ids[0], "target_lufs": -17.0}))
    assert louder[-1]["type"] == "done" and CountingGenerator.calls == []
    stem = stems_of(louder)[ids[0]]
    assert stem["change"] == "regained" and stem["cache_hit"] is True and stem["target_lufs"] == -17.0
    assert stem["gain_db"] == pytest.approx(-17.0 - measured_lufs(stem["stem_path"]), abs=0.2)

    # move-only edit: zero generator calls
    moved = ws_call(port, request("edit", session="scene",
                                  change={"op": "move", "event_id": target, "start_s": 3.5}))
    assert moved[-1]["type"] == "done" and CountingGenerator.calls == []
    assert stems_of(moved)[target]["change"] == "moved" and stems_of(moved)[target]["start_s"] == 3.5

    # undo: the previous version's stems come back without rendering
    undone = ws_call(port, request("undo", session="scene"))
    assert undone[-1]["type"] == "done" and undone[-1]["version"] == 3
    assert CountingGenerator.calls == []
    assert all(s["cache_hit"] for s in stems_of(undone).values())

    # restart on the same data dir: the session and its stems are still there
    server.stop()
    again = start_server(real=True, data_dir=data_dir, backend="counting")
    info = ws_call(again.ws_port, request("get_session", session="scene"))[-1]
    assert info["type"] == "session" and info["info"]["current_version"] == 3
    for event in info["info"]["manifest"]["events"]:
        assert Path(event["stem_path"]).is_file()
    assert all(Path(p).is_file() for p in first_paths.values())
    listing = ws_call(again.ws_port, request("list_sessions"))[-1]
    assert [s["name"] for s in listing["sessions"]] == ["scene"]
    assert CountingGenerator.calls == []


def test_osc_session_flow_on_the_real_engine(start_server):
    server = start_server(real=True, backend="counting")
    peer = OscPeer(server.osc_port)
    try:
        peer.send("/audioagent/generate", "g", "osc-scene", "wind howling, followed by a bell ringing", 4.0, 2.0, peer.port)
        generated = peer.collect(until={"done", "error"})
        assert generated[-1]["type"] == "done"
        stems = stems_of(generated)
        assert len(stems) == len(generated[-1]["manifest"]["events"]) >= 2
        calls = len(CountingGenerator.calls)
        assert calls == len(stems)
        # The shortest event fits anywhere, so moving it keeps its length (no new render).
        event_id = min(stems, key=lambda i: stems[i]["end_s"] - stems[i]["start_s"])
        peer.send("/audioagent/request", json.dumps(request(
            "edit", id="mv", session="osc-scene", change={"op": "move", "event_id": event_id, "start_s": 0.5})), peer.port)
        moved = peer.collect(until={"done", "error"})
        assert moved[-1]["type"] == "done" and len(CountingGenerator.calls) == calls
        assert stems_of(moved)[event_id]["change"] == "moved"
        peer.send("/audioagent/undo", "u", "osc-scene", peer.port)
        undone = peer.collect(until={"done", "error"})
        assert undone[-1]["version"] == 1 and len(CountingGenerator.calls) == calls
    finally:
        peer.close()


def run_client(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "audio-agent"), "client", *args],
                          capture_output=True, text=True, timeout=timeout_s, env=env, cwd=ROOT)


def test_audio_agent_client_subprocess(start_server, tmp_path):
    server = start_server(real=True, backend="counting")
    url = f"ws://127.0.0.1:{server.ws_port}"
    events = tmp_path / "events.jsonl"
    done = run_client("generate", "a kettle whistling, followed by a cup set down", "--duration", "4",
                      "--session", "cli", "--url", url, "--events-file", str(events), "--anchor", "2")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["anchor_s"] == 2.0 and len(manifest["events"]) >= 2
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [line["type"] for line in lines]
    assert kinds[0] == "accepted" and kinds[-1] == "done"
    assert kinds.count("stem_ready") == len(manifest["events"])

    status = run_client("status", "--url", url)
    assert status.returncode == 0 and json.loads(status.stdout)["type"] == "pong"
    assert json.loads(status.stdout)["stem_root"] == str(server.config.data_dir.resolve())

    edit = run_client("edit", "undo", "--session", "nobody-here", "--url", url, "--events-file", str(events))
    assert edit.returncode != 0 and edit.stderr.startswith("audio-agent: error:")
    assert len(edit.stderr.strip().splitlines()) == 1
    assert json.loads(events.read_text().splitlines()[-1])["type"] == "error"

    undo = run_client("undo", "--session", "cli", "--url", url)
    assert undo.returncode != 0  # one version only: nothing to undo, said in one line
    assert len(undo.stderr.strip().splitlines()) == 1

    unreachable = run_client("status", "--url", "ws://127.0.0.1:9", "--events-file", str(tmp_path / "e2.jsonl"))
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    assert json.loads((tmp_path / "e2.jsonl").read_text())["code"] == "unavailable"
    assert ping_ok(server)


def test_client_daw_ableton_feeds_the_osc_port(start_server):
    server = start_server(real=True, backend="counting")
    live = OscPeer(server.osc_port)
    try:
        result = run_client("generate", "a dog barking", "--duration", "2", "--session", "live",
                            "--url", f"ws://127.0.0.1:{server.ws_port}", "--daw", "ableton",
                            "--osc-port", str(live.port))
        assert result.returncode == 0, result.stderr
        mirrored = live.collect(until={"done"})
    finally:
        live.close()
    assert [m["type"] for m in mirrored if m["type"] == "stem_ready"] == ["stem_ready"]
    assert mirrored[-1]["manifest"] == json.loads(result.stdout)


def test_audio_agent_serve_subprocess(tmp_path):
    """The real `audio-agent serve` process: announces its ports, answers, stops on SIGTERM."""
    import re
    import signal

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    exe = str(Path(sys.executable).parent / "audio-agent")
    refused = subprocess.run([exe, "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode == 2 and "--token" in refused.stderr
    process = subprocess.Popen([exe, "serve", "--data-dir", str(tmp_path / "d"), "--ws-port", "0",
                                "--osc-port", "0", "--log-level", "WARNING"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        match = re.search(r"ws://127\.0\.0\.1:(\d+) osc://127\.0\.0\.1:(\d+)", line)
        assert match, line + process.stderr.read()
        status = run_client("status", "--url", f"ws://127.0.0.1:{match.group(1)}")
        assert status.returncode == 0 and json.loads(status.stdout)["stem_root"] == str((tmp_path / "d").resolve())
        peer = OscPeer(int(match.group(2)))
        try:
            peer.send("/audioagent/ping", "p", 0)
            assert peer.recv()[0] == "/audioagent/pong"
        finally:
            peer.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_video_cue_renders_a_new_session_version(start_server, tmp_path):
    """video_cue -> engine.video.cue.plan_from_video -> rendered as the session's next version."""
    synth = pytest.importorskip("tests.engine.video.synth")
    video, _times = synth.flashes(tmp_path / "flashes.mp4", [0.5, 1.3, 2.2])
    server = start_server(real=True, backend="counting")
    messages = ws_call(server.ws_port, request("video_cue", session="foley", video_path=str(video),
                                               start_s=0.0, end_s=3.0, anchor_s=5.0, hint="footsteps"), timeout_s=60)
    done = messages[-1]
    assert done["type"] == "done", done
    plan = next(m for m in messages if m["type"] == "plan")
    assert plan["duration_s"] == pytest.approx(3.0) and plan["anchor_s"] == 5.0
    stems = stems_of(messages)
    assert stems and sorted(stems) == sorted(e["id"] for e in plan["events"])
    assert done["manifest"]["anchor_s"] == 5.0 and done["version"] == 1
    info = ws_call(server.ws_port, request("get_session", session="foley"))[-1]["info"]
    assert "video cue flashes.mp4" in info["versions"][0]["instruction"]


def test_sessions_folder_linked_outside_the_data_dir_is_refused_at_start(start_server, tmp_path):
    """Stems are announced by their real paths and DAW scripts refuse paths outside stem_root
    (the data dir): a sessions/ link elsewhere is refused at start, in one line, rather than
    failing every job after its first stem was written."""
    from engine.errors import InvalidInputError

    data_dir, bigdisk = tmp_path / "data", tmp_path / "bigdisk"
    data_dir.mkdir()
    bigdisk.mkdir()
    (data_dir / "sessions").symlink_to(bigdisk, target_is_directory=True)
    with pytest.raises(InvalidInputError) as caught:
        start_server(real=True, data_dir=data_dir, backend="counting")
    assert caught.value.field == "data_dir" and "point the data dir there" in str(caught.value)
    assert list(bigdisk.iterdir()) == []
    # Pointing the data dir at the big disk itself is the supported way.
    server = start_server(real=True, data_dir=bigdisk, backend="counting")
    assert ws_call(server.ws_port, request("generate", session="s", prompt="a bell", duration_s=1.0))[-1]["type"] == "done"


def test_a_taken_port_is_one_clear_error(start_server, tmp_path):
    from engine.errors import InvalidInputError
    from server.app import AudioAgentServer, ServerConfig

    server = start_server()
    for name, port in (("ws_port", server.ws_port), ("osc_port", server.osc_port)):
        ports = {"ws_port": 0, "osc_port": 0, name: port}
        config = ServerConfig(host="127.0.0.1", data_dir=tmp_path / name, **ports)
        with pytest.raises(InvalidInputError) as caught:
            AudioAgentServer(config).start()
        assert caught.value.field == name and f":{port}" in str(caught.value)
        assert "--" + name.replace("_", "-") in str(caught.value)
    assert ping_ok(server)


def test_server_with_llm_planner_plans_and_edits_through_the_model(start_server, monkeypatch):
    """`serve --planner llm`: generate and free-text edits go to the OpenAI-compatible endpoint."""
    from tests.fake_openai_server import FakeOpenAIServer

    rain = {"id": "e1", "description": "Heavy rain on a tin roof", "start_s": 0.0, "end_s": 4.0, "target_lufs": -30.0}
    door = {"id": "e2", "description": "A wooden door slams", "start_s": 1.0, "end_s": 2.0, "target_lufs": -18.0}
    with FakeOpenAIServer() as fake:
        for name, value in {"AUDIO_AGENT_LLM_BASE_URL": fake.base_url, "AUDIO_AGENT_LLM_API_KEY": "k",
                            "AUDIO_AGENT_LLM_FALLBACK": "false", "AUDIO_AGENT_LLM_MAX_RETRIES": "0"}.items():
            monkeypatch.setenv(name, value)
        fake.add_json({"duration_s": 4.0, "events": [rain, door]})
        fake.add_json({"duration_s": 4.0, "events": [rain, {**door, "description": "A heavy metal door slams"}]})
        server = start_server(real=True, backend="counting", planner="llm", llm_model="scene-planner")
        made = ws_call(server.ws_port, request("generate", session="llm", prompt="rain, a door", duration_s=4.0))
        assert made[-1]["type"] == "done", made[-1]
        assert [e["description"] for e in made[1]["events"]] == [rain["description"], door["description"]]
        CountingGenerator.calls.clear()
        edited = ws_call(server.ws_port, request("edit", session="llm", instruction="make the door metal"))
        assert edited[-1]["type"] == "done", edited[-1]
        assert edited[1]["diff"] == {"e1": "unchanged", "e2": "changed"}
        assert CountingGenerator.calls == ["A heavy metal door slams"]
        bodies = fake.chat_requests
        assert [b["model"] for b in bodies] == ["scene-planner", "scene-planner"]
        assert "make the door metal" in json.dumps(bodies[1]["messages"])
        assert ws_call(server.ws_port, request("ping"))[-1]["planner"] == "llm"


def test_server_honours_the_engine_settings(start_server, monkeypatch):
    """README 'Settings' (env or config.toml) apply to DAW requests as they do to `render`."""
    monkeypatch.setenv("AUDIO_AGENT_TARGET_LUFS", "-20")
    monkeypatch.setenv("AUDIO_AGENT_SAMPLE_RATE", "44100")
    monkeypatch.setenv("AUDIO_AGENT_MAX_DURATION_S", "30")
    server = start_server(real=True, backend="counting")
    messages = ws_call(server.ws_port, request("generate", session="cfg", prompt="a kettle whistling", duration_s=3.0))
    done = messages[-1]
    assert done["type"] == "done", done
    assert done["manifest"]["sample_rate"] == 44100
    # The rule planner places each event relative to the scene's reference level (the setting).
    from engine.planners.rules import RulePlanner

    expected = {e.id: e.target_lufs for e in RulePlanner(base_lufs=-20.0).plan(
        "a kettle whistling", duration_s=3.0).plan.events}
    for event_id, stem in stems_of(messages).items():
        assert stem["target_lufs"] == expected[event_id] != RulePlanner().plan(
            "a kettle whistling", duration_s=3.0).plan.event(event_id).target_lufs
        assert sf.info(stem["stem_path"]).samplerate == 44100
        assert abs(measured_lufs(stem["stem_path"]) - stem["target_lufs"]) < 1.0
    too_long = ws_call(server.ws_port, request("generate", session="cfg", prompt="rain", duration_s=60.0))[-1]
    assert (too_long["type"], too_long["field"]) == ("error", "duration_s")


def test_server_with_llm_planner_spots_video_cues_with_the_vision_model(start_server, tmp_path, monkeypatch):
    """`serve --planner llm`: a video_cue sends keyframes to the model, whose hits land on onsets."""
    from tests.fake_openai_server import FakeOpenAIServer

    synth = pytest.importorskip("tests.engine.video.synth")
    video, times = synth.flashes(tmp_path / "flashes.mp4", [0.5, 1.3, 2.2])
    with FakeOpenAIServer() as fake:
        for name, value in {"AUDIO_AGENT_LLM_BASE_URL": fake.base_url, "AUDIO_AGENT_LLM_API_KEY": "k",
                            "AUDIO_AGENT_LLM_MAX_RETRIES": "0"}.items():
            monkeypatch.setenv(name, value)
        fake.add_json({"hits": [{"time_s": 0.52, "description": "A glass shatters"},
                                {"time_s": 1.28, "description": "A glass shatters"}]})
        server = start_server(real=True, backend="counting", planner="llm", llm_model="vision-model")
        messages = ws_call(server.ws_port, request("video_cue", session="foley-llm", video_path=str(video),
                                                   start_s=0.0, end_s=3.0, anchor_s=0.0), timeout_s=60)
        assert messages[-1]["type"] == "done", messages[-1]
        plan = next(m for m in messages if m["type"] == "plan")
        assert [e["description"] for e in plan["events"]] == ["A glass shatters", "A glass shatters"]
        # Each hit sits on a detected flash, not on the model's rough time.
        starts = sorted(e["start_s"] for e in plan["events"])
        assert all(min(abs(s - t) for t in times[:2]) <= 0.1 for s in starts)
        sent = json.dumps(fake.chat_requests[0]["messages"])
        assert '"image_url"' in sent and fake.chat_requests[0]["model"] == "vision-model"
