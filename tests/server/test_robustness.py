"""Hostile and unlucky input: after each case the server still answers ping on both transports."""

from __future__ import annotations

import asyncio
import json
import math
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect

from engine.generators import GenerationResult, register_generator
from engine.limits import MAX_PROMPT_CHARS
from server import protocol as p
from tests.server.conftest import FakeEngine, OscPeer, collect, ping_ok, request, ws_call


def osc_string(text: str) -> bytes:
    data = text.encode() + b"\x00"
    return data + b"\x00" * (-len(data) % 4)


@pytest.mark.parametrize("datagram", [
    b"",
    b"\x00\x01\x02garbage",
    b"#bundle\x00" + b"\x00" * 8,
    osc_string("/audioagent/ping"),  # no type tag string
    osc_string("/audioagent/generate") + osc_string(",ssf") + osc_string("id") + osc_string("s"),  # truncated
    osc_string("/audioagent/ping") + osc_string(",si") + osc_string("id") + b"\x00\x00",  # int cut short
    osc_string("/audioagent/generate") + osc_string(",iiii") + struct.pack(">iiii", 1, 2, 3, 4),  # wrong tags
    osc_string("/audioagent/ping") + osc_string(",s") + b"\xff\xfe\x00\x00",  # not UTF-8
    osc_string("/audioagent/ping") + osc_string(",s") + osc_string("x" * (p.MAX_DATAGRAM_BYTES + 10)),
])
def test_malformed_datagrams_get_an_error_reply(start_server, osc_peer, datagram):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.send_raw(datagram)
    address, args = peer.recv()
    assert address == "/audioagent/error"
    assert args[1] in {"bad_request", "invalid_input", "too_large", "unknown_type"}
    assert ping_ok(server)


@pytest.mark.parametrize("tags,payload,field", [
    (",bi", struct.pack(">i", 3) + b"abc\x00" + struct.pack(">i", 0), "id"),  # blob where the id goes
    (",sT", osc_string("t"), "reply_port"),  # True as the reply port
    (",sN", osc_string("n"), "reply_port"),  # nil
    (",st", osc_string("tt") + b"\x00" * 8, "reply_port"),  # time tag
    (",sh", osc_string("h") + struct.pack(">q", 2**40), "reply_port"),  # int64 out of port range
    (",[s]", osc_string("arr"), "id"),  # an array
])
def test_odd_osc_type_tags_are_answered(start_server, osc_peer, tags, payload, field):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.send_raw(osc_string("/audioagent/ping") + osc_string(tags) + payload)
    address, args = peer.recv()
    assert (address, args[1], args[3]) == ("/audioagent/error", "invalid_input", field)
    assert ping_ok(server)


@pytest.mark.parametrize("duration", [-1.0, 0.0, math.nan, math.inf, -math.inf, 1e6])
def test_bad_durations_over_both_transports(start_server, osc_peer, duration):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/generate", "d", "s", "rain", duration, 0.0, 0)
    address, args = peer.recv()
    assert (address, args[1], args[3]) == ("/audioagent/error", "invalid_input", "duration_s")
    if math.isfinite(duration):
        reply = ws_call(server.ws_port, request("generate", session="s", prompt="rain", duration_s=duration))[-1]
        assert (reply["type"], reply["field"]) == ("error", "duration_s")
    else:  # JSON has no NaN/Infinity: Python's json would emit them, the server refuses them
        frame = '{"v":1,"type":"generate","id":"d","session":"s","prompt":"rain","duration_s":%s}' % (
            "NaN" if math.isnan(duration) else ("Infinity" if duration > 0 else "-Infinity"))
        reply = ws_call(server.ws_port, frame)[-1]
        assert (reply["type"], reply["code"]) == ("error", "bad_json")
    assert ping_ok(server)


def test_huge_prompt_and_unknown_messages(start_server):
    server = start_server()
    reply = ws_call(server.ws_port, request("generate", session="s", prompt="rain " * 1000, duration_s=4))[-1]
    assert (reply["code"], reply["field"]) == ("invalid_input", "prompt")
    reply = ws_call(server.ws_port, request("teleport", session="s"))[-1]
    assert (reply["code"], reply["field"]) == ("unknown_type", "type")
    reply = ws_call(server.ws_port, "[not, json")[-1]
    assert reply["code"] == "bad_json"
    assert ping_ok(server)


