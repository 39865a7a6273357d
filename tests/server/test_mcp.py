"""`audio-agent mcp` driven by the MCP SDK's real client: over stdio (a subprocess, as desktop
clients launch it) and over streamable HTTP on loopback.

The server renders with the real engine (rule planner, procedural backend) into a temporary data
dir, so the stems, positions and gains checked here are the ones a DAW would place.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from engine.manifest import read_manifest
from server.cli import main
from tests.server.conftest import request, ws_call
from tests.server.test_front_doors import _comparable

PROMPT = "rain throughout, thunder at 4 s, a door slams at 9 s"
ENV = {**os.environ, "AUDIO_AGENT_CONFIG": "", "PYTHONUNBUFFERED": "1"}


def _stdio(data_dir: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "server.cli", "mcp", "--data-dir", str(data_dir), *extra],
        env=ENV, cwd=str(Path(__file__).resolve().parents[2]),
    )


def run_with(params: Any, body: Callable[[Client], Awaitable[None]], *, timeout_s: float = 120) -> None:
    async def go() -> None:
        with anyio.fail_after(timeout_s):
            async with Client(params, read_timeout_seconds=60) as client:
                await body(client)

    anyio.run(go)


# ------------------------------------------------------------------------------ stdio
def test_tools_are_listed_with_schemas_an_assistant_can_fill(tmp_path):
    async def body(client: Client) -> None:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"generate_scene", "edit_scene", "undo", "redo", "get_scene", "list_scenes",
                "video_cue", "cancel", "library_search"} <= set(tools)
        generate = tools["generate_scene"].input_schema
        assert generate["required"] == ["session", "prompt", "duration_s"]
        assert "seconds" in generate["properties"]["duration_s"]["description"]
        assert generate["properties"]["duration_s"]["exclusiveMinimum"] == 0
        assert "timeline" in generate["properties"]["anchor_s"]["description"]
        # Results are structured: the output schema names stems with their placement.
        output = tools["generate_scene"].output_schema
        assert output is not None and "stems" in output["properties"]

    run_with(_stdio(tmp_path / "data"), body)


def test_generate_edit_undo_redo_with_progress_and_resources(tmp_path):
    data_dir = tmp_path / "data"
    seen: dict[str, Any] = {}

    async def body(client: Client) -> None:
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total, message))

        first = await client.call_tool("generate_scene", {
            "session": "shot 1", "prompt": PROMPT, "duration_s": 12, "anchor_s": 30, "seed": 3,
        }, progress_callback=on_progress)
        assert not first.is_error, first.content
        scene = first.structured_content
        assert scene["session"] == "shot 1" and scene["version"] == 1 and scene["anchor_s"] == 30
        by_words = {stem["description"].lower(): stem for stem in scene["stems"]}
        assert any("rain" in words for words in by_words)
        for stem in scene["stems"]:
            assert stem["timeline_start_s"] == pytest.approx(30 + stem["start_s"])
            assert Path(stem["stem_path"]).is_file()
            assert Path(stem["stem_path"]).resolve().is_relative_to(data_dir.resolve())
            assert stem["change"] == "added"
        door = next(s for s in scene["stems"] if "door" in s["description"].lower())
        assert door["start_s"] == pytest.approx(9.0)
        # Progress notifications arrived during the render and never ran backwards.
        values = [value for value, _, _ in progress]
        assert len(progress) >= 3 and values == sorted(values)
        assert all(total == 100 for _, total, _ in progress)
        assert any(message and message.startswith("stem ") for _, _, message in progress)
        # The text summary names every stem for an assistant that reads text only.
        summary = first.content[0].text
        assert "version 1" in summary and all(s["event_id"] in summary for s in scene["stems"])
        links = [block for block in first.content[1:] if block.type == "resource_link"]
        assert len(links) == len(scene["stems"])

        rain = next(s for s in scene["stems"] if "rain" in s["description"].lower())
        edit = await client.call_tool("edit_scene", {"session": "shot 1", "instruction": "make the rain louder"})
        assert not edit.is_error, edit.content
        edited = {s["event_id"]: s for s in edit.structured_content["stems"]}
        assert edit.structured_content["version"] == 2
        # Loudness only: the same stem file, a higher item gain, nothing else touched.
        assert edited[rain["event_id"]]["stem_path"] == rain["stem_path"]
        assert edited[rain["event_id"]]["gain_db"] > rain["gain_db"] + 1
        assert edited[door["event_id"]]["change"] == "unchanged"

        moved = await client.call_tool("edit_scene", {"session": "shot 1", "changes": [
            {"op": "move", "event_id": door["event_id"], "start_s": 6.0,
             "end_s": 6.0 + door["end_s"] - door["start_s"]}]})
        assert not moved.is_error, moved.content
        moved_door = next(s for s in moved.structured_content["stems"] if s["event_id"] == door["event_id"])
        assert moved_door["start_s"] == pytest.approx(6.0) and moved_door["change"] == "moved"
        assert moved_door["stem_path"] == door["stem_path"]  # a move renders nothing
        assert moved_door["timeline_start_s"] == pytest.approx(36.0)

        undone = await client.call_tool("undo", {"session": "shot 1"})
        assert undone.structured_content["version"] == 2
        redone = await client.call_tool("redo", {"session": "shot 1", "base_version": 2})
        assert redone.structured_content["version"] == 3

        # Resources: the current manifest and plan, and a stem's bytes.
        manifest = (await client.read_resource("audio-agent://scenes/shot%201/manifest")).contents[0]
        assert '"start_s": 6.0' in manifest.text
        plan = (await client.read_resource("audio-agent://scenes/shot%201/plan")).contents[0]
        assert '"events"' in plan.text
        stem = (await client.read_resource(moved_door["stem_uri"])).contents[0]
        assert stem.mime_type == "audio/wav"
        templates = (await client.list_resource_templates()).resource_templates
        assert {t.uri_template for t in templates} >= {
            "audio-agent://scenes/{session}/manifest", "audio-agent://scenes/{session}/plan"}

        scenes = (await client.call_tool("list_scenes", {})).structured_content["scenes"]
        assert [s["name"] for s in scenes] == ["shot 1"] and scenes[0]["current_version"] == 3
        seen["stem"] = moved_door["stem_path"]

    run_with(_stdio(data_dir), body)
    assert Path(seen["stem"]).read_bytes()[:4] == b"RIFF"


def test_bad_input_is_a_tool_error_and_the_server_keeps_serving(tmp_path):
    async def body(client: Client) -> None:
        async def error_of(tool: str, arguments: dict[str, Any]) -> str:
            result = await client.call_tool(tool, arguments)
            assert result.is_error, (tool, arguments, result)
            return result.content[0].text

        assert "no such session" in await error_of("get_scene", {"session": "nowhere"})
        assert "no such session" in await error_of("edit_scene", {"session": "nowhere", "instruction": "louder"})
        assert "duration_s" in await error_of("generate_scene", {"session": "s", "prompt": "rain", "duration_s": -2})
        assert "duration_s" in await error_of("generate_scene", {"session": "s", "prompt": "rain", "duration_s": 1e9})
        assert "exactly one" in await error_of("edit_scene", {"session": "s"})
        assert "video_path" in await error_of("video_cue", {
            "session": "s", "video_path": str(tmp_path / "missing.mp4"), "start_s": 0, "end_s": 2})
        assert "job" in await error_of("cancel", {"job": "j-none"})
        ok = await client.call_tool("generate_scene", {"session": "s", "prompt": "a dog barks twice", "duration_s": 4})
        assert not ok.is_error, ok.content
        # A stem outside the scene's manifest (a traversal, another file) is never served.
        for uri in ("audio-agent://scenes/s/stems/..%2F..%2Fsessions.db",
                    "audio-agent://scenes/s/stems/other.wav"):
            with pytest.raises(Exception) as refused:
                await client.read_resource(uri)
            assert "stem" in str(refused.value).lower() or "path" in str(refused.value).lower()
        assert (await client.call_tool("list_scenes", {})).structured_content["scenes"][0]["name"] == "s"

    run_with(_stdio(tmp_path / "data"), body)


def test_cancelling_a_call_cancels_the_render_and_later_calls_work(tmp_path):
    data_dir = tmp_path / "data"

    async def body(client: Client) -> None:
        started = anyio.Event()

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            started.set()

        async def long_render() -> None:
            await client.call_tool("generate_scene", {
                "session": "long", "duration_s": 600, "prompt": "heavy rain, wind, a crackling fire, "
                "crowd chatter and traffic, a dog barks ten times"}, progress_callback=on_progress)

        async with anyio.create_task_group() as group:
            group.start_soon(long_render)
            with anyio.fail_after(60):
                await started.wait()
            # A long render does not hold up other calls.
            with anyio.fail_after(10):
                listed = (await client.call_tool("list_scenes", {})).structured_content["scenes"]
            assert all(s["current_version"] == 0 for s in listed)
            group.cancel_scope.cancel()
        # The job was cancelled, not finished in the background: no version landed.
        for _ in range(50):
            listed = (await client.call_tool("list_scenes", {})).structured_content["scenes"]
            if not listed or listed[0]["current_version"] == 0:
                break
        assert all(s["current_version"] == 0 for s in listed if s["name"] == "long")
        quick = await client.call_tool("generate_scene", {"session": "quick", "prompt": "a door slams", "duration_s": 2})
        assert not quick.is_error and quick.structured_content["version"] == 1

    run_with(_stdio(data_dir), body)


def test_library_search_finds_the_designers_own_files(tmp_path, monkeypatch, capsys):
    import numpy as np
    import soundfile

    library, data_dir = tmp_path / "sfx", tmp_path / "data"
    library.mkdir()
    rng = np.random.default_rng(0)
    hit = np.concatenate([rng.standard_normal(2400) * np.linspace(1, 0, 2400), np.zeros(24000)])
    soundfile.write(library / "DOORWood_Slam Heavy_ABC_Foley.wav", 0.5 * hit, 48000)
    soundfile.write(library / "RAIN_Steady Roof_ABC_Field.wav", 0.1 * rng.standard_normal(96000), 48000)
    monkeypatch.setenv("AUDIO_AGENT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AUDIO_AGENT_CONFIG", "")
    assert main(["library", "add", str(library)]) == 0
    capsys.readouterr()

    async def body(client: Client) -> None:
        found = await client.call_tool("library_search", {"query": "a heavy wooden door slams", "limit": 2})
        assert not found.is_error, found.content
        hits = found.structured_content["hits"]
        assert hits and hits[0]["path"].endswith("DOORWood_Slam Heavy_ABC_Foley.wav")
        assert hits[0]["cat_id"] == "DOORWood" and hits[0]["score"] > hits[-1]["score"] - 1e-9

    run_with(_stdio(data_dir), body)


# ------------------------------------------------------------------------------ same stems everywhere
def test_mcp_cli_and_websocket_render_the_same_stems(tmp_path, start_server, monkeypatch, capsys):
    monkeypatch.setenv("AUDIO_AGENT_CACHE_DIR", str(tmp_path / "cli-cache"))
    monkeypatch.setenv("AUDIO_AGENT_CONFIG", "")
    prompt, seed = "a dog barks three times, then a car horn honks", 11
    assert main(["render", prompt, "--duration", "6", "--out", str(tmp_path / "cli"),
                 "--backend", "procedural", "--seed", str(seed)]) == 0
    cli = {e.id: e.stem_path for e in read_manifest(tmp_path / "cli" / "manifest.json").events}
    server = start_server(real=True, backend="procedural", data_dir=tmp_path / "ws")
    messages = ws_call(server.ws_port, request("generate", session="same", prompt=prompt, duration_s=6, seed=seed),
                       timeout_s=60)
    capsys.readouterr()
    served = {m["event_id"]: m["stem_path"] for m in messages if m["type"] == "stem_ready"}
    mcp_stems: dict[str, str] = {}

    async def body(client: Client) -> None:
        result = await client.call_tool("generate_scene", {
            "session": "same", "prompt": prompt, "duration_s": 6, "seed": seed, "backend": "procedural"})
        mcp_stems.update({s["event_id"]: s["stem_path"] for s in result.structured_content["stems"]})

    run_with(_stdio(tmp_path / "mcp"), body)
    assert len(cli) >= 4 and sorted(cli) == sorted(served) == sorted(mcp_stems)
    for event_id, path in cli.items():
        assert _comparable(path) == _comparable(served[event_id]) == _comparable(mcp_stems[event_id]), event_id


def test_a_scene_started_over_mcp_is_refined_over_websocket_on_the_same_data_dir(tmp_path, start_server, capsys):
    data_dir = tmp_path / "shared"

    async def start(client: Client) -> None:
        result = await client.call_tool("generate_scene", {"session": "cue", "prompt": PROMPT, "duration_s": 12})
        assert result.structured_content["version"] == 1

    run_with(_stdio(data_dir), start)
    server = start_server(real=True, backend="procedural", data_dir=data_dir)
    messages = ws_call(server.ws_port, request("edit", session="cue", instruction="remove the thunder",
                                               base_version=1), timeout_s=60)
    capsys.readouterr()
    assert messages[-1]["type"] == "done" and messages[-1]["version"] == 2
    server.stop()

    async def check(client: Client) -> None:
        scene = (await client.call_tool("get_scene", {"session": "cue"})).structured_content
        assert scene["current_version"] == 2
        assert not any("thunder" in e["description"].lower() for e in scene["plan"]["events"])

    run_with(_stdio(data_dir), check)


# ------------------------------------------------------------------------------ HTTP
def _start_http(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "mcp", "--http", "--port", "0", "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("audio-agent mcp serving http://"), line
    return process, line.split()[3]


def test_http_on_loopback_with_token_host_and_origin_rules(tmp_path):
    process, url = _start_http(tmp_path / "data", "--token", "s3cret")
    try:
        port = url.split(":")[2].split("/")[0]
        probe = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        with httpx2.Client() as http:
            assert http.post(url, json=probe).status_code == 401
            bad_host = http.post(url, json=probe, headers={"Host": f"evil.example:{port}",
                                                           "Authorization": "Bearer s3cret"})
            assert bad_host.status_code == 403 and "Host" in bad_host.text
            bad_origin = http.post(url, json=probe, headers={"Origin": "https://evil.example",
                                                             "Authorization": "Bearer s3cret"})
            assert bad_origin.status_code == 403 and "Origin" in bad_origin.text
            assert http.post(url, json=probe, headers={"Authorization": "Bearer wrong"}).status_code == 401

        async def body(client: Client) -> None:
            result = await client.call_tool("generate_scene", {"session": "web", "prompt": "a door slams", "duration_s": 2})
            assert not result.is_error and result.structured_content["stems"][0]["start_s"] == pytest.approx(0.0, abs=2)

        authorised = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=60)
        run_with(streamable_http_client(url, http_client=authorised), body)
    finally:
        process.terminate()
        process.wait(timeout=20)
