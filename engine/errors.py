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