def test_deeply_nested_json_gets_an_error_and_the_connection_stays(start_server, osc_peer):
    server = start_server()

    async def scenario():
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            await ws.send("[" * 30_000 + "]" * 30_000)
            reply = (await collect(ws))[-1]
            await ws.send(json.dumps(request("ping", id="same-socket")))
            return reply, (await collect(ws))[-1]

    reply, pong = asyncio.run(scenario())
    assert (reply["type"], reply["code"]) == ("error", "bad_json")
    assert (pong["type"], pong["id"]) == ("pong", "same-socket")
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/request", "[" * 3000 + "]" * 3000, 0)
    address, args = peer.recv()
    assert (address, args[1]) == ("/audioagent/error", "bad_json")
    assert ping_ok(server)


def test_huge_prompt_over_osc_is_named(start_server, osc_peer):
    server = start_server()
    peer = osc_peer(server.osc_port)
    peer.send("/audioagent/generate", "h", "s", "x" * (MAX_PROMPT_CHARS + 1), 4.0)
    address, args = peer.recv()
    assert (address, args[1], args[3]) == ("/audioagent/error", "invalid_input", "prompt")
    assert ping_ok(server)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/tmp/evil", "..", "a/../../b", "C:\\Windows\\x", "CON", "é" * 40])
def test_hostile_session_names_stay_inside_the_data_dir(start_server, tmp_path, name):
    data_dir = tmp_path / "data"
    server = start_server(real=True, data_dir=data_dir, backend="flaky-result")
    before = {path for path in tmp_path.rglob("*") if not path.is_relative_to(data_dir)}
    messages = ws_call(server.ws_port, request("generate", session=name, prompt="a bell ringing", duration_s=1.0))
    assert messages[-1]["type"] == "done", messages[-1]
    for message in messages:
        if message["type"] == "stem_ready":
            assert Path(message["stem_path"]).resolve().is_relative_to(data_dir.resolve())
    after = {path for path in tmp_path.rglob("*") if not path.is_relative_to(data_dir)}
    assert after == before
    assert ws_call(server.ws_port, request("get_session", session=name))[-1]["info"]["name"] == name
    assert ping_ok(server)


def test_fifty_concurrent_clients(start_server):
    server = start_server(max_jobs=64)

    async def one(index: int) -> list[dict]:
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            await ws.send(json.dumps(request("ping", id=f"p{index}")))
            pong = await collect(ws)
            await ws.send(json.dumps(request("generate", id=f"g{index}", session=f"s{index % 10}",
                                             prompt="rain, door", duration_s=2)))
            return pong + await collect(ws, timeout_s=60)

    async def everyone() -> list[list[dict]]:
        return await asyncio.gather(*(one(i) for i in range(50)))

    results = asyncio.run(everyone())
    assert all(r[0]["type"] == "pong" and r[-1]["type"] == "done" for r in results)
    versions: dict[str, list[int]] = {}
    for index, messages in enumerate(results):
        assert all(m["id"] in (f"p{index}", f"g{index}") for m in messages)  # no cross-talk
        versions.setdefault(f"s{index % 10}", []).append(messages[-1]["version"])
    # Per-session order: each session's five jobs produced versions 1..5, none lost or doubled.
    assert all(sorted(v) == [1, 2, 3, 4, 5] for v in versions.values())

    peers = [OscPeer(server.osc_port) for _ in range(50)]
    try:
        for index, peer in enumerate(peers):
            peer.send("/audioagent/ping", f"o{index}", 0)
        assert [peer.recv()[1][0] for peer in peers] == [f"o{i}" for i in range(50)]
    finally:
        for peer in peers:
            peer.close()


class Flaky:
    """Renders most requests; fails the ones that mention 'explode' (by result, or by raising)."""

    name = "flaky"

    def __init__(self, *, raise_: bool) -> None:
        self.raise_ = raise_

    def identity(self) -> dict:
        return {"raise": self.raise_}

    def generate(self, requests, *, progress=None, cancel=None):
        out = []
        for r in requests:
            if "explode" in r.description:
                if self.raise_:
                    raise RuntimeError("backend crashed mid-batch")
                out.append(GenerationResult(error="could not render this one"))
                continue
            frames = int(r.length_s * r.sample_rate)
            out.append(GenerationResult(audio=(0.1 * np.random.default_rng(r.seed).standard_normal((1, frames))).astype(np.float32)))
        return out


register_generator("flaky-result", lambda **_: Flaky(raise_=False))
register_generator("flaky-raise", lambda **_: Flaky(raise_=True))


def test_failing_event_does_not_cost_the_others(start_server):
    server = start_server(real=True, backend="flaky-result")
    messages = ws_call(server.ws_port, request("generate", session="f", prompt="rain, followed by a bomb about to explode",
                                               duration_s=4))
    done = messages[-1]
    assert done["type"] == "done"
    delivered = [m for m in messages if m["type"] == "stem_ready"]
    assert len(delivered) == 1 and "explode" not in delivered[0]["description"]
    assert len(done["manifest"]["failed"]) == 1 and "explode" in done["manifest"]["failed"][0]["description"]
    assert ping_ok(server)


