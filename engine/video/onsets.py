"""Visual onsets: the instants a Foley hit belongs to, found from frame differences.

Motion energy m[i] is the mean absolute grey difference between frame i-1 and frame i, less
the clip's grain level (see motion_energy). A hit shows up as a sudden change of motion:
something appears, flashes or switches off (m jumps up, onset at the frame that changed) or
something moving stops dead (m falls, onset at the last moving frame, the moment of contact).
The novelty curve is the larger of those two; its peaks above an adaptive threshold (local
median + k * MAD, never below an absolute floor) become onsets.

Hard cuts are found separately by grey-histogram distance: a change that persists for a few
frames is a cut, one that reverts (a flash) is not. Cut frames are removed from the motion
curve so a cut never reads as a hit. Long stretches of steady motion become spans (beds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from engine.video.decode import VideoFrames

HIST_BINS = 32
MAX_NOISE = 0.04  # grey levels 0..1: ~10 of 255, heavy grain


@dataclass(frozen=True)
class VisualOnset:
    time_s: float
    strength: float  # novelty above the threshold, in mean-abs-difference units (cuts: 0..1)
    kind: Literal["hit", "cut"] = "hit"


@dataclass(frozen=True)
class MotionSpan:
    start_s: float
    end_s: float
    energy: float  # mean motion energy inside the span


@dataclass(frozen=True)
class OnsetOptions:
    min_separation_s: float = 0.1  # two onsets closer than this are one (a flash on + off)
    threshold_window_s: float = 1.0  # the adaptive threshold's neighbourhood
    mad_k: float = 4.0
    floor: float = 0.005  # smallest novelty that counts, in mean |grey diff| (0..1)
    cut_threshold: float = 0.35  # half L1 histogram distance (0..1)
    cut_persist_s: float = 0.2  # a cut's new histogram must still hold this much later
    flash_max_s: float = 0.15  # a change that reverts within this (lightning, muzzle flash) is no cut
    span_floor: float = 0.006  # smoothed motion energy that counts as "moving"
    min_span_s: float = 0.5


@dataclass(frozen=True)
class OnsetAnalysis:
    onsets: tuple[VisualOnset, ...]
    spans: tuple[MotionSpan, ...]
    times_s: np.ndarray = field(repr=False)
    motion: np.ndarray = field(repr=False)
    novelty: np.ndarray = field(repr=False)

    @property
    def hits(self) -> list[VisualOnset]:
        return [onset for onset in self.onsets if onset.kind == "hit"]

    @property
    def cuts(self) -> list[VisualOnset]:
        return [onset for onset in self.onsets if onset.kind == "cut"]


def motion_energy(frames: np.ndarray, *, noise_k: float = 3.0) -> np.ndarray:
    """m[i] = mean over pixels of |frame i - frame i-1| above the clip's noise level.

    The noise level is the lower quartile over frames of each difference image's median pixel:
    where most of the picture holds still that is sensor/compression noise, and removing
    noise_k times it keeps grain from reading as motion. It is capped at MAX_NOISE so a clip
    that changes everywhere all the time (a strobe) is not mistaken for noise. m[0] copies
    m[1] (no context before the range).
    """
    if len(frames) < 2:
        return np.zeros(len(frames), np.float32)
    diff = np.abs(np.diff(frames, axis=0)).reshape(len(frames) - 1, -1)
    noise = min(MAX_NOISE, float(np.percentile(np.median(diff, axis=1), 25)))
    energy = np.maximum(0.0, diff - noise_k * noise).mean(axis=1)
    return np.concatenate([energy[:1], energy]).astype(np.float32)


def grey_histograms(frames: np.ndarray, *, bins: int = HIST_BINS) -> np.ndarray:
    index = np.minimum((frames.reshape(len(frames), -1) * bins).astype(np.int64), bins - 1)
    counts = np.stack([np.bincount(row, minlength=bins) for row in index]).astype(np.float32)
    return counts / counts.sum(axis=1, keepdims=True)


def _hist_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(a - b).sum(axis=-1)


def detect_cuts(
    frames: np.ndarray, times_s: np.ndarray, *, options: OnsetOptions = OnsetOptions()
) -> list[int]:
    """Frame indices that start a new shot.

    Frame i starts a shot when it differs from frame i-1 and the picture has settled into
    something new: the mean histogram of cut_persist_s starting flash_max_s after i differs
    from that of cut_persist_s ending flash_max_s before i. Skipping flash_max_s either side
    means a flash of a few frames (lightning, a muzzle flash) sits outside both windows, so
    neither its start nor its end reads as a cut.
    """
    if len(frames) < 2:
        return []
    hists = grey_histograms(frames)
    step = np.array([0.0, *_hist_distance(hists[1:], hists[:-1])])
    skip_s, persist_s = options.flash_max_s, options.cut_persist_s
    cuts = []
    for index in np.flatnonzero(step >= options.cut_threshold):
        time_s = times_s[index]
        mean_before = _settled_mean(hists, times_s, time_s - skip_s - persist_s, time_s - skip_s,
                                    fallback=slice(index - 1, index))
        mean_after = _settled_mean(hists, times_s, time_s + skip_s, time_s + skip_s + persist_s,
                                   fallback=slice(index, index + 1))
        if _hist_distance(mean_after, mean_before) >= options.cut_threshold:
            cuts.append(int(index))
    return cuts


def _settled_mean(
    hists: np.ndarray, times_s: np.ndarray, from_s: float, to_s: float, *, fallback: slice
) -> np.ndarray:
    """Mean histogram of the frames in [from_s, to_s); the fallback frames where there are none
    (a cut right at the start or end of the range)."""
    lo, hi = np.searchsorted(times_s, [from_s, to_s])
    return hists[lo:hi].mean(axis=0) if hi > lo else hists[fallback].mean(axis=0)


def _without_cuts(motion: np.ndarray, cuts: list[int]) -> np.ndarray:
    cleaned = motion.copy()
    for index in cuts:
        cleaned[index] = cleaned[index - 1] if index > 0 else 0.0
    return cleaned


def novelty_curve(motion: np.ndarray) -> np.ndarray:
    """max(rise at i, fall right after i): appearances and dead stops both peak at their frame."""
    if len(motion) < 2:
        return np.zeros_like(motion)
    rise = np.concatenate([[0.0], np.maximum(0.0, np.diff(motion))])
    fall = np.concatenate([np.maximum(0.0, -np.diff(motion)), [0.0]])
    return np.maximum(rise, fall).astype(np.float32)


def adaptive_threshold(
    values: np.ndarray, times_s: np.ndarray, *, options: OnsetOptions = OnsetOptions()
) -> np.ndarray:
    """Local median + k * MAD over threshold_window_s, never below options.floor."""
    half = options.threshold_window_s / 2
    lo = np.searchsorted(times_s, times_s - half, side="left")
    hi = np.searchsorted(times_s, times_s + half, side="right")
    out = np.empty_like(values)
    for index, (start, stop) in enumerate(zip(lo, hi)):
        window = values[start:stop]
        median = float(np.median(window))
        mad = float(np.median(np.abs(window - median)))
        out[index] = max(options.floor, median + options.mad_k * mad)
    return out


def pick_peaks(
    novelty: np.ndarray,
    threshold: np.ndarray,
    times_s: np.ndarray,
    *,
    min_separation_s: float,
) -> list[tuple[float, float]]:
    """(time_s, strength) of local maxima above threshold, strongest first within a cluster.

    Within min_separation_s the strongest peak wins, but the cluster is dated by its earliest
    member of at least half that strength: a one-frame flash rises and falls in two frames and
    the hit belongs to the first.
    """
    above = novelty - threshold
    candidates = [
        index
        for index in range(len(novelty))
        if above[index] > 0
        and novelty[index] >= novelty[max(0, index - 1)]
        and novelty[index] >= novelty[min(len(novelty) - 1, index + 1)]
    ]
    candidates.sort(key=lambda index: (-novelty[index], times_s[index]))
    kept: list[list[float]] = []  # [time_s, strength, earliest_time_s]
    for index in candidates:
        time_s, strength = float(times_s[index]), float(above[index])
        near = [peak for peak in kept if abs(peak[0] - time_s) < min_separation_s]
        if not near:
            kept.append([time_s, strength, time_s])
            continue
        owner = near[0]
        if time_s < owner[2] and strength >= 0.5 * owner[1]:
            owner[2] = time_s
    return sorted((earliest, strength) for _time, strength, earliest in kept)


def motion_spans(
    motion: np.ndarray, times_s: np.ndarray, *, options: OnsetOptions = OnsetOptions()
) -> list[MotionSpan]:
    """Stretches at least min_span_s long whose smoothed motion stays above span_floor."""
    if len(motion) < 3:
        return []
    step_s = float(np.median(np.diff(times_s)))
    width = max(1, int(round(0.2 / step_s)))
    smooth = np.convolve(motion, np.ones(width) / width, mode="same")
    moving = smooth > options.span_floor
    spans: list[MotionSpan] = []
    index = 0
    while index < len(moving):
        if not moving[index]:
            index += 1
            continue
        stop = index
        while stop + 1 < len(moving) and moving[stop + 1]:
            stop += 1
        end_s = float(times_s[stop + 1]) if stop + 1 < len(times_s) else float(times_s[stop]) + step_s
        if end_s - float(times_s[index]) >= options.min_span_s:
            spans.append(MotionSpan(float(times_s[index]), end_s, float(motion[index : stop + 1].mean())))
        index = stop + 1
    return spans


def detect_onsets(video: VideoFrames, *, options: OnsetOptions = OnsetOptions()) -> OnsetAnalysis:
    """Hits, cuts and motion spans of decoded frames (times are the frames' own times)."""
    frames, times_s = video.frames, video.times_s
    cuts = detect_cuts(frames, times_s, options=options)
    motion = _without_cuts(motion_energy(frames), cuts)
    novelty = novelty_curve(motion)
    for index in cuts:
        # The frames either side of a cut compare two different shots; their novelty is noise.
        novelty[max(0, index - 1) : index + 2] = 0.0
    threshold = adaptive_threshold(novelty, times_s, options=options)
    peaks = pick_peaks(novelty, threshold, times_s, min_separation_s=options.min_separation_s)
    hist = grey_histograms(frames) if cuts else None
    onsets = [VisualOnset(time_s, strength, "hit") for time_s, strength in peaks]
    for index in cuts:
        strength = float(_hist_distance(hist[index], hist[index - 1]))
        onsets.append(VisualOnset(float(times_s[index]), strength, "cut"))
    onsets.sort(key=lambda onset: onset.time_s)
    spans = motion_spans(motion, times_s, options=options)
    return OnsetAnalysis(tuple(onsets), tuple(spans), times_s, motion, novelty)
