"""Sessions, their plan versions, conversation turns and jobs, persisted in one SQLite file.

Every plan version is kept (plan + manifest JSON) so undo/redo is a pointer move. The schema
carries PRAGMA user_version; ``_MIGRATIONS[n]`` upgrades a database from version n to n + 1, so
a newer build can open an older data dir. One connection guarded by a lock: the engine writes a
few rows per request, far below what would make a connection pool worth its complexity.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from engine.errors import AudioAgentError, InvalidInputError, NotFoundError



class JobStatus(str, enum.Enum):
    """A stored job's state (the server's in-memory states are finer: server.jobs.JobState)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


JOB_STATUSES: tuple[str, ...] = tuple(status.value for status in JobStatus)

_V1 = """
CREATE TABLE sessions (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    current_version INTEGER NOT NULL DEFAULT 0,   -- 0: nothing rendered yet
    last_version INTEGER NOT NULL DEFAULT 0,      -- numbers are never reused (see reserve_version)
    planner TEXT NOT NULL DEFAULT '',
    backend TEXT NOT NULL DEFAULT '',
    anchor_s REAL NOT NULL DEFAULT 0.0
);
CREATE TABLE versions (
    session TEXT NOT NULL REFERENCES sessions(name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,                           -- generate | edit | video_cue | ...
    plan_json TEXT NOT NULL,
    manifest_json TEXT NOT NULL,
    instruction TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    PRIMARY KEY (session, version)
);
CREATE TABLE turns (
    session TEXT NOT NULL REFERENCES sessions(name) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    version INTEGER NOT NULL,                     -- the version this exchange produced
    created REAL NOT NULL,
    PRIMARY KEY (session, idx)
);
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    session TEXT NOT NULL,                        -- no foreign key: a job may create its session
    request_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    error TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX jobs_by_session ON jobs (session, created);
CREATE INDEX jobs_by_status ON jobs (status);
"""

# v2: the seed of the request that made a session's current scene (engine.seeds: edits mix it
# into the seeds of the events they change).
_V2 = """
ALTER TABLE sessions ADD COLUMN seed INTEGER NOT NULL DEFAULT 0
"""

# v3: the process that runs a job. `serve` and `mcp` may share a data dir; at start each marks
# interrupted only the jobs of processes that are gone, never a live neighbour's.
_V3 = """
ALTER TABLE jobs ADD COLUMN owner_pid INTEGER NOT NULL DEFAULT 0
"""

_MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)
SCHEMA_VERSION = len(_MIGRATIONS)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. 0 (jobs recorded before owners were kept) and this
    process's own id (a previous process whose id was reused) count as gone."""
    if pid <= 0 or pid == os.getpid():
        return False
    # psutil, not os.kill(pid, 0): on Windows signal 0 is CTRL_C_EVENT and would interrupt it.
    import psutil

    try:
        # A zombie has exited: a killed server's engine worker stays one until something reaps it
        # (in a container, often nothing does).
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _no_session(name: str) -> NotFoundError:
    return NotFoundError(f"session={name!r}: no such session", field="session", value=name)


@dataclass(frozen=True)
class SessionRow:
    name: str
    created: float
    updated: float
    current_version: int
    last_version: int
    planner: str
    backend: str
    anchor_s: float
    seed: int = 0


@dataclass(frozen=True)
class VersionRow:
    session: str
    version: int
    kind: str
    plan_json: str
    manifest_json: str
    instruction: str
    created: float


@dataclass(frozen=True)
class TurnRow:
    session: str
    idx: int
    role: str
    content: str
    version: int


@dataclass(frozen=True)
class JobRow:
    job_id: str
    session: str
    request_json: str
    status: str
    error: str
    created: float
    updated: float
    owner_pid: int = 0  # 0: recorded before owners were kept (always taken as gone)

    @property
    def request(self) -> dict[str, Any]:
        return json.loads(self.request_json)


