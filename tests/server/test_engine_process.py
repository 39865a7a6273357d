"""The engine's worker process (server.engine_process): the real server plans and renders there.

What must hold beyond "it renders" (the e2e, front-door and robustness suites cover that through
the same process): a worker that dies costs only the jobs in flight and the next request gets a
fresh one; cancel and time limits cross the process boundary; a call stuck past its cancel is
ended by replacing the worker; a killed server does not leave its worker behind, and the jobs
the worker was running are reported interrupted by the next server.

The backends below are imported by the worker as a plugin (conftest passes this module).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from websockets.asyncio.client import connect

from engine.errors import InvalidInputError
from engine.generators import GenerationResult, register_generator
from server import engine_process
from tests.server.conftest import collect, ping_ok, request, ws_call
from tests.server.test_robustness import Slow

ROOT = Path(__file__).resolve().parents[2]


class Quick:
    name = "ep-quick"

    def identity(self) -> dict:
        return {}

    def generate(self, requests, *, progress=None, cancel=None):
        return [GenerationResult(audio=(0.1 * np.random.default_rng(r.seed).standard_normal(
            (1, int(r.length_s * r.sample_rate)))).astype(np.float32)) for r in requests]


class Stuck:
    """Never looks at its cancel token: a driver call that hangs."""

    name = "ep-stuck"

    def identity(self) -> dict:
        return {}

    def generate(self, requests, *, progress=None, cancel=None):
        threading.Event().wait(3600)


register_generator("ep-quick", lambda **_: Quick())
register_generator("ep-slow", lambda **_: Slow())  # renders until cancelled, checking often
register_generator("ep-stuck", lambda **_: Stuck())


def generate(session: str, backend: str, **fields) -> dict:
    return request("generate", session=session, prompt="rain, a door slams", duration_s=2.0,
                   backend=backend, **fields)


async def _start_then(port: int, message: dict, action) -> list[dict]:
    """Send ``message``; once the render is under way (its first progress), run ``action`` and
    collect the rest of the job's messages."""
    async with connect(f"ws://127.0.0.1:{port}") as ws:
        await ws.send(json.dumps(message))
        seen = await collect(ws, until={"progress", "error", "done"})
        assert seen[-1]["type"] == "progress", seen
        action()
        return seen + await collect(ws, until={"error", "done"}, timeout_s=60)


def test_the_server_renders_in_a_worker_process(start_server):
    server = start_server(real=True, backend="ep-quick")
    worker = server.engine.pid
    assert worker is not None and worker != os.getpid()
    assert psutil.Process(worker).ppid() == os.getpid()
    done = ws_call(server.ws_port, generate("a", "ep-quick"))[-1]
    assert done["type"] == "done" and all(Path(e["stem_path"]).is_file() for e in done["manifest"]["events"])


