"""One request, two front doors: the CLI and the server give the same stems for the same seed.

The LLM planner (over a scripted OpenAI-compatible server on loopback) plans the scene, because
its plans are where the two front doors once applied a request seed differently.
"""

from __future__ import annotations

import struct
from pathlib import Path

from engine.manifest import read_manifest
from server.cli import main
from tests.fake_openai_server import FakeOpenAIServer
from tests.server.conftest import request, ws_call

PROMPT = "rain on a tin roof, then a wooden door slams"
EVENTS = [
    {"id": "e1", "description": "Heavy rain on a tin roof", "start_s": 0.0, "end_s": 4.0, "target_lufs": -30.0},
    {"id": "e2", "description": "A wooden door slams", "start_s": 1.5, "end_s": 2.5, "target_lufs": -18.0},
]
# bext: Description (256) Originator (32) OriginatorReference (32) OriginationDate (10)
# OriginationTime (8): the write date and time are the only bytes that record *when*.
_BEXT_DATE = slice(320, 338)


def _comparable(path: str) -> bytes:
    """The file's bytes with the bext write date/time blanked (every other byte must match)."""
    data = bytearray(Path(path).read_bytes())
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if chunk_id == b"bext":
            start = offset + 8
            data[start + _BEXT_DATE.start:start + _BEXT_DATE.stop] = b"\0" * 18
            return bytes(data)
        offset += 8 + size + (size & 1)
    raise AssertionError(f"{path}: no bext chunk")


def _llm_env(monkeypatch, fake: FakeOpenAIServer, tmp_path: Path) -> None:
    for name, value in {
        "AUDIO_AGENT_LLM_BASE_URL": fake.base_url, "AUDIO_AGENT_LLM_API_KEY": "k",
        "AUDIO_AGENT_LLM_FALLBACK": "false", "AUDIO_AGENT_LLM_MAX_RETRIES": "0",
        "AUDIO_AGENT_CACHE_DIR": str(tmp_path / "cli-cache"), "AUDIO_AGENT_CONFIG": "",
    }.items():
        monkeypatch.setenv(name, value)


def _cli_stems(out: Path, seed: int) -> dict[str, str]:
    argv = ["render", PROMPT, "--duration", "4", "--out", str(out), "--planner", "llm",
            "--backend", "procedural", "--seed", str(seed)]
    assert main(argv) == 0
    return {event.id: event.stem_path for event in read_manifest(out / "manifest.json").events}


def test_cli_and_server_render_byte_identical_stems_for_the_same_seed(start_server, tmp_path, monkeypatch, capsys):
    with FakeOpenAIServer() as fake:
        _llm_env(monkeypatch, fake, tmp_path)
        for _ in range(3):
            fake.add_json({"duration_s": 4.0, "events": EVENTS})
        cli = _cli_stems(tmp_path / "cli", seed=5)
        unseeded = _cli_stems(tmp_path / "cli-0", seed=0)
        server = start_server(real=True, planner="llm", backend="procedural")
        messages = ws_call(server.ws_port, request(
            "generate", session="same", prompt=PROMPT, duration_s=4.0, seed=5), timeout_s=60)
    capsys.readouterr()
    assert messages[-1]["type"] == "done", messages[-1]
    served = {m["event_id"]: m["stem_path"] for m in messages if m["type"] == "stem_ready"}
    assert sorted(served) == sorted(cli) == ["e1", "e2"]
    for event_id, path in cli.items():
        assert Path(path).name == Path(served[event_id]).name, event_id  # names hash the content
        assert _comparable(path) == _comparable(served[event_id]), event_id
        # The seed reached the audio: the same request without it renders other stems.
        assert _comparable(path) != _comparable(unseeded[event_id]), event_id
