"""Stem signal processing: fit to the event length, fades, loudness, true peak, and the mixdown.

Pure functions on float32 arrays shaped (channels, frames) with the sample rate passed beside
them. Nothing here touches files; engine/stems.py writes what these functions return.

Loudness policy (why the numbers below are what they are):
- A stem is normalised to its event's target loudness (BS.1770 integrated, engine/loudness.py,
  checked against pyloudnorm in tests),
  then a look-ahead peak limiter holds its true peak at or below the stem ceiling
  (-1 dBTP by default; it aims 0.3 dB lower, see CEILING_MARGIN_DB; true peak is the 8x
  reference of engine/truepeak.py). Limiting lowers
  loudness a little on transient-heavy sounds, so ``normalise_to_lufs`` measures again and
  applies make-up gain (then limits again) for a few rounds until the stem is within
  ``LOUDNESS_TOLERANCE_LU`` of its target (or a round gains nothing, ``MAKEUP_STALL_LU``):
  the ceiling wins over the target, and the target
  is still met to well within ±0.5 LU for anything but extreme crest factors. A sound whose
  crest factor is so large that the target cannot be reached under the ceiling (a lone click
  at a loud target) stays below target; the file's measured loudness says so, and the
  manifest's gain_db (target - measured) carries the shortfall rather than the file
  exceeding the ceiling.
- Clips shorter than one 400 ms BS.1770 gating block have no gated loudness. ``measure_lufs``
  measures them as if looped to fill the block: the clip is tiled to at least 400 ms and
  measured with the same meter, which equals the ungated K-weighted mean-square loudness of
  the clip itself.
- Digital silence (and anything below the -70 LUFS absolute gate) has no loudness: it is
  measured as None and left untouched (gain 0 dB).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np

from engine import loudness, malloc, truepeak
from engine.errors import InvalidInputError
from engine.limits import check_audio, check_sample_rate

GATING_BLOCK_S = loudness.GATING_BLOCK_S  # shorter clips use the looped fallback
LOUDNESS_TOLERANCE_LU = 0.1  # make-up rounds stop once this close to the target
MAKEUP_ROUNDS = 6
# A make-up round that moved loudness by less than this (either way) ends the rounds: the
# limiter takes back all of any make-up on such a sound (a click, whose loudness is its
# peak's), so each further round would cost a limiter pass and a measurement for nothing.
# (A round that lowered loudness a lot overshot into heavier limiting: the rounds go on.)
MAKEUP_STALL_LU = 0.01
# The limiter aims this far under the ceiling: the 8x reference still reads a little under
# the continuous waveform's peak (up to ~0.1 dB near 20 kHz), and 24-bit rounding must not
# push the written file over the ceiling either.
CEILING_MARGIN_DB = 0.3
LIMITER_LOOKAHEAD_MS = 5.0  # gain is fully down this long before a peak arrives
LIMITER_HOLD_MS = 20.0  # ... and stays down this long after it, so it does not flutter
DEFAULT_CROSSFADE_MS = 50.0
# Clips shorter than this many crossfades are not looped (a loop of a click is a buzz): padded.
MIN_LOOP_CROSSFADES = 4


def _check_audio(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    # The engine's one shape rule (engine.limits); empty and non-finite input is handled here.
    return check_audio(audio, field=name, min_frames=0, finite=False)


def _check_rate(sample_rate: int) -> None:
    check_sample_rate(sample_rate)  # the engine's one rule (engine.limits)


def db_to_gain(gain_db: float) -> float:
    return float(10.0 ** (gain_db / 20.0))


def fit_to_length(
    audio: np.ndarray,
    *,
    frames: int,
    sample_rate: int,
    crossfade_ms: float = DEFAULT_CROSSFADE_MS,
) -> np.ndarray:
    """Return ``audio`` with exactly ``frames`` frames.

    Longer clips are trimmed. Shorter clips are looped with an equal-power (sine/cosine)
    crossfade of ``crossfade_ms`` (default 50 ms) at each seam, which suits beds like rain
    or engine drones. Clips too short to loop (under four crossfades) are padded with
    silence instead, since looping a one-shot turns it into a buzz.
    """
    array = _check_audio(audio)
    _check_rate(sample_rate)
    if frames < 0:
        raise InvalidInputError(f"frames={frames}: must be >= 0", field="frames", value=frames)
    channels, have = array.shape
    if have >= frames:
        return np.ascontiguousarray(array[:, :frames])
    fade = int(round(crossfade_ms * sample_rate / 1000.0))
    if have == 0 or fade < 1 or have < MIN_LOOP_CROSSFADES * fade:
        out = np.zeros((channels, frames), dtype=np.float32)
        out[:, :have] = array
        return out
    return _loop(array, frames=frames, fade=fade)


def _loop(clip: np.ndarray, *, frames: int, fade: int) -> np.ndarray:
    # Each repeat starts `fade` frames before the previous one ends; the overlap is a sine
    # fade-in against a cosine fade-out, which keeps power constant for uncorrelated material.
    t = (np.arange(fade, dtype=np.float64) + 0.5) / fade
    fade_in = np.sin(0.5 * np.pi * t).astype(np.float32)
    fade_out = np.cos(0.5 * np.pi * t).astype(np.float32)
    channels, have = clip.shape
    step = have - fade
    out = np.zeros((channels, frames + have), dtype=np.float32)
    out[:, :have] = clip
    position = step
    while position < frames:
        out[:, position : position + fade] *= fade_out
        out[:, position : position + fade] += clip[:, :fade] * fade_in
        out[:, position + fade : position + have] = clip[:, fade:]
        position += step
    return np.ascontiguousarray(out[:, :frames])


def apply_fades(
    audio: np.ndarray,
    *,
    sample_rate: int,
    fade_in_ms: float = 5.0,
    fade_out_ms: float = 50.0,
    in_place: bool = False,
) -> np.ndarray:
    """Raised-cosine fade-in (default 5 ms) and fade-out (default 50 ms); returns a new array,
    or with ``in_place`` the caller's own (float32, contiguous) array, faded where it lies.

    The short fade-in removes the click of a hard start without blunting attacks; the longer
    fade-out hides a trimmed tail. Each fade is shortened to half the clip if the clip is short.
    """
    checked = _check_audio(audio)
    array = checked if in_place and checked is audio else checked.copy()
    _check_rate(sample_rate)
    frames = array.shape[1]
    for fade_ms, at_start in ((fade_in_ms, True), (fade_out_ms, False)):
        length = min(int(round(max(fade_ms, 0.0) * sample_rate / 1000.0)), frames // 2)
        if length < 1:
            continue
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)).astype(np.float32)
        if at_start:
            array[:, :length] *= ramp
        else:
            array[:, frames - length :] *= ramp[::-1]
    return array


def measure_lufs(audio: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness in LUFS (BS.1770-4, engine/loudness.py), or None for silence.

    Clips shorter than the 400 ms gating block are measured looped: tiled to at least 400 ms
    and measured with the same meter (see the module docstring).
    """
    return measure(audio, sample_rate).lufs


