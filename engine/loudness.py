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
- Measuring again (``Measurement.after``): the normaliser measures a stem, gains it, lets the
  limiter turn down a few spans, and needs the loudness again, several rounds over. The
  K-weighting is linear, so a piece of signal the limiter did not touch has the old energy
  times the gain squared; only the pieces (a chunk's share of a 100 ms segment) holding a
  changed frame, and the next while the filter forgets the change, are filtered again. Each
  piece's starting state is recovered from the 32 frames of input and output before it
  when the chunk is filtered (a linear function of them, see _state_recovery), so filtering
  again starts at the piece, not at its chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

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


@dataclass(frozen=True)
class _Chunk:
    """One filtered chunk of a measured signal: where it lies, the K-weighting state it
    started from, and its energy summed into the segments ``first:last``. Its "pieces" are
    its shares of those segments, in order; ``states`` holds the state entering each piece
    (recovered from the samples before it, see _state_recovery; NaN where there were too few
    of them in the chunk), so a later measurement can start filtering at any piece."""

    start: int
    stop: int
    state: np.ndarray  # (sections, channels, 2) float64, as it entered this chunk
    first: int
    last: int
    sums: np.ndarray  # float64, one per segment first:last (the chunk's share of each)
    states: np.ndarray  # (last - first, sections, channels, 2) float64, entering each piece

    def scaled(self, gain: float) -> _Chunk:
        # A linear filter: the signal times ``gain`` has its states times ``gain`` and its
        # energies times gain**2.
        return _Chunk(self.start, self.stop, self.state * gain, self.first, self.last,
                      self.sums * (gain * gain), self.states * gain)

    def edges(self, cuts: np.ndarray) -> np.ndarray:
        """Frame where each piece starts, and the chunk's end (pieces + 1 values)."""
        inner = cuts[self.first + 1 : self.last]
        return np.concatenate(([self.start], inner, [self.stop])).astype(np.int64)


def _filter_chunk(array: np.ndarray, sample_rate: int, weights: np.ndarray | None,
                  cuts: np.ndarray, start: int, stop: int, state: np.ndarray
                  ) -> tuple[_Chunk, np.ndarray]:
    """The frames ``start:stop`` filtered from ``state``, and the state they leave."""
    from scipy.signal import sosfilt  # heavy import: only when something is measured

    chunk = array[:, start:stop].astype(np.float64)
    filtered, after = sosfilt(k_weighting_sos(sample_rate), chunk, axis=1, zi=state)
    after[np.abs(after) < FLUSH_BELOW] = 0.0
    # Segments overlapping this chunk: those starting before `stop` and ending after `start`.
    first = int(np.searchsorted(cuts, start, side="right")) - 1
    last = int(np.searchsorted(cuts, stop, side="left"))
    local = np.maximum(cuts[first:last], start) - start
    states = _piece_states(chunk, filtered, local, state, sample_rate)
    np.square(filtered, out=filtered)
    if weights is not None:
        filtered *= weights
    energy = filtered[0] if filtered.shape[0] == 1 else filtered.sum(axis=0)
    sums = np.add.reduceat(energy, local)
    return _Chunk(start, stop, state, first, last, sums, states), after


def _piece_states(chunk: np.ndarray, filtered: np.ndarray, local: np.ndarray,
                  state: np.ndarray, sample_rate: int) -> np.ndarray:
    """The filter state entering each piece that starts at ``local`` (frames into the chunk):
    the chunk's own for the first, recovered from the RECOVER_FRAMES inputs and outputs before
    it for the others, NaN where the chunk holds fewer frames than that before it."""
    states = np.full((len(local), *state.shape), np.nan)
    states[0] = state
    starts = local[1:]
    starts = starts[starts >= RECOVER_FRAMES]
    if starts.size:
        from_inputs, from_outputs = _state_recovery(sample_rate)
        window = starts[:, np.newaxis] + np.arange(-RECOVER_FRAMES, 0)  # (pieces, frames)
        # (channels, pieces, frames) @ (frames, sections * 2) -> (channels, pieces, s * 2)
        recovered = chunk[:, window] @ from_inputs + filtered[:, window] @ from_outputs
        recovered[np.abs(recovered) < FLUSH_BELOW] = 0.0
        channels = chunk.shape[0]
        sections = state.shape[0]
        recovered = recovered.reshape(channels, starts.size, sections, 2).transpose(1, 2, 0, 3)
        states[len(local) - starts.size :] = recovered
    return states


RECOVER_FRAMES = 32  # inputs and outputs a piece's starting state is recovered from


@lru_cache(maxsize=32)
def _state_recovery(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (RECOVER_FRAMES, sections * 2) matrices: the sosfilt state of the K-weighting
    entering frame n is x[n-32:n] @ first + y[n-32:n] @ second (x the input, y the output).

    A linear filter's state is a linear function of its recent inputs and outputs: from the
    outputs y = O s0 + T x of a window (O, T: the free and the forced response, probed with
    sosfilt itself) the state s0 at its start is O's pseudo-inverse times (y - T x), and the
    state at its end is A^m s0 + G x. O is well conditioned over 32 frames at every rate
    (about 1e2 at 48 kHz, 1e4 at 192 kHz): the recovered state is the filter's to ~1e-12.
    """
    from scipy.signal import sosfilt  # heavy import: only when something is measured

    sos = k_weighting_sos(sample_rate)
    sections, frames = sos.shape[0], RECOVER_FRAMES
    size = 2 * sections
    free = np.zeros((frames, size))  # O: output from each unit state, no input
    carried = np.zeros((size, size))  # A^m: state after the window from each unit state
    forced = np.zeros((frames, frames))  # T: output from each unit input, zero state
    pushed = np.zeros((size, frames))  # G: state after the window from each unit input
    for k in range(size):
        unit = np.zeros(size)
        unit[k] = 1.0
        free[:, k], final = sosfilt(sos, np.zeros(frames), zi=unit.reshape(sections, 2))
        carried[:, k] = final.ravel()
    for j in range(frames):
        impulse = np.zeros(frames)
        impulse[j] = 1.0
        forced[:, j], final = sosfilt(sos, impulse, zi=np.zeros((sections, 2)))
        pushed[:, j] = final.ravel()
    start_from_outputs = np.linalg.pinv(free)  # s0 = pinv(O) (y - T x)
    from_outputs = carried @ start_from_outputs
    from_inputs = pushed - from_outputs @ forced
    return np.ascontiguousarray(from_inputs.T), np.ascontiguousarray(from_outputs.T)


def _chunk_frames(sample_rate: int) -> int:
    return max(1, min(FILTER_CHUNK_FRAMES, int(sample_rate)))


def _weights(channels: int) -> np.ndarray | None:
    weights = np.asarray(CHANNEL_WEIGHTS[:channels], dtype=np.float64)[:, np.newaxis]
    return None if bool(np.all(weights == 1.0)) else weights


def _segment_chunks(array: np.ndarray, sample_rate: int, cuts: np.ndarray) -> list[_Chunk]:
    """The whole signal filtered a chunk at a time, the state carried from chunk to chunk."""
    channels, frames = array.shape
    sos = k_weighting_sos(int(sample_rate))
    weights = _weights(channels)
    state = np.zeros((sos.shape[0], channels, 2), dtype=np.float64)
    chunks = []
    step = _chunk_frames(sample_rate)
    for start in range(0, frames, step):
        chunk, state = _filter_chunk(array, int(sample_rate), weights, cuts, start,
                                     min(frames, start + step), state)
        chunks.append(chunk)
    return chunks


def _segment_sums(chunks: list[_Chunk], segments: int) -> np.ndarray:
    """Channel-weighted K-weighted energy of each segment (chunk shares added in order)."""
    sums = np.zeros(segments, dtype=np.float64)
    for chunk in chunks:
        sums[chunk.first : chunk.last] += chunk.sums
    return sums


def _segment_energies(array: np.ndarray, sample_rate: int, cuts: np.ndarray) -> np.ndarray:
    """Channel-weighted K-weighted energy summed between consecutive ``cuts`` (frame indices)."""
    return _segment_sums(_segment_chunks(array, sample_rate, cuts), len(cuts) - 1)


def _block_totals(sums: np.ndarray, cuts: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                  sample_rate: int) -> np.ndarray:
    first = np.searchsorted(cuts, lower)
    count = np.searchsorted(cuts, upper) - first
    totals = np.zeros(len(lower), dtype=np.float64)
    # Each block spans a few segments (its own 100 ms steps, split at its neighbours' edges).
    for offset in range(int(count.max(initial=0))):
        take = count > offset
        totals[take] += sums[first[take] + offset]
    return totals * (1.0 / (GATING_BLOCK_S * sample_rate))


def block_energies(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Channel-weighted mean-square K-weighted energy of every 400 ms gating block."""
    frames = audio.shape[1]
    lower, upper = _block_edges(frames, sample_rate)
    cuts = np.unique(np.concatenate(([0, frames], lower, upper)))
    sums = _segment_energies(audio, sample_rate, cuts)
    return _block_totals(sums, cuts, lower, upper, sample_rate)


def _gated_lufs(energies: np.ndarray) -> float:
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


def _check(array: np.ndarray, sample_rate: int) -> None:
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


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Gated integrated loudness of ``audio`` (channels, frames) in LUFS; -inf when all gated.

    The signal must be at least one gating block long (``measure_lufs`` in engine.render
    handles shorter clips) and have at most five channels (L, R, C, Ls, Rs).
    """
    return Measurement.of(audio, sample_rate).lufs


# A chunk filtered again after a change hands on its state; once that state is this close
# (relative) to the unchanged signal's times the gain, the rest of the signal keeps its old
# energies. Not closer: the float32 product rounds each sample by up to 2**-24 (6e-8), so
# the states of the two never agree to more than about that; a difference of 1e-6 moves the
# energy of the next few milliseconds by 1e-6, a loudness by far under 1e-6 LU.
_STATE_MATCH = 1e-6
# ... or to this fraction of the signal's RMS level, where the states themselves are smaller:
# a difference of 1e-7 of the RMS level adds under ~1e-12 of the signal's energy per frame
# while the filter forgets it.
_QUIET_SCALE = 0.1


@dataclass(frozen=True)
class Measurement:
    """Integrated loudness with what it was computed from, so that the same signal after a
    gain and a few local changes (a limiter's) is measured again only where it changed."""

    lufs: float  # -inf when every block is gated
    sample_rate: int
    cuts: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    chunks: tuple[_Chunk, ...]

    @classmethod
    def of(cls, audio: np.ndarray, sample_rate: int) -> Measurement:
        array = np.asarray(audio)
        _check(array, sample_rate)
        rate = int(sample_rate)
        frames = array.shape[1]
        lower, upper = _block_edges(frames, rate)
        cuts = np.unique(np.concatenate(([0, frames], lower, upper)))
        chunks = _segment_chunks(array, rate, cuts)
        return cls._from_chunks(rate, cuts, lower, upper, chunks)

    @classmethod
    def _from_chunks(cls, rate: int, cuts: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     chunks: list[_Chunk]) -> Measurement:
        sums = _segment_sums(chunks, len(cuts) - 1)
        lufs = _gated_lufs(_block_totals(sums, cuts, lower, upper, rate))
        return cls(lufs, rate, cuts, lower, upper, tuple(chunks))

    def after(self, audio: np.ndarray, *, gain: float, changed: Iterable[tuple[int, int]]
              ) -> Measurement:
        """The measurement of ``audio``: this signal times ``gain`` (applied in float32)
        except in the ``changed`` frame spans.

        Pieces (a chunk's share of a 100 ms segment) holding a changed frame are filtered
        again, from this measurement's state at their start times the gain, and so are the
        pieces after them until the filter state matches the unchanged signal's again (the
        K-weighting forgets within a few thousand frames); every other piece keeps its
        energy times gain**2. Within ~1e-6 LU of measuring ``audio`` from scratch (float32
        rounding of the gain), for the cost of the changed pieces.
        """
        array = np.asarray(audio)
        if array.shape[1] != (self.chunks[-1].stop if self.chunks else 0):
            raise InvalidInputError("audio: not the length of the measured signal",
                                    field="audio", value=array.shape)
        spans = np.array([(low, high) for low, high in changed if high > low],
                         dtype=np.int64).reshape(-1, 2)
        weights = _weights(array.shape[0])
        floor = self._quiet_state(gain)
        # Chunks holding a changed frame, found with one search per span (most are clean).
        touched = _dirty_pieces(
            np.array([chunk.start for chunk in self.chunks] + [array.shape[1]], dtype=np.int64), spans)
        chunks: list[_Chunk] = []
        carried: np.ndarray | None = None  # the new signal's state where it differs
        for index, old in enumerate(self.chunks):
            if not touched[index] and carried is None:
                chunks.append(old.scaled(gain))
                continue
            edges = old.edges(self.cuts)
            dirty = _dirty_pieces(edges, spans)
            chunk, after = self._refiltered(array, old, edges, dirty, gain, carried, weights,
                                            floor)
            chunks.append(chunk)
            carried = None
            if after is not None and index + 1 < len(self.chunks):
                if not _agrees(after, self.chunks[index + 1].state * gain, floor):
                    carried = after
        return self._from_chunks(self.sample_rate, self.cuts, self.lower, self.upper, chunks)

    def _quiet_state(self, gain: float) -> float:
        """A state difference under which what is left of a change no longer matters: a
        fraction of the signal's RMS K-weighted level (times the gain). In the silence after
        a click the states of the changed and the unchanged signal decay together, so their
        relative difference never shrinks; in absolute terms it soon stops mattering."""
        frames = self.chunks[-1].stop if self.chunks else 0
        energy = sum(float(chunk.sums.sum()) for chunk in self.chunks) / max(1, frames)
        return _QUIET_SCALE * math.sqrt(max(energy, 0.0)) * abs(gain)

    def _refiltered(self, array: np.ndarray, old: _Chunk, edges: np.ndarray,
                    dirty: np.ndarray, gain: float, carried: np.ndarray | None,
                    weights: np.ndarray | None, floor: float
                    ) -> tuple[_Chunk, np.ndarray | None]:
        """``old`` measured again: from the first dirty piece (or the chunk's start, when
        ``carried`` is the state the changes before it left) through the last dirty one,
        then piece by piece until the state agrees with the old one's times the gain. Also
        the state at the chunk's end, or None where the rest kept its old energies."""
        sums, states = old.sums * (gain * gain), old.states * gain
        known = ~np.isnan(old.states.reshape(len(old.states), -1)[:, 0])
        if carried is not None:
            begin, state = 0, carried
        else:
            begin = int(np.flatnonzero(known[: int(np.argmax(dirty)) + 1])[-1])
            state = states[begin]
        head = carried if carried is not None else old.state * gain
        pieces = len(edges) - 1
        # Through the last dirty piece and one more: the filter forgets a change within a
        # few thousand frames, so one call usually covers it (the loop below is for when not).
        end = int(np.flatnonzero(dirty)[-1]) + 1 if dirty.any() else begin
        end = min(pieces, end + 1)
        left: np.ndarray | None = None  # the state at the chunk's end, unless it settled
        while True:
            part, state = _filter_chunk(array, self.sample_rate, weights, self.cuts,
                                        int(edges[begin]), int(edges[end]), state)
            sums[begin:end], states[begin:end] = part.sums, part.states
            if end == pieces:
                left = state
                break
            if known[end] and _agrees(state, states[end], floor):
                break
            begin, end = end, end + 1  # not settled yet: the next piece too
        return _Chunk(old.start, old.stop, head, old.first, old.last, sums, states), left


def _dirty_pieces(edges: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Per piece between ``edges``, whether a (low, high) frame span overlaps it."""
    dirty = np.zeros(len(edges) - 1, dtype=bool)
    inside = spans[(spans[:, 0] < edges[-1]) & (spans[:, 1] > edges[0])]
    for low, high in inside.tolist():
        first = max(0, int(np.searchsorted(edges, low, side="right")) - 1)
        dirty[first : int(np.searchsorted(edges, high, side="left"))] = True
    return dirty


def _agrees(state: np.ndarray, expected: np.ndarray, floor: float) -> bool:
    """Whether a state refiltered after a change is the unchanged signal's again (relative
    to the larger of the state and ``floor``, see Measurement._quiet_state)."""
    scale = max(float(np.abs(expected).max(initial=0.0)), floor, FLUSH_BELOW)
    return float(np.abs(state - expected).max(initial=0.0)) <= _STATE_MATCH * scale