def test_generator_raising_mid_batch_keeps_reused_stems(start_server):
    server = start_server(real=True, backend="flaky-raise")
    first = ws_call(server.ws_port, request("generate", session="r", prompt="wind, followed by a bell", duration_s=4))
    assert first[-1]["type"] == "done" and not first[-1]["manifest"]["failed"]
    added = ws_call(server.ws_port, request("edit", session="r", change={
        "op": "add", "description": "a barrel about to explode", "start_s": 0.0, "end_s": 1.0}))
    done = added[-1]
    assert done["type"] == "done"
    assert [f["description"] for f in done["manifest"]["failed"]] == ["a barrel about to explode"]
    delivered = [m for m in added if m["type"] == "stem_ready"]
    assert len(delivered) == 2 and all(m["cache_hit"] for m in delivered)
    assert ping_ok(server)


def test_generator_raising_mid_batch_still_delivers_the_other_new_stems(start_server):
    """A fresh generate where the whole batch raises because of one prompt: the engine retries
    each event alone, so the other events are rendered and delivered, one message each."""
    server = start_server(real=True, backend="flaky-raise")
    messages = ws_call(server.ws_port, request("generate", session="m", prompt="rain, followed by a bomb about to explode",
                                               duration_s=4))
    done = messages[-1]
    assert done["type"] == "done", done
    delivered = [m for m in messages if m["type"] == "stem_ready"]
    assert [m["description"] for m in delivered] == ["Rain"]
    assert not delivered[0]["cache_hit"]
    assert [f["description"] for f in done["manifest"]["failed"]] == ["A bomb about to explode"]
    assert "backend crashed mid-batch" in done["manifest"]["failed"][0]["error"]
    assert ping_ok(server)


def test_cancel_mid_render(start_server, tmp_path):
    manager = FakeEngine(tmp_path / "data")
    manager.stem_delay_s = 0.3
    server = start_server(engine=manager)

    async def scenario():
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            await ws.send(json.dumps(request("generate", id="long", session="c", prompt="a, b, c, d, e, f", duration_s=6)))
            seen = await collect(ws, until={"stem_ready"})
            job = seen[0]["job"]
            async with connect(f"ws://127.0.0.1:{server.ws_port}") as other:
                await other.send(json.dumps(request("cancel", id="stop", job=job)))
                ack = (await collect(other))[-1]
            rest = await collect(ws)
            return ack, seen + rest

    ack, messages = asyncio.run(scenario())
    assert (ack["type"], ack["state"]) == ("cancel_ack", "running")
    assert (messages[-1]["type"], messages[-1]["code"], messages[-1]["job"]) == ("error", "cancelled", ack["job"])
    assert sum(1 for m in messages if m["type"] == "stem_ready") < 6
    assert ping_ok(server)
    unknown = ws_call(server.ws_port, request("cancel", job="j-nope"))[-1]
    assert (unknown["code"], unknown["field"]) == ("not_found", "job")


def test_queue_full_is_busy_and_planning_overlaps_rendering(start_server, tmp_path):
    manager = FakeEngine(tmp_path / "data")
    manager.gate = threading.Event()  # holds the one render worker
    server = start_server(engine=manager, max_jobs=3)

    async def scenario():
        sockets = [await connect(f"ws://127.0.0.1:{server.ws_port}") for _ in range(4)]
        try:
            for index, ws in enumerate(sockets[:3]):
                await ws.send(json.dumps(request("generate", id=f"q{index}", session=f"s{index}", prompt="rain", duration_s=1)))
            # Every session's job gets planned while the worker is busy with the first render.
            plans = [await collect(ws, until={"plan"}) for ws in sockets[:3]]
            await sockets[3].send(json.dumps(request("generate", id="q3", session="s3", prompt="rain", duration_s=1)))
            busy = (await collect(sockets[3]))[-1]
            manager.gate.set()
            finals = [(await collect(ws))[-1] for ws in sockets[:3]]
            return plans, busy, finals
        finally:
            for ws in sockets:
                await ws.close()

    plans, busy, finals = asyncio.run(scenario())
    assert all(p[-1]["type"] == "plan" for p in plans)
    assert (busy["type"], busy["code"]) == ("error", "busy")
    assert all(f["type"] == "done" for f in finals)
    assert ping_ok(server)


