"""Long events in bounded memory: beds and other continuing sounds rendered as segments.

Rendering a 400 s rain bed in one piece holds a dozen full-length float64 temporaries (~0.5 GB
for one minute at 48 kHz stereo). Here a long event is written segment by segment into one
float32 output: each segment is rendered on its own (its own random stream, derived from the
request's), resampled, and joined to the previous one with an equal-power crossfade. Segment
length follows a sample budget, so the recipe's working set stays near ``SEGMENT_SAMPLES``
samples whatever the event length; the output array is the only thing that grows.

A pool of distinct segments covering about ``POOL_S`` seconds is rendered once and then
replayed in a shuffled order with no segment twice in a row: the CPU cost stays that of one
minute of audio, and no fixed one-minute loop is heard. Pads (and the neutral swell) keep
one chord, so their pool is a single segment rendered without its swell; the swell is applied
once over the whole event.

One-shots never repeat: a long event of a one-shot family renders its first ``POOL_S`` seconds
(the sound and its tail) followed by silence.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from engine.malloc import mapped_zeros

# An event longer than this takes the segmented path.
LONG_EVENT_S = 60.0
# Recipe working set per segment, in samples (frames x channels at the working rate): about
# 75 MB of temporaries for the costliest recipe.
SEGMENT_SAMPLES = 1_000_000
MIN_SEGMENT_S = 8.0
CROSSFADE_S = 1.0
# Distinct material rendered per long event (then reused in a shuffled order).
POOL_S = 60.0
EDGE_FADE_S = 0.02
# Families whose recipe swells in and out over the event: rendered steady, swelled once.
SWELLING = {"pad": (4.0, 3.0), "neutral": (5.0, 5.0)}

# render(segment_index, n_frames_out, steady) -> raw (channels, n_frames_out) at the output rate
SegmentRenderer = Callable[[int, int, bool], np.ndarray]


def segment_frames(*, channels: int, work_rate: int, sample_rate: int) -> int:
    """Output frames per segment for a recipe of ``channels`` at ``work_rate`` Hz."""
    segment_s = max(SEGMENT_SAMPLES / (channels * work_rate), MIN_SEGMENT_S)
    return int(min(segment_s, POOL_S) * sample_rate)


def render_continuing(render: SegmentRenderer, *, family: str, frames: int, channels: int,
                      work_rate: int, sample_rate: int, order_rng: np.random.Generator
                      ) -> np.ndarray:
    """Raw float32 (channels, frames) of a continuing sound, built from pooled segments."""
    seg_frames = segment_frames(channels=channels, work_rate=work_rate, sample_rate=sample_rate)
    fade = int(CROSSFADE_S * sample_rate)
    hop = seg_frames - fade
    steady = family in SWELLING
    pool_size = 1 if steady else max(2, math.ceil(POOL_S / (seg_frames / sample_rate)))
    pool: list[np.ndarray] = []
    out = mapped_zeros((channels, frames))
    ramp = np.linspace(0.0, 0.5 * math.pi, fade, dtype=np.float32)
    fade_in, fade_out = np.sin(ramp), np.cos(ramp)  # equal power: uncorrelated sum keeps level
    previous = -1
    for index, start in enumerate(range(0, frames, hop)):
        if index < pool_size:
            pool.append(np.asarray(render(index, seg_frames, steady), dtype=np.float32))
            chosen = index
        elif pool_size == 1:  # a pad keeps its one chord: the same segment again
            chosen = 0
        else:  # any pooled segment but the one just played
            chosen = int(order_rng.integers(pool_size - 1))
            chosen += chosen >= previous
        previous = chosen
        segment = pool[chosen]
        stop = min(start + seg_frames, frames)
        if index == 0:
            out[:, :stop] = segment[:, : stop - start]
            continue
        overlap = min(fade, stop - start)
        out[:, start:start + overlap] *= fade_out[:overlap]
        out[:, start:start + overlap] += segment[:, :overlap] * fade_in[:overlap]
        out[:, start + overlap:stop] = segment[:, overlap: stop - start]
        if stop == frames:
            break
    if steady:
        _swell_ends(out, sample_rate, *SWELLING[family])
    _fade_ends(out, sample_rate)
    return out


def _swell_ends(audio: np.ndarray, sample_rate: int, attack_s: float, release_s: float) -> None:
    """The recipe's slow sin^2 swell, applied in place to the two ends only (the middle is
    at full level, and a full-length envelope would double the memory)."""
    frames = audio.shape[-1]
    attack = min(int(attack_s * sample_rate), frames // 2)
    release = min(int(release_s * sample_rate), frames // 2)
    if attack > 1:
        audio[:, :attack] *= (np.sin(0.5 * math.pi * np.arange(attack) / attack) ** 2
                              ).astype(np.float32)
    if release > 1:
        audio[:, -release:] *= (np.sin(0.5 * math.pi * np.arange(release, 0, -1) / release) ** 2
                                ).astype(np.float32)


def render_head(render: SegmentRenderer, *, frames: int, sample_rate: int) -> np.ndarray:
    """Raw float32 (channels, frames): a one-shot's first POOL_S seconds, then silence."""
    head_frames = min(frames, int(POOL_S * sample_rate))
    head = np.asarray(render(0, head_frames, False), dtype=np.float32)
    out = mapped_zeros((head.shape[0], frames))
    out[:, :head_frames] = head
    _fade_ends(out[:, :head_frames], sample_rate)
    return out


def _fade_ends(audio: np.ndarray, sample_rate: int) -> None:
    """Short raised-cosine fades in place, so a cut segment never ends on a click."""
    count = min(int(EDGE_FADE_S * sample_rate), audio.shape[-1] // 2)
    if count > 1:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, count))).astype(np.float32)
        audio[..., :count] *= ramp
        audio[..., -count:] *= ramp[::-1]
