"""The library index: one SQLite file under the data dir, with an FTS5 table for text search.

Paths are stored as bytes (``os.fsencode``), so a file name that is not valid UTF-8 is indexed
and found again exactly; ``display`` is the printable form. Every change bumps ``generation``,
which is part of the library backend's identity, so a rescan invalidates cached renders.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

from engine.errors import InvalidInputError, NotFoundError
from engine.library.analysis import Analysis
from engine.library.metadata import FileMeta, describe_path

INDEX_NAME = "library.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots (
    id INTEGER PRIMARY KEY, path BLOB NOT NULL UNIQUE, display TEXT NOT NULL, added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    path BLOB NOT NULL UNIQUE, display TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    format TEXT NOT NULL, channels INTEGER NOT NULL, sample_rate INTEGER NOT NULL,
    frames INTEGER NOT NULL, length_s REAL NOT NULL,
    loudness_lufs REAL, peak_dbfs REAL, transient_s REAL,
    loop_score REAL NOT NULL, steadiness_db REAL NOT NULL,
    cat_id TEXT NOT NULL, category TEXT NOT NULL, fx_name TEXT NOT NULL,
    creator TEXT NOT NULL, library TEXT NOT NULL, licence TEXT NOT NULL,
    description TEXT NOT NULL, indexed_at REAL NOT NULL,
    stems TEXT NOT NULL  -- the lexicon's word stems of all search text, for scoring coverage
);
CREATE INDEX IF NOT EXISTS files_root ON files(root_id);
CREATE INDEX IF NOT EXISTS files_cat ON files(cat_id);
CREATE INDEX IF NOT EXISTS files_category ON files(category);
CREATE TABLE IF NOT EXISTS skipped (
    path BLOB PRIMARY KEY, root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    display TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, reason TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS files_fts USING fts5(
    name, category, description, tags, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS vectors (
    file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
    model TEXT NOT NULL, vector BLOB NOT NULL
);
"""

# bm25 column weights: the FX name and the category say what a file is; descriptions and
# tags say more but also more noise.
BM25_WEIGHTS = (4.0, 3.0, 2.0, 1.0)

FILE_COLUMNS = (
    "id, path, display, size, mtime_ns, format, channels, sample_rate, frames, length_s, "
    "loudness_lufs, peak_dbfs, transient_s, loop_score, steadiness_db, cat_id, category, "
    "fx_name, creator, library, licence, description, stems"
)


@dataclass(frozen=True)
class LibraryFile:
    id: int
    raw_path: bytes  # os.fsencode form: exact even for names that are not UTF-8
    display: str
    size: int
    mtime_ns: int
    format: str
    channels: int
    sample_rate: int
    frames: int
    length_s: float
    loudness_lufs: float | None
    peak_dbfs: float | None
    transient_s: float | None
    loop_score: float
    steadiness_db: float
    cat_id: str
    category: str
    fx_name: str
    creator: str
    library: str
    licence: str
    description: str
    stems: str

    @classmethod
    def from_row(cls, row: Sequence[object]) -> "LibraryFile":
        values = list(row)
        values[1] = bytes(values[1])  # type: ignore[arg-type]
        return cls(*values)  # type: ignore[arg-type]

    @property
    def path(self) -> Path:
        return Path(os.fsdecode(self.raw_path))

    def credit(self) -> dict[str, object]:
        """Where a rendered stem came from, for the manifest and the stem's bext."""
        return {
            "path": self.display, "cat_id": self.cat_id, "fx_name": self.fx_name,
            "creator": self.creator, "library": self.library, "licence": self.licence,
        }


class ScoringRow(NamedTuple):
    """The columns search scores on (a full LibraryFile is built only for returned hits)."""

    id: int
    length_s: float
    transient_s: float | None
    loop_score: float
    steadiness_db: float
    cat_id: str
    category: str
    stems: str


@dataclass(frozen=True)
class Root:
    id: int
    path: Path
    display: str
    files: int
    skipped: int


def default_index_path(data_dir: Path) -> Path:
    return Path(data_dir).expanduser() / INDEX_NAME


