"""What a killed process leaves in a data dir, and the start-up sweep that clears it.

A process killed mid-write leaves the temporary files of engine.atomic (``.<name>.<random>.tmp``
beside their final name: never a file a DAW was told about) and, for a job killed mid-render,
a version folder (``sessions/<slug>/v<N>``) that no stored version owns. The sweep removes the
temporary files and the folders that hold nothing else. It never removes a complete file: the
stems of a version that did not commit were announced one by one (``stem_ready``) and a DAW may
have placed them, so a folder that still has some is kept and reported.

Temporary files younger than ``TMP_GRACE_S`` are left alone: another process sharing the data
dir (`serve` beside `mcp`) may be writing them right now.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.session_paths import SESSIONS_DIR, session_dir_name
from engine.store import SessionStore

log = logging.getLogger("audio_agent.debris")

TMP_GRACE_S = 600.0
_TMP_NAME = re.compile(r"^\..+\.tmp$")  # engine.atomic's mkstemp(prefix=".<name>.", suffix=".tmp")
_VERSION_DIR = re.compile(r"^v(\d+)$")


@dataclass
class SweepReport:
    temp_files_removed: list[str] = field(default_factory=list)
    folders_removed: list[str] = field(default_factory=list)
    folders_kept: list[str] = field(default_factory=list)  # uncommitted, but holding complete files


def _remove_temp_files(root: Path, report: SweepReport, *, now: float) -> None:
    if not root.is_dir():
        return
    for path in root.rglob(".*.tmp"):
        try:
            if (_TMP_NAME.match(path.name) and path.is_file() and not path.is_symlink()
                    and now - path.stat().st_mtime > TMP_GRACE_S):
                path.unlink()
                report.temp_files_removed.append(str(path))
        except OSError as error:  # one stubborn file must not stop the sweep
            log.warning("could not remove %s: %s", path, error)


def _committed_folders(store: SessionStore) -> dict[str, set[int]]:
    """Session folder name -> the versions the store has committed."""
    return {
        session_dir_name(row.name): {version.version for version in store.list_versions(row.name)}
        for row in store.list_sessions()
    }


def _uncommitted_folders(sessions: Path, store: SessionStore, *, now: float) -> list[Path]:
    """Version folders no stored version owns and that nothing touched for TMP_GRACE_S."""
    committed = _committed_folders(store)
    found = []
    for session_folder in sorted(p for p in sessions.iterdir() if p.is_dir() and not p.is_symlink()):
        known = committed.get(session_folder.name, set())
        for folder in sorted(session_folder.iterdir()):
            match = _VERSION_DIR.match(folder.name)
            if (match and int(match.group(1)) not in known and folder.is_dir() and not folder.is_symlink()
                    and now - folder.stat().st_mtime > TMP_GRACE_S):
                found.append(folder)
    return found


def sweep(data_dir: Path, store: SessionStore, *, now: float | None = None) -> SweepReport:
    """Clear a data dir of a killed process's debris (see the module docstring)."""
    now = time.time() if now is None else now
    data_dir = Path(data_dir)
    sessions = data_dir / SESSIONS_DIR
    report = SweepReport()
    # Folders are judged before their temporary files go: removing those touches the folder.
    candidates = _uncommitted_folders(sessions, store, now=now) if sessions.is_dir() else []
    _remove_temp_files(sessions, report, now=now)
    _remove_temp_files(data_dir / "cache", report, now=now)
    for folder in candidates:
        try:
            folder.rmdir()  # only succeeds when empty: complete files are never touched
            report.folders_removed.append(str(folder))
        except OSError:
            report.folders_kept.append(str(folder))
    if report.temp_files_removed or report.folders_removed or report.folders_kept:
        log.info("start-up sweep: removed %d temporary files and %d empty version folders; kept %d "
                 "uncommitted version folders that hold stems a DAW may use",
                 len(report.temp_files_removed), len(report.folders_removed), len(report.folders_kept))
    return report
