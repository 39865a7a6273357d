"""SessionStore: sessions, versions (undo branch), turns, jobs, WAL, schema version, restart."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from engine.errors import AudioAgentError, InvalidInputError, NotFoundError
from engine.store import SCHEMA_VERSION, SessionStore


@pytest.fixture()
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "db" / "audio_agent.sqlite")


def _commit(store: SessionStore, name: str, text: str, **extra) -> int:
    version = store.reserve_version(name)
    store.commit_version(
        name,
        version=version,
        kind="edit",
        plan_json=f'{{"plan": "{text}"}}',
        manifest_json=f'{{"manifest": "{text}"}}',
        instruction=text,
        turns=(("user", text), ("assistant", f"did {text}")),
        **extra,
    )
    return version


def test_wal_foreign_keys_and_schema_version(store: SessionStore) -> None:
    assert store.journal_mode == "wal"
    assert store.schema_version == SCHEMA_VERSION >= 1
    raw = sqlite3.connect(store.db_path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "versions", "turns", "jobs"} <= tables
    # Foreign keys are on: deleting a session cascades to its versions and turns.
    store.ensure_session("gone")
    _commit(store, "gone", "a")
    store.delete_session("gone")
    assert store.list_versions("gone") == [] and store.list_turns("gone") == []
    assert raw.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 0


def test_session_round_trip_and_versions(store: SessionStore) -> None:
    created = store.ensure_session("Car scene", planner="rules", backend="procedural", anchor_s=2.5)
    assert created.current_version == 0 and created.anchor_s == 2.5
    # ensure_session on an existing session leaves it unchanged.
    assert store.ensure_session("Car scene", planner="llm").planner == "rules"
    v1 = _commit(store, "Car scene", "first")
    v2 = _commit(store, "Car scene", "second", anchor_s=4.0)
    row = store.require_session("Car scene")
    assert (v1, v2) == (1, 2) and row.current_version == 2 and row.anchor_s == 4.0
    stored = store.get_version("Car scene", 1)
    assert stored is not None and stored.plan_json == '{"plan": "first"}'
    assert stored.manifest_json == '{"manifest": "first"}' and stored.instruction == "first"
    assert [v.version for v in store.list_versions("Car scene")] == [1, 2]
    assert [t.content for t in store.list_turns("Car scene")] == [
        "first", "did first", "second", "did second"
    ]
    assert [t.role for t in store.list_turns("Car scene")] == ["user", "assistant"] * 2
    assert store.current_manifests() == {"Car scene": '{"manifest": "second"}'}
    store.update_manifest("Car scene", 2, '{"manifest": "fixed"}')
    assert store.get_version("Car scene", 2).manifest_json == '{"manifest": "fixed"}'


def test_undo_pointer_and_new_commit_drops_redo_branch(store: SessionStore) -> None:
    store.ensure_session("s")
    for text in ("a", "b", "c"):
        _commit(store, "s", text)
    store.set_current("s", 1)
    assert [t.content for t in store.list_turns("s", up_to_version=1)] == ["a", "did a"]
    dropped = _commit_and_dropped(store, "s", "d")
    assert dropped == [2, 3]
    versions = [v.version for v in store.list_versions("s")]
    # Version numbers are never reused: the new one is 4, not 2.
    assert versions == [1, 4]
    assert [t.content for t in store.list_turns("s")] == ["a", "did a", "d", "did d"]
    with pytest.raises(NotFoundError) as info:
        store.set_current("s", 2)
    assert info.value.field == "version"


def _commit_and_dropped(store: SessionStore, name: str, text: str) -> list[int]:
    version = store.reserve_version(name)
    return store.commit_version(
        name, version=version, kind="edit", plan_json="{}", manifest_json="{}",
        instruction=text, turns=(("user", text), ("assistant", f"did {text}")),
    )


def test_unknown_session_raises_not_found(store: SessionStore) -> None:
    with pytest.raises(NotFoundError) as info:
        store.require_session("nope")
    assert info.value.field == "session" and info.value.value == "nope"
    with pytest.raises(NotFoundError):
        store.reserve_version("nope")
    assert store.get_session("nope") is None


def test_hostile_text_is_data_not_sql(store: SessionStore) -> None:
    name = "x'); DROP TABLE sessions; --\u00e9\u65e5"
    store.ensure_session(name)
    _commit(store, name, "it's \"quoted\"")
    assert store.require_session(name).current_version == 1
    assert [row.name for row in store.list_sessions()] == [name]


def test_jobs_and_interrupted_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = SessionStore(path)
    store.add_job("j1", session="s", request={"type": "generate", "prompt": "rain"})
    store.add_job("j2", session="s", request={"type": "edit"})
    store.add_job("j3", session="t", request={"type": "undo"})
    store.add_job("j4", session="t", request='{"type": "ping"}')
    store.update_job("j2", status="running")
    store.update_job("j3", status="done")
    store.update_job("j4", status="failed", error="generator exploded")
    with pytest.raises(InvalidInputError) as info:
        store.update_job("j1", status="exploded")
    assert info.value.field == "status"
    with pytest.raises(NotFoundError):
        store.update_job("missing", status="done")
    assert [job.job_id for job in store.list_jobs(session="s")] == ["j1", "j2"]
    store.close()

    restarted = SessionStore(path)  # the server process died and started again
    interrupted = restarted.mark_interrupted()
    assert sorted(job.job_id for job in interrupted) == ["j1", "j2"]
    assert all(job.status == "interrupted" and job.error for job in interrupted)
    assert interrupted[0].request["type"] in {"generate", "edit"}
    assert restarted.require_job("j3").status == "done"
    assert restarted.require_job("j4").error == "generator exploded"
    assert [job.job_id for job in restarted.list_jobs(status="interrupted")] == ["j1", "j2"]
    assert restarted.mark_interrupted() == []


def test_everything_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = SessionStore(path)
    store.ensure_session("s", backend="procedural")
    _commit(store, "s", "a")
    _commit(store, "s", "b")
    store.set_current("s", 1)
    store.close()
    again = SessionStore(path)
    row = again.require_session("s")
    assert row.current_version == 1 and row.last_version == 2 and row.backend == "procedural"
    assert len(again.list_turns("s")) == 4
    assert again.reserve_version("s") == 3


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    SessionStore(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(AudioAgentError) as info:
        SessionStore(path)
    assert info.value.field == "db_path"


def test_concurrent_reservations_are_unique(store: SessionStore) -> None:
    store.ensure_session("busy")
    numbers: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            number = store.reserve_version("busy")
            with lock:
                numbers.append(number)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 101))


def test_a_version_1_database_is_upgraded_keeping_its_sessions(tmp_path: Path) -> None:
    """A data dir written before sessions stored their seed opens with seed 0 for old sessions."""
    from engine.store import _V1

    path = tmp_path / "old.sqlite"
    raw = sqlite3.connect(path)
    raw.executescript(_V1)
    raw.execute("INSERT INTO sessions (name, created, updated, backend) VALUES ('old', 1, 1, 'x')")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    store = SessionStore(path)
    assert store.schema_version == SCHEMA_VERSION
    row = store.require_session("old")
    assert (row.backend, row.seed) == ("x", 0)
    store.reserve_version("old")
    store.commit_version("old", version=1, kind="generate", plan_json="{}", manifest_json="{}", seed=7)
    assert store.require_session("old").seed == 7
    store.commit_version("old", version=2, kind="edit", plan_json="{}", manifest_json="{}")
    assert store.require_session("old").seed == 7  # None keeps the session's seed