class Measured(NamedTuple):
    """``measure_lufs`` and the measurement behind it."""

    lufs: float | None
    # Can measure the signal again after a gain and local changes (None for a looped short
    # clip, and for silence).
    meter: loudness.Measurement | None


def measure(audio: np.ndarray, sample_rate: int) -> Measured:
    """The loudness of ``audio`` (``measure_lufs``) with what ``normalise_stem`` needs to
    measure it again cheaply; hand it to ``normalise_stem(measured=...)``."""
    array = _check_audio(audio)
    _check_rate(sample_rate)
    frames = array.shape[1]
    if frames == 0 or _silent(array):
        return Measured(None, None)
    block = int(math.ceil(GATING_BLOCK_S * sample_rate)) + 1
    if frames < block:
        array = np.tile(array, (1, int(math.ceil(block / frames))))
        return Measured(_finite(loudness.Measurement.of(array, int(sample_rate)).lufs), None)
    measured = loudness.Measurement.of(array, int(sample_rate))
    return Measured(_finite(measured.lufs), measured)


_SILENCE_SLICE_FRAMES = 1 << 16


def _silent(array: np.ndarray) -> bool:
    """Whether every sample is zero, looking a slice at a time: sound is usually found in
    the first slice, where np.any over a whole long stem reads all of it."""
    return not any(array[:, at : at + _SILENCE_SLICE_FRAMES].any()
                   for at in range(0, array.shape[1], _SILENCE_SLICE_FRAMES))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _measure_after(previous: Measured, audio: np.ndarray, sample_rate: int, gain: float,
                   changed: Sequence[tuple[int, int]]) -> Measured:
    """The loudness of ``audio`` = the previously measured signal times ``gain`` except in
    ``changed``: only the changed chunks are filtered again when there is a measurement."""
    if previous.meter is None:
        return measure(audio, sample_rate)
    again = previous.meter.after(audio, gain=gain, changed=changed)
    return Measured(_finite(again.lufs), again)


