"""Clip gain in dB -> Live's normalised Clip.gain (0..1).

Live does not document the curve behind Clip.gain, but every clip tells us what a value means
through Clip.gain_display_string ("-6.0 dB"). So each set is read back, and every reading is
kept as a point of the curve: a clip's gain is found by a bracketed search (interpolation
between the nearest readings, halving when that would leave the bracket), which costs a handful
of sets on the first clip of a Live session and one or two afterwards, when the readings already
around the wanted figure predict it. The figure the user reads in Live is the one asked for
(within the display's 0.1 dB).
"""

from __future__ import annotations

import math
import re

_DB = re.compile(r"(-?inf|-?\d+(?:\.\d+)?)\s*dB", re.IGNORECASE)
MAX_SETS = 12
TOLERANCE_DB = 0.05  # the display rounds to 0.1 dB
# The first guess when nothing has been read yet: a straight line over Live's range.
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
        self.points: list[tuple[float, float]] = []  # (dB, normalised), both rising

    def add(self, gain_db: float, value: float) -> None:
        if math.isfinite(gain_db) and (gain_db, value) not in self.points:
            self.points.append((gain_db, value))
            self.points.sort()

    def normalised(self, gain_db: float) -> float:
        """The value the readings so far predict for `gain_db` (0..1)."""
        points = self.points
        if not points:
            span = FALLBACK_MAX_DB - FALLBACK_MIN_DB
            return min(1.0, max(0.0, (gain_db - FALLBACK_MIN_DB) / span))
        if len(points) == 1:
            db0, v0 = points[0]
            return min(1.0, max(0.0, v0 + (gain_db - db0) / (FALLBACK_MAX_DB - FALLBACK_MIN_DB)))
        below = [p for p in points if p[0] <= gain_db]
        above = [p for p in points if p[0] >= gain_db]
        if below and above:
            (db0, v0), (db1, v1) = below[-1], above[0]
        elif above:
            (db0, v0), (db1, v1) = points[0], points[1]
        else:
            (db0, v0), (db1, v1) = points[-2], points[-1]
        if db1 == db0:
            return min(1.0, max(0.0, v0))
        return min(1.0, max(0.0, v0 + (v1 - v0) * (gain_db - db0) / (db1 - db0)))

    def apply(self, clip: object, gain_db: float) -> int:
        """Set `clip` to `gain_db`; returns how many sets it took."""
        low, high = 0.0, 1.0  # values known to read below / above the wanted figure
        value = self.normalised(gain_db)
        for count in range(1, MAX_SETS + 1):
            clip.gain = value  # type: ignore[attr-defined]
            shown = parse_display_db(getattr(clip, "gain_display_string", None))
            if shown is None:
                return count  # cannot read it back: the first guess is all we can do
            self.add(shown, value)
            if abs(shown - gain_db) <= TOLERANCE_DB:
                return count
            if shown < gain_db:
                low = max(low, value)
            else:
                high = min(high, value)
            guess = self.normalised(gain_db)
            value = guess if low < guess < high else (low + high) / 2
            if high - low < 1e-9:
                return count
        return MAX_SETS
