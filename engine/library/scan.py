"""Walk library folders and bring the index up to date.

A file is read again only when its size or modification time changed since it was indexed
(or since it was skipped). Anything that goes wrong with one file (unreadable, corrupt,
hostile, a symlink loop) is recorded as that file's one-line skip reason; the scan always
goes on to the next file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from engine.errors import InvalidInputError
from engine.library.analysis import analyse, read_audio
from engine.library.metadata import AUDIO_EXTENSIONS, UnreadableFile, describe_path, read_metadata
from engine.library.store import LibraryIndex, Root

COMMIT_EVERY = 200  # files per transaction: a killed scan keeps most of its work

ScanProgress = Callable[[int, str], None]  # (files seen so far, printable path)


@dataclass
class ScanReport:
    root: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (printable path, reason)

    @property
    def indexed(self) -> int:
        return self.added + self.updated + self.unchanged


def _walk(top: Path, skipped: list[tuple[Path, str]]) -> Iterator[tuple[Path, os.stat_result]]:
    """(path, stat) of every audio-named regular file under ``top``; symlinked folders are
    followed once (a folder reached twice, e.g. through a link loop, is skipped)."""
    seen: set[tuple[int, int]] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
        except OSError as error:
            skipped.append((folder, f"cannot open folder: {error.strerror or error}"))
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            if folder != top:
                skipped.append((folder, "folder already scanned (symlink loop or duplicate link)"))
            continue
        seen.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            skipped.append((folder, f"cannot list folder: {error.strerror or error}"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("._"):  # macOS AppleDouble metadata beside each file
                continue
            path = Path(entry.path)
            try:
                entry_stat = os.stat(entry.path)  # follows links; a loop raises ELOOP
            except OSError as error:
                if Path(entry.name).suffix.lower() in AUDIO_EXTENSIONS or entry.is_symlink():
                    skipped.append((path, f"cannot stat: {error.strerror or error}"))
                continue
            if stat.S_ISDIR(entry_stat.st_mode):
                if not entry.name.startswith("."):
                    subfolders.append(path)
            elif Path(entry.name).suffix.lower() in AUDIO_EXTENSIONS:
                if stat.S_ISREG(entry_stat.st_mode):
                    yield path, entry_stat
                else:
                    skipped.append((path, "not a regular file"))
        stack.extend(reversed(subfolders))


def index_file(index: LibraryIndex, root: Root, path: Path, info: os.stat_result) -> None:
    """Read, analyse and store one file; UnreadableFile says why it was not."""
    meta = read_metadata(path)
    audio, rate = read_audio(path)
    analysis = analyse(audio, rate)
    from engine.library.search import text_stems

    text = meta.search_text(path)
    index.upsert(
        root, path, size=info.st_size, mtime_ns=info.st_mtime_ns, meta=meta, analysis=analysis,
        search_text=text, stems=" ".join(sorted(set(text_stems(" ".join(text.values()))))),
    )


def scan_root(
    index: LibraryIndex, root: Root, *, progress: ScanProgress | None = None
) -> ScanReport:
    report = ScanReport(root=root.display)
    known = index.known(root)
    known_skips = index.known_skips(root)
    seen: set[bytes] = set()
    walk_skips: list[tuple[Path, str]] = []
    pending = 0
    for count, (path, info) in enumerate(_walk(root.path, walk_skips), start=1):
        raw = os.fsencode(path)
        seen.add(raw)
        if progress is not None:
            progress(count, describe_path(path))
        old = known.get(raw)
        if old is not None and (old[1], old[2]) == (info.st_size, info.st_mtime_ns):
            report.unchanged += 1
            continue
        old_skip = known_skips.get(raw)
        if old_skip is not None and (old_skip[0], old_skip[1]) == (info.st_size, info.st_mtime_ns):
            report.skipped.append((describe_path(path), old_skip[2]))
            continue
        try:
            index_file(index, root, path, info)
        except UnreadableFile as error:
            reason = str(error)
            index.record_skip(root, path, size=info.st_size, mtime_ns=info.st_mtime_ns,
                              reason=reason)
            report.skipped.append((describe_path(path), reason))
        except (MemoryError, RecursionError, ValueError, OverflowError, OSError) as error:
            # Decoders can fail in ways nobody lists; one file never stops the scan.
            reason = f"failed while reading: {type(error).__name__}: {str(error)[:160]}"
            index.record_skip(root, path, size=info.st_size, mtime_ns=info.st_mtime_ns,
                              reason=reason)
            report.skipped.append((describe_path(path), reason))
        else:
            if old is None:
                report.added += 1
            else:
                report.updated += 1
        pending += 1
        if pending >= COMMIT_EVERY:
            index.commit()
            pending = 0
    gone = [file_id for raw, (file_id, _, _) in known.items() if raw not in seen]
    index.delete_files(gone, commit=False)
    index.forget_skips([raw for raw in known_skips if raw not in seen])
    report.removed = len(gone)
    report.skipped.extend((describe_path(p), reason) for p, reason in walk_skips)
    index.commit()
    return report


def resolve_folder(folder: str | os.PathLike[str]) -> Path:
    """An absolute, existing folder, or InvalidInputError naming it."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InvalidInputError(
            f"{describe_path(path)}: not a folder", field="folder", value=str(path)
        )
    return path.resolve()


def add_folder(
    index: LibraryIndex, folder: str | os.PathLike[str], *, progress: ScanProgress | None = None
) -> ScanReport:
    """Add ``folder`` as a root (a folder inside an existing root just rescans that root) and
    index it. Existing roots inside the new folder are merged into it."""
    path = resolve_folder(folder)
    for root in index.roots():
        if path == root.path or path.is_relative_to(root.path):
            return scan_root(index, root, progress=progress)
    for root in index.roots():
        if root.path.is_relative_to(path):
            index.remove_root(root)
    return scan_root(index, index.add_root(path), progress=progress)


def rescan(index: LibraryIndex, *, progress: ScanProgress | None = None) -> list[ScanReport]:
    """Bring every root up to date. A root that is not there (an unplugged drive) keeps its
    files and says so; `library remove` forgets it."""
    reports = []
    for root in index.roots():
        if not root.path.is_dir():
            report = ScanReport(root=root.display, unchanged=root.files)
            reason = f"folder not found; its {root.files} file(s) kept until 'library remove'"
            report.skipped.append((root.display, reason))
            reports.append(report)
            continue
        reports.append(scan_root(index, root, progress=progress))
    return reports
