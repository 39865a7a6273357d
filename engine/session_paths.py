"""Where a session's files live: ``<data dir>/sessions/<safe name>/v<N>/``.

Session names are user text; ``session_dir_name`` maps any of them to one safe folder name, and
``SessionFolders`` refuses any path that would resolve outside the sessions folder (a planted
link), before anything is written.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

from engine.errors import InvalidInputError
from engine.limits import SESSION_SLUG_CHARS, check_session_name

SESSIONS_DIR = "sessions"


def session_dir_name(name: str) -> str:
    """A folder name for ``name``: a readable ASCII slug plus a hash of the exact name.

    The slug can only hold [a-z0-9_-] so no name reaches another folder ('..', '/', drive
    letters); the hash keeps names apart that slug alike ('A b' vs 'a-b') and means the result
    is never a bare Windows device name (CON, NUL, COM1...).
    """
    check_session_name(name)
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9_-]+", "-", ascii_text.lower()).strip("-_")
    slug = slug[:SESSION_SLUG_CHARS].strip("-_")
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    return f"{slug or 'session'}-{digest}"


class SessionFolders:
    """The folders of one data dir's sessions."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.sessions_dir = self.data_dir / SESSIONS_DIR
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        if not self.sessions_dir.resolve().is_relative_to(self.data_dir):
            # Stems are announced with their real paths and DAW scripts refuse any outside the
            # reported stem root (the data dir), so say so now rather than fail every job later.
            raise InvalidInputError(
                f"data_dir={str(self.data_dir)!r}: {SESSIONS_DIR}/ links to "
                f"{str(self.sessions_dir.resolve())!r}, outside the data dir; to keep stems on "
                "another disk, point the data dir there instead",
                field="data_dir",
                value=str(self.data_dir),
            )

    def session_dir(self, session: str) -> Path:
        path = self.sessions_dir / session_dir_name(session)
        # Belt and braces: the slug cannot escape, but a symlinked sessions/ must not either.
        if not path.resolve().is_relative_to(self.sessions_dir.resolve()):
            raise InvalidInputError(
                f"session={session!r}: maps outside the data dir", field="session", value=session
            )
        return path

    def version_dir(self, session: str, version: int) -> Path:
        path = self.session_dir(session) / f"v{int(version)}"
        # A link planted at a version's folder must not carry stems elsewhere either; checked
        # here, before anything is written (the server's own check comes after the write).
        if not path.resolve().is_relative_to(self.sessions_dir.resolve()):
            raise InvalidInputError(
                f"session={session!r}: version folder maps outside the data dir",
                field="session",
                value=session,
            )
        return path