@pytest.mark.skipif(not hasattr(os, "nice"), reason="POSIX priorities")
def test_the_worker_yields_the_cpu_to_the_transports(start_server):
    """Rendering runs below the server's priority, so a request's answer never waits for a
    scheduler slice behind render threads; the server itself keeps its own priority."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    server = start_server(real=True, backend="ep-quick")
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours
    expected = min(19, ours + engine_process.WORKER_NICE)
    assert os.getpriority(os.PRIO_PROCESS, server.engine.pid) == expected
    # ... and still renders.
    done = ws_call(server.ws_port, generate("nice", "ep-quick"))[-1]
    assert done["type"] == "done"


def test_a_worker_that_dies_fails_its_job_and_the_next_request_gets_a_fresh_one(start_server):
    server = start_server(real=True, backend="ep-quick")
    first = server.engine.pid
    messages = asyncio.run(_start_then(server.ws_port, generate("dies", "ep-slow"),
                                       lambda: os.kill(first, signal.SIGKILL)))
    error = messages[-1]
    assert error["type"] == "error" and error["code"] == "internal", error
    assert "engine process stopped" in error["message"] and "send the request again" in error["message"]
    # The server kept serving; the next job starts a new worker and renders.
    assert ping_ok(server)
    done = ws_call(server.ws_port, generate("after", "ep-quick"))[-1]
    assert done["type"] == "done", done
    assert server.engine.pid not in (None, first)
    # The failed job was recorded through the new worker: nothing is left "running".
    listing = ws_call(server.ws_port, request("list_sessions"))[-1]
    assert listing["type"] == "sessions" and listing["interrupted_jobs"] == []


def test_cancel_reaches_the_worker_and_the_worker_stays(start_server):
    server = start_server(real=True, backend="ep-quick")
    worker = server.engine.pid

    def cancel(job: str) -> None:
        ack = ws_call(server.ws_port, request("cancel", job=job))[-1]
        assert (ack["type"], ack["state"]) == ("cancel_ack", "running")

    async def scenario() -> list[dict]:
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            await ws.send(json.dumps(generate("c", "ep-slow")))
            seen = await collect(ws, until={"progress"})
            await asyncio.to_thread(cancel, seen[0]["job"])
            return await collect(ws, until={"error", "done"}, timeout_s=30)

    started = time.monotonic()
    assert asyncio.run(scenario())[-1]["code"] == "cancelled"
    assert time.monotonic() - started < 20  # the worker stopped at its next check, not at a time limit
    assert server.engine.pid == worker
    assert ws_call(server.ws_port, generate("c2", "ep-quick"))[-1]["type"] == "done"


def test_a_time_limit_ends_a_render_in_the_worker(start_server):
    server = start_server(real=True, backend="ep-quick", time_limit_s=0.5)
    worker = server.engine.pid
    error = ws_call(server.ws_port, generate("t", "ep-slow"), timeout_s=30)[-1]
    assert (error["type"], error["code"]) == ("error", "timeout"), error
    assert server.engine.pid == worker


def test_a_call_stuck_after_its_cancel_is_ended_by_a_new_worker(start_server, monkeypatch, caplog):
    monkeypatch.setattr(engine_process, "CANCEL_GRACE_S", 0.5)
    server = start_server(real=True, backend="ep-quick", time_limit_s=3.0)
    stuck = server.engine.pid
    error = ws_call(server.ws_port, generate("s", "ep-stuck"), timeout_s=30)[-1]
    # The client hears why its job ended (the time limit); the log says what it cost.
    assert (error["type"], error["code"]) == ("error", "timeout"), error
    assert "restarting the engine process" in caplog.text
    assert not _running(stuck)
    # The next job starts a new worker and renders.
    done = ws_call(server.ws_port, generate("s2", "ep-quick"))[-1]
    assert done["type"] == "done", done
    assert server.engine.pid != stuck


def test_a_plugin_that_cannot_be_imported_stops_the_start_with_its_name(start_server):
    with pytest.raises(InvalidInputError) as caught:
        start_server(real=True, plugins=("tests.server.no_such_plugin",))
    assert caught.value.field == "plugins" and "tests.server.no_such_plugin" in str(caught.value)


def test_a_job_cancelled_while_waiting_for_the_render_worker_is_released(start_server):
    """A planned version that will never render is released: an engine in another process would
    otherwise keep it (and the video frames of a VTA plan) for good."""
    server = start_server()
    fake = server.engine
    fake.gate = threading.Event()  # holds the render worker on the first job

    async def scenario() -> list[dict]:
        async with connect(f"ws://127.0.0.1:{server.ws_port}") as ws:
            await ws.send(json.dumps(request("generate", id="first", session="a", prompt="rain", duration_s=1)))
            await ws.send(json.dumps(request("generate", id="second", session="b", prompt="wind", duration_s=1)))
            seen: list[dict] = []
            while sum(m["type"] == "plan" for m in seen) < 2:  # both planned; the second waits
                seen += await collect(ws, until={"plan"})
            second = next(m["job"] for m in seen if m["type"] == "accepted" and m["id"] == "second")
            await ws.send(json.dumps(request("cancel", id="c", job=second)))
            seen += await collect(ws, until={"cancel_ack"})
            fake.gate.set()
            while not any(m["type"] == "error" and m["id"] == "second" for m in seen):
                seen += await collect(ws, until={"error", "done"})
            return seen

    messages = asyncio.run(scenario())
    assert [m["code"] for m in messages if m["type"] == "error"] == ["cancelled"]
    assert fake.released == [("b", 1)]


# ------------------------------------------------------------------------------ a killed server
def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_server_takes_its_worker_along_and_its_job_is_reported_interrupted(start_server, tmp_path):
    data_dir = tmp_path / "data"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "AUDIO_AGENT_CONFIG": ""}
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--ws-port", "0", "--osc-port", "0", "--data-dir",
         str(data_dir), "--plugin", __name__, "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(ROOT),
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        port = int(re.search(r"ws://127\.0\.0\.1:(\d+)", line).group(1))
        workers = [child.pid for child in psutil.Process(server.pid).children()
                   if "spawn_main" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())]
        assert len(workers) == 1, workers

        async def render_then_kill() -> None:
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await ws.send(json.dumps(generate("k", "ep-slow", id="long")))
                assert (await collect(ws, until={"progress"}))[-1]["type"] == "progress"
                server.kill()  # SIGKILL: no clean-up runs in the server

        asyncio.run(render_then_kill())
    finally:
        server.kill()
        server.wait(timeout=20)
    deadline = time.monotonic() + 20
    while _running(workers[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(workers[0]), "the worker outlived its server"
    again = start_server(real=True, data_dir=data_dir, backend="ep-quick")
    listing = ws_call(again.ws_port, request("list_sessions"))[-1]
    assert [(j["request"]["id"], j["request"]["session"]) for j in listing["interrupted_jobs"]] == [("long", "k")]


def noisy_engine():
    """An engine whose building prints to stdout, as some libraries do on import."""
    from server.app import ServerConfig, build_engine_here

    print("stray output from a library", flush=True)
    return build_engine_here(ServerConfig(data_dir=Path(os.environ["AA_TEST_DATA"])))


def test_the_worker_never_writes_to_stdout(tmp_path):
    """`audio-agent mcp` speaks its protocol on stdout: the worker's stray prints go to stderr."""
    script = ("from server.engine_process import EngineProcess\n"
              "from tests.server.test_engine_process import noisy_engine\n"
              "engine = EngineProcess(noisy_engine)\n"
              "print(engine.sessions(), flush=True)\n"
              "engine.close()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=str(ROOT), env={**os.environ, "AA_TEST_DATA": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
    assert "stray output from a library" in done.stderr
