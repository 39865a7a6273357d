"""Atomic file writes: a file appears under its final name complete, or not at all.

Stems, manifests, cache entries and cue files are all read by something that may look at any
moment (a DAW watching a folder, a second server thread); none may ever see half a file.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


@contextmanager
def atomic_file(path: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file beside ``path``; on a clean exit fsync it and os.replace it over
    ``path``; on any error remove it. ``mode`` because mkstemp makes owner-only files, and these
    are ordinary media files that a DAW running as another user may read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