class LibraryIndex:
    """The SQLite index. ``readonly=True`` (what the server uses) refuses every change."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise NotFoundError(
                    f"{self.path}: no sound library index; run 'audio-agent library add DIR'"
                )
            # Quoted: a folder name with "?" or "#" would otherwise end the file name in the URI.
            uri = f"file:{urllib.parse.quote(self.path.absolute().as_posix())}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(str(self.path), check_same_thread=False)
            except (OSError, sqlite3.Error) as error:
                raise InvalidInputError(
                    f"{self.path}: cannot open the library index: {error}", field="data_dir",
                    value=str(self.path),
                ) from None
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema', ?), ('generation', '0')",
                (str(SCHEMA_VERSION),),
            )
            self.db.commit()
        self.db.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "LibraryIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _writable(self) -> None:
        if self.readonly:
            raise InvalidInputError("the sound library index is read-only here", field="library")

    # --- roots ---------------------------------------------------------------------------

    def roots(self) -> list[Root]:
        rows = self.db.execute(
            "SELECT r.id, r.path, r.display,"
            " (SELECT COUNT(*) FROM files f WHERE f.root_id = r.id),"
            " (SELECT COUNT(*) FROM skipped s WHERE s.root_id = r.id)"
            " FROM roots r ORDER BY r.display"
        ).fetchall()
        return [Root(r[0], Path(os.fsdecode(bytes(r[1]))), r[2], r[3], r[4]) for r in rows]

    def root_for(self, path: Path) -> Root | None:
        for root in self.roots():
            if root.path == path:
                return root
        return None

    def add_root(self, path: Path) -> Root:
        self._writable()
        self.db.execute(
            "INSERT OR IGNORE INTO roots (path, display, added_at) VALUES (?, ?, ?)",
            (os.fsencode(path), describe_path(path), time.time()),
        )
        self.db.commit()
        root = self.root_for(path)
        assert root is not None
        return root

    def remove_root(self, root: Root) -> int:
        """Forget a root and its files; returns how many files left the index."""
        self._writable()
        ids = [r[0] for r in self.db.execute("SELECT id FROM files WHERE root_id = ?", (root.id,))]
        self.delete_files(ids, commit=False)
        self.db.execute("DELETE FROM skipped WHERE root_id = ?", (root.id,))
        self.db.execute("DELETE FROM roots WHERE id = ?", (root.id,))
        self._bump()
        self.db.commit()
        return len(ids)

    # --- files ---------------------------------------------------------------------------

    def known(self, root: Root) -> dict[bytes, tuple[int, int, int]]:
        """path -> (file id, size, mtime_ns) of the indexed files under ``root``."""
        rows = self.db.execute(
            "SELECT path, id, size, mtime_ns FROM files WHERE root_id = ?", (root.id,)
        )
        return {bytes(r[0]): (r[1], r[2], r[3]) for r in rows}

    def known_skips(self, root: Root) -> dict[bytes, tuple[int, int, str]]:
        rows = self.db.execute(
            "SELECT path, size, mtime_ns, reason FROM skipped WHERE root_id = ?", (root.id,)
        )
        return {bytes(r[0]): (r[1], r[2], r[3]) for r in rows}

    def upsert(
        self, root: Root, path: Path, *, size: int, mtime_ns: int, meta: FileMeta,
        analysis: Analysis, search_text: dict[str, str], stems: str = "",
    ) -> int:
        self._writable()
        raw = os.fsencode(path)
        self.db.execute("DELETE FROM skipped WHERE path = ?", (raw,))
        old = self.db.execute("SELECT id FROM files WHERE path = ?", (raw,)).fetchone()
        if old is not None:
            self.delete_files([old[0]], commit=False)
        ucs = meta.ucs
        cursor = self.db.execute(
            "INSERT INTO files (root_id, path, display, size, mtime_ns, format, channels,"
            " sample_rate, frames, length_s, loudness_lufs, peak_dbfs, transient_s, loop_score,"
            " steadiness_db, cat_id, category, fx_name, creator, library, licence, description,"
            f" indexed_at, stems) VALUES ({', '.join('?' * 24)})",
            (
                root.id, raw, describe_path(path), size, mtime_ns, meta.format, meta.channels,
                meta.sample_rate, meta.frames, meta.length_s, analysis.loudness_lufs,
                analysis.peak_dbfs, analysis.transient_s, analysis.loop_score,
                analysis.steadiness_db, meta.cat_id, _category(meta),
                ucs.fx_name if ucs is not None else meta.title, meta.creator, meta.library,
                meta.licence, meta.description, time.time(), stems,
            ),
        )
        file_id = int(cursor.lastrowid or 0)
        self.db.execute(
            "INSERT INTO files_fts (rowid, name, category, description, tags)"
            " VALUES (?, ?, ?, ?, ?)",
            (file_id, search_text["name"], search_text["category"], search_text["description"],
             search_text["tags"]),
        )
        return file_id

    def record_skip(self, root: Root, path: Path, *, size: int, mtime_ns: int, reason: str) -> None:
        self._writable()
        raw = os.fsencode(path)
        old = self.db.execute("SELECT id FROM files WHERE path = ?", (raw,)).fetchone()
        if old is not None:
            self.delete_files([old[0]], commit=False)
        self.db.execute(
            "INSERT OR REPLACE INTO skipped VALUES (?, ?, ?, ?, ?, ?)",
            (raw, root.id, describe_path(path), size, mtime_ns, reason),
        )

    def forget_skips(self, paths: Sequence[bytes]) -> None:
        self.db.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in paths])

    def delete_files(self, ids: Sequence[int], *, commit: bool = True) -> None:
        self._writable()
        for start in range(0, len(ids), 500):
            chunk = [(i,) for i in ids[start:start + 500]]
            self.db.executemany("DELETE FROM files_fts WHERE rowid = ?", chunk)
            self.db.executemany("DELETE FROM vectors WHERE file_id = ?", chunk)
            self.db.executemany("DELETE FROM files WHERE id = ?", chunk)
        if commit:
            self._bump()
            self.db.commit()

    def commit(self) -> None:
        self._bump()
        self.db.commit()

    def _bump(self) -> None:
        self.db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )

    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    def get(self, file_id: int) -> LibraryFile:
        query = f"SELECT {FILE_COLUMNS} FROM files WHERE id = ?"
        row = self.db.execute(query, (file_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"library file id {file_id}: not in the index")
        return LibraryFile.from_row(row)

    def files(self, ids: Sequence[int]) -> dict[int, LibraryFile]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE id IN ({marks})", list(ids))
        return {row[0]: LibraryFile.from_row(row) for row in rows}

    def scoring_rows(self, ids: Sequence[int]) -> dict[int, ScoringRow]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            "SELECT id, length_s, transient_s, loop_score, steadiness_db, cat_id, category, stems"
            f" FROM files WHERE id IN ({marks})", list(ids),
        )
        return {row[0]: ScoringRow(*row) for row in rows}

    def iter_files(self) -> Iterator[LibraryFile]:
        for row in self.db.execute(f"SELECT {FILE_COLUMNS} FROM files ORDER BY id"):
            yield LibraryFile.from_row(row)

    def skips(self) -> list[tuple[str, str]]:
        rows = self.db.execute("SELECT display, reason FROM skipped ORDER BY display")
        return [(r[0], r[1]) for r in rows]

    # --- search --------------------------------------------------------------------------

    def text_search(self, match: str, *, limit: int) -> list[tuple[int, float]]:
        """(file id, bm25) for an FTS5 MATCH expression, best first (bm25 is negative)."""
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        rows = self.db.execute(
            f"SELECT rowid, bm25(files_fts, {weights}) AS rank FROM files_fts"
            " WHERE files_fts MATCH ? ORDER BY rank LIMIT ?",
            (match, limit),
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def by_cat_id(self, cat_id: str, category: str, *, limit: int) -> list[int]:
        rows = self.db.execute(
            "SELECT id FROM files WHERE cat_id = ? OR category = ?"
            " ORDER BY cat_id = ? DESC, id LIMIT ?",
            (cat_id, category, cat_id, limit),
        )
        return [int(r[0]) for r in rows]

    def search_words(self, file_id: int) -> str:
        row = self.db.execute(
            "SELECT name, category, description, tags FROM files_fts WHERE rowid = ?", (file_id,)
        ).fetchone()
        return " ".join(row) if row else ""


def _category(meta: FileMeta) -> str:
    from engine.library.ucs import split_cat_id

    split = split_cat_id(meta.cat_id) if meta.cat_id else None
    return split[0] if split else ""
