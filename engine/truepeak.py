"""True peak (BS.1770-4 Annex 2 style) against ONE reference interpolator, computed cheaply.

The reference: the signal interpolated 8x with REFERENCE_FILTER (a Kaiser-windowed sinc,
24 taps per phase, cut at the original Nyquist) and the largest magnitude over the original
samples and the seven interpolated phases between them. Tests and the meter both use
``polyphase_matrix()``; ``reference_envelope`` is the plain, exhaustive computation of it.

The meter gets the same answer for far less work:
- Scan at 4x: phases 2, 4 and 6 of the same filter (plus the samples themselves), as banded
  matrix products: rows of 24 consecutive samples times two fixed matrices that hold each
  phase's taps at every offset (see _phase_max). The rows are views of the signal, so no
  sliding windows are copied (24 floats per frame, which cost more than the arithmetic).
- Refine at 8x near the top: the odd phases are computed only for frames whose scan value is
  within REFINE_MARGIN_DB of the loudest so far (or of the limiter's ceiling). Between two 4x
  values an 8x value cannot be more than ~0.7 dB higher for any signal below Nyquist (the
  peak of a band-limited signal falls off at most like a cosine at the highest frequency over
  1/8 sample), so the margin keeps every frame that could hold the true maximum.
- Products go at most _GEMM_ROWS rows at a time: numpy's BLAS wakes its thread pool above
  about 340 rows of these here and then spends many times the CPU for the same result.
- Blocks (BLOCK_ROWS samples over all channels) are visited loudest first and the pass stops
  once no remaining block can beat the peak found so far (nor cross the ceiling): sparse
  material is mostly skipped. Blocks are computed a batch at a time (one, then 2, 4, ... up
  to MAX_BATCH_BLOCKS), so dense material costs a few large calls, not many small ones.
- A scan hands back what it learnt per block (``BlockPeaks``: the maximum, or a bound where
  it stopped early). The limiter's next pass over the same audio after a gain, or after it
  turned a few spans down, starts from that and visits only the blocks that could matter.
- Samples under about 1e-37 are read as zero (see _segments): float32 subnormals in fade tails
  make the product 10-100x slower on x86 and cannot change a peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, NamedTuple

import numpy as np

OVERSAMPLING = 8
TAPS_PER_PHASE = 24
KAISER_BETA = 5.0
SCAN_PHASES = (2, 4, 6)  # with the samples themselves (phase 0): the 4x scan
REFINE_PHASES = (1, 3, 5, 7)
REFINE_MARGIN_DB = 1.0
BLOCK_ROWS = 4096
MAX_BATCH_BLOCKS = 16  # blocks computed together at most (see scan)
_ROW = TAPS_PER_PHASE  # frames per row of the banded product (see _phase_max)
_GEMM_ROWS = 256  # rows per product: from ~340 up OpenBLAS wakes its threads here
_FLUSH_OFFSET = np.float32(2.0**-100)  # ~7.9e-31: see _windows
# Window of input samples x[n - _BEFORE] .. x[n + _AFTER] that the phases after frame n use.
_BEFORE = TAPS_PER_PHASE // 2 - 1
_AFTER = TAPS_PER_PHASE // 2
_REFINE_FACTOR = 10.0 ** (-REFINE_MARGIN_DB / 20.0)


@lru_cache(maxsize=1)
def reference_filter() -> np.ndarray:
    """The 8x interpolation filter (float64, gain 8 so each phase passes DC at unity)."""
    from scipy.signal import firwin  # heavy import: only once something is measured

    taps = OVERSAMPLING * TAPS_PER_PHASE + 1
    return firwin(taps, 1.0 / OVERSAMPLING, window=("kaiser", KAISER_BETA)) * OVERSAMPLING


@lru_cache(maxsize=1)
def polyphase_matrix() -> np.ndarray:
    """(TAPS_PER_PHASE, 8) float32: column p gives the value p/8 of a frame after frame n from
    the window x[n - 11] .. x[n + 12]. Column 0 is unused (the sample itself is exact)."""
    h = reference_filter()
    delay = (len(h) - 1) // 2
    matrix = np.zeros((TAPS_PER_PHASE, OVERSAMPLING), dtype=np.float64)
    for phase in range(1, OVERSAMPLING):
        for row in range(TAPS_PER_PHASE):
            offset = row - _BEFORE  # the window row holds x[n + offset]
            index = phase + delay - OVERSAMPLING * offset
            if 0 <= index < len(h):
                matrix[row, phase] = h[index]
    return matrix.astype(np.float32)


@lru_cache(maxsize=1)
def interpolation_bound() -> float:
    """No interpolated value exceeds the sample peak by more than this factor (the largest L1
    norm of one phase, about +7 dB): a signal that far under a ceiling needs no scan."""
    return max(1.0, float(np.abs(polyphase_matrix()).sum(axis=0).max()))


def block_frames(channels: int) -> int:
    return max(256, BLOCK_ROWS // max(1, channels))


def _windows(array: np.ndarray, start: int, stop: int) -> np.ndarray:
    """(TAPS_PER_PHASE, channels * (stop - start)): column c*count + i is the window of frame
    start + i of channel c; zeros beyond the ends. Laid out tap-major so that it is built from
    24 contiguous slice copies and the product's rows are whole phases (fast to reduce)."""
    channels, frames = array.shape
    count = stop - start
    span = np.zeros((channels, count + TAPS_PER_PHASE - 1), dtype=np.float32)
    low, high = max(0, start - _BEFORE), min(frames, stop + _AFTER)
    span[:, low - (start - _BEFORE) : high - (start - _BEFORE)] = array[:, low:high]
    # Adding and taking away 2**-100 rounds every |x| under ~2**-124 to zero or to a normal
    # number (multiples of 2**-123) and leaves every |x| over ~2**-75 exactly as it was: no
    # subnormal reaches the product, for two cheap in-place passes instead of a masked write.
    span += _FLUSH_OFFSET
    span -= _FLUSH_OFFSET
    windows = np.empty((TAPS_PER_PHASE, channels, count), dtype=np.float32)
    for tap in range(TAPS_PER_PHASE):
        windows[tap] = span[:, tap : tap + count]
    return windows.reshape(TAPS_PER_PHASE, channels * count)


