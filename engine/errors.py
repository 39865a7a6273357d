"""One error root for the whole project.

Each subclass carries a stable ``code`` string; the wire sends it as is (server/protocol/errors.py
lists every wire code) and the CLI prints ``str(error)`` as its one-line message.
"""

from __future__ import annotations

from typing import Any


class AudioAgentError(Exception):
    """Root of every error the project raises on purpose."""

    code = "internal"

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value


class InvalidInputError(AudioAgentError):
    """A request, file or option is malformed; ``field`` names what was wrong."""

    code = "invalid_input"


class PlanValidationError(InvalidInputError):
    """A plan breaks one of the plan rules (times, overlap, loudness, ...)."""

    code = "invalid_plan"


class PlannerError(AudioAgentError):
    """A planner could not produce a plan (LLM unreachable, refused, ...)."""

    code = "planner_failed"


class GeneratorError(AudioAgentError):
    """A generator backend failed to render (model load, OOM after retries, ...)."""

    code = "generator_failed"


class CancelledError(AudioAgentError):
    """Work was cancelled by the caller between two steps."""

    code = "cancelled"


class NotFoundError(AudioAgentError):
    """A session, job, event or file that was named does not exist."""

    code = "not_found"


class BusyError(AudioAgentError):
    """The job queue is full; the caller may retry later."""

    code = "busy"


class TimeLimitError(AudioAgentError):
    """A job ran past its time limit."""

    code = "timeout"


class ConflictError(AudioAgentError):
    """A request made against a version of the session that is no longer the current one (a DAW
    that has not seen the latest change); the client syncs and asks again."""

    code = "conflict"


class StorageError(AudioAgentError):
    """The data dir cannot be written (read-only, no permission, a broken database): a problem of
    the machine the engine runs on, not of the request."""

    code = "storage_error"


class StorageFullError(StorageError):
    """The disk (or quota) holding the data dir is full."""

    code = "storage_full"


# errno values that mean "no room" and "may not write here" (ENOSPC, EDQUOT; EROFS, EACCES,
# EPERM). Numbers, not the errno module's names, because EDQUOT is missing on Windows.
_FULL_ERRNOS = frozenset({28, 122, 69})  # ENOSPC; EDQUOT on Linux (122) and macOS/BSD (69)
_DENIED_ERRNOS = frozenset({30, 13, 1})  # EROFS, EACCES, EPERM


def storage_error(error: BaseException) -> StorageError | None:
    """The StorageError an OS or SQLite failure amounts to, or None when it is something else."""
    import sqlite3

    if isinstance(error, StorageError):
        return error
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
        return StorageFullError(f"the disk holding the data dir is full ({error.strerror or error}); "
                                "free space or move --data-dir")
    if isinstance(error, OSError) and error.errno in _DENIED_ERRNOS:
        where = f" {error.filename}" if error.filename else ""
        return StorageError(f"cannot write{where} ({error.strerror or error}); check the data dir's "
                            "permissions and that it is not read-only")
    if isinstance(error, sqlite3.Error):
        text = str(error).lower()
        if "full" in text:
            return StorageFullError(f"the disk holding the data dir is full (database: {error}); "
                                    "free space or move --data-dir")
        if "readonly" in text or "read-only" in text or "unable to open" in text or "disk i/o" in text:
            return StorageError(f"the session database cannot be written ({error}); check the data "
                                "dir's permissions and free space")
    return None