class SessionStore:
    """All persistent session state of one data dir. Thread-safe."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # isolation_level=None: we issue BEGIN ourselves, so a transaction spans exactly _tx().
        self._db = sqlite3.connect(
            self.db_path, check_same_thread=False, timeout=30.0, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints
        self._migrate()

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._tx() as db:
            (current,) = db.execute("PRAGMA user_version").fetchone()
            if current > SCHEMA_VERSION:
                raise AudioAgentError(
                    f"db_path={str(self.db_path)!r}: schema version {current} is newer than this "
                    f"build understands ({SCHEMA_VERSION}); upgrade audio-agent",
                    field="db_path",
                    value=str(self.db_path),
                )
            for script in _MIGRATIONS[current:]:
                # executescript would COMMIT our transaction; run statement by statement instead
                # (so migration scripts must not hold ';' inside literals or comments).
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    @property
    def journal_mode(self) -> str:
        return str(self._query("PRAGMA journal_mode")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- sessions ----------------------------------------------------------------------------

    def get_session(self, name: str) -> SessionRow | None:
        rows = self._query("SELECT * FROM sessions WHERE name = ?", (name,))
        return SessionRow(**dict(rows[0])) if rows else None

    def require_session(self, name: str) -> SessionRow:
        row = self.get_session(name)
        if row is None:
            raise _no_session(name)
        return row

    def list_sessions(self) -> list[SessionRow]:
        rows = self._query("SELECT * FROM sessions ORDER BY updated DESC, name")
        return [SessionRow(**dict(row)) for row in rows]

    def ensure_session(
        self, name: str, *, planner: str = "", backend: str = "", anchor_s: float = 0.0
    ) -> SessionRow:
        """Create the session if it is new; an existing one is returned unchanged."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO sessions"
                " (name, created, updated, planner, backend, anchor_s) VALUES (?, ?, ?, ?, ?, ?)",
                (name, now, now, planner, backend, float(anchor_s)),
            )
        return self.require_session(name)

    def reserve_version(self, name: str) -> int:
        """The next version number of ``name``. Numbers are never handed out twice, even for
        versions dropped by undo-then-edit or never committed, so a version's folder is never
        rewritten under a DAW that may still have its files open."""
        with self._tx() as db:
            updated = db.execute(
                "UPDATE sessions SET last_version = last_version + 1 WHERE name = ?", (name,)
            ).rowcount
            if not updated:
                raise _no_session(name)
            (number,) = db.execute(
                "SELECT last_version FROM sessions WHERE name = ?", (name,)
            ).fetchone()
        return int(number)

    def update_session(
        self,
        name: str,
        *,
        planner: str | None = None,
        backend: str | None = None,
        anchor_s: float | None = None,
    ) -> None:
        fields = {"planner": planner, "backend": backend, "anchor_s": anchor_s}
        sets = {key: value for key, value in fields.items() if value is not None}
        if not sets:
            return
        assignments = ", ".join(f"{key} = ?" for key in sets)
        with self._tx() as db:
            db.execute(
                f"UPDATE sessions SET {assignments}, updated = ? WHERE name = ?",
                (*sets.values(), time.time(), name),
            )

    def delete_session(self, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE name = ?", (name,))

    # -- versions ----------------------------------------------------------------------------

    def commit_version(
        self,
        name: str,
        *,
        version: int,
        kind: str,
        plan_json: str,
        manifest_json: str,
        instruction: str = "",
        turns: tuple[tuple[str, str], ...] = (),
        anchor_s: float | None = None,
        planner: str | None = None,
        backend: str | None = None,
        seed: int | None = None,
    ) -> list[int]:
        """Store a new version, make it current and append its turns, in one transaction.

        Versions after the current one (the redo branch) are dropped with their turns, as a DAW
        does after undo-then-edit. ``anchor_s``/``planner``/``backend``/``seed`` (when given)
        become the session's settings. Returns the dropped version numbers.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT current_version FROM sessions WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                raise _no_session(name)
            current = int(row[0])
            dropped = [
                int(r[0])
                for r in db.execute(
                    "SELECT version FROM versions WHERE session = ? AND version > ?"
                    " ORDER BY version",
                    (name, current),
                )
            ]
            db.execute("DELETE FROM versions WHERE session = ? AND version > ?", (name, current))
            db.execute("DELETE FROM turns WHERE session = ? AND version > ?", (name, current))
            db.execute(
                "INSERT INTO versions (session, version, kind, plan_json, manifest_json,"
                " instruction, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, version, kind, plan_json, manifest_json, instruction, now),
            )
            self._append_turns(db, name, version, turns, now)
            db.execute(
                "UPDATE sessions SET current_version = ?, updated = ?,"
                " anchor_s = COALESCE(?, anchor_s), planner = COALESCE(?, planner),"
                " backend = COALESCE(?, backend), seed = COALESCE(?, seed) WHERE name = ?",
                (version, now, anchor_s, planner, backend, seed, name),
            )
        return dropped

    def set_current(self, name: str, version: int) -> None:
        """Move the current pointer (undo/redo) to a stored version."""
        with self._tx() as db:
            exists = db.execute(
                "SELECT 1 FROM versions WHERE session = ? AND version = ?", (name, version)
            ).fetchone()
            if exists is None:
                raise NotFoundError(
                    f"version={version!r}: session {name!r} has no such version",
                    field="version",
                    value=version,
                )
            db.execute(
                "UPDATE sessions SET current_version = ?, updated = ? WHERE name = ?",
                (version, time.time(), name),
            )

    def update_manifest(self, name: str, version: int, manifest_json: str) -> None:
        """Replace a stored version's manifest (after re-rendering a stem that went missing)."""
        with self._tx() as db:
            db.execute(
                "UPDATE versions SET manifest_json = ? WHERE session = ? AND version = ?",
                (manifest_json, name, version),
            )

    def get_version(self, name: str, version: int) -> VersionRow | None:
        rows = self._query(
            "SELECT * FROM versions WHERE session = ? AND version = ?", (name, version)
        )
        return VersionRow(**dict(rows[0])) if rows else None

    def list_versions(self, name: str) -> list[VersionRow]:
        rows = self._query("SELECT * FROM versions WHERE session = ? ORDER BY version", (name,))
        return [VersionRow(**dict(row)) for row in rows]

    def current_manifests(self) -> dict[str, str]:
        """session name -> manifest JSON of its current version (for cache protection)."""
        rows = self._query(
            "SELECT v.session, v.manifest_json FROM versions v JOIN sessions s"
            " ON s.name = v.session AND s.current_version = v.version"
        )
        return {row[0]: row[1] for row in rows}

    # -- turns -------------------------------------------------------------------------------

    @staticmethod
    def _append_turns(
        db: sqlite3.Connection,
        name: str,
        version: int,
        turns: tuple[tuple[str, str], ...],
        now: float,
    ) -> None:
        (last,) = db.execute(
            "SELECT COALESCE(MAX(idx), -1) FROM turns WHERE session = ?", (name,)
        ).fetchone()
        for offset, (role, content) in enumerate(turns, start=1):
            db.execute(
                "INSERT INTO turns (session, idx, role, content, version, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, int(last) + offset, role, content, version, now),
            )

    def add_turns(self, name: str, version: int, turns: tuple[tuple[str, str], ...]) -> None:
        with self._tx() as db:
            self._append_turns(db, name, version, turns, time.time())

    def list_turns(self, name: str, *, up_to_version: int | None = None) -> list[TurnRow]:
        """The conversation in order; with ``up_to_version`` only turns that produced versions
        up to it (turns of undone versions are not part of the live history)."""
        if up_to_version is None:
            rows = self._query(
                "SELECT session, idx, role, content, version FROM turns WHERE session = ?"
                " ORDER BY idx",
                (name,),
            )
        else:
            rows = self._query(
                "SELECT session, idx, role, content, version FROM turns WHERE session = ?"
                " AND version <= ? ORDER BY idx",
                (name, up_to_version),
            )
        return [TurnRow(**dict(row)) for row in rows]

    # -- jobs --------------------------------------------------------------------------------

    @staticmethod
    def _check_status(status: str) -> str:
        """The status as its plain text value (a JobStatus or its value)."""
        value = status.value if isinstance(status, JobStatus) else status
        if value not in JOB_STATUSES:
            raise InvalidInputError(
                f"status={status!r}: must be one of {', '.join(JOB_STATUSES)}",
                field="status",
                value=status,
            )
        return value

    def add_job(
        self, job_id: str, *, session: str, request: dict[str, Any] | str, status: str = "queued"
    ) -> JobRow:
        status = self._check_status(status)
        request_json = request if isinstance(request, str) else json.dumps(request)
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (job_id, session, request_json, status, created, updated, owner_pid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_id, session, request_json, status, now, now, os.getpid()),
            )
        return self.require_job(job_id)

    def update_job(self, job_id: str, *, status: str, error: str = "") -> None:
        status = self._check_status(status)
        with self._tx() as db:
            updated = db.execute(
                "UPDATE jobs SET status = ?, error = ?, updated = ? WHERE job_id = ?",
                (status, error, time.time(), job_id),
            ).rowcount
        if not updated:
            raise NotFoundError(f"job={job_id!r}: no such job", field="job", value=job_id)

    def get_job(self, job_id: str) -> JobRow | None:
        rows = self._query("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return JobRow(**dict(rows[0])) if rows else None

    def require_job(self, job_id: str) -> JobRow:
        row = self.get_job(job_id)
        if row is None:
            raise NotFoundError(f"job={job_id!r}: no such job", field="job", value=job_id)
        return row

    def list_jobs(self, *, session: str | None = None, status: str | None = None) -> list[JobRow]:
        clauses, params = [], []
        if session is not None:
            clauses.append("session = ?")
            params.append(session)
        if status is not None:
            clauses.append("status = ?")
            params.append(self._check_status(status))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM jobs{where} ORDER BY created, job_id", tuple(params))
        return [JobRow(**dict(row)) for row in rows]

    def mark_interrupted(self) -> list[JobRow]:
        """On start: jobs still queued or running whose process is gone died with it. Mark them
        interrupted and return them so clients can be told to re-request. Jobs of a live process
        (another `serve` or `mcp` on the same data dir) are left alone."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT job_id, owner_pid FROM jobs WHERE status IN ('queued', 'running')"
            ).fetchall()
            ids = [row[0] for row in rows if not _process_alive(int(row[1]))]
            now = time.time()
            for job_id in ids:
                db.execute(
                    "UPDATE jobs SET status = 'interrupted', error = 'the server stopped before this"
                    " job finished; send the request again', updated = ? WHERE job_id = ?",
                    (now, job_id),
                )
        return [self.require_job(job_id) for job_id in ids]
