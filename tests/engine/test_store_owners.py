"""Two processes on one data dir (`serve` and `mcp`): at start each marks interrupted only the
jobs of processes that are gone, never the running jobs of a live neighbour."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from engine.store import SessionStore


def _own(store_path, job_id: str, pid: int) -> None:
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE jobs SET owner_pid = ? WHERE job_id = ?", (pid, job_id))


def test_only_jobs_of_dead_processes_are_marked_interrupted(tmp_path):
    path = tmp_path / "sessions.db"
    store = SessionStore(path)
    for job_id in ("live", "dead", "legacy", "finished"):
        store.add_job(job_id, session="s", request={"type": "generate"}, status="running")
    store.update_job("finished", status="done")
    neighbour = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        _own(path, "live", neighbour.pid)
        _own(path, "dead", gone.pid)
        _own(path, "legacy", 0)  # a row from before owners were recorded
        marked = sorted(row.job_id for row in SessionStore(path).mark_interrupted())
        assert marked == ["dead", "legacy"]
        assert store.require_job("live").status == "running"
        assert store.require_job("finished").status == "done"
    finally:
        neighbour.kill()
        neighbour.wait()
    # Once the neighbour is gone too, its job is interrupted at the next start.
    assert [row.job_id for row in SessionStore(path).mark_interrupted()] == ["live"]


def test_a_new_job_records_the_process_that_runs_it(tmp_path):
    import os

    store = SessionStore(tmp_path / "sessions.db")
    assert store.add_job("j", session="s", request={}).owner_pid == os.getpid()
