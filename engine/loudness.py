"""Integrated loudness (ITU-R BS.1770-4) in one vectorised pass over the signal.

The meter follows pyloudnorm's K-weighting and gating exactly (tests keep pyloudnorm as the
reference): the two K-weighting biquads are designed with the RBJ Audio EQ Cookbook formulas
at the signal's own rate (high shelf +4 dB at 1500 Hz, Q 1/sqrt(2); high pass at 38 Hz, Q 0.5),
blocks are 400 ms with 75 % overlap and their edges are placed as pyloudnorm places them, and
the -70 LUFS absolute and -10 LU relative gates are applied to the channel-weighted block
energies.

Why it is fast and small:
- The signal is filtered a chunk at a time (FILTER_CHUNK_FRAMES) with the filter state carried
  from chunk to chunk, so only one chunk is ever held in float64.
- Every 400 ms block is a run of whole "segments" cut at all block edges (each 100 ms step
  cuts at most a few of them); per-sample energies are summed into segments with one
  ``np.add.reduceat`` per chunk, and block energies are a handful of vector adds of segment
  sums. No Python loop runs over blocks.
- Subnormals: after a loud passage the recursive filter's state decays towards zero and would
  spend seconds in the subnormal range, which x86 computes 10-100x slower. State values under
  FLUSH_BELOW are set to zero between chunks; a chunk is short enough that a value just above
  FLUSH_BELOW cannot decay into subnormals within it: the slowest pole (the 38 Hz high pass)
  loses about 240/rate nepers a sample, so 1e-30 needs over 2.5 s to reach 1e-300, and a chunk
  is at most one second. (The shelf's faster poles pass through the subnormal range in a few
  hundred samples, which costs nothing measurable.) The energy this drops is below 1e-60 per
  sample, nothing a meter can see, and the signal itself is never changed.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from engine.errors import InvalidInputError
from engine.limits import check_sample_rate

GATING_BLOCK_S = 0.4
BLOCK_OVERLAP = 0.75
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
# BS.1770-4 channel weights in order L, R, C, Ls, Rs (no LFE); the standard gives none beyond.
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
FILTER_CHUNK_FRAMES = 32768  # at most; never more than one second (see _chunk_frames)
FLUSH_BELOW = 1e-30
_LUFS_OFFSET = -0.691


@lru_cache(maxsize=32)
def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """Second-order sections (high shelf, then high pass) of the K-weighting at ``sample_rate``."""
    sections = []
    # Stage 1: RBJ high shelf, +4 dB above ~1.5 kHz (the head's acoustic effect).
    gain_a = 10.0 ** (4.0 / 40.0)
    w0 = 2.0 * np.pi * (1500.0 / sample_rate)
    alpha = np.sin(w0) / (2.0 * (1.0 / np.sqrt(2.0)))
    cos_w0, root = np.cos(w0), 2.0 * np.sqrt(gain_a) * alpha
    b = [
        gain_a * ((gain_a + 1) + (gain_a - 1) * cos_w0 + root),
        -2 * gain_a * ((gain_a - 1) + (gain_a + 1) * cos_w0),
        gain_a * ((gain_a + 1) + (gain_a - 1) * cos_w0 - root),
    ]
    a = [
        (gain_a + 1) - (gain_a - 1) * cos_w0 + root,
        2 * ((gain_a - 1) - (gain_a + 1) * cos_w0),
        (gain_a + 1) - (gain_a - 1) * cos_w0 - root,
    ]
    sections.append([*(np.array(b) / a[0]), *(np.array(a) / a[0])])
    # Stage 2: RBJ high pass at 38 Hz, Q 0.5 (the "RLB" curve).
    w0 = 2.0 * np.pi * (38.0 / sample_rate)
    alpha = np.sin(w0) / (2.0 * 0.5)
    cos_w0 = np.cos(w0)
    b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
    a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    sections.append([*(np.array(b) / a[0]), *(np.array(a) / a[0])])
    return np.array(sections, dtype=np.float64)


def _block_edges(frames: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) frame of every gating block, placed exactly as pyloudnorm places them."""
    step = 1.0 - BLOCK_OVERLAP
    length_s = frames / sample_rate
    count = int(np.round((length_s - GATING_BLOCK_S) / (GATING_BLOCK_S * step))) + 1
    index = np.arange(0, count)
    # Same float expressions as the reference, then truncation: the edges match frame for frame.
    lower = (GATING_BLOCK_S * (index * step) * sample_rate).astype(np.int64)
    upper = (GATING_BLOCK_S * (index * step + 1) * sample_rate).astype(np.int64)
    return np.minimum(lower, frames), np.minimum(upper, frames)


