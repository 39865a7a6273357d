"""Progress reporting and cooperative cancellation shared by planners, generators and render."""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Protocol

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
    boundary): a new stage, a stage's end once, and in between a step of at least ``step`` no
    sooner than ``min_interval_s`` after the last report. The time floor matters for fast jobs:
    a stem from the cache or a near-free backend runs through every 5 % of a stage in a few
    milliseconds, and 20 messages per stage per job, for 50 clients at once, would cost the
    server's loop more than all their requests (a bar redrawn ten times a second looks smooth).
    Not thread-safe: one per job."""

    def __init__(self, step: float = 0.05, min_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.step = step
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._last: tuple[str, float] = ("", -1.0)
        self._last_at_s = -math.inf

    def admit(self, stage: str, fraction: float) -> float | None:
        """The fraction to report (clamped to [0, 1]), or None to stay quiet."""
        if not math.isfinite(fraction):
            return None
        fraction = min(max(float(fraction), 0.0), 1.0)
        last_stage, last_fraction = self._last
        if stage == last_stage:
            if fraction == last_fraction:
                return None
            if fraction < 1.0:
                if fraction - last_fraction < self.step:
                    return None
                now_s = self._clock()
                if now_s - self._last_at_s < self.min_interval_s:
                    return None
                self._last_at_s = now_s
                self._last = (stage, fraction)
                return fraction
        self._last = (stage, fraction)
        self._last_at_s = self._clock()
        return fraction