def true_peak_dbtp(audio: np.ndarray, sample_rate: int) -> float | None:
    """True peak in dBTP against the 8x reference (engine/truepeak.py); None for silence."""
    array = _check_audio(audio)
    _check_rate(sample_rate)
    if array.shape[1] == 0:
        return None
    return truepeak.to_dbtp(truepeak.true_peak(array))


def limit_true_peak(
    audio: np.ndarray, *, sample_rate: int, ceiling_dbtp: float = -1.0
) -> np.ndarray:
    """Look-ahead limiter holding the true peak at or below ``ceiling_dbtp``; a new array.

    Gain only moves around the peaks that need it: the needed gain per frame (from the true
    peak) is held over a window of lookahead + hold, then smoothed with a moving average no
    wider than that window, so the smoothed gain is never above what any frame needs. A final
    static trim covers what is left over.
    """
    array = _check_audio(audio)
    _check_rate(sample_rate)
    limited = _limit(array, sample_rate, ceiling_dbtp)
    return limited.audio if limited.changed else array.copy()


def _sample_peak(array: np.ndarray) -> float:
    # Two reductions instead of np.abs(array).max(): no temporary the size of a 10-minute mix.
    return max(float(array.max()), -float(array.min()))


class _Limited(NamedTuple):
    audio: np.ndarray  # the input object itself when nothing changed
    peak_dbtp: float | None  # its true peak when a pass measured it, else None
    changed: bool
    blocks: truepeak.BlockPeaks | None  # what the passes learnt of ``audio``, for the next
    # What changed: the input times ``gain`` (float32) except in the frame ``spans``.
    spans: tuple[tuple[int, int], ...] = ()
    gain: float = 1.0


def _limit(
    array: np.ndarray, sample_rate: int, ceiling_dbtp: float, *, in_place: bool = False,
    blocks: truepeak.BlockPeaks | None = None,
    before_change: Callable[[], object] | None = None,
    settle: bool = True,
) -> _Limited:
    """The limited audio, its true peak when already known, whether anything changed, and
    the scan's per-block state (pass it back as ``blocks`` after a gain change).

    Unchanged audio comes back as the same array object (callers that hand it out copy it);
    with ``in_place`` the limiter writes into ``array`` itself (the mix bus owns its buffer).
    Work is only done where needed: a sample-peak check, then one true-peak pass that also
    lists the frames over the ceiling, then gain only in the regions around those frames,
    then a pass over just the blocks that gain touched (the scan's per-block maxima stand for
    the rest), which gives the true peak of the result. ``before_change`` is called before
    anything in ``array`` is written (a reader on another thread may still need it).

    Without ``settle`` that last pass (and the static trim it may call for) is left to
    ``_settled``: a caller that turns the result up again for another round would only
    measure those blocks twice. The peak is then None and the blocks the gain touched are
    marked unknown in the state handed back.
    """
    ceiling = db_to_gain(ceiling_dbtp - CEILING_MARGIN_DB)
    if array.size == 0:
        return _Limited(array, None, False, None)
    # No interpolated value exceeds the sample peak by more than the interpolator's largest
    # phase L1 norm: audio that far under the ceiling needs no oversampling at all.
    if _sample_peak(array) * truepeak.interpolation_bound() <= ceiling:
        return _Limited(array, None, False, None)
    found = truepeak.scan(array, ceiling=ceiling, blocks=blocks)
    if found.over_frames.size == 0:
        return _Limited(array, truepeak.to_dbtp(found.peak), False, found.blocks)
    if before_change is not None and in_place:
        before_change()
    out = array if in_place else array.copy()
    spans = _gain_spans(out, found, ceiling, sample_rate)
    # Outside the spans nothing changed (and nothing was over the ceiling): only the blocks
    # the spans touch, with the interpolator's reach, are measured again.
    assert found.blocks is not None  # a whole-signal scan
    unsettled = found.blocks.forget(spans)
    if not settle:
        return _Limited(out, None, True, unsettled, tuple(spans), 1.0)
    done = _settled(out, ceiling_dbtp, unsettled)
    return _Limited(out, done.peak_dbtp, True, done.blocks, tuple(spans), done.gain)


