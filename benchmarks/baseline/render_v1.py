"""Frozen copy of engine/render.py as it was before the performance work (issue: CPU around the
generator), kept so tests can check new output against the old code path and
benchmarks/render.py can time both in the same run. Not used by the engine.

Stem signal processing: fit to the event length, fades, loudness, true peak, and the mixdown.

Pure functions on float32 arrays shaped (channels, frames) with the sample rate passed beside
them. Nothing here touches files; engine/stems.py writes what these functions return.

Loudness policy (why the numbers below are what they are):
- A stem is normalised to its event's target loudness (BS.1770 integrated, via pyloudnorm),
  then a look-ahead peak limiter holds its true peak at or below the stem ceiling
  (-1 dBTP by default; it aims 0.3 dB lower, see CEILING_MARGIN_DB). Limiting lowers
  loudness a little on transient-heavy sounds, so ``normalise_to_lufs`` measures again and
  applies make-up gain (then limits again) for a few rounds until the stem is within
  ``LOUDNESS_TOLERANCE_LU`` of its target: the ceiling wins over the target, and the target
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
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyloudnorm
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import firwin, resample_poly

from engine.errors import InvalidInputError

GATING_BLOCK_S = 0.4  # BS.1770 momentary block; shorter clips use the looped fallback
TRUE_PEAK_OVERSAMPLING = 4  # BS.1770-4 Annex 2 for 48 kHz material
LOUDNESS_TOLERANCE_LU = 0.1  # make-up rounds stop once this close to the target
MAKEUP_ROUNDS = 6
# The limiter aims this far under the ceiling: a 4x true-peak estimate can read a few tenths
# of a dB low on full-band material (8x reads up to ~0.2 dB higher on white noise), and
# 24-bit rounding must not push the written file over the ceiling either.
CEILING_MARGIN_DB = 0.3
LIMITER_LOOKAHEAD_MS = 5.0  # gain is fully down this long before a peak arrives
LIMITER_HOLD_MS = 20.0  # ... and stays down this long after it, so it does not flutter
DEFAULT_CROSSFADE_MS = 50.0
# Clips shorter than this many crossfades are not looped (a loop of a click is a buzz): padded.
MIN_LOOP_CROSSFADES = 4


def _check_audio(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[0] < 1:
        raise InvalidInputError(
            f"{name}: expected (channels, frames), got shape {array.shape}",
            field=name,
            value=array.shape,
        )
    return array


def _check_rate(sample_rate: int) -> None:
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise InvalidInputError(
            f"sample_rate={sample_rate!r}: must be a positive integer",
            field="sample_rate",
            value=sample_rate,
        )


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
) -> np.ndarray:
    """Raised-cosine fade-in (default 5 ms) and fade-out (default 50 ms); returns a new array.

    The short fade-in removes the click of a hard start without blunting attacks; the longer
    fade-out hides a trimmed tail. Each fade is shortened to half the clip if the clip is short.
    """
    array = _check_audio(audio).copy()
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
    """Integrated loudness in LUFS (BS.1770-4, pyloudnorm), or None for silence.

    Clips shorter than the 400 ms gating block are measured looped: tiled to at least 400 ms
    and measured with the same meter (see the module docstring).
    """
    array = _check_audio(audio)
    _check_rate(sample_rate)
    frames = array.shape[1]
    if frames == 0 or not np.any(array):
        return None
    block = int(math.ceil(GATING_BLOCK_S * sample_rate)) + 1
    if frames < block:
        array = np.tile(array, (1, int(math.ceil(block / frames))))
    meter = pyloudnorm.Meter(sample_rate)
    loudness = float(meter.integrated_loudness(array.T.astype(np.float64)))
    return loudness if math.isfinite(loudness) else None


# The 4x interpolation filter: scipy's resample_poly default design, made explicit so the
# bound below describes the filter actually used.
_TP_FILTER = firwin(
    20 * TRUE_PEAK_OVERSAMPLING + 1, 1.0 / TRUE_PEAK_OVERSAMPLING, window=("kaiser", 5.0)
).astype(np.float32)
# No interpolated value can exceed the sample peak by more than the largest L1 norm of one
# polyphase branch (about +7 dB): audio whose sample peak is that far under the ceiling can
# skip the oversampling pass entirely.
_TP_BOUND = TRUE_PEAK_OVERSAMPLING * max(
    float(np.abs(_TP_FILTER[phase::TRUE_PEAK_OVERSAMPLING]).sum())
    for phase in range(TRUE_PEAK_OVERSAMPLING)
)


# The 4x signal is made a block at a time: a 10-minute stereo bed at once would need several GB.
# Each block carries enough neighbouring input on both sides for the filter, so the result is
# the same as oversampling the whole clip.
TRUE_PEAK_BLOCK_FRAMES = 1 << 18  # about 5.5 s at 48 kHz
_TP_CONTEXT_FRAMES = len(_TP_FILTER) // TRUE_PEAK_OVERSAMPLING + 2


def _oversampled_abs(array: np.ndarray) -> np.ndarray:
    """|x| at 4x the rate, shaped (channels, frames, 4): per-frame intersample magnitudes."""
    # float32 is ample for a peak estimate and about a third faster than float64 here.
    up = resample_poly(array, TRUE_PEAK_OVERSAMPLING, 1, axis=1, window=_TP_FILTER)
    frames = array.shape[1]
    return np.abs(up[:, : frames * TRUE_PEAK_OVERSAMPLING]).reshape(
        array.shape[0], frames, TRUE_PEAK_OVERSAMPLING
    )


def _intersample_envelope(array: np.ndarray) -> np.ndarray:
    """Per frame, the largest 4x-oversampled magnitude over channels: shape (frames,)."""
    frames = array.shape[1]
    envelope = np.empty(frames, dtype=np.float32)
    for start in range(0, frames, TRUE_PEAK_BLOCK_FRAMES):
        stop = min(frames, start + TRUE_PEAK_BLOCK_FRAMES)
        low = max(0, start - _TP_CONTEXT_FRAMES)
        high = min(frames, stop + _TP_CONTEXT_FRAMES)
        magnitudes = _oversampled_abs(array[:, low:high])[:, start - low : stop - low]
        envelope[start:stop] = magnitudes.max(axis=(0, 2))
    return envelope


def true_peak_dbtp(audio: np.ndarray, sample_rate: int) -> float | None:
    """True peak in dBTP from 4x oversampling (scipy resample_poly); None for silence."""
    array = _check_audio(audio)
    _check_rate(sample_rate)
    if array.shape[1] == 0 or not np.any(array):
        return None
    peak = max(float(np.max(np.abs(array))), float(np.max(_intersample_envelope(array))))
    return 20.0 * math.log10(peak)


def limit_true_peak(
    audio: np.ndarray, *, sample_rate: int, ceiling_dbtp: float = -1.0
) -> np.ndarray:
    """Look-ahead limiter holding the true peak at or below ``ceiling_dbtp``.

    Gain only moves around the peaks that need it: the needed gain per frame (from the 4x
    oversampled peak) is held over a window of lookahead + hold, then smoothed with a moving
    average no wider than that window, so the smoothed gain is never above what any frame
    needs. A final static trim covers the residue of the oversampling estimate.
    """
    array = _check_audio(audio)
    _check_rate(sample_rate)
    return _limit(array, sample_rate, ceiling_dbtp)[0]


def _limit(
    array: np.ndarray, sample_rate: int, ceiling_dbtp: float
) -> tuple[np.ndarray, float | None]:
    """(limited audio, its true peak in dBTP when already known, else None)."""
    ceiling = db_to_gain(ceiling_dbtp - CEILING_MARGIN_DB)
    sample_peak = float(np.max(np.abs(array))) if array.size else 0.0
    if sample_peak * _TP_BOUND <= ceiling:
        return array.copy(), None
    envelope = _intersample_envelope(array)
    envelope = np.maximum(envelope, np.max(np.abs(array), axis=0))
    if float(envelope.max()) <= ceiling:
        return array.copy(), 20.0 * math.log10(float(envelope.max()))
    needed = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12))
    half = max(1, int(round((LIMITER_LOOKAHEAD_MS + LIMITER_HOLD_MS) * sample_rate / 2000.0)))
    held = minimum_filter1d(needed, size=2 * half + 1, mode="nearest")
    smooth = uniform_filter1d(held, size=half, mode="nearest")
    gain = np.minimum(smooth, needed)  # guards float error at window edges
    out = (array * gain[np.newaxis, :]).astype(np.float32)
    peak_db = true_peak_dbtp(out, sample_rate)
    if peak_db is not None and peak_db > ceiling_dbtp - CEILING_MARGIN_DB:
        trim_db = ceiling_dbtp - CEILING_MARGIN_DB - peak_db
        out *= db_to_gain(trim_db)
        peak_db += trim_db
    return out, peak_db


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
    array = _check_audio(audio)
    measured = measure_lufs(array, sample_rate)
    if measured is None:
        return array.copy(), 0.0, None
    gain_db = target_lufs - measured
    out = (array * db_to_gain(gain_db)).astype(np.float32)
    if ceiling_dbtp is None:
        return out, gain_db, measured
    for _ in range(MAKEUP_ROUNDS):
        out = limit_true_peak(out, sample_rate=sample_rate, ceiling_dbtp=ceiling_dbtp)
        now = measure_lufs(out, sample_rate)
        if now is None or abs(target_lufs - now) <= LOUDNESS_TOLERANCE_LU:
            break
        out = (out * db_to_gain(target_lufs - now)).astype(np.float32)
    else:
        out = limit_true_peak(out, sample_rate=sample_rate, ceiling_dbtp=ceiling_dbtp)
    return out, gain_db, measured


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
    _check_rate(sample_rate)
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise InvalidInputError(
            f"duration_s={duration_s!r}: must be > 0", field="duration_s", value=duration_s
        )
    frames = int(round(duration_s * sample_rate))
    arrays = [_check_audio(stem.audio, "stems") for stem in stems]
    channels = max((array.shape[0] for array in arrays), default=1)
    out = np.zeros((channels, frames), dtype=np.float32)
    for stem, array in zip(stems, arrays):
        offset = int(round(stem.start_s * sample_rate))
        if offset >= frames or offset < 0:
            continue
        piece = _to_channels(array, channels)[:, : frames - offset]
        out[:, offset : offset + piece.shape[1]] += piece * db_to_gain(stem.gain_db)
    out, peak_db = _limit(out, sample_rate, ceiling_dbtp)
    return out, peak_db if peak_db is not None else true_peak_dbtp(out, sample_rate)
