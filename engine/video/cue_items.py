"""What the video cue planner and the vision model share: cue options, cue items (events before
ids and overlap fixing) and the small rules both apply to them.

A module of its own so engine.video.cue (which asks engine.video.vision for a model's hits) and
engine.video.vision (which builds cue items) both import it, and neither imports the other's
private helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Sequence

from engine.plan import DEFAULT_LIMITS, PlanLimits
from engine.video.onsets import OnsetOptions, VisualOnset


@dataclass(frozen=True)
class CueOptions:
    hit_length_s: float = 0.4  # a hit's stem length (shortened when the next hit comes sooner)
    min_hit_length_s: float = 0.08
    cuts: Literal["skip", "mark"] = "skip"
    cut_length_s: float = 0.35
    beds: bool = True
    loudest_hit_lufs: float = -16.0  # the strongest onset of the cue
    quietest_hit_lufs: float = -28.0  # an onset at the detection threshold
    bed_lufs: float = -32.0
    cut_lufs: float = -24.0
    snap_window_s: float = 0.25  # LLM events further than this from any onset keep their time
    onsets: OnsetOptions = OnsetOptions()
    limits: PlanLimits = DEFAULT_LIMITS


@dataclass(frozen=True)
class CueItem:
    """A plan event before ids and overlap fixing: kind decides how it may be shortened."""

    kind: Literal["hit", "bed", "cut"]
    description: str
    start_s: float
    end_s: float
    target_lufs: float
    strength: float = 0.0


def hit_lufs(strength: float, strongest: float, options: CueOptions) -> float:
    # Loudness follows visual strength on a log scale: a hit half as strong is ~6 dB quieter.
    ratio = max(1e-3, strength / strongest) if strongest > 0 else 1.0
    lufs = options.loudest_hit_lufs + 20.0 * math.log10(ratio)
    return max(options.quietest_hit_lufs, min(options.loudest_hit_lufs, lufs))


def clip_item(item: CueItem, duration_s: float) -> CueItem | None:
    start_s, end_s = max(0.0, item.start_s), min(duration_s, item.end_s)
    if end_s - start_s < 0.02:
        return None
    return replace(item, start_s=start_s, end_s=end_s)


def snap_to_onsets(time_s: float, onsets: Sequence[VisualOnset], *, window_s: float) -> float:
    """The nearest onset time within window_s, else time_s unchanged."""
    nearest = min(onsets, key=lambda onset: abs(onset.time_s - time_s), default=None)
    if nearest is not None and abs(nearest.time_s - time_s) <= window_s:
        return nearest.time_s
    return time_s