def _frame_max(values: np.ndarray, channels: int, frames: int) -> np.ndarray:
    """Largest magnitude per frame over phases and channels of a (phases, channels*frames)
    product."""
    np.abs(values, out=values)
    per_column = values[0]
    for row in values[1:]:
        np.maximum(per_column, row, out=per_column)
    per_frame = per_column[:frames]
    for channel in range(1, channels):
        np.maximum(per_frame, per_column[channel * frames : (channel + 1) * frames], out=per_frame)
    return per_frame


def reference_envelope(audio: np.ndarray) -> np.ndarray:
    """Per frame, the reference true-peak magnitude over channels (all 8x phases, no shortcut)."""
    array = np.asarray(audio, dtype=np.float32)
    channels, frames = array.shape
    envelope = np.abs(array).max(axis=0) if frames else np.zeros(0, np.float32)
    matrix = np.ascontiguousarray(polyphase_matrix()[:, 1:].T)
    step = block_frames(channels)
    for start in range(0, frames, step):
        stop = min(frames, start + step)
        values = matrix @ _windows(array, start, stop)
        np.maximum(envelope[start:stop], _frame_max(values, channels, stop - start),
                   out=envelope[start:stop])
    return envelope


def _block_reach(array: np.ndarray, first: int, end: int, step: int) -> np.ndarray:
    """Per block of ``step`` frames from ``first``: an upper bound of |x| over the samples its
    interpolation reads (the block and its two neighbours' maxima), computed a slab at a time
    so a long mix needs no frame-length temporary."""
    maxima: list[np.ndarray] = []
    slab = step * 64
    for low in range(first, end, slab):
        high = min(end, low + slab)
        magnitudes = np.abs(array[:, low:high]).max(axis=0)
        maxima.append(np.maximum.reduceat(magnitudes, np.arange(0, high - low, step)))
    if not maxima:
        return np.zeros(0, dtype=np.float64)
    padded = np.concatenate(([0.0], *maxima, [0.0])).astype(np.float64)
    if first > 0:
        padded[0] = float(np.abs(array[:, max(0, first - _BEFORE) : first]).max(initial=0.0))
    if end < array.shape[1]:
        padded[-1] = float(np.abs(array[:, end : end + _AFTER]).max(initial=0.0))
    return np.maximum(np.maximum(padded[:-2], padded[1:-1]), padded[2:])


# Relative allowance on a block maximum carried through a float32 gain change: the product
# rounds each sample by at most 2**-24, which moves an interpolated value by far less.
CARRY_SLACK = 1e-5