def _segment_energies(array: np.ndarray, sample_rate: int, cuts: np.ndarray) -> np.ndarray:
    """Channel-weighted K-weighted energy summed between consecutive ``cuts`` (frame indices)."""
    from scipy.signal import sosfilt  # heavy import: only when something is measured

    channels, frames = array.shape
    weights = np.asarray(CHANNEL_WEIGHTS[:channels], dtype=np.float64)[:, np.newaxis]
    sos = k_weighting_sos(int(sample_rate))
    state = np.zeros((sos.shape[0], channels, 2), dtype=np.float64)
    sums = np.zeros(len(cuts) - 1, dtype=np.float64)
    step = max(1, min(FILTER_CHUNK_FRAMES, int(sample_rate)))
    unit_weights = bool(np.all(weights == 1.0))
    for start in range(0, frames, step):
        stop = min(frames, start + step)
        chunk = array[:, start:stop].astype(np.float64)
        filtered, state = sosfilt(sos, chunk, axis=1, zi=state)
        state[np.abs(state) < FLUSH_BELOW] = 0.0
        np.square(filtered, out=filtered)
        if not unit_weights:
            filtered *= weights
        energy = filtered[0] if channels == 1 else filtered.sum(axis=0)
        # Segments overlapping this chunk: those starting before `stop` and ending after `start`.
        first = int(np.searchsorted(cuts, start, side="right")) - 1
        last = int(np.searchsorted(cuts, stop, side="left"))
        local = np.maximum(cuts[first:last], start) - start
        sums[first:last] += np.add.reduceat(energy, local)
    return sums


def block_energies(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Channel-weighted mean-square K-weighted energy of every 400 ms gating block."""
    frames = audio.shape[1]
    lower, upper = _block_edges(frames, sample_rate)
    cuts = np.unique(np.concatenate(([0, frames], lower, upper)))
    sums = _segment_energies(audio, sample_rate, cuts)
    first = np.searchsorted(cuts, lower)
    count = np.searchsorted(cuts, upper) - first
    totals = np.zeros(len(lower), dtype=np.float64)
    # Each block spans a few segments (its own 100 ms steps, split at its neighbours' edges).
    for offset in range(int(count.max(initial=0))):
        take = count > offset
        totals[take] += sums[first[take] + offset]
    return totals * (1.0 / (GATING_BLOCK_S * sample_rate))


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Gated integrated loudness of ``audio`` (channels, frames) in LUFS; -inf when all gated.

    The signal must be at least one gating block long (``measure_lufs`` in engine.render
    handles shorter clips) and have at most five channels (L, R, C, Ls, Rs).
    """
    array = np.asarray(audio)
    if array.ndim != 2 or not 1 <= array.shape[0] <= len(CHANNEL_WEIGHTS):
        raise InvalidInputError(
            f"audio: expected (channels, frames) with 1 to {len(CHANNEL_WEIGHTS)} channels, "
            f"got shape {array.shape}",
            field="audio",
            value=array.shape,
        )
    check_sample_rate(sample_rate)  # the engine's one rule (engine.limits)
    if array.shape[1] < GATING_BLOCK_S * sample_rate:
        raise InvalidInputError(
            f"audio: {array.shape[1]} frames is shorter than one {GATING_BLOCK_S} s gating block",
            field="audio",
            value=array.shape,
        )
    energies = block_energies(array, int(sample_rate))
    with np.errstate(divide="ignore"):
        block_lufs = _LUFS_OFFSET + 10.0 * np.log10(energies)
    loud = block_lufs >= ABSOLUTE_GATE_LUFS
    if not np.any(loud):
        return -math.inf
    relative = _LUFS_OFFSET + 10.0 * math.log10(float(np.mean(energies[loud]))) + RELATIVE_GATE_LU
    gated = (block_lufs > relative) & (block_lufs > ABSOLUTE_GATE_LUFS)
    if not np.any(gated):
        return -math.inf
    return _LUFS_OFFSET + 10.0 * math.log10(float(np.mean(energies[gated])))
