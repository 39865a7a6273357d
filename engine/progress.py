"""Progress reporting and cooperative cancellation shared by planners, generators and render."""

from __future__ import annotations

import math
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


class ProgressThrottle:
    """Which progress reports are worth passing on (to a client's progress bar, across a process
    boundary): a new stage, every ``step`` of a stage, and a stage's end once. Not thread-safe:
    one per job."""

    def __init__(self, step: float = 0.05) -> None:
        self.step = step
        self._last: tuple[str, float] = ("", -1.0)

    def admit(self, stage: str, fraction: float) -> float | None:
        """The fraction to report (clamped to [0, 1]), or None to stay quiet."""
        if not math.isfinite(fraction):
            return None
        fraction = min(max(float(fraction), 0.0), 1.0)
        last_stage, last_fraction = self._last
        if stage == last_stage and (fraction == last_fraction or
                                    (fraction < 1.0 and fraction - last_fraction < self.step)):
            return None
        self._last = (stage, fraction)
        return fraction
