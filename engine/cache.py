"""Content-addressed store of RAW generator output (before fit, fades and loudness).

The key is a hash of everything that changes the samples a generator produces and nothing
else, so moving an event or changing its loudness finds the same entry, and identical events in
different sessions share one entry automatically.

Layout: ``root/<key[:2]>/<key>.wav`` (32-bit float WAV) plus ``root/index.sqlite``,
which records each entry's size, sample rate and last access for size-bounded LRU eviction.
Entries are written to a temp file and os.replace'd, so a reader never sees half a file.
WAV rather than .npy: np.load parses its header with ast, which on CPython 3.11 can raise a
spurious SystemError when threads parse at once (cpython#106905); libsndfile has no such state.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections import Counter
from hashlib import sha256
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import soundfile as sf

from engine.atomic import atomic_file
from engine.errors import InvalidInputError
from engine.generators import GenerationRequest, Generator

KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# Length is part of the key; rounding hides float noise from JSON round trips and planners.
LENGTH_DECIMALS = 6
INDEX_NAME = "index.sqlite"
INDEX_VERSION = 1
# Recency is a counter, not a clock: two uses in the same clock tick still have an order, and
# the statement computing it is atomic in SQLite, so concurrent writers never share a value.
_NEXT_USE = "(SELECT COALESCE(MAX(last_use), 0) + 1 FROM entries)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL,
    sample_rate INTEGER NOT NULL,
    created REAL NOT NULL,
    last_access REAL NOT NULL,
    last_use INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_use ON entries (last_use);
"""


def cache_key(generator: Generator, request: GenerationRequest) -> str:
    """sha256 of a canonical JSON of what decides the generator's samples."""
    payload = {
        "backend": generator.name,
        "identity": dict(generator.identity()),
        "description": request.description.strip(),
        "length_s": round(float(request.length_s), LENGTH_DECIMALS),
        "seed": int(request.seed),
        "sample_rate": int(request.sample_rate),
    }
    # default=str: identities may hold dtypes or paths; their text is stable enough to hash.
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return sha256(text.encode("utf-8")).hexdigest()


def _check_key(key: str) -> str:
    # Keys become file names; anything but a sha256 hex digest could escape the root.
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise InvalidInputError(f"key={key!r}: not a cache key", field="key", value=key)
    return key


