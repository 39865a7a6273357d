"""DSP building blocks of the procedural sketch backend: filters, noises, envelopes, tones.

Every function names its units (``freq_hz``, ``decay_s``, ``n_frames``, ``sample_rate`` in Hz)
and works from 8 kHz to 384 kHz: frequencies go through ``clamp_hz``. Cost matters more than
polish: most texture is filtered noise and impulse trains convolved with short kernels (one
FFT convolution or IIR pass instead of thousands of Python-level grains). Memory matters as
much: a long event's segment is a million samples, and on a busy machine faulting in fresh
pages costs as much as the arithmetic, so functions taking ``in_place`` work on a temporary
the caller hands over (the same samples, one segment-sized array fewer).
"""

from __future__ import annotations

import functools
import math
from typing import Iterable, NamedTuple, Sequence

import numpy as np
from scipy import signal as scipy_signal

try:  # scipy's own sosfilt loop, which filters its argument in place (private, so optional)
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_loop
except ImportError:  # pragma: no cover - a scipy that moved it: sosfilt's copy it is
    _sosfilt_loop = None


def _private_loop_agrees() -> bool:
    """Whether the private loop, called as we call it, gives sosfilt's samples: a scipy that
    changed its arguments or behaviour makes us fall back instead of failing mid-render."""
    if _sosfilt_loop is None:
        return False
    sos = scipy_signal.butter(2, 1000.0, "lowpass", fs=48_000, output="sos")
    probe = np.random.default_rng(0).standard_normal((2, 64))
    expected = scipy_signal.sosfilt(sos, probe, axis=-1)
    try:
        _sosfilt_loop(sos, probe, np.zeros((2, sos.shape[0], 2)))
    except Exception:  # noqa: BLE001 - any surprise from a private API means: do not use it
        return False
    return bool(np.array_equal(probe, expected))


if not _private_loop_agrees():  # pragma: no cover - depends on the installed scipy
    _sosfilt_loop = None

TWO_PI = 2.0 * math.pi
Rng = np.random.Generator


class Span(NamedTuple):
    """A stretch of time inside an event: where it starts and how long it lasts."""

    start_s: float
    length_s: float


class Knot(NamedTuple):
    """A point of a piecewise-linear contour: a fraction of the length and the value there."""

    at_fraction: float
    value: float


def clamp_hz(freq_hz: float, sample_rate: int) -> float:
    """Clamp a filter or tone frequency into the band the sample rate can carry."""
    return float(min(max(freq_hz, 10.0), 0.45 * sample_rate))


@functools.lru_cache(maxsize=512)
def butter_sos(order: int, freq_hz: float | tuple[float, float], btype: str,
               sample_rate: int) -> np.ndarray:
    """A Butterworth design as second-order sections, made once per (order, band, rate).

    Designing costs ~1 ms (more than filtering a short kernel), and a long bed asks for the
    same few designs in every segment. The array is shared: never write to it (it stays
    writeable because scipy's sosfilt takes a writeable buffer).
    """
    return scipy_signal.butter(order, freq_hz, btype, fs=sample_rate, output="sos")