def test_queued_job_cancelled_before_it_starts(start_server, tmp_path):
    manager = FakeEngine(tmp_path / "data")
    manager.gate = threading.Event()
    server = start_server(engine=manager)

    async def scenario():
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            await ws.send(json.dumps(request("generate", id="a", session="same", prompt="rain", duration_s=1)))
            await ws.send(json.dumps(request("generate", id="b", session="same", prompt="door", duration_s=1)))
            messages: list[dict] = []
            while not ({("a", "plan"), ("b", "accepted")} <= {(m["id"], m["type"]) for m in messages}):
                messages += await collect(ws, until={"plan", "accepted"})
            second = [m for m in messages if m["id"] == "b"][0]["job"]
            await ws.send(json.dumps(request("cancel", id="x", job=second)))
            replies: list[dict] = []
            while not ({"cancel_ack", "error"} <= {m["type"] for m in replies}):
                replies += await collect(ws, until={"cancel_ack", "error"})
            manager.gate.set()
            replies += await collect(ws, until={"done"})
            return replies

    replies = asyncio.run(scenario())
    ack = next(m for m in replies if m["type"] == "cancel_ack")
    assert ack["state"] == "queued"
    error = next(m for m in replies if m["type"] == "error")
    assert (error["id"], error["code"]) == ("b", "cancelled")
    assert replies[-1]["id"] == "a" and replies[-1]["version"] == 1
    assert manager.generated == ["rain"]


def test_job_time_limit(start_server, tmp_path):
    manager = FakeEngine(tmp_path / "data")
    manager.stem_delay_s = 2.0
    server = start_server(engine=manager, time_limit_s=0.3)
    reply = ws_call(server.ws_port, request("generate", session="t", prompt="a, b", duration_s=2))[-1]
    assert (reply["type"], reply["code"]) == ("error", "timeout")
    assert ping_ok(server)


