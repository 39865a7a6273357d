"""Clip gain in dB -> Live's normalised Clip.gain (0..1).

Live does not document the curve behind Clip.gain, but every clip tells us what a value means
through Clip.gain_display_string ("-6.0 dB"). So we measure the curve once on the first clip we
place (a few dozen sets) and invert it by interpolation from then on: one set per clip after
that, and the figure the user reads in Live is the figure we were asked for.
"""

from __future__ import annotations

import math
import re

_DB = re.compile(r"(-?inf|-?\d+(?:\.\d+)?)\s*dB", re.IGNORECASE)
CALIBRATION_STEPS = 64
# Used only when a clip's display string cannot be read: a straight line over Live's range.
FALLBACK_MIN_DB, FALLBACK_MAX_DB = -70.0, 24.0


def parse_display_db(text: object) -> float | None:
    match = _DB.search(str(text or ""))
    if not match:
        return None
    value = match.group(1).lower()
    if value.endswith("inf"):
        return -math.inf
    return float(value)


class GainCurve:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []  # (dB, normalised), dB rising

    def calibrate(self, clip: object) -> bool:
        points = []
        for step in range(CALIBRATION_STEPS + 1):
            value = step / CALIBRATION_STEPS
            clip.gain = value  # type: ignore[attr-defined]
            shown = parse_display_db(getattr(clip, "gain_display_string", None))
            if shown is None:
                return False
            if math.isfinite(shown):
                points.append((shown, value))
        points.sort()
        self.points = points
        return len(points) >= 2

    def normalised(self, gain_db: float) -> float:
        points = self.points
        if not points:
            span = FALLBACK_MAX_DB - FALLBACK_MIN_DB
            return min(1.0, max(0.0, (gain_db - FALLBACK_MIN_DB) / span))
        if gain_db <= points[0][0]:
            return points[0][1]
        if gain_db >= points[-1][0]:
            return points[-1][1]
        for (db0, v0), (db1, v1) in zip(points, points[1:]):
            if db0 <= gain_db <= db1:
                if db1 == db0:
                    return v0
                return v0 + (v1 - v0) * (gain_db - db0) / (db1 - db0)
        return points[-1][1]

    def apply(self, clip: object, gain_db: float) -> None:
        if not self.points:
            self.calibrate(clip)
        clip.gain = self.normalised(gain_db)  # type: ignore[attr-defined]