def _settled(out: np.ndarray, ceiling_dbtp: float, blocks: truepeak.BlockPeaks) -> _Limited:
    """The last pass of a limiter round, in place: the true peak of ``out`` from ``blocks``
    (those the gain touched marked unknown), and the static trim that brings whatever is
    still over the ceiling under it (``gain``; 1.0 when none was needed)."""
    ceiling = db_to_gain(ceiling_dbtp - CEILING_MARGIN_DB)
    after = truepeak.scan(out, blocks=blocks)
    peak, state = after.peak, after.blocks
    factor = np.float32(1.0)
    if peak > ceiling:
        factor = np.float32(ceiling / peak)
        out *= factor
        peak = peak * float(factor)
        state = None if state is None else state.scaled(float(factor))
    return _Limited(out, truepeak.to_dbtp(peak), True, state, (), float(factor))


_GAIN_SLICE_FRAMES = 1 << 16  # frames per slice when applying limiter gain


def _gain_spans(
    out: np.ndarray, found: truepeak.PeakScan, ceiling: float, sample_rate: int
) -> list[tuple[int, int]]:
    """Apply the limiter gain in place around the over-ceiling frames; return the frame spans
    (with the interpolator's reach) whose true peak may have changed."""
    frames = out.shape[1]
    half = max(1, int(round((LIMITER_LOOKAHEAD_MS + LIMITER_HOLD_MS) * sample_rate / 2000.0)))
    # Gain can differ from 1 only within the hold window plus the moving average's half width
    # of an over frame; a little more keeps each span's edges at exactly 1 before filtering.
    reach = half + half // 2 + 2
    over = found.over_frames
    needed_at = np.minimum(1.0, ceiling / found.over_peaks.astype(np.float64))
    breaks = np.flatnonzero(np.diff(over) > 2 * reach) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks, [over.size]))
    spans = []
    for first, last in zip(firsts, lasts):
        low = max(0, int(over[first]) - reach)
        high = min(frames, int(over[last - 1]) + reach + 1)
        needed = np.ones(high - low, dtype=np.float64)
        needed[over[first:last] - low] = needed_at[first:last]
        gain = _smoothed_gain(needed, half)
        del needed
        # In slices: the float64 product of a whole loud stem would be twice its size again
        # (and a second stem may be processed beside this one). Same values either way.
        for at in range(low, high, _GAIN_SLICE_FRAMES):
            until = min(high, at + _GAIN_SLICE_FRAMES)
            out[:, at:until] = (out[:, at:until] * gain[np.newaxis, at - low : until - low]).astype(np.float32)
        reach_tp = truepeak.TAPS_PER_PHASE
        spans.append((max(0, low - reach_tp), min(frames, high + reach_tp)))
    return spans


def _smoothed_gain(needed: np.ndarray, half: int) -> np.ndarray:
    from scipy.ndimage import minimum_filter1d, uniform_filter1d  # heavy: only when limiting

    held = minimum_filter1d(needed, size=2 * half + 1, mode="nearest")
    smooth = uniform_filter1d(held, size=half, mode="nearest")
    del held
    return np.minimum(smooth, needed, out=smooth)  # guards float error at window edges


class Normalised(NamedTuple):
    """What ``normalise_stem`` made, with the measurements it already has."""

    audio: np.ndarray
    gain_db: float  # the static gain applied (make-up rounds not included)
    measured_lufs: float | None  # loudness of the input, None for silence
    true_peak_dbtp: float | None  # of ``audio`` when a pass already measured it, else None
    # Loudness of ``audio`` when known without measuring it again (a static gain moves loudness
    # by exactly that gain, up to float32 rounding of ~1e-6 LU), else None.
    loudness_lufs: float | None = None