def sosfilt(sos: np.ndarray, audio: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """``scipy.signal.sosfilt(sos, audio, axis=-1)``; with ``in_place`` the caller hands over
    ``audio`` (a temporary it owns) and, when it is a C-ordered 2-D float64 array, gets it
    back filtered instead of a filtered copy: the same samples, one segment-sized array fewer
    to allocate and fault in. Anything else is filtered into a new array as usual."""
    if (in_place and _sosfilt_loop is not None and audio.dtype == np.float64
            and audio.ndim in (1, 2) and audio.flags.c_contiguous and audio.flags.writeable
            and sos.dtype == np.float64 and sos.flags.c_contiguous):
        rows = audio.reshape(-1, audio.shape[-1])  # a view: (channels, frames)
        _sosfilt_loop(sos, rows, np.zeros((rows.shape[0], sos.shape[0], 2)))
        return audio
    return scipy_signal.sosfilt(sos, audio, axis=-1)


def lowpass(audio: np.ndarray, freq_hz: float, sample_rate: int, *, order: int = 2,
            in_place: bool = False) -> np.ndarray:
    sos = butter_sos(order, clamp_hz(freq_hz, sample_rate), "lowpass", sample_rate)
    return sosfilt(sos, audio, in_place=in_place)


def highpass(audio: np.ndarray, freq_hz: float, sample_rate: int, *, order: int = 2,
             in_place: bool = False) -> np.ndarray:
    sos = butter_sos(order, clamp_hz(freq_hz, sample_rate), "highpass", sample_rate)
    return sosfilt(sos, audio, in_place=in_place)


def bandpass(
    audio: np.ndarray, low_hz: float, high_hz: float, sample_rate: int, *, order: int = 2,
    in_place: bool = False,
) -> np.ndarray:
    """Butterworth band-pass. ``in_place`` (all three filters): see ``sosfilt``."""
    low_hz, high_hz = clamp_hz(low_hz, sample_rate), clamp_hz(high_hz, sample_rate)
    if high_hz <= low_hz * 1.05:  # a low rate squeezed the band shut: keep a narrow one below it
        low_hz = high_hz / 1.5
    sos = butter_sos(order, (low_hz, high_hz), "bandpass", sample_rate)
    return sosfilt(sos, audio, in_place=in_place)


def one_pole(audio: np.ndarray, gain: float, pole: float, *, in_place: bool = False
             ) -> np.ndarray:
    """``lfilter([gain], [1, -pole], audio)`` along the last axis, as one second-order section.

    For a first-order filter both compute y = gain * x + pole * y_prev in the same order, so
    the samples are the same; scipy's sosfilt loop is faster than lfilter's general one.
    """
    return sosfilt(np.array([[gain, 0.0, 0.0, 1.0, -pole, 0.0]]), audio, in_place=in_place)


def unit_rms(audio: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """``audio`` scaled to an RMS of 1; ``in_place`` divides the caller's own temporary."""
    if in_place and audio.dtype.kind == "f":
        audio /= _rms_divisor(audio)
        return audio
    return audio / _rms_divisor(audio)


def _rms_divisor(audio: np.ndarray) -> float:
    flat = audio.ravel()
    return math.sqrt(float(np.dot(flat, flat)) / max(flat.size, 1)) + 1e-12


def white_noise(rng: Rng, n_frames: int, channels: int = 1) -> np.ndarray:
    """Unit-variance white noise. Uniform, not Gaussian: three times cheaper to draw, equally
    flat in spectrum, and any filter after it makes it Gaussian anyway."""
    noise = rng.random((channels, n_frames), dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= np.float32(math.sqrt(12.0))
    return noise


# Paul Kellet's three-pole 1/f approximation: pink enough for a sketch, one lfilter call.
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)


def pink_noise(rng: Rng, n_frames: int, channels: int = 1) -> np.ndarray:
    return unit_rms(
        scipy_signal.lfilter(_PINK_B, _PINK_A, white_noise(rng, n_frames, channels), axis=-1),
        in_place=True,
    )


def brown_noise(rng: Rng, n_frames: int, sample_rate: int, channels: int = 1) -> np.ndarray:
    # A leaky integrator (pole at 20 Hz) rather than a pure one, so it never drifts off.
    pole = math.exp(-TWO_PI * 20.0 / sample_rate)
    return unit_rms(one_pole(white_noise(rng, n_frames, channels), 1.0, pole), in_place=True)


def smooth_noise(
    rng: Rng, n_frames: int, sample_rate: int, rate_hz: float, channels: int = 1
) -> np.ndarray:
    """Random control points ``rate_hz`` apart, cosine-interpolated: a wandering LFO (~N(0,.7)).

    The curve is computed on a coarse grid (16+ points per control step) and linearly
    interpolated to full rate: a control signal needs no more, and it is 20x cheaper.
    """
    count = int(n_frames * rate_hz / sample_rate) + 3
    points = rng.standard_normal((channels, count))
    hop = max(1, min(256, int(sample_rate / (rate_hz * 16.0))))
    coarse_at = np.arange(0, n_frames + hop, hop)
    # The full-rate array first, before the small coarse ones: the allocator then hands it
    # the block the last full-rate array freed instead of fresh pages.
    out = np.empty((channels, coarse_at.size - 1, hop))
    position = coarse_at * (rate_hz / sample_rate)
    index = position.astype(np.int64)
    weight = 0.5 - 0.5 * np.cos(math.pi * (position - index))
    coarse = points[:, index] * (1.0 - weight) + points[:, index + 1] * weight
    return _linear_upsample(coarse, out)[:, :n_frames]


def _linear_upsample(coarse: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.interp`` of (channels, points) knots ``hop`` frames apart at every frame, into
    ``out`` (channels, points - 1, hop), as one broadcast multiply-add instead of a search
    per frame: numpy computes each sample as slope * (frame - knot) + value, and so does
    this, so the samples are the same. Returns (channels, (points - 1) * hop)."""
    hop = out.shape[-1]
    slope = np.diff(coarse, axis=-1) / float(hop)
    np.multiply(slope[:, :, None], np.arange(hop, dtype=np.float64), out=out)
    out += coarse[:, :-1, None]
    return out.reshape(coarse.shape[0], -1)


def narrow_stereo(audio: np.ndarray, width: float) -> np.ndarray:
    """Pull independent channels toward their mid: slightly decorrelated, not two mono beds."""
    same, other = 0.5 + 0.5 * width, 0.5 - 0.5 * width  # mid + width * (audio - mid), as one matmul
    return np.array([[same, other], [other, same]], dtype=audio.dtype) @ audio


def time_axis_s(n_frames: int, sample_rate: int) -> np.ndarray:
    return np.arange(n_frames) / sample_rate


def hit_env(
    n_frames: int, sample_rate: int, *, onset_s: float, attack_s: float, decay_s: float
) -> np.ndarray:
    """Zero before the onset, linear attack, exponential decay with time constant decay_s.

    Computed only from the onset to where the decay reaches exactly 0.0 in float64 (750
    time constants); each sample the same as over the whole axis.
    """
    out = np.zeros(n_frames)
    start = min(max(math.floor(onset_s * sample_rate) - 1, 0), n_frames)
    stop_s = onset_s + attack_s + 750.0 * max(decay_s, 1e-4)
    stop = min(max(math.ceil(stop_s * sample_rate) + 1, start), n_frames)
    if stop == start:
        return out
    time_s = np.arange(start, stop) / sample_rate
    time_s -= onset_s
    rise = time_s / max(attack_s, 1e-4)
    np.clip(rise, 0.0, 1.0, out=rise)
    fall = time_s - attack_s
    np.clip(fall, 0.0, None, out=fall)
    np.negative(fall, out=fall)
    fall /= max(decay_s, 1e-4)
    np.exp(fall, out=fall)
    rise *= fall
    rise[time_s < 0.0] = 0.0
    out[start:stop] = rise
    return out


def edge_fade(audio: np.ndarray, sample_rate: int, *, fade_s: float = 0.02) -> np.ndarray:
    """Short raised-cosine fades at both ends so beds never start or stop with a click.

    In place: recipes hand over a mix they have just made and own, so a copy of a whole
    segment would buy nothing. Returned for chaining.
    """
    count = min(int(fade_s * sample_rate), audio.shape[-1] // 2)
    if count > 1:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, count))
        audio[..., :count] *= ramp
        audio[..., -count:] *= ramp[::-1]
    return audio


def swell_env(n_frames: int, sample_rate: int, *, attack_s: float, release_s: float) -> np.ndarray:
    """Slow sin^2 attack and release around a sustain: the pad / fallback shape."""
    time_s = time_axis_s(n_frames, sample_rate)
    total_s = n_frames / sample_rate
    up = np.clip(time_s / max(attack_s, 1e-3), 0.0, 1.0)
    down = np.clip((total_s - time_s) / max(release_s, 1e-3), 0.0, 1.0)
    return np.sin(0.5 * math.pi * np.minimum(up, down)) ** 2


def poisson_train(
    rng: Rng,
    n_frames: int,
    sample_rate: int,
    rate_hz: float,
    *,
    channels: int = 1,
    spread: float = 0.6,
) -> np.ndarray:
    """Impulses at Poisson times with log-normal heights; convolve with a kernel for grains."""
    out = np.zeros((channels, n_frames))
    for channel in range(channels):
        count = int(rng.poisson(max(rate_hz, 0.0) * n_frames / sample_rate))
        if count:
            np.add.at(
                out[channel], rng.integers(0, n_frames, count), rng.lognormal(0.0, spread, count)
            )
    return out


def impulses_at(
    n_frames: int, sample_rate: int, times_s: Iterable[float], gains: Iterable[float]
) -> np.ndarray:
    """Impulses at given times (those outside the event are dropped)."""
    out = np.zeros((1, n_frames))
    for time_s, gain in zip(times_s, gains):
        index = int(round(time_s * sample_rate))
        if 0 <= index < n_frames:
            out[0, index] += gain
    return out


def convolve_train(train: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each impulse of ``train`` (channels, frames) replaced by ``kernel`` scaled by its height."""
    n_frames = train.shape[-1]
    hits = np.count_nonzero(train)
    if hits * kernel.shape[-1] < 4 * n_frames and hits < 4000:
        # Sparse trains: adding the kernel at each impulse beats an FFT over the whole bed.
        out = np.zeros(train.shape)
        for channel, index in zip(*np.nonzero(train)):
            add_at(out[channel], kernel * train[channel, index], int(index))
        return out
    return scipy_signal.oaconvolve(train, kernel[None, :], axes=-1)[:, :n_frames]


def resonate(train: np.ndarray, freq_hz: float, decay_s: float, sample_rate: int) -> np.ndarray:
    """``convolve(train, ping(...))`` for a non-gliding ping, as one two-pole IIR pass."""
    omega = TWO_PI * clamp_hz(freq_hz, sample_rate) / sample_rate
    radius = math.exp(-1.0 / (decay_s * sample_rate))
    a = [1.0, -2.0 * radius * math.cos(omega), radius * radius]
    return scipy_signal.lfilter([0.0, math.sin(omega)], a, train, axis=-1)


def noise_grains(rng: Rng, train: np.ndarray, decay_s: float, sample_rate: int, *,
                 in_place: bool = False) -> np.ndarray:
    """Each impulse starts an exponentially decaying noise burst (clicks, splats, claps).

    The decay envelope is one one-pole pass over the train, so the cost does not grow with
    the number of grains. ``in_place``: the train is the caller's temporary, reused.
    """
    pole = math.exp(-1.0 / (decay_s * sample_rate))
    envelope = one_pole(train, 1.0, pole, in_place=in_place)
    envelope *= white_noise(rng, train.shape[-1], train.shape[0])
    return envelope


def ping(
    sample_rate: int, freq_hz: float, decay_s: float, *, glide: float = 0.0, length_s: float = 0.0
) -> np.ndarray:
    """Exponentially damped sine; ``glide`` bends the pitch by that fraction over the kernel."""
    count = int(sample_rate * (length_s or 6.0 * decay_s)) + 1
    time_s = time_axis_s(count, sample_rate)
    freq_hz = clamp_hz(freq_hz, sample_rate) * (1.0 + glide * time_s / max(time_s[-1], 1e-9))
    freq_hz = np.minimum(freq_hz, 0.45 * sample_rate)
    return np.sin(TWO_PI * np.cumsum(freq_hz) / sample_rate) * np.exp(-time_s / decay_s)


def noise_burst(
    rng: Rng,
    sample_rate: int,
    decay_s: float,
    *,
    low_hz: float = 0.0,
    high_hz: float = 0.0,
) -> np.ndarray:
    """A decaying noise kernel, optionally band-limited (clicks, thumps, blasts)."""
    count = int(sample_rate * 6.0 * decay_s) + 1
    burst = white_noise(rng, count)
    if low_hz and high_hz:
        burst = bandpass(burst, low_hz, high_hz, sample_rate)
    elif high_hz:
        burst = lowpass(burst, high_hz, sample_rate)
    elif low_hz:
        burst = highpass(burst, low_hz, sample_rate)
    return burst[0] * np.exp(-time_axis_s(count, sample_rate) / decay_s)


def running_cycles(freq_hz: np.ndarray, sample_rate: int, *, in_place: bool = False
                   ) -> np.ndarray:
    """Running phase in cycles of a (possibly time-varying) frequency; ``in_place`` turns
    the caller's own float64 frequency array into the phase."""
    if in_place and freq_hz.dtype == np.float64:
        np.minimum(freq_hz, 0.45 * sample_rate, out=freq_hz)
        np.cumsum(freq_hz, out=freq_hz)
        freq_hz /= sample_rate
        return freq_hz
    return np.cumsum(np.minimum(freq_hz, 0.45 * sample_rate)) / sample_rate


def buzz(phase_cycles: np.ndarray, ratio: float) -> np.ndarray:
    """All harmonics with amplitudes ratio**k in closed form (one cosine per sample); peak 1.

    y = (r c - r^2) / (1 - 2 r c + r^2) * (1 - r) / r, with c = cos(2 pi phase), evaluated in
    that order in two arrays.
    """
    c = np.multiply(phase_cycles, TWO_PI)
    np.cos(c, out=c)
    y = c * ratio
    y -= ratio * ratio
    c *= 2.0 * ratio
    np.subtract(1.0, c, out=c)
    c += ratio * ratio
    y /= c
    y *= 1.0 - ratio
    y /= ratio
    return y


def odd_tone(phase_cycles: np.ndarray, top_hz: float, sample_rate: int) -> np.ndarray:
    """Square-ish tone from odd harmonics that stay below Nyquist (beeps, sirens, horns)."""
    out = np.zeros_like(phase_cycles)
    for k in (1, 3, 5, 7):
        if k * top_hz < 0.45 * sample_rate:
            out += np.sin(TWO_PI * k * phase_cycles) / k
    return out


def swept_resonator(
    audio: np.ndarray,
    center_hz: np.ndarray,
    quality: float,
    sample_rate: int,
    *,
    block_frames: int = 256,
) -> np.ndarray:
    """Two-pole resonator whose centre follows ``center_hz`` (updated per block, state kept)."""
    out = np.empty_like(audio)
    state = np.zeros(2)
    for start in range(0, audio.shape[-1], block_frames):
        stop = min(start + block_frames, audio.shape[-1])
        freq_hz = clamp_hz(float(center_hz[(start + stop) // 2]), sample_rate)
        radius = math.exp(-math.pi * freq_hz / (quality * sample_rate))
        a = [1.0, -2.0 * radius * math.cos(TWO_PI * freq_hz / sample_rate), radius * radius]
        out[start:stop], state = scipy_signal.lfilter(
            [1.0 - radius], a, audio[start:stop], zi=state
        )
    return out


def contour(n_frames: int, knots: Sequence[tuple[float, float]]) -> np.ndarray:
    """Piecewise-linear curve through ``Knot``s (fraction of the length, value)."""
    xs, ys = zip(*knots)
    return np.interp(np.linspace(0.0, 1.0, n_frames), xs, ys)


def mix_balanced(*parts: tuple[np.ndarray, float], in_place: bool = False) -> np.ndarray:
    """Sum parts after scaling each to unit RMS times its weight (weights read as balance).

    The same samples as ``sum(unit_rms(part) * weight ...)`` with one new array for the sum;
    with ``in_place`` the parts are the caller's temporaries: each is scaled where it lies and
    the first one becomes the sum, so no new array at all.
    """
    out: np.ndarray | None = None
    for part, weight in parts:
        scaled = unit_rms(part, in_place=in_place)
        if np.result_type(scaled, weight) == scaled.dtype:
            scaled *= weight
        else:  # e.g. a float32 part and a numpy float64 weight: numpy promotes
            scaled = scaled * weight
        if out is None:
            out = scaled
        elif (out.dtype == np.result_type(out, scaled)
              and out.shape == np.broadcast_shapes(out.shape, scaled.shape)):
            out += scaled
        else:
            out = out + scaled
    assert out is not None, "mix_balanced needs at least one part"
    return out


def add_at(out: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Overlap-add ``sound`` (1-D) into ``out`` (1-D) at ``start``, clipped to the buffer."""
    if start >= out.shape[-1]:
        return
    stop = min(out.shape[-1], start + sound.shape[-1])
    out[start:stop] += sound[: stop - start]


def gate_spans(
    n_frames: int, sample_rate: int, spans: Iterable[tuple[float, float]], *, ramp_s: float = 0.004
) -> np.ndarray:
    """1 inside each ``Span``, 0 elsewhere, with short linear ramps."""
    out = np.zeros(n_frames)
    ramp_frames = max(int(ramp_s * sample_rate), 1)
    for start_s, length_s in spans:
        start, count = int(start_s * sample_rate), int(length_s * sample_rate)
        if start >= n_frames or count <= 0:
            continue
        ramped = np.ones(count)
        edge = min(ramp_frames, count // 2)
        if edge:
            ramped[:edge] = np.linspace(0.0, 1.0, edge)
            ramped[-edge:] = np.linspace(1.0, 0.0, edge)
        stop = min(n_frames, start + count)
        out[start:stop] = np.maximum(out[start:stop], ramped[: stop - start])
    return out


def saw_blep(phase_cycles: np.ndarray, step_cycles: float) -> np.ndarray:
    """Sawtooth with polyBLEP edges (step_cycles = freq_hz / sample_rate): pads without aliasing."""
    p = np.mod(phase_cycles, 1.0)
    y = 2.0 * p - 1.0
    low = p < step_cycles
    x = p[low] / step_cycles
    y[low] -= x + x - x * x - 1.0
    high = p > 1.0 - step_cycles
    x = (p[high] - 1.0) / step_cycles
    y[high] -= x * x + x + x + 1.0
    return y


def pad_to(sound: np.ndarray, count: int) -> np.ndarray:
    return np.pad(sound, (0, max(count - sound.shape[-1], 0)))[:count]


def stack_kernels(*sounds: tuple[np.ndarray, float]) -> np.ndarray:
    """Sum 1-D kernels of different lengths, each scaled to peak 1 times its weight."""
    count = max(sound.shape[-1] for sound, _ in sounds)
    return sum(pad_to(s / (np.max(np.abs(s)) + 1e-12), count) * w for s, w in sounds)


# One-shots start near the top and decay; decays shrink with short events.


def onset_for(total_s: float) -> float:
    return min(0.03, 0.05 * total_s)


def decay_scale_for(total_s: float, typical_s: float) -> float:
    """Scale for decay times so a one-shot's tail fits inside a short event."""
    return min(1.0, total_s / typical_s)
