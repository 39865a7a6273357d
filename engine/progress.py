"""Progress reporting and cooperative cancellation shared by planners, generators and render."""

from __future__ import annotations

import threading
from typing import Protocol

from engine.errors import CancelledError


class ProgressFn(Protocol):
    """Called with a stage name and a fraction in [0, 1] of that stage."""

    def __call__(self, stage: str, fraction: float) -> None: ...


def no_progress(stage: str, fraction: float) -> None:
    """Default progress sink."""


class CancelToken:
    """Thread-safe flag checked between steps (denoising steps, events, segments)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError(self.reason)