def normalise_stem(
    audio: np.ndarray,
    *,
    sample_rate: int,
    target_lufs: float,
    ceiling_dbtp: float | None = -1.0,
    measured: Measured | None = None,
    in_place: bool = False,
) -> Normalised:
    """``normalise_to_lufs``, also handing back the output's true peak when it is known.

    Loudness is measured again only after the limiter changed something: a static gain moves
    loudness by exactly that gain, so a round the limiter leaves alone is already on target.
    ``measured`` is ``measure(audio)`` when the caller has it already. With ``in_place`` the
    caller's own (float32, contiguous) array is gained and limited where it lies and handed
    back: the same values, one stem-sized copy fewer.
    """
    array = _check_audio(audio)
    loudness_now = measure(array, sample_rate) if measured is None else measured
    measured_lufs = loudness_now.lufs
    if measured_lufs is None:
        return Normalised(array if in_place and array is audio else array.copy(), 0.0, None, None)
    gain_db = target_lufs - measured_lufs
    if in_place and array is audio:
        # The same float32 product as ``array * gain`` below (a Python float is applied to
        # float32 arrays as float32), written over the input.
        out = array
        out *= np.float32(db_to_gain(gain_db))
    else:
        out = (array * db_to_gain(gain_db)).astype(np.float32, copy=False)  # float32 already: no second copy
    out_lufs: float | None = measured_lufs + gain_db
    if ceiling_dbtp is None:
        return Normalised(out, gain_db, measured_lufs, None, out_lufs)
    peak_db: float | None = None
    applied_db = before = None  # the last make-up gain, and the loudness it was applied to
    blocks: truepeak.BlockPeaks | None = None  # the last pass's per-block peaks of ``out``
    # The float32 gain ``out`` got since ``loudness_now`` measured it (a float32 product
    # rounds the factor to float32 first).
    pending = float(np.float32(db_to_gain(gain_db)))
    for _ in range(MAKEUP_ROUNDS):
        # ``out`` is always this function's own array (a product above), so the limiter may
        # write into it: one stem-sized copy fewer, same values. Its last pass waits until
        # the round turns out to be the last (_settled below): another round would turn the
        # same blocks up and measure them again anyway.
        limited = _limit(out, sample_rate, ceiling_dbtp, in_place=True, blocks=blocks,
                         settle=False)
        out, peak_db, changed = limited.audio, limited.peak_dbtp, limited.changed
        blocks = limited.blocks
        if not changed:
            if out_lufs is not None and out_lufs - target_lufs > LOUDNESS_TOLERANCE_LU:
                # A make-up aimed past the target and the limiter let it all through: come
                # down by a static gain (it cannot cross the ceiling).
                trim_db = target_lufs - out_lufs
                out = (out * db_to_gain(trim_db)).astype(np.float32, copy=False)
                out_lufs = target_lufs
                peak_db = None if peak_db is None else peak_db + trim_db
            break
        # Measured again only where the limiter worked (the rest moved by a known gain).
        loudness_now = _measure_after(loudness_now, out, sample_rate, pending * limited.gain,
                                      limited.spans)
        out_lufs = now = loudness_now.lufs
        if (now is None or abs(target_lufs - now) <= LOUDNESS_TOLERANCE_LU
                # ... or the limiter took the whole make-up back: more rounds would too.
                or (before is not None and abs(now - before) < MAKEUP_STALL_LU)):
            assert blocks is not None  # a changing pass always hands its blocks on
            done = _settled(out, ceiling_dbtp, blocks)
            peak_db = done.peak_dbtp
            if done.gain != 1.0 and now is not None:
                out_lufs = now + 20.0 * math.log10(done.gain)  # a static gain: exactly that
            break
        makeup_db = _makeup_db(target_lufs - now, applied_db, None if before is None else now - before)
        gain = np.float32(db_to_gain(makeup_db))
        out = (out * gain).astype(np.float32, copy=False)
        pending = float(gain)
        # The next pass starts from this one's block peaks, moved by the same gain: blocks
        # that stay under the ceiling are not scanned again.
        blocks = None if blocks is None else blocks.scaled(float(gain))
        out_lufs, applied_db, before = now + makeup_db, makeup_db, now
    else:
        limited = _limit(out, sample_rate, ceiling_dbtp, in_place=True, blocks=blocks)
        out, peak_db = limited.audio, limited.peak_dbtp
        if limited.changed:
            out_lufs = None
    return Normalised(out, gain_db, measured_lufs, peak_db, out_lufs)