def test_waiting_for_the_render_worker_does_not_count_against_the_time_limit():
    """A job planned while another renders waits in line; only its own planning and rendering
    count toward its limit (a long queue on one GPU must not time out jobs that never ran)."""
    import time

    from engine.manifest import Manifest
    from engine.plan import Event, Plan, diff_plans
    from engine.session import PendingVersion, SessionVersion
    from server import protocol as p
    from server.jobs import JobManager

    plan = Plan(duration_s=1.0, events=(Event(id="e1", description="x", start_s=0.0, end_s=1.0),))
    first_render_may_end = threading.Event()

    def prepare(req):
        return PendingVersion(session=req.session, version=1, kind="generate", plan=plan,
                              diff=diff_plans(None, plan))

    def render(pending, *, progress=None, cancel=None, on_stem=None):
        if pending.session == "long":
            first_render_may_end.wait(10)  # a render that ignores cancel, like one GPU kernel
        manifest = Manifest(duration_s=1.0, sample_rate=48000, events=[])
        return SessionVersion(pending.session, 1, "generate", plan, manifest)

    manager = JobManager(prepare=prepare, render=render, time_limit_s=0.3)
    manager.start()
    seen: dict[str, list] = {"long": [], "next": []}
    finished = threading.Event()

    def sink_for(name):
        def sink(message):
            seen[name].append(message)
            if name == "next" and message.type in ("done", "error"):
                finished.set()
        return sink

    try:
        generate = {"prompt": "x", "duration_s": 1.0}
        manager.submit(p.GenerateRequest(id="a", session="long", **generate), sink_for("long"))
        manager.submit(p.GenerateRequest(id="b", session="next", **generate), sink_for("next"))
        deadline = time.monotonic() + 10
        while not any(m.type == "plan" for m in seen["next"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.8)  # "next" waits in line well past its 0.3 s limit
        first_render_may_end.set()
        assert finished.wait(10)
    finally:
        manager.stop()
    assert [m.type for m in seen["next"]] == ["accepted", "plan", "done"], seen["next"][-1]


def _owned_by_a_dead_process(db_path) -> None:
    """The rows this test wrote name the test's own (live) process as their owner; make them a
    process that has exited, as a killed server's would."""
    import sqlite3

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE jobs SET owner_pid = ?", (int(gone.stdout),))


def test_interrupted_jobs_are_reported_after_restart(start_server, tmp_path):
    from engine.session import DB_NAME
    from engine.store import SessionStore

    data_dir = tmp_path / "data"
    server = start_server(real=True, data_dir=data_dir, backend="flaky-result")
    assert ws_call(server.ws_port, request("generate", session="x", prompt="rain", duration_s=1))[-1]["type"] == "done"
    db_path = data_dir / DB_NAME  # the store lives in the engine process
    server.stop()
    # A job the previous process accepted but never finished (it was killed).
    store = SessionStore(db_path)
    store.add_job("jdead", session="x", request={"v": 1, "type": "edit", "id": "r9", "session": "x",
                                                  "instruction": "louder rain"}, status="running")
    store.close()
    _owned_by_a_dead_process(db_path)
    again = start_server(real=True, data_dir=data_dir, backend="flaky-result")
    info = ws_call(again.ws_port, request("get_session", session="x"))[-1]
    assert [j["job"] for j in info["interrupted_jobs"]] == ["jdead"]
    assert info["interrupted_jobs"][0]["request"]["instruction"] == "louder rain"
    listing = ws_call(again.ws_port, request("list_sessions"))[-1]
    assert [j["job"] for j in listing["interrupted_jobs"]] == ["jdead"]


def test_an_interrupted_job_can_be_sent_again_as_reported(start_server, tmp_path):
    """The client re-requests exactly what get_session reported, and the job runs."""
    from engine.session import DB_NAME
    from engine.store import SessionStore

    data_dir = tmp_path / "data"
    server = start_server(real=True, data_dir=data_dir, backend="flaky-result")
    assert ws_call(server.ws_port, request("generate", session="x", prompt="rain, a door slamming",
                                           duration_s=2))[-1]["type"] == "done"
    db_path = data_dir / DB_NAME  # the store lives in the engine process
    server.stop()
    store = SessionStore(db_path)
    store.add_job("jgone", session="x", status="queued", request={
        "v": 1, "type": "edit", "id": "r9", "session": "x",
        "change": {"op": "set_loudness", "event_id": "e1", "target_lufs": -18.0}})
    store.close()
    _owned_by_a_dead_process(db_path)
    again = start_server(real=True, data_dir=data_dir, backend="flaky-result")
    reported = ws_call(again.ws_port, request("get_session", session="x"))[-1]["interrupted_jobs"]
    assert [j["job"] for j in reported] == ["jgone"]
    redone = ws_call(again.ws_port, reported[0]["request"])
    assert redone[-1]["type"] == "done" and redone[-1]["id"] == "r9", redone[-1]
    assert redone[-1]["version"] == 2
    assert [e["target_lufs"] for e in redone[-1]["manifest"]["events"] if e["id"] == "e1"] == [-18.0]


def test_a_mistyped_backend_does_not_stick_to_the_session(start_server):
    server = start_server(real=True, backend="flaky-result")
    typo = ws_call(server.ws_port, request("generate", session="t", prompt="rain", duration_s=1, backend="flakey"))[-1]
    assert (typo["type"], typo["field"]) == ("error", "backend")
    retry = ws_call(server.ws_port, request("generate", session="t", prompt="rain", duration_s=1))[-1]
    assert retry["type"] == "done", retry
    info = ws_call(server.ws_port, request("get_session", session="t"))[-1]["info"]
    assert info["backend"] == "" and info["current_version"] == retry["version"]


def test_video_cue_path_is_validated(start_server, tmp_path):
    server = start_server()
    for path, needle in [(str(tmp_path / "missing.mp4"), "no such file"), (str(tmp_path), "not a regular file")]:
        reply = ws_call(server.ws_port, request("video_cue", session="v", video_path=path, start_s=0, end_s=1))[-1]
        assert (reply["type"], reply["field"]) == ("error", "video_path") and needle in reply["message"]
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    reply = ws_call(server.ws_port, request("video_cue", session="v", video_path=str(empty), start_s=0, end_s=1))[-1]
    assert reply["field"] == "video_path"
    assert ping_ok(server)


class Slow:
    """Renders only once cancelled: stands in for a long GPU render."""

    name = "slow"

    def identity(self) -> dict:
        return {}

    def generate(self, requests, *, progress=None, cancel=None):
        while True:
            cancel.raise_if_cancelled()
            threading.Event().wait(0.02)


register_generator("slow", lambda **_: Slow())


def test_jobs_running_at_shutdown_are_reported_interrupted(start_server, tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(real=True, data_dir=data_dir, backend="slow")

    async def submit_and_leave() -> str:
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            await ws.send(json.dumps(request("generate", id="long", session="z", prompt="rain", duration_s=2)))
            return (await collect(ws, until={"plan"}))[0]["job"]

    job = asyncio.run(submit_and_leave())
    server.stop()
    again = start_server(real=True, data_dir=data_dir, backend="slow")
    listing = ws_call(again.ws_port, request("list_sessions"))[-1]
    assert [(j["job"], j["request"]["prompt"]) for j in listing["interrupted_jobs"]] == [(job, "rain")]