@dataclass(frozen=True)
class BlockPeaks:
    """What a whole-signal scan learnt per block of ``step`` frames: the block's reference
    maximum where ``known``, else an upper bound of it. A later scan of the same signal
    (or of it times a gain, see ``scaled``; or with some blocks changed, see ``forget``)
    starts from this and visits only blocks whose bound could matter."""

    step: int
    values: np.ndarray  # float64 per block
    known: np.ndarray  # bool per block

    def scaled(self, factor: float) -> BlockPeaks:
        """The blocks of this signal multiplied by ``factor`` (in float32)."""
        values = self.values * factor
        values[~self.known] *= 1.0 + CARRY_SLACK  # bounds stay bounds after rounding
        return BlockPeaks(self.step, values, self.known.copy())

    def forget(self, spans: Iterable[tuple[int, int]]) -> BlockPeaks:
        """These blocks, with every block touching a frame span marked as changed (visited
        again by the next scan)."""
        values, known = self.values.copy(), self.known.copy()
        for low, high in spans:
            if high > low:
                values[low // self.step : (high - 1) // self.step + 1] = math.inf
                known[low // self.step : (high - 1) // self.step + 1] = False
        return BlockPeaks(self.step, values, known)


class PeakScan(NamedTuple):
    """What one pass over a signal found."""

    peak: float  # the reference true peak, linear (0.0 for silence)
    over_frames: np.ndarray  # frames whose reference peak exceeds the ceiling (int64, sorted)
    over_peaks: np.ndarray  # ... and those peaks (float32)
    blocks: BlockPeaks | None = None  # per block, for a scan of the whole signal


def _start_blocks(array: np.ndarray, first: int, end: int, step: int,
                  blocks: BlockPeaks | None) -> tuple[np.ndarray, np.ndarray]:
    """(values, known) per block: carried over from ``blocks``, or sample-peak bounds."""
    count = len(range(first, end, step))
    if blocks is None:
        # No interpolated value exceeds the largest sample within the filter's reach times
        # interpolation_bound().
        reach = np.asarray(_block_reach(array, first, end, step), dtype=np.float64)
        return reach * interpolation_bound(), np.zeros(count, dtype=bool)
    if first != 0 or end != array.shape[1] or blocks.step != step or blocks.values.size != count:
        raise ValueError("blocks: not from a whole-signal scan of audio of this shape")
    return blocks.values.copy(), blocks.known.copy()


def scan(
    audio: np.ndarray,
    *,
    ceiling: float | None = None,
    start: int = 0,
    stop: int | None = None,
    blocks: BlockPeaks | None = None,
) -> PeakScan:
    """True peak of (channels, frames) float32 audio, plus the frames above ``ceiling`` (linear).

    Equal to ``reference_envelope(audio).max()`` (and its frames above the ceiling) while
    computing 8x only where the 4x scan says a frame could matter. ``start``/``stop`` limit
    the frames looked at (their neighbours still count as context). ``blocks`` is what an
    earlier whole-signal scan learnt of this signal (``PeakScan.blocks``, maybe scaled or with
    changed blocks forgotten): blocks it knows are not computed again unless they may hold
    frames over the ceiling.
    """
    array = np.asarray(audio, dtype=np.float32)
    channels, frames = array.shape
    first, end = max(0, start), frames if stop is None else min(frames, stop)
    step = block_frames(channels)
    values, known = _start_blocks(array, first, end, step, blocks)
    # Known maxima carried through a gain are compared with a little slack.
    keys = np.where(known, values * (1.0 + CARRY_SLACK), values)
    # Loudest blocks first: once the peak found so far (and the ceiling) is above the next
    # block's bound, no later block can matter.
    peak = float(values[known].max(initial=0.0))
    over_frames: list[np.ndarray] = []
    over_peaks: list[np.ndarray] = []
    order = np.argsort(-keys, kind="stable").tolist()
    position, batch = 0, 1
    while position < len(order):
        limit = peak if ceiling is None else min(peak, ceiling)
        # The next blocks in order, a batch at a time: one block first (on sparse material it
        # often settles the rest), then more per batch, so dense material costs a few calls
        # of large products instead of many small ones. A batch shares the limit of its start
        # (a later block in it might have been skipped one at a time: only extra work).
        chosen: list[int] = []
        while position < len(order) and len(chosen) < batch:
            index = order[position]
            key = float(keys[index])
            if key == 0.0 or key <= limit:
                position = len(order)  # silence from here on, or nothing left that matters
                break
            position += 1
            if known[index] and (ceiling is None or key <= ceiling):
                continue  # its maximum is counted already and none of its frames is over
            chosen.append(index)
        if not chosen:
            break
        batch = min(2 * batch, MAX_BATCH_BLOCKS)
        starts = first + step * np.asarray(chosen, dtype=np.int64)
        envelopes, levels = _block_envelopes(array, starts, step, end, limit, ceiling)
        block_max = envelopes.max(axis=1).astype(np.float64)
        # Frames left unrefined are below their block's level: the block's maximum is exact
        # when it reaches that level, and the level bounds it otherwise.
        reached = block_max >= levels
        known[chosen] = reached
        values[chosen] = np.where(reached, block_max, levels)
        peak = max(peak, float(block_max.max()))
        if ceiling is not None:
            rows, over = np.nonzero(envelopes > ceiling)
            if over.size:
                over_frames.append(starts[rows] + over)
                over_peaks.append(envelopes[rows, over])
    whole = first == 0 and end == frames
    state = BlockPeaks(step, values, known) if whole else None
    if over_frames:
        frames_found, peaks_found = np.concatenate(over_frames), np.concatenate(over_peaks)
        order_found = np.argsort(frames_found, kind="stable")
        return PeakScan(peak, frames_found[order_found], peaks_found[order_found], state)
    return PeakScan(peak, np.zeros(0, np.int64), np.zeros(0, np.float32), state)


def _block_envelopes(array: np.ndarray, starts: np.ndarray, step: int, end: int, bound: float,
                     ceiling: float | None) -> tuple[np.ndarray, np.ndarray]:
    """For blocks of ``step`` frames at ``starts`` (none past ``end``): per frame, the
    reference value where it could reach ``bound`` (or the ceiling) and a lower estimate
    elsewhere, as (blocks, step) float32 with 0 past ``end``; and per block the level under
    which every frame left at its estimate lies (float64)."""
    channels = array.shape[0]
    rows = -(-step // _ROW)
    segments = _segments(array, starts, rows)  # (blocks, channels, (rows + 1) * _ROW)
    count = len(starts)
    valid = np.minimum(end - starts, step)
    # |x| of every frame and the next one: phase 7 of a frame lies between its phase 6 and
    # the next frame's sample, so both bound what refining could find.
    # (Frames past a block's end, in the last block or the next one's, are computed with the
    # rest and then set to 0; the sample at ``end`` itself is context, as at any edge.)
    samples = np.abs(segments[:, :, _BEFORE : _BEFORE + rows * _ROW + 1]).max(axis=1)
    past_end = np.arange(rows * _ROW)[np.newaxis, :] >= valid[:, np.newaxis]
    scanned = _phase_max(segments, rows, _scan_bands())  # (blocks, channels, rows, _ROW)
    envelopes = np.maximum(samples[:, :-1], scanned.max(axis=1).reshape(count, rows * _ROW))
    envelopes[past_end] = 0.0
    # Between two 4x values an 8x value is at most ~0.7 dB higher: frames whose neighbourhood
    # is more than REFINE_MARGIN_DB under ``level`` stay under it.
    levels = np.maximum(envelopes.max(axis=1).astype(np.float64), bound)
    if ceiling is not None:
        levels = np.minimum(levels, ceiling)
    hot = np.maximum(envelopes, samples[:, 1:]) >= (levels * _REFINE_FACTOR)[:, np.newaxis]
    hot &= ~past_end
    # Refined a row of _ROW frames at a time: every frame of a row holding a hot frame gets its
    # reference value (more exact values, never a different maximum).
    pairs = np.flatnonzero(hot.reshape(count, rows, _ROW).any(axis=2))
    if pairs.size:
        refined = _phase_max(segments, rows, _refine_bands(), pairs=pairs)
        by_row = envelopes.reshape(count * rows, _ROW)
        by_row[pairs] = np.maximum(by_row[pairs], refined.max(axis=1))
        envelopes[past_end] = 0.0
    if step != rows * _ROW:
        envelopes = envelopes[:, :step]
    return envelopes, levels


def _segments(array: np.ndarray, starts: np.ndarray, rows: int) -> np.ndarray:
    """(blocks, channels, (rows + 1) * _ROW) float32: per block, the samples from _BEFORE
    frames before its start on (zeros beyond the signal's ends); one row longer than the
    block's rows so that every row's product can read the next row."""
    channels, frames = array.shape
    length = (rows + 1) * _ROW
    segments = np.zeros((len(starts), channels, length), dtype=np.float32)
    for index, start in enumerate(starts.tolist()):
        origin = start - _BEFORE
        low, high = max(0, origin), min(frames, origin + length)
        segments[index, :, low - origin : high - origin] = array[:, low:high]
    # Adding and taking away 2**-100 rounds every |x| under ~2**-124 to zero or to a normal
    # number (multiples of 2**-123) and leaves every |x| over ~2**-75 exactly as it was: no
    # subnormal reaches the product, for two cheap in-place passes instead of a masked write.
    segments += _FLUSH_OFFSET
    segments -= _FLUSH_OFFSET
    return segments


def _phase_max(segments: np.ndarray, rows: int, bands: tuple[np.ndarray, np.ndarray],
               *, pairs: np.ndarray | None = None) -> np.ndarray:
    """Largest magnitude over the phases of ``bands`` per frame and channel: as
    (blocks, channels, rows, _ROW) for every row, or (len(pairs), channels, _ROW) for the
    rows ``pairs`` (block * rows + row) only.

    Each row of _ROW frames is one row of a banded product: the row's own _ROW samples times
    ``bands[0]`` plus the next row's first TAPS_PER_PHASE - 1 samples times ``bands[1]``
    (see _bands). Both operands are views of ``segments``, so nothing is copied into sliding
    windows; products go _GEMM_ROWS rows at a time, under the size that wakes BLAS threads.
    """
    head, tail = bands
    phases = head.shape[1] // _ROW
    blocks, channels, length = segments.shape
    flat = segments.reshape(-1)
    own = flat.reshape(-1, _ROW)  # every row of every segment, its padding row included
    following = flat[_ROW:].reshape(-1, _ROW)[:, : TAPS_PER_PHASE - 1]
    if pairs is None:
        wanted = None
        total = own.shape[0] - 1  # the last padding row is never a block's row
    else:
        # Row `row` of block `block`, channel c, is row (block * channels + c) * (rows + 1) + row.
        block, row = np.divmod(pairs, rows)
        wanted = ((block * channels)[:, np.newaxis] + np.arange(channels)) * (rows + 1)
        wanted = (wanted + row[:, np.newaxis]).reshape(-1)
        total = wanted.size
    out = np.empty((total + 1 if pairs is None else total, _ROW), dtype=np.float32)
    product = np.empty((min(total, _GEMM_ROWS), phases * _ROW), dtype=np.float32)
    extra = np.empty_like(product)
    for low in range(0, total, _GEMM_ROWS):
        high = min(total, low + _GEMM_ROWS)
        if wanted is None:
            a, b = own[low:high], following[low:high]
        else:
            a, b = own[wanted[low:high]], following[wanted[low:high]]
        values = np.matmul(a, head, out=product[: high - low])
        values += np.matmul(b, tail, out=extra[: high - low])
        np.abs(values, out=values)
        by_phase = values.reshape(high - low, phases, _ROW)
        target = out[low:high]
        np.maximum(by_phase[:, 0], by_phase[:, 1], out=target)
        for phase in range(2, phases):
            np.maximum(target, by_phase[:, phase], out=target)
    if pairs is None:
        return out.reshape(blocks, channels, rows + 1, _ROW)[:, :, :rows]
    return out.reshape(len(pairs), channels, _ROW)


def _bands(phases: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The two matrices of the banded product: column p * _ROW + i holds the taps of phase
    ``phases[p]`` for frame i of a row, placed at the rows of the samples they multiply (the
    row's own _ROW samples in the first matrix, the next row's in the second)."""
    matrix = polyphase_matrix()
    full = np.zeros((_ROW + TAPS_PER_PHASE - 1, len(phases) * _ROW), dtype=np.float32)
    for column, phase in enumerate(phases):
        for frame in range(_ROW):
            # Frame i of a row reads the row's samples i .. i + TAPS_PER_PHASE - 1 (the
            # segment starts _BEFORE frames before the block).
            full[frame : frame + TAPS_PER_PHASE, column * _ROW + frame] = matrix[:, phase]
    return np.ascontiguousarray(full[:_ROW]), np.ascontiguousarray(full[_ROW:])


@lru_cache(maxsize=1)
def _scan_bands() -> tuple[np.ndarray, np.ndarray]:
    return _bands(SCAN_PHASES)


@lru_cache(maxsize=1)
def _refine_bands() -> tuple[np.ndarray, np.ndarray]:
    return _bands(REFINE_PHASES)


def true_peak(audio: np.ndarray) -> float:
    """The reference true peak of (channels, frames) audio, linear."""
    return scan(audio).peak


def to_dbtp(peak: float) -> float | None:
    return 20.0 * math.log10(peak) if peak > 0.0 else None