def _makeup_db(deficit_db: float, applied_db: float | None, achieved_db: float | None) -> float:
    """Make-up gain for the next round. The limiter takes back part of any make-up (on
    transient material about half, the same share again each round), so after one round the
    share that survived is known and the next make-up aims past the deficit by that much:
    rounds drop from ~6 to ~3 on such material. Clamped to 4x the deficit; an overshoot only
    costs a round in which the gain comes down again without limiting."""
    if applied_db is None or achieved_db is None or applied_db == 0.0:
        return deficit_db
    survived = achieved_db / applied_db
    if not 0.05 <= survived < 1.0:
        return deficit_db
    return deficit_db / max(survived, 0.25)


def normalise_to_lufs(
    audio: np.ndarray,
    *,
    sample_rate: int,
    target_lufs: float,
    ceiling_dbtp: float | None = -1.0,
) -> tuple[np.ndarray, float, float | None]:
    """Bring ``audio`` to ``target_lufs`` under the true-peak ``ceiling_dbtp`` (None: no limit).

    Returns (audio, gain_db, measured_lufs) where gain_db is the static gain applied and
    measured_lufs is the loudness of the input before any gain. Silence comes back unchanged
    with gain 0 dB and measured None. With a ceiling, the limiter and make-up rounds described
    in the module docstring run; the result's own loudness is ``measure_lufs`` of it.
    """
    done = normalise_stem(audio, sample_rate=sample_rate, target_lufs=target_lufs,
                          ceiling_dbtp=ceiling_dbtp)
    return done.audio, done.gain_db, done.measured_lufs


@dataclass(frozen=True)
class PlacedStem:
    """A stem placed on the scene timeline with the item gain the DAW would apply."""

    audio: np.ndarray
    start_s: float
    gain_db: float = 0.0


def _to_channels(array: np.ndarray, channels: int) -> np.ndarray:
    if array.shape[0] == channels:
        return array
    if array.shape[0] == 1:
        return np.repeat(array, channels, axis=0)
    # More channels than the mix: fold down by averaging (rare; generators give mono/stereo).
    return np.repeat(array.mean(axis=0, keepdims=True), channels, axis=0)


_ADD_SLICE_FRAMES = 1 << 15  # frames per slice when a stem is added with a gain
_SMALL_PAGES_MIN_BYTES = 1 << 22


def _zeroed_bus(shape: tuple[int, int]) -> np.ndarray:
    """A zeroed float32 mix bus; from 4 MB up in its own mapping on small pages
    (engine.malloc.mapped_zeros says why). Small buses come from np.zeros as before."""
    if int(np.prod(shape)) * 4 < _SMALL_PAGES_MIN_BYTES:
        return np.zeros(shape, dtype=np.float32)
    return malloc.mapped_zeros(shape, small_pages=True)