class RenderCache:
    """Raw renders by cache key, bounded to ``max_bytes`` by least-recent-use eviction.

    ``protected`` (and every provider given to ``protect``) is called at eviction time and
    returns keys that must stay (a session manager passes the stems of every live session's
    current version); ``pin``/``unpin`` protect keys for the
    length of one render. Thread-safe; other processes sharing ``root`` go through SQLite's locks.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int | None = None,
        protected: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise InvalidInputError(
                f"max_bytes={max_bytes!r}: must be >= 0", field="max_bytes", value=max_bytes
            )
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._protectors: list[Callable[[], Iterable[str]]] = [protected] if protected else []
        self._pins: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.root / INDEX_NAME, check_same_thread=False, timeout=30.0, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._lock:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version != INDEX_VERSION:
                # The index only summarises the files; an older layout is dropped, not migrated,
                # and its files are adopted again as they are hit.
                self._db.execute("DROP TABLE IF EXISTS entries")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {INDEX_VERSION}")

    # -- keys and paths ----------------------------------------------------------------------

    @staticmethod
    def key_for(generator: Generator, request: GenerationRequest) -> str:
        return cache_key(generator, request)

    def path_for(self, key: str) -> Path:
        key = _check_key(key)
        return self.root / key[:2] / f"{key}.wav"

    # -- reads and writes --------------------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            return False
        return self.path_for(key).is_file()

    def get(self, key: str) -> np.ndarray | None:
        """The stored float32 (channels, frames) audio, or None; a hit counts as a use."""
        path = self.path_for(key)
        if not path.is_file():
            self._forget(key)
            return None
        try:
            frames, sample_rate = sf.read(path, dtype="float32", always_2d=True)
        except FileNotFoundError:  # evicted between the check and the read
            self._forget(key)
            return None
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError):
            # A corrupt entry (disk trouble, foreign file) is a miss; drop it so it is rebuilt.
            self._remove(key)
            return None
        self._touch(key, int(sample_rate))
        return np.ascontiguousarray(frames.T)

    def source_of(self, key: str) -> dict[str, object] | None:
        """The ``source`` stored with ``key`` by ``put``, or None."""
        try:
            data = json.loads(self.path_for(key).with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def sample_rate_of(self, key: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT sample_rate FROM entries WHERE key = ?", (_check_key(key),)
            ).fetchone()
        return None if row is None else int(row[0])

    def put(
        self,
        key: str,
        audio: np.ndarray,
        sample_rate: int,
        *,
        source: Mapping[str, object] | None = None,
    ) -> None:
        """Store ``audio`` under ``key`` atomically, then evict down to ``max_bytes``.

        ``source`` (a backend's credit for the audio, e.g. a library file) is kept beside it
        as ``<key>.json``, so a later hit still knows where its audio came from."""
        path = self.path_for(key)
        if source:
            with atomic_file(path.with_suffix(".json")) as handle:
                handle.write(json.dumps(dict(source), default=str).encode("utf-8"))
        data = np.ascontiguousarray(audio, dtype=np.float32)
        if data.ndim == 1:
            data = data[np.newaxis, :]
        if data.ndim != 2:
            raise InvalidInputError(
                f"audio.shape={audio.shape!r}: expected (channels, frames)",
                field="audio",
                value=audio.shape,
            )
        with atomic_file(path) as handle:
            sf.write(handle, data.T, int(sample_rate), subtype="FLOAT", format="WAV")
            size_bytes = handle.tell()
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO entries (key, size_bytes, sample_rate, created, last_access, last_use)"
                f" VALUES (?, ?, ?, ?, ?, {_NEXT_USE}) ON CONFLICT(key) DO UPDATE SET"
                " size_bytes = excluded.size_bytes, sample_rate = excluded.sample_rate,"
                " last_access = excluded.last_access, last_use = excluded.last_use",
                (key, size_bytes, int(sample_rate), now, now),
            )
        self.evict(keep=(key,))

    # -- eviction ----------------------------------------------------------------------------

    def pin(self, keys: Iterable[str]) -> None:
        """Protect ``keys`` from eviction until unpinned (pins nest: one unpin per pin)."""
        with self._lock:
            self._pins.update(_check_key(key) for key in keys)

    def unpin(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                if self._pins[key] <= 1:
                    self._pins.pop(key, None)
                else:
                    self._pins[key] -= 1

    @property
    def total_bytes(self) -> int:
        with self._lock:
            (total,) = self._db.execute(
                "SELECT COALESCE(SUM(size_bytes), 0) FROM entries"
            ).fetchone()
        return int(total)

    def keys(self) -> list[str]:
        """Indexed keys, least recently used first."""
        with self._lock:
            rows = self._db.execute("SELECT key FROM entries ORDER BY last_use").fetchall()
        return [row[0] for row in rows]

    def protect(self, keys: Callable[[], Iterable[str]]) -> None:
        """Also keep the keys ``keys()`` returns at eviction time (e.g. a session manager's live
        stems). Every provider counts: managers sharing one cache protect each other's stems."""
        with self._lock:
            if keys not in self._protectors:
                self._protectors.append(keys)

    def is_protected_by(self, keys: Callable[[], Iterable[str]]) -> bool:
        return keys in self._protectors

    def evict(self, *, keep: Iterable[str] = ()) -> list[str]:
        """Drop least-recently-used unprotected entries until within ``max_bytes``.

        ``keep`` (the entry just written) is never dropped, even when it alone is over the bound:
        its render is about to be used. Returns the evicted keys, oldest first.
        """
        if self.max_bytes is None or self.total_bytes <= self.max_bytes:
            return []  # the common case: no need to ask who is live
        safe = set(keep)
        for protector in list(self._protectors):
            safe.update(protector())
        evicted: list[str] = []
        with self._lock:
            safe.update(self._pins)
            total = self.total_bytes
            rows = self._db.execute(
                "SELECT key, size_bytes FROM entries ORDER BY last_use"
            ).fetchall()
            for key, size_bytes in rows:
                if total <= self.max_bytes:
                    break
                if key in safe:
                    continue
                self._remove(key)
                total -= int(size_bytes)
                evicted.append(key)
        return evicted

    # -- internals ---------------------------------------------------------------------------

    def _touch(self, key: str, sample_rate: int) -> None:
        now = time.time()
        with self._lock:
            updated = self._db.execute(
                f"UPDATE entries SET last_access = ?, last_use = {_NEXT_USE} WHERE key = ?",
                (now, key),
            ).rowcount
            if updated:
                return
            # A file with no index row (the index was lost): adopt it so the bound counts it,
            # unless another thread evicted it after we read it.
            try:
                size_bytes = self.path_for(key).stat().st_size
            except FileNotFoundError:
                return
            self._db.execute(
                f"INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?, ?, {_NEXT_USE})",
                (key, size_bytes, sample_rate, now, now),
            )

    def _forget(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM entries WHERE key = ?", (key,))

    def _remove(self, key: str) -> None:
        with self._lock:
            self.path_for(key).unlink(missing_ok=True)
            self.path_for(key).with_suffix(".json").unlink(missing_ok=True)
            self._forget(key)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"RenderCache(root={str(self.root)!r}, max_bytes={self.max_bytes!r})"

