"""Fixtures shared by the DAW script tests: a stem root with real WAV files and a scripted client."""

from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import soundfile as sf

from server.cli import COMMAND_MODULES
from server.commands.install_daw import install
from tests.daw.fake_reaper import FakeReaper, split_exec_line


ROOT = Path(__file__).resolve().parents[2]
AUDIO_AGENT = Path(sys.executable).parent / "audio-agent"
needs_server = pytest.mark.skipif(
    not all(m in COMMAND_MODULES for m in ("server.commands.serve", "server.commands.client"))
    or not AUDIO_AGENT.is_file() or sys.platform == "win32",
    reason="needs `audio-agent serve` and `audio-agent client` (server.commands.serve/client in "
           "COMMAND_MODULES, the audio-agent entry point installed) and a POSIX shell",
)


def write_wav(path: Path, *, length_s: float = 0.25, sample_rate: int = 48000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(length_s * sample_rate)
    tone = 0.1 * np.sin(np.linspace(0, 2 * np.pi * 440 * length_s, frames, dtype=np.float32))
    sf.write(path, tone, sample_rate, subtype="PCM_24")
    return path


class ScriptedClient:
    """Stands in for `audio-agent client`: answers `status` and records background jobs.

    Every call arrives as a script the Lua wrote (REAPER runs `/bin/sh <script>`): the client
    command line with its output going to a log file, then the exit status going to a file.
    `status` answers at once (log + exit status written); other calls are recorded as jobs, and
    the test then plays the server by appending JSON lines to the job's events file, and can
    make the client "exit" by writing its exit-status file.
    """

    def __init__(self, *, stem_root: Path, status_reply: str | None = None) -> None:
        self.stem_root = stem_root
        self.status_reply = status_reply
        self.jobs: list[dict[str, Any]] = []
        self.calls: list[list[str]] = []

    def __call__(self, cmdline: str, timeout_ms: int) -> str | None:
        outer = split_exec_line(cmdline)  # what REAPER would run: /bin/sh and the script
        assert outer[0] == "/bin/sh" and len(outer) == 2, cmdline
        assert timeout_ms < 0, "every client call runs in the background (REAPER's UI never waits)"
        lines = [line for line in Path(outer[1]).read_text(encoding="utf-8").splitlines()
                 if line and not line.startswith("#")]
        command, exit_line = shlex.split(lines[0]), shlex.split(lines[1])
        argv = command[: command.index(">")]
        log, exit_path = Path(command[command.index(">") + 1]), Path(exit_line[-1])
        self.calls.append(argv)
        request = argv[argv.index("client") + 1]
        if request == "status":
            if self.status_reply is not None:
                code, _, text = self.status_reply.partition("\n")
            else:
                pong = {"server_version": "test", "stem_root": str(self.stem_root), "planner": "rules",
                        "backend": "procedural"}
                code, text = "0", json.dumps(pong) + "\n"
            log.write_text(text, encoding="utf-8")
            exit_path.write_text(code + "\n", encoding="utf-8")
            return ""
        if "--events-file" not in argv:  # e.g. `cancel`: fire and forget, it ends at once
            log.write_text("", encoding="utf-8")
            exit_path.write_text("0\n", encoding="utf-8")
            return ""
        self.jobs.append({"argv": argv, "exit": exit_path, "log": log, "request": request,
                          "events": Path(argv[argv.index("--events-file") + 1])})
        return ""

    @property
    def job(self) -> dict[str, Any]:
        return self.jobs[-1]

    def send(self, message: dict[str, Any]) -> None:
        message = {"v": 1, **message}
        with open(self.job["events"], "a", encoding="utf-8") as handle:
            handle.write(json.dumps(message) + "\n")

    def exit(self, status: int, log: str = "") -> None:
        self.job["log"].write_text(log, encoding="utf-8")
        self.job["exit"].write_text(f"{status}\n", encoding="utf-8")


@pytest.fixture
def stem_root(tmp_path: Path) -> Path:
    root = tmp_path / "stems"
    root.mkdir()
    return root


@pytest.fixture
def scripts_dir(tmp_path: Path) -> Path:
    """The scripts as `audio-agent install-daw-scripts` lays them out (config file included)."""
    target = tmp_path / "Scripts" / "AudioAgent"
    install("reaper", target)
    return target


@pytest.fixture
def client(stem_root: Path) -> ScriptedClient:
    return ScriptedClient(stem_root=stem_root)


@pytest.fixture
def reaper(tmp_path: Path, client: ScriptedClient) -> FakeReaper:
    return FakeReaper(resource_path=tmp_path / "reaper-resource", exec_handler=client)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real `audio-agent serve` subprocess on free loopback ports (rules planner)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    data_dir = tmp_path / "data"
    log_path = tmp_path / "server.log"  # a file, not a pipe: a chatty server can never block on it
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(AUDIO_AGENT), "serve", "--data-dir", str(data_dir), "--ws-port", "0", "--osc-port", "0",
             "--planner", "rules", "--log-level", "WARNING"],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT,
        )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if "audio-agent serving" not in line:
            proc.kill()
            pytest.fail(f"server did not start: {line!r} {log_path.read_text()[-2000:]}")
        words = line.split()
        yield {"url": words[2], "osc_port": int(words[3].rsplit(":", 1)[1]), "data_dir": data_dir.resolve()}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