class MixBus:
    """A (channels, frames) float32 mix that stems are added to one at a time, in call order.

    Adding stems one by one (instead of holding them all) lets a long scene stream its stems
    from their files; the sum is made with the same float32 operations in the same order as a
    one-shot mix of the same stems, so both are bit-identical.
    """

    def __init__(self, *, duration_s: float, sample_rate: int, channels: int) -> None:
        _check_rate(sample_rate)
        if not math.isfinite(duration_s) or duration_s <= 0:
            raise InvalidInputError(
                f"duration_s={duration_s!r}: must be > 0", field="duration_s", value=duration_s
            )
        self.sample_rate = sample_rate
        self.frames = int(round(duration_s * sample_rate))
        self.audio = _zeroed_bus((max(1, channels), self.frames))

    def add(self, audio: np.ndarray, *, start_s: float, gain_db: float = 0.0) -> None:
        array = _check_audio(audio, "stems")
        offset = int(round(start_s * self.sample_rate))
        if offset >= self.frames or offset < 0:
            return
        channels = self.audio.shape[0]
        if array.shape[0] not in (1, channels):
            array = _to_channels(array, channels)  # fold-down: rare, keep the one-shot path
        length = min(array.shape[1], self.frames - offset)
        gain = db_to_gain(gain_db)
        # Row by row (a mono stem feeds every row) and a slice at a time: the same float32
        # products and sums as adding the whole spread-out stem at once, with no stem-sized
        # temporary (whose fresh pages cost more than the sums). A gain of exactly 1 (a fresh
        # stem's) multiplies nothing: x * 1 is x in float32.
        scratch = None if gain == 1.0 else np.empty(min(length, _ADD_SLICE_FRAMES), np.float32)
        for channel in range(channels):
            source = array[channel if array.shape[0] == channels else 0, :length]
            target = self.audio[channel, offset : offset + length]
            if scratch is None:
                target += source
                continue
            for at in range(0, length, _ADD_SLICE_FRAMES):
                piece = scratch[: min(_ADD_SLICE_FRAMES, length - at)]
                np.multiply(source[at : at + piece.size], gain, out=piece)
                target[at : at + piece.size] += piece

    def finish(self, *, ceiling_dbtp: float = -1.0) -> tuple[np.ndarray, float | None]:
        """The mix through the bus limiter, and its true peak in dBTP (None for silence)."""
        limited = _limit(self.audio, self.sample_rate, ceiling_dbtp, in_place=True)
        out, peak_db = limited.audio, limited.peak_dbtp
        self.audio = np.zeros((0, 0), dtype=np.float32)  # the bus hands its buffer over
        return out, peak_db if peak_db is not None else true_peak_dbtp(out, self.sample_rate)

    def finish_measured(self, *, ceiling_dbtp: float = -1.0
                        ) -> tuple[np.ndarray, float | None, float | None]:
        """``finish``, and the loudness of the result (``measure_lufs``, None for silence).

        The loudness is measured on a second thread while the limiter scans the bus (both
        only read it, and the K-weighting filter lets go of the interpreter lock); the
        limiter waits for it before it turns anything down, and the few chunks it changed
        are then measured again (``loudness.Measurement.after``). Same values as measuring
        the finished mix, within ~1e-6 LU, for about the cost of the scan alone.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mix-loudness") as helper:
            measuring = helper.submit(measure, self.audio, self.sample_rate)
            limited = _limit(self.audio, self.sample_rate, ceiling_dbtp, in_place=True,
                             before_change=measuring.result)
            before = measuring.result()
        out, peak_db = limited.audio, limited.peak_dbtp
        self.audio = np.zeros((0, 0), dtype=np.float32)  # the bus hands its buffer over
        lufs = before.lufs
        if limited.changed:
            lufs = _measure_after(before, out, self.sample_rate, limited.gain, limited.spans).lufs
        return out, peak_db if peak_db is not None else true_peak_dbtp(out, self.sample_rate), lufs


def mix(
    stems: Sequence[PlacedStem],
    *,
    duration_s: float,
    sample_rate: int,
    ceiling_dbtp: float = -1.0,
) -> tuple[np.ndarray, float | None]:
    """Sum stems at their offsets into a ``duration_s`` mix; return (mix, true_peak_dbtp).

    Where overlapping events pile up past ``ceiling_dbtp`` (default -1 dBTP), the mix bus goes
    through the same look-ahead limiter, so only the piled-up moments are turned down; the
    stems themselves (and their files) are never changed. Mono stems are spread to both sides
    of a stereo mix.
    """
    arrays = [_check_audio(stem.audio, "stems") for stem in stems]
    channels = max((array.shape[0] for array in arrays), default=1)
    bus = MixBus(duration_s=duration_s, sample_rate=sample_rate, channels=channels)
    for stem, array in zip(stems, arrays):
        bus.add(array, start_s=stem.start_s, gain_db=stem.gain_db)
    return bus.finish(ceiling_dbtp=ceiling_dbtp)


def warm_up(sample_rate: int = 48000) -> None:
    """Import and prime everything a first render needs (scipy's filters, the K-weighting and
    interpolation tables) on a tiny signal. A server calls it in the background at start, so
    its first job does not spend ~0.6 s importing while holding the interpreter lock."""
    rng = np.random.default_rng(0)
    clip = (rng.standard_normal((2, sample_rate // 2)) * 0.5).astype(np.float32)
    normalise_stem(clip, sample_rate=sample_rate, target_lufs=-14.0, ceiling_dbtp=-1.0)
    mix([PlacedStem(clip, start_s=0.0)], duration_s=0.5, sample_rate=sample_rate)
