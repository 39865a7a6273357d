"""DSP building blocks and the per-family sketch recipes of the procedural backend.

Every recipe has one call shape: ``recipe(rng, n_frames, sample_rate, traits)`` returns a
float64 array (channels, n_frames). Recipes only promise the shape and finite samples; the
generator sets the level afterwards. Frequencies go through ``nyq`` so one recipe works from
8 kHz to 192 kHz. Cost matters more than polish here: these are sketches a sound designer
hears in a second, so most texture comes from filtered noise and impulse trains convolved with
short kernels (one FFT convolution instead of thousands of Python-level grains).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import signal

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class Traits:
    """What a recipe may read from the description besides its family."""

    text: str  # lower-cased description
    intensity: float = 0.6  # 0 (faint) .. 1 (violent); from loudness words
    distant: bool = False

    def has(self, *stems: str) -> bool:
        """True if any stem starts a word of the text ("slam" matches "slams", "slammed")."""
        for stem in stems:
            pattern = r"\b" + r"\s+".join(re.escape(part) for part in stem.split())
            if re.search(pattern, self.text):
                return True
        return False


Recipe = Callable[[np.random.Generator, int, int, Traits], np.ndarray]

# ---------------------------------------------------------------------------------------------
# primitives


def nyq(freq_hz: float, sample_rate: int) -> float:
    """Clamp a filter or tone frequency into the band the sample rate can carry."""
    return float(min(max(freq_hz, 10.0), 0.45 * sample_rate))


def lowpass(x: np.ndarray, freq_hz: float, sample_rate: int, *, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, nyq(freq_hz, sample_rate), "lowpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x, axis=-1)


def highpass(x: np.ndarray, freq_hz: float, sample_rate: int, *, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, nyq(freq_hz, sample_rate), "highpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x, axis=-1)


def bandpass(
    x: np.ndarray, low_hz: float, high_hz: float, sample_rate: int, *, order: int = 2
) -> np.ndarray:
    low, high = nyq(low_hz, sample_rate), nyq(high_hz, sample_rate)
    if high <= low * 1.05:  # a low rate squeezed the band shut: keep a narrow one below it
        low = high / 1.5
    sos = signal.butter(order, [low, high], "bandpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x, axis=-1)


def unit_rms(x: np.ndarray) -> np.ndarray:
    flat = x.ravel()
    return x / (math.sqrt(float(np.dot(flat, flat)) / max(flat.size, 1)) + 1e-12)


def white(rng: np.random.Generator, n: int, channels: int = 1) -> np.ndarray:
    """Unit-variance white noise. Uniform, not Gaussian: three times cheaper to draw, equally
    flat in spectrum, and any filter after it makes it Gaussian anyway."""
    noise = rng.random((channels, n), dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= np.float32(math.sqrt(12.0))
    return noise


# Paul Kellet's three-pole 1/f approximation: pink enough for a sketch, one lfilter call.
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)


def pink(rng: np.random.Generator, n: int, channels: int = 1) -> np.ndarray:
    return unit_rms(signal.lfilter(_PINK_B, _PINK_A, white(rng, n, channels), axis=-1))


def brown(rng: np.random.Generator, n: int, sample_rate: int, channels: int = 1) -> np.ndarray:
    # A leaky integrator (pole at 20 Hz) rather than a pure one, so it never drifts off.
    pole = math.exp(-TWO_PI * 20.0 / sample_rate)
    return unit_rms(signal.lfilter([1.0], [1.0, -pole], white(rng, n, channels), axis=-1))


def smooth_noise(
    rng: np.random.Generator, n: int, sample_rate: int, rate_hz: float, channels: int = 1
) -> np.ndarray:
    """Random control points ``rate_hz`` apart, cosine-interpolated: a wandering LFO (~N(0,.7)).

    The curve is computed on a coarse grid (16+ points per control step) and linearly
    interpolated to full rate: a control signal needs no more, and it is 20x cheaper.
    """
    count = int(n * rate_hz / sample_rate) + 3
    points = rng.standard_normal((channels, count))
    hop = max(1, min(256, int(sample_rate / (rate_hz * 16.0))))
    coarse_at = np.arange(0, n + hop, hop)
    position = coarse_at * (rate_hz / sample_rate)
    index = position.astype(np.int64)
    weight = 0.5 - 0.5 * np.cos(math.pi * (position - index))
    coarse = points[:, index] * (1.0 - weight) + points[:, index + 1] * weight
    full = np.arange(n)
    return np.stack([np.interp(full, coarse_at, row) for row in coarse])


def narrow(x: np.ndarray, width: float) -> np.ndarray:
    """Pull independent channels toward their mid: slightly decorrelated, not two mono beds."""
    same, other = 0.5 + 0.5 * width, 0.5 - 0.5 * width  # mid + width * (x - mid), as one matmul
    return np.array([[same, other], [other, same]], dtype=x.dtype) @ x


def seconds(n: int, sample_rate: int) -> np.ndarray:
    return np.arange(n) / sample_rate


def hit_env(
    n: int, sample_rate: int, *, onset_s: float, attack_s: float, decay_s: float
) -> np.ndarray:
    """Zero before the onset, linear attack, exponential decay with time constant decay_s."""
    t = seconds(n, sample_rate) - onset_s
    rise = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
    fall = np.exp(-np.clip(t - attack_s, 0.0, None) / max(decay_s, 1e-4))
    return np.where(t < 0.0, 0.0, rise * fall)


def edge_fade(x: np.ndarray, sample_rate: int, *, fade_s: float = 0.02) -> np.ndarray:
    """Short raised-cosine fades at both ends so beds never start or stop with a click."""
    count = min(int(fade_s * sample_rate), x.shape[-1] // 2)
    if count > 1:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, count))
        x = x.copy()
        x[..., :count] *= ramp
        x[..., -count:] *= ramp[::-1]
    return x


def swell_env(n: int, sample_rate: int, *, attack_s: float, release_s: float) -> np.ndarray:
    """Slow sin^2 attack and release around a sustain: the pad / fallback shape."""
    t = seconds(n, sample_rate)
    total = n / sample_rate
    up = np.clip(t / max(attack_s, 1e-3), 0.0, 1.0)
    down = np.clip((total - t) / max(release_s, 1e-3), 0.0, 1.0)
    return np.sin(0.5 * math.pi * np.minimum(up, down)) ** 2


def poisson_train(
    rng: np.random.Generator,
    n: int,
    sample_rate: int,
    rate_hz: float,
    *,
    channels: int = 1,
    spread: float = 0.6,
) -> np.ndarray:
    """Impulses at Poisson times with log-normal heights; convolve with a kernel for grains."""
    out = np.zeros((channels, n))
    for channel in range(channels):
        count = int(rng.poisson(max(rate_hz, 0.0) * n / sample_rate))
        if count:
            np.add.at(out[channel], rng.integers(0, n, count), rng.lognormal(0.0, spread, count))
    return out


def place(n: int, sample_rate: int, times_s, gains) -> np.ndarray:
    """Impulses at given times (those outside [0, n) are dropped)."""
    out = np.zeros((1, n))
    for time_s, gain in zip(times_s, gains):
        index = int(round(time_s * sample_rate))
        if 0 <= index < n:
            out[0, index] += gain
    return out


def convolve(train: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each impulse of ``train`` (channels, n) replaced by ``kernel`` scaled by its height."""
    n = train.shape[-1]
    hits = np.count_nonzero(train)
    if hits * kernel.shape[-1] < 4 * n and hits < 4000:
        # Sparse trains: adding the kernel at each impulse beats an FFT over the whole bed.
        out = np.zeros(train.shape)
        for channel, index in zip(*np.nonzero(train)):
            add_at(out[channel], kernel * train[channel, index], int(index))
        return out
    return signal.oaconvolve(train, kernel[None, :], axes=-1)[:, :n]


def resonate(train: np.ndarray, freq_hz: float, decay_s: float, sample_rate: int) -> np.ndarray:
    """``convolve(train, ping(...))`` for a non-gliding ping, as one two-pole IIR pass."""
    omega = TWO_PI * nyq(freq_hz, sample_rate) / sample_rate
    radius = math.exp(-1.0 / (decay_s * sample_rate))
    a = [1.0, -2.0 * radius * math.cos(omega), radius * radius]
    return signal.lfilter([0.0, math.sin(omega)], a, train, axis=-1)


def noise_grains(
    rng: np.random.Generator, train: np.ndarray, decay_s: float, sample_rate: int
) -> np.ndarray:
    """Each impulse starts an exponentially decaying noise burst (clicks, splats, claps).

    The decay envelope is one one-pole pass over the train, so the cost does not grow with
    the number of grains.
    """
    pole = math.exp(-1.0 / (decay_s * sample_rate))
    envelope = signal.lfilter([1.0], [1.0, -pole], train, axis=-1)
    return envelope * white(rng, train.shape[-1], train.shape[0])


def ping(
    sample_rate: int, freq_hz: float, decay_s: float, *, glide: float = 0.0, length_s: float = 0.0
) -> np.ndarray:
    """Exponentially damped sine; ``glide`` bends the pitch by that fraction over the kernel."""
    count = int(sample_rate * (length_s or 6.0 * decay_s)) + 1
    t = seconds(count, sample_rate)
    freq = nyq(freq_hz, sample_rate) * (1.0 + glide * t / max(t[-1], 1e-9))
    freq = np.minimum(freq, 0.45 * sample_rate)
    return np.sin(TWO_PI * np.cumsum(freq) / sample_rate) * np.exp(-t / decay_s)


def noise_burst(
    rng: np.random.Generator,
    sample_rate: int,
    decay_s: float,
    *,
    low_hz: float = 0.0,
    high_hz: float = 0.0,
) -> np.ndarray:
    """A decaying noise kernel, optionally band-limited (clicks, thumps, blasts)."""
    count = int(sample_rate * 6.0 * decay_s) + 1
    burst = white(rng, count)
    if low_hz and high_hz:
        burst = bandpass(burst, low_hz, high_hz, sample_rate)
    elif high_hz:
        burst = lowpass(burst, high_hz, sample_rate)
    elif low_hz:
        burst = highpass(burst, low_hz, sample_rate)
    return burst[0] * np.exp(-seconds(count, sample_rate) / decay_s)


def cycles(freq_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Running phase in cycles of a (possibly time-varying) frequency."""
    return np.cumsum(np.minimum(freq_hz, 0.45 * sample_rate)) / sample_rate


def buzz(phase_cycles: np.ndarray, ratio: float) -> np.ndarray:
    """All harmonics with amplitudes ratio**k in closed form (one cosine per sample); peak 1."""
    c = np.cos(TWO_PI * phase_cycles)
    y = (ratio * c - ratio * ratio) / (1.0 - 2.0 * ratio * c + ratio * ratio)
    return y * (1.0 - ratio) / ratio


def odd_tone(phase_cycles: np.ndarray, top_hz: float, sample_rate: int) -> np.ndarray:
    """Square-ish tone from odd harmonics that stay below Nyquist (beeps, sirens, horns)."""
    out = np.zeros_like(phase_cycles)
    for k in (1, 3, 5, 7):
        if k * top_hz < 0.45 * sample_rate:
            out += np.sin(TWO_PI * k * phase_cycles) / k
    return out


def swept_resonator(
    x: np.ndarray, center_hz: np.ndarray, q: float, sample_rate: int, *, block: int = 256
) -> np.ndarray:
    """Two-pole resonator whose centre follows ``center_hz`` (updated per block, state kept)."""
    out = np.empty_like(x)
    state = np.zeros(2)
    for start in range(0, x.shape[-1], block):
        stop = min(start + block, x.shape[-1])
        freq = nyq(float(center_hz[(start + stop) // 2]), sample_rate)
        radius = math.exp(-math.pi * freq / (q * sample_rate))
        a = [1.0, -2.0 * radius * math.cos(TWO_PI * freq / sample_rate), radius * radius]
        out[start:stop], state = signal.lfilter([1.0 - radius], a, x[start:stop], zi=state)
    return out


def contour(n: int, points: list[tuple[float, float]]) -> np.ndarray:
    """Piecewise-linear curve through (fraction of n, value) points."""
    xs, ys = zip(*points)
    return np.interp(np.linspace(0.0, 1.0, n), xs, ys)


def mix(*parts: tuple[np.ndarray, float]) -> np.ndarray:
    """Sum parts after scaling each to unit RMS times its weight (weights read as balance)."""
    return sum(unit_rms(part) * weight for part, weight in parts)


def add_at(out: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Overlap-add ``sound`` (1-D) into ``out`` (1-D) at ``start``, clipped to the buffer."""
    if start >= out.shape[-1]:
        return
    stop = min(out.shape[-1], start + sound.shape[-1])
    out[start:stop] += sound[: stop - start]


def gate(n: int, sample_rate: int, spans, *, ramp_s: float = 0.004) -> np.ndarray:
    """1 inside each (start_s, length_s) span, 0 elsewhere, with short linear ramps."""
    out = np.zeros(n)
    ramp = max(int(ramp_s * sample_rate), 1)
    for start_s, length_s in spans:
        start, count = int(start_s * sample_rate), int(length_s * sample_rate)
        if start >= n or count <= 0:
            continue
        shape = np.ones(count)
        edge = min(ramp, count // 2)
        if edge:
            shape[:edge] = np.linspace(0.0, 1.0, edge)
            shape[-edge:] = np.linspace(1.0, 0.0, edge)
        stop = min(n, start + count)
        out[start:stop] = np.maximum(out[start:stop], shape[: stop - start])
    return out


def saw(phase_cycles: np.ndarray, step: float) -> np.ndarray:
    """Sawtooth with polyBLEP edges (step = freq / rate), so pads do not alias into hiss."""
    p = np.mod(phase_cycles, 1.0)
    y = 2.0 * p - 1.0
    low = p < step
    x = p[low] / step
    y[low] -= x + x - x * x - 1.0
    high = p > 1.0 - step
    x = (p[high] - 1.0) / step
    y[high] -= x * x + x + x + 1.0
    return y


def pad_to(sound: np.ndarray, count: int) -> np.ndarray:
    return np.pad(sound, (0, max(count - sound.shape[-1], 0)))[:count]


def stack(*sounds: tuple[np.ndarray, float]) -> np.ndarray:
    """Sum 1-D kernels of different lengths, each scaled to peak 1 times its weight."""
    count = max(sound.shape[-1] for sound, _ in sounds)
    return sum(pad_to(s / (np.max(np.abs(s)) + 1e-12), count) * w for s, w in sounds)


# ---------------------------------------------------------------------------------------------
# beds (stereo)


def rain(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    heavy = tr.intensity
    noise = narrow(pink(rng, n, 2), 0.5)
    hiss = highpass(noise, 600, sr)
    drops = np.zeros((2, n))
    for _ in range(3):  # droplet pitches, each its own train; short decays keep them unpitched
        train = poisson_train(rng, n, sr, 60 + 600 * heavy, channels=2)
        drops += resonate(train, rng.uniform(1500, 6000), rng.uniform(0.0008, 0.002), sr)
    splats = highpass(noise_grains(
        rng, poisson_train(rng, n, sr, 40 + 200 * heavy, channels=2, spread=0.9), 0.003, sr,
    ), 1500, sr)
    body = bandpass(noise, 150, 900, sr)  # the same air, its low band: roofs and ground
    sway = 1.0 + 0.2 * smooth_noise(rng, n, sr, 0.4)
    # Light rain is separate drops on quiet air; heavy rain merges into a roar of hiss.
    out = mix((hiss, 0.15 + 0.85 * heavy), (drops, 0.6), (splats, 0.35), (body, 0.25)) * sway
    return edge_fade(out, sr)


def wind(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    strong = tr.intensity
    source = narrow(white(rng, n, 2), 0.45)
    out = np.zeros((2, n))
    # Three bands whose gusts rise and fall independently: the ear hears one moving band-pass.
    for centre in (180.0, 420.0, 900.0):
        centre *= 1.0 + 0.6 * strong
        band = unit_rms(bandpass(source, centre * 0.6, centre * 1.5, sr))
        gust = 0.6 + smooth_noise(rng, n, sr, rng.uniform(0.1, 0.35))
        gust = np.clip(gust + 0.25 * smooth_noise(rng, n, sr, 0.5, 2), 0.0, None) ** 2
        out += band * gust
    if strong > 0.75 or tr.has("howl", "whistl", "storm", "gale", "gust", "blizzard"):
        centre = rng.uniform(600, 1200)
        whistle = unit_rms(bandpass(source, centre * 0.97, centre * 1.03, sr))
        out += 0.5 * whistle * np.clip(smooth_noise(rng, n, sr, 0.3), 0.0, None) ** 2
    rumble = unit_rms(lowpass(brown(rng, n, sr, 2), 90, sr))
    return edge_fade(out + 0.3 * rumble, sr)


def _bubbles(rng: np.random.Generator, n: int, sr: int, rate_hz: float, low_hz: float,
             high_hz: float) -> np.ndarray:
    out = np.zeros((2, n))
    for _ in range(3):  # rising pings: a bubble's resonance climbs as it nears the surface
        kernel = ping(sr, rng.uniform(low_hz, high_hz), rng.uniform(0.006, 0.02),
                      glide=rng.uniform(0.3, 1.0))
        out += convolve(poisson_train(rng, n, sr, rate_hz / 3, channels=2, spread=0.7), kernel)
    return out


def water(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    if tr.has("ocean", "sea", "wave", "surf", "shore", "beach", "tide"):
        return _waves(rng, n, sr, tr)
    if tr.has("drip", "drop", "leak"):
        return _drips(rng, n, sr, tr)
    bubbles = _bubbles(rng, n, sr, 120 + 500 * tr.intensity, 250, 1600)
    gurgle = narrow(lowpass(pink(rng, n, 2), 700, sr), 0.5)
    gurgle *= np.clip(1.0 + 0.5 * smooth_noise(rng, n, sr, 3.0, 2), 0.0, None)
    hiss = narrow(highpass(white(rng, n, 2), 2500, sr), 0.5)
    out = mix((bubbles, 0.7), (gurgle, 0.5), (hiss, 0.15 + 0.2 * tr.intensity))
    return edge_fade(out, sr)


def _waves(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    period = rng.uniform(5.0, 8.0)
    env = np.zeros(n)
    start = -rng.uniform(0.0, period)
    while start < total:
        env += rng.uniform(0.6, 1.0) * hit_env(
            n, sr, onset_s=start, attack_s=0.4 * period, decay_s=0.25 * period)
        start += period * rng.uniform(0.8, 1.2)
    env /= np.max(env) + 1e-12
    low = unit_rms(narrow(lowpass(pink(rng, n, 2), 500, sr), 0.5))
    high = unit_rms(narrow(highpass(white(rng, n, 2), 1200, sr), 0.5))
    return edge_fade(low * (0.2 + env) + 0.6 * high * env**2, sr)


def _drips(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    out = np.zeros((2, n))
    t = rng.uniform(0.02, 0.3)
    while t < total:
        drip = ping(sr, rng.uniform(900, 2600), 0.04, glide=0.6)
        pan = rng.uniform(0.3, 0.7)
        for channel, gain in enumerate((math.sqrt(1 - pan), math.sqrt(pan))):
            add_at(out[channel], drip * gain * rng.uniform(0.5, 1.0), int(t * sr))
        t += rng.exponential(1.0 / (1.0 + 2.5 * tr.intensity)) + 0.05
    bed = _bubbles(rng, n, sr, 20, 300, 900)
    return edge_fade(mix((out, 1.0), (bed, 0.15)), sr)


def fire(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    roar = tr.intensity
    rumble = narrow(lowpass(brown(rng, n, sr, 2), 200, sr), 0.5)
    rumble *= 1.0 + 0.35 * smooth_noise(rng, n, sr, 1.5)
    hiss = narrow(bandpass(white(rng, n, 2), 1500, 6000, sr), 0.6)
    hiss *= np.clip(1.0 + 0.8 * smooth_noise(rng, n, sr, 4.0, 2), 0.0, None)
    # Crackles come in clusters (a resin pocket bursting): centres convolved with a sparse
    # random pulse pattern, then with the click.
    cluster = np.zeros(int(0.08 * sr) + 1)
    np.add.at(cluster, rng.integers(0, cluster.size, 8), rng.lognormal(0.0, 0.7, 8))
    centres = poisson_train(rng, n, sr, 2 + 6 * roar, channels=2)
    pulses = convolve(centres, cluster)
    pulses += poisson_train(rng, n, sr, 10 + 30 * roar, channels=2, spread=1.0)
    crackle = highpass(noise_grains(rng, pulses, 0.0007, sr), 1200, sr)
    pops = resonate(poisson_train(rng, n, sr, 1 + 2 * roar, channels=2), rng.uniform(150, 400),
                    0.015, sr)
    bed = mix((rumble, 0.6 + 0.4 * roar), (hiss, 0.2), (pops, 0.3))
    # Crackle is set by its peak, not its RMS: a few sparse snaps would otherwise dwarf the
    # bed and leave no headroom when the stem is normalised to its loudness target.
    crackle = np.tanh(crackle / (4.0 * math.sqrt(float(np.mean(crackle**2))) + 1e-12))
    out = bed + (3.0 + 2.0 * roar) * crackle
    return edge_fade(out, sr)


_VOWELS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (570, 840))  # a i u e o (F1, F2)


def crowd(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    if tr.has("applau", "clap", "ovation"):
        return _applause(rng, n, sr, tr)
    voices = int(4 + 16 * tr.intensity)
    if tr.has("large", "stadium", "busy", "packed", "huge", "many", "cheer", "crowd", "market"):
        voices += 8
    elif tr.has("few", "couple", "two people", "pair"):
        voices = 3
    # Syllables are summed per vowel, so each vowel's formant filters run once per bed.
    excitation = np.zeros((len(_VOWELS), 2, n), dtype=np.float32)
    for _ in range(voices):
        _babble_voice(rng, excitation, sr)
    out = np.zeros((2, n))
    for vowel, (f1, f2) in enumerate(_VOWELS):
        source = excitation[vowel].astype(np.float64)
        out += bandpass(source, f1 * 0.8, f1 * 1.25, sr)
        out += 0.6 * bandpass(source, f2 * 0.85, f2 * 1.15, sr)
    out = highpass(out, 120, sr)
    room = narrow(bandpass(pink(rng, n, 2), 200, 1500, sr), 0.6)
    return edge_fade(mix((out, 1.0), (room, 0.3)), sr)


def _babble_voice(rng: np.random.Generator, excitation: np.ndarray, sr: int) -> None:
    n = excitation.shape[-1]
    total = n / sr
    f0 = rng.uniform(95, 140) if rng.random() < 0.5 else rng.uniform(170, 250)
    pan = rng.uniform(0.2, 0.8)
    gains = (math.sqrt(1.0 - pan) * rng.uniform(0.4, 1.0), math.sqrt(pan) * rng.uniform(0.4, 1.0))
    t = rng.uniform(-1.0, 1.0)
    while t < total:
        spurt_end = t + rng.uniform(0.8, 3.0)  # talk spurts separated by pauses
        while t < min(spurt_end, total):
            length_s = rng.uniform(0.12, 0.28)
            start, count = int(t * sr), int(length_s * sr)
            if start >= 0 and count > 4:
                tt = np.arange(count) / sr
                glide = 1.0 + rng.uniform(-0.15, 0.1) * tt / length_s  # syllable intonation
                freq = f0 * rng.uniform(0.88, 1.12) * glide
                source = 2.0 * np.mod(np.cumsum(freq) / sr + rng.random(), 1.0) - 1.0
                source *= np.hanning(count) * rng.uniform(0.5, 1.0)
                vowel = rng.integers(len(_VOWELS))
                stop = min(n, start + count)
                for channel, gain in enumerate(gains):
                    excitation[vowel, channel, start:stop] += gain * source[: stop - start]
            t += length_s * rng.uniform(0.9, 1.2)
        t += rng.uniform(0.3, 1.5)


def _applause(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    people = 10 + 40 * tr.intensity
    out = np.zeros((2, n))
    for _ in range(4):  # hands differ: four clap colours
        kernel = noise_burst(rng, sr, rng.uniform(0.004, 0.009), low_hz=rng.uniform(700, 1200),
                             high_hz=rng.uniform(2000, 4000))
        out += convolve(poisson_train(rng, n, sr, people * 3.5 / 4, channels=2, spread=0.4), kernel)
    total = n / sr
    env = swell_env(n, sr, attack_s=min(0.15 * total, 1.0), release_s=min(0.3 * total, 2.0))
    return edge_fade(out * env, sr)


def pad(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    if tr.has("drone", "hum"):
        intervals = (0, 7, 12, 19)
    elif tr.has("dark", "tense", "ominous", "horror", "sad", "eerie", "sinister", "scary",
                "creepy", "suspens", "melanchol", "minor"):
        intervals = (0, 3, 7, 10, 15)
    elif tr.has("bright", "happy", "hopeful", "uplift", "warm", "joy", "major"):
        intervals = (0, 4, 7, 11, 14)
    else:
        intervals = (0, 7, 12, 16)
    root = float(rng.choice([98.0, 110.0, 116.5, 130.8, 146.8]))
    t = seconds(n, sr)
    out = np.zeros((2, n))
    for semitones in intervals:
        freq = root * 2.0 ** (semitones / 12.0)
        detuned = freq * 2.0 ** (rng.uniform(-6, 6) / 1200.0)
        out += saw(detuned * t + rng.random(), detuned / sr)  # the voice both sides share
        for channel in range(2):  # plus one detuned voice per side: wide, never two monos
            detuned = freq * 2.0 ** (rng.uniform(-12, 12) / 1200.0)
            out[channel] += 0.6 * saw(detuned * t + rng.random(), detuned / sr)
    sweep = 0.5 + 0.5 * np.tanh(smooth_noise(rng, n, sr, 0.15))
    cutoff = 500 if intervals[1] == 3 else 900
    out = lowpass(out, cutoff, sr) * (1.0 - sweep) + lowpass(out, 2.2 * cutoff, sr) * sweep
    total = n / sr
    env = swell_env(n, sr, attack_s=min(max(0.3 * total, 0.02), 4.0),
                    release_s=min(max(0.25 * total, 0.02), 3.0))
    return out * env


# ---------------------------------------------------------------------------------------------
# point sources (mono). One-shots start near the top and decay; decays shrink with short events.


def _onset(total_s: float) -> float:
    return min(0.03, 0.05 * total_s)


def _fit(total_s: float, typical_s: float) -> float:
    """Scale for decay times so a one-shot's tail fits inside a short event."""
    return min(1.0, total_s / typical_s)


def thunder(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    onset = min(0.05 * total, 0.25)
    tail = float(np.clip(0.3 * total, 0.08, 4.0))
    attack = min(0.15, 0.1 * total + 0.005)
    env = hit_env(n, sr, onset_s=onset, attack_s=attack, decay_s=tail)
    for _ in range(int(rng.integers(2, 5))):  # secondary rolls as the bolt's far segments arrive
        later = onset + rng.uniform(0.1, 0.6) * min(total, 3.0 * tail)
        env += rng.uniform(0.3, 0.7) * hit_env(n, sr, onset_s=later, attack_s=attack,
                                                decay_s=0.6 * tail)
    rolling = np.clip(1.0 + 0.6 * smooth_noise(rng, n, sr, 6.0), 0.05, None)
    out = unit_rms(lowpass(brown(rng, n, sr), 220, sr, order=4)) * env * rolling
    if not tr.distant and (tr.intensity > 0.7 or tr.has("crack", "strike", "lightning", "close")):
        crack = noise_burst(rng, sr, 0.03 * _fit(total, 1.0), low_hz=400, high_hz=4000)
        out += 2.0 * convolve(place(n, sr, [onset], [1.0]), crack)
    return out


_ENGINES = {  # kind: (firing Hz at idle, harmonic ratio, noise weight, low-pass Hz, speed m/s)
    "jet": (60.0, 0.5, 1.6, 5000.0, 80.0),
    "prop": (85.0, 0.8, 0.6, 3000.0, 60.0),
    "bike": (55.0, 0.82, 0.45, 3500.0, 25.0),
    "truck": (24.0, 0.86, 0.6, 1500.0, 18.0),
    "car": (32.0, 0.78, 0.35, 2000.0, 22.0),
}


def _engine_kind(tr: Traits) -> str:
    if tr.has("jet"):
        return "jet"
    if tr.has("plane", "airplane", "aeroplane", "aircraft", "propeller", "helicopter", "drone"):
        return "prop"
    if tr.has("motorbike", "motorcycle", "scooter", "moped", "dirt bike", "chainsaw"):
        return "bike"
    if tr.has("truck", "lorry", "bus", "tractor", "diesel", "train", "boat"):
        return "truck"
    return "car"


def _rpm_curve(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    rpm = 1.0 + 0.04 * smooth_noise(rng, n, sr, 0.7)[0]
    if tr.has("rev"):
        total = n / sr
        for start in np.arange(rng.uniform(0.1, 0.4), total, rng.uniform(1.0, 1.6)):
            rpm += 1.3 * hit_env(n, sr, onset_s=start, attack_s=0.25, decay_s=0.35)
    elif tr.has("accelerat", "speed", "race", "racing", "zoom", "away", "drives off", "take off",
                "takes off", "pulls out"):
        rpm *= contour(n, [(0.0, 1.0), (0.45, 2.1), (0.5, 1.5), (1.0, 2.4)])  # one gear change
    elif tr.has("decelerat", "slow", "stop", "brake", "pulls up", "arriv"):
        rpm *= contour(n, [(0.0, 2.0), (0.8, 1.0), (1.0, 1.0)])
    return rpm


def _motion(n: int, sr: int, tr: Traits, speed: float) -> tuple[np.ndarray, np.ndarray]:
    """(pitch ratio, gain) for a pass-by (Doppler about the midpoint), a departure or approach."""
    total = n / sr
    t = seconds(n, sr)
    if tr.has("pass", "passing", "drives by", "flies by", "flyby", "fly over", "flies over",
              "overhead", "goes by", "whoosh"):
        closest = 6.0 if speed < 50 else 80.0
        x = speed * (t - 0.5 * total)
        distance = np.sqrt(x * x + closest * closest)
        radial = speed * x / distance  # > 0 once it recedes
        return 343.0 / (343.0 + radial), np.maximum(closest / distance, 0.03)
    if tr.has("away", "leav", "depart", "drives off", "takes off"):
        return np.ones(n), 1.0 / (1.0 + t * speed / 10.0)
    if tr.has("approach", "arriv", "pulls up", "coming", "toward"):
        return np.ones(n), 1.0 / (1.0 + (total - t) * speed / 10.0)
    return np.ones(n), np.ones(n)


def engine(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    kind = _engine_kind(tr)
    idle_hz, ratio, noise_weight, top_hz, speed = _ENGINES[kind]
    pitch, gain = _motion(n, sr, tr, speed)
    phase = cycles(idle_hz * _rpm_curve(rng, n, sr, tr) * pitch, sr)
    # Each firing differs a little in strength: that unevenness is what makes it an engine.
    per_cycle = 1.0 + 0.15 * rng.standard_normal(int(phase[-1]) + 2)
    tone = lowpass(buzz(phase, ratio) * per_cycle[phase.astype(np.int64)], top_hz, sr)
    pulse = (0.5 + 0.5 * np.cos(TWO_PI * phase)) ** 4
    noise = bandpass(white(rng, n), 150, top_hz, sr)[0] * (0.3 + pulse)
    out = mix((tone, 1.0), (noise, noise_weight))
    if tr.has("helicopter"):  # rotor blade slap
        out *= 0.4 + (0.5 + 0.5 * np.cos(TWO_PI * cycles(np.full(n, 5.5), sr))) ** 6
    if tr.has("start", "ignition") and n / sr > 1.2:
        out = _with_starter(rng, out, sr)
    return edge_fade((out * gain)[None, :], sr, fade_s=0.01)


def _with_starter(rng: np.random.Generator, running: np.ndarray, sr: int) -> np.ndarray:
    """A starter motor cranking for ~0.8 s, then the engine catching."""
    n = running.shape[-1]
    crank_s = 0.8
    crank = bandpass(white(rng, n), 300, 2500, sr)[0]
    crank *= (0.5 + 0.5 * np.cos(TWO_PI * 9.0 * seconds(n, sr))) ** 2
    crank_gate = gate(n, sr, [(0.0, crank_s + 0.05)], ramp_s=0.02)
    catch = np.clip((seconds(n, sr) - crank_s) / 0.15, 0.0, 1.0)
    return unit_rms(crank) * 0.6 * crank_gate + running * catch


def footsteps(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    pace_hz = 2.0
    if tr.has("run", "jog", "sprint", "rush", "gallop", "hurr"):
        pace_hz = 3.2
    elif tr.has("slow", "shuffl", "creep", "sneak", "tiptoe", "limp", "stroll"):
        pace_hz = 1.5
    total = n / sr
    times, gains = [], []
    t = min(rng.uniform(0.05, 0.15), 0.1 * total)
    while t < max(total - 0.03, 0.01):
        times.append(t)
        gains.append(rng.uniform(0.8, 1.0) * (1.0 if len(times) % 2 else 0.85))  # left/right
        t += (1.0 / pace_hz) * (1.0 + 0.03 * rng.standard_normal())
    heel_train = place(n, sr, times, gains)
    toe_delay = rng.uniform(0.05, 0.09) * 2.0 / pace_hz
    toe_train = place(n, sr, [time + toe_delay for time in times], [0.45 * g for g in gains])
    heel = [(noise_burst(rng, sr, 0.02, high_hz=400), 1.0),
            (ping(sr, rng.uniform(90, 140), 0.025), 0.8)]
    toe = [(noise_burst(rng, sr, 0.012, low_hz=300, high_hz=2500), 1.0)]
    if tr.has("concrete", "tile", "marble", "pavement", "sidewalk", "street", "hall", "heel",
              "stone", "corridor", "boots"):
        heel.append((noise_burst(rng, sr, 0.004, low_hz=2000), 0.7))
        toe.append((noise_burst(rng, sr, 0.003, low_hz=2500), 0.6))
    if tr.has("wood", "floor", "stair", "board", "deck", "creak"):
        heel.append((ping(sr, rng.uniform(180, 260), 0.05), 0.5))
    out = convolve(heel_train, stack(*heel)) + convolve(toe_train, stack(*toe))
    if tr.has("gravel", "snow", "leaves", "leaf", "grass", "dirt", "sand", "forest", "mud", "path"):
        crunch = noise_burst(rng, sr, 0.05, low_hz=800)
        crunch *= rng.random(crunch.size) < 0.08  # sparse grains: gravel shifting under the foot
        out += 0.8 * convolve(heel_train, crunch / (np.max(np.abs(crunch)) + 1e-12))
    return out


def door(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    out = np.zeros(n)
    at = _onset(total)
    fit = _fit(total, 1.5)
    slam = tr.has("slam", "bang", "kick")
    closing = slam or tr.has("clos", "shut")
    opening = tr.has("open") and not closing
    if opening:
        add_at(out, _latch(rng, sr), int(at * sr))
        at += 0.08
    if tr.has("creak", "squeak", "squeal", "groan") or (opening and total >= 1.0):
        length_s = float(np.clip(0.5 * total, 0.2, 1.8))
        if closing:  # leave room for the slam after the creak
            length_s = min(length_s, max(0.5 * total - at, 0.1))
        add_at(out, _creak(rng, sr, length_s), int(at * sr))
        at += length_s
    if closing or not opening:
        strength = 1.0 if slam else 0.55
        add_at(out, strength * _thump(rng, sr, fit * (1.0 if slam else 0.6)), int(at * sr))
        add_at(out, 0.4 * _latch(rng, sr), int((at + 0.01) * sr))
    return out[None, :]


def _thump(rng: np.random.Generator, sr: int, fit: float) -> np.ndarray:
    decay = 0.12 * fit + 0.01
    return stack(
        (noise_burst(rng, sr, decay * 0.6, high_hz=500), 1.0),
        (ping(sr, rng.uniform(60, 90), decay * 1.5), 0.9),
        (noise_burst(rng, sr, 0.004, low_hz=1500), 0.5),
        (np.concatenate([np.zeros(int(0.03 * sr)), ping(sr, rng.uniform(2000, 4000), 0.01)]), 0.15),
        (noise_burst(rng, sr, 0.25 * fit + 0.01, high_hz=1500), 0.12),  # the room answering
    )


def _latch(rng: np.random.Generator, sr: int) -> np.ndarray:
    first = ping(sr, rng.uniform(2500, 4000), 0.005)
    second = np.concatenate([np.zeros(int(rng.uniform(0.04, 0.08) * sr)),
                             ping(sr, rng.uniform(1800, 3000), 0.006)])
    return stack((first, 0.5), (second, 0.35))


def _creak(rng: np.random.Generator, sr: int, length_s: float) -> np.ndarray:
    """Stick-slip pulses (rate wandering 25..110 Hz) through a resonance that sweeps."""
    count = int(length_s * sr)
    rate = contour(count, [(0.0, rng.uniform(25, 45)), (0.5, rng.uniform(60, 110)),
                           (1.0, rng.uniform(30, 70))])
    rate *= 1.0 + 0.15 * smooth_noise(rng, count, sr, 20.0)[0]
    phase = np.cumsum(rate) / sr
    slips = np.diff(np.floor(phase), prepend=0.0) > 0
    train = slips * rng.lognormal(0.0, 0.4, count)
    centre = contour(count, [(0.0, rng.uniform(400, 600)), (1.0, rng.uniform(800, 1200))])
    # High Q: each slip rings until the next, so the creak is a tone, not a click train.
    body = swept_resonator(train, centre, 30.0, sr)
    body += 0.5 * swept_resonator(train, 2.4 * centre, 40.0, sr)
    body *= np.sin(math.pi * np.linspace(0.0, 1.0, count)) ** 0.5
    return 0.8 * body / (np.max(np.abs(body)) + 1e-12)


def impact(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    at = _onset(total)
    fit = _fit(total, 1.5)
    out = np.zeros(n)
    if tr.has("knock", "tap", "rap"):
        count = 2 if tr.has("double", "twice", "two") else (4 if tr.has("tap") else 3)
        spacing = rng.uniform(0.16, 0.24) * (0.6 if tr.has("tap") else 1.0)
        knock = stack((ping(sr, rng.uniform(180, 260), 0.03), 1.0),
                      (ping(sr, rng.uniform(700, 1000), 0.012), 0.5),
                      (noise_burst(rng, sr, 0.002, low_hz=1500), 0.4))
        for i in range(count):
            add_at(out, knock * rng.uniform(0.8, 1.0), int((at + i * spacing * fit) * sr))
        return out[None, :]
    thud = stack((noise_burst(rng, sr, 0.04 * fit + 0.005, high_hz=600), 1.0),
                 (ping(sr, rng.uniform(60, 120), 0.12 * fit + 0.01), 0.8),
                 (noise_burst(rng, sr, 0.003, low_hz=1500), 0.5))
    add_at(out, thud, int(at * sr))
    if tr.has("glass", "shatter", "smash", "break", "crash", "window"):
        add_at(out, 0.6 * _shards(rng, sr, fit), int(at * sr))
    if tr.has("metal", "clang", "clank", "anvil", "pipe", "pan", "sword", "crash"):
        add_at(out, 0.7 * _ring(rng, sr, rng.uniform(300, 700), fit), int(at * sr))
    return out[None, :]


def _shards(rng: np.random.Generator, sr: int, fit: float) -> np.ndarray:
    out = np.zeros(int(1.2 * fit * sr) + int(0.4 * sr))
    for _ in range(int(rng.integers(40, 120))):
        shard = ping(sr, rng.uniform(2500, 9000), rng.uniform(0.01, 0.06))
        add_at(out, shard * rng.uniform(0.2, 1.0), int(rng.exponential(0.15 * fit) * sr))
    return out


def _ring(rng: np.random.Generator, sr: int, freq_hz: float, fit: float) -> np.ndarray:
    partials = ((1.0, 0.6, 1.0), (2.76, 0.4, 0.6), (5.40, 0.25, 0.4), (8.93, 0.15, 0.25))
    return stack(*[(ping(sr, freq_hz * r, decay * fit + 0.01), w) for r, decay, w in partials])


def gunshot(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    fit = _fit(total, 1.0)
    parts = [(noise_burst(rng, sr, 0.03 * fit + 0.003, low_hz=200, high_hz=5000), 0.8),
             (ping(sr, rng.uniform(55, 80), 0.08 * fit + 0.01), 0.6),
             (noise_burst(rng, sr, (0.5 if tr.distant else 0.3) * fit + 0.01, high_hz=2500), 0.15)]
    if not tr.distant:
        parts.append((noise_burst(rng, sr, 0.0012, low_hz=1500), 1.0))  # the supersonic crack
    shot = stack(*parts)
    if tr.has("machine gun", "automatic", "burst", "rapid", "gunfire", "firefight", "volley"):
        times = []
        t = _onset(total)
        while t < 0.85 * total:
            times += [t + i / 11.0 for i in range(int(rng.integers(4, 10)))]
            t = times[-1] + rng.uniform(0.4, 1.2)
    elif tr.has("shots", "several", "multiple", "two", "three"):
        times = list(_onset(total) + np.cumsum([0.0] + list(rng.uniform(0.3, 0.9, 3)) ) * fit)
    else:
        times = [_onset(total)]
    times = [time for time in times if time < total]
    return convolve(place(n, sr, times, rng.uniform(0.8, 1.0, len(times))), shot)


def explosion(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    at = _onset(total)
    tail = float(np.clip(0.3 * total, 0.12, 2.5))
    env = hit_env(n, sr, onset_s=at, attack_s=0.015, decay_s=tail)
    rolling = np.clip(1.0 + 0.5 * smooth_noise(rng, n, sr, 8.0), 0.1, None)
    boom = unit_rms(lowpass(white(rng, n), 350, sr, order=4) + lowpass(brown(rng, n, sr), 120, sr))
    out = boom * env * rolling
    out += 1.5 * convolve(place(n, sr, [at], [1.0]), ping(sr, 45.0, 0.5 * tail, glide=-0.4))
    out += convolve(place(n, sr, [at], [1.0]),
                    noise_burst(rng, sr, 0.02, low_hz=300, high_hz=6000))
    debris_env = hit_env(n, sr, onset_s=at + 0.1, attack_s=0.05, decay_s=0.7 * tail)
    debris = poisson_train(rng, n, sr, 80, spread=1.0) * debris_env
    out += 0.15 * bandpass(noise_grains(rng, debris, 0.002, sr), 800, 4000, sr)
    return out


@dataclass(frozen=True)
class Call:
    """A voiced animal call and the rhythm it repeats in."""

    length_s: float
    pitch: tuple[tuple[float, float], ...]  # (fraction of the call, Hz) contour
    ratio: float = 0.6  # harmonic richness; 0 is a pure sine
    noise: float = 0.1
    band: tuple[float, float] = (300.0, 4000.0)
    vibrato_hz: float = 0.0
    vibrato: float = 0.0  # depth as a fraction of pitch
    tremolo_hz: float = 0.0
    tremolo: float = 0.0  # depth 0..1
    formant: tuple[tuple[float, float], ...] = ()  # optional swept resonance contour
    group: tuple[int, int] = (1, 1)  # calls per group (inclusive range)
    spacing_s: float = 0.4
    gap_s: tuple[float, float] = (1.0, 2.5)


_CALLS = {
    "bark": Call(0.16, ((0, 550), (0.3, 600), (1, 380)), 0.82, 0.25, (350, 3000),
                 group=(1, 3), spacing_s=0.32, gap_s=(0.7, 1.8)),
    "growl": Call(1.2, ((0, 110), (1, 95)), 0.9, 0.5, (80, 1200), tremolo_hz=28, tremolo=0.6,
                  gap_s=(0.3, 0.8)),
    "howl": Call(2.2, ((0, 420), (0.25, 700), (0.8, 650), (1, 450)), 0.3, 0.05, (250, 3000),
                 vibrato_hz=5, vibrato=0.01, gap_s=(1.5, 3.0)),
    "meow": Call(0.7, ((0, 480), (0.35, 760), (1, 520)), 0.6, 0.05, (400, 5000),
                 formant=((0, 700), (0.4, 1600), (1, 900)), gap_s=(1.0, 2.0)),
    "purr": Call(1.5, ((0, 26), (1, 24)), 0.95, 0.6, (40, 800), tremolo_hz=0.7, tremolo=0.5,
                 gap_s=(0.05, 0.2)),
    "hiss": Call(0.8, ((0, 100), (1, 100)), 0.0, 1.0, (2500, 9000), gap_s=(1.0, 2.0)),
    "moo": Call(1.4, ((0, 130), (0.2, 150), (1, 110)), 0.85, 0.1, (100, 1500),
                formant=((0, 300), (0.5, 800), (1, 400)), gap_s=(1.5, 3.0)),
    "roar": Call(1.3, ((0, 160), (0.3, 210), (1, 120)), 0.9, 0.6, (80, 2000),
                 tremolo_hz=30, tremolo=0.4, gap_s=(1.5, 3.0)),
    "neigh": Call(1.2, ((0, 900), (0.2, 1100), (1, 600)), 0.6, 0.2, (300, 4000),
                  vibrato_hz=11, vibrato=0.08, gap_s=(1.5, 3.0)),
    "bleat": Call(0.7, ((0, 420), (1, 380)), 0.7, 0.1, (300, 3500), tremolo_hz=7, tremolo=0.8,
                  gap_s=(1.0, 2.5)),
    "croak": Call(0.35, ((0, 280), (1, 260)), 0.9, 0.2, (150, 2000), tremolo_hz=35, tremolo=1.0,
                  group=(2, 4), spacing_s=0.5, gap_s=(0.8, 2.0)),
    "chirr": Call(0.25, ((0, 4500), (1, 4500)), 0.2, 0.05, (3000, 8000), tremolo_hz=40,
                  tremolo=1.0, group=(3, 6), spacing_s=0.3, gap_s=(0.3, 0.8)),
    "grunt": Call(0.18, ((0, 220), (1, 180)), 0.9, 0.4, (150, 2000), group=(1, 3),
                  spacing_s=0.25, gap_s=(0.6, 1.5)),
    "caw": Call(0.3, ((0, 700), (1, 550)), 0.7, 0.3, (500, 2500), group=(2, 4), spacing_s=0.5,
                gap_s=(1.5, 3.0)),
    "hoot": Call(0.35, ((0, 380), (0.5, 400), (1, 370)), 0.1, 0.02, (200, 1500), group=(1, 3),
                 spacing_s=0.6, gap_s=(1.5, 3.0)),
    "gull": Call(0.4, ((0, 1600), (1, 1000)), 0.5, 0.1, (600, 5000), group=(3, 5),
                 spacing_s=0.25, gap_s=(1.0, 2.5)),
    "quack": Call(0.15, ((0, 350), (1, 320)), 0.85, 0.2, (800, 2500), group=(2, 4),
                  spacing_s=0.22, gap_s=(0.8, 2.0)),
    "call": Call(0.6, ((0, 350), (0.4, 450), (1, 300)), 0.7, 0.15, (200, 3000), gap_s=(1.0, 2.5)),
}


def _one_call(rng: np.random.Generator, sr: int, call: Call, scale: float) -> np.ndarray:
    length_s = call.length_s * rng.uniform(0.85, 1.15) / math.sqrt(scale)
    count = max(int(length_s * sr), 8)
    t = seconds(count, sr)
    xs, ys = zip(*call.pitch)
    freq = np.interp(t / length_s, xs, ys) * scale * rng.uniform(0.93, 1.07)
    freq *= 1.0 + call.vibrato * np.sin(TWO_PI * call.vibrato_hz * t)
    phase = cycles(freq, sr)
    tone = buzz(phase, call.ratio) if call.ratio > 0 else np.sin(TWO_PI * phase)
    sound = mix((tone, 1.0), (white(rng, count)[0], call.noise))
    if call.formant:
        sound = swept_resonator(sound, contour(count, list(call.formant)) * scale, 4.0, sr)
    sound = bandpass(sound, call.band[0] * scale, call.band[1] * scale, sr)
    sound *= np.sin(math.pi * np.linspace(0.0, 1.0, count)) ** 0.6
    if call.tremolo:
        sound *= 1.0 - call.tremolo * (0.5 + 0.5 * np.sin(TWO_PI * call.tremolo_hz * t))
    return sound


def calls(rng: np.random.Generator, n: int, sr: int, call: Call, *, scale: float = 1.0,
          start_s: float | None = None) -> np.ndarray:
    """Groups of calls filling the length: the first near the top, then call.gap_s apart."""
    total = n / sr
    out = np.zeros(n)
    t = min(rng.uniform(0.02, 0.15), 0.1 * total) if start_s is None else start_s
    while t < total - 0.02:
        for _ in range(int(rng.integers(call.group[0], call.group[1] + 1))):
            add_at(out, _one_call(rng, sr, call, scale) * rng.uniform(0.7, 1.0), int(t * sr))
            t += call.spacing_s * rng.uniform(0.9, 1.1)
        t += call.length_s + rng.uniform(*call.gap_s)
    return out[None, :]


def bird(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    for stems, name in ((("crow", "raven", "caw"), "caw"), (("owl", "hoot"), "hoot"),
                        (("gull", "seagull"), "gull"), (("duck", "quack"), "quack")):
        if tr.has(*stems):
            return calls(rng, n, sr, _CALLS[name])
    singers = 3 if tr.has("birds", "flock", "chorus", "forest", "dawn", "songbirds") else 1
    out = np.zeros(n)
    for _ in range(singers):
        _song(rng, out, sr, rng.uniform(2500, 5000))
    return out[None, :]


def _song(rng: np.random.Generator, out: np.ndarray, sr: int, base_hz: float) -> None:
    """Phrases of 2-8 chirp glissandi (down, up or trill), a rest between phrases."""
    total = out.shape[-1] / sr
    t = min(rng.uniform(0.05, 0.4), 0.1 * total)
    while t < total - 0.05:
        style = int(rng.integers(3))
        for _ in range(int(rng.integers(2, 9))):
            length_s = rng.uniform(0.04, 0.12)
            count = int(length_s * sr)
            ends = {0: (1.3, 0.7), 1: (0.7, 1.3), 2: (1.0, 1.1)}[style]
            freq = contour(count, [(0, base_hz * ends[0]), (1, base_hz * ends[1])])
            if style == 2:
                freq *= 1.0 + 0.08 * np.sin(TWO_PI * 30.0 * seconds(count, sr))
            phase = cycles(freq, sr)
            chirp = np.sin(TWO_PI * phase)
            if 2.6 * base_hz < 0.45 * sr:  # a faint second harmonic where the rate allows
                chirp += 0.15 * np.sin(2 * TWO_PI * phase)
            chirp *= np.sin(math.pi * np.linspace(0.0, 1.0, count)) ** 2
            add_at(out, chirp * rng.uniform(0.5, 1.0), int(t * sr))
            t += length_s + rng.uniform(0.02, 0.08)
        t += rng.uniform(0.4, 2.0)


def dog(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    scale = 1.6 if tr.has("small", "puppy", "chihuahua", "yap", "little") else (
        0.7 if tr.has("big", "large", "huge", "mastiff", "guard") else 1.0)
    if tr.has("growl", "snarl"):
        return calls(rng, n, sr, _CALLS["growl"], scale=scale)
    if tr.has("howl", "wolf"):
        return calls(rng, n, sr, _CALLS["howl"], scale=scale)
    return calls(rng, n, sr, _CALLS["bark"], scale=scale)


def cat(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    name = "purr" if tr.has("purr") else ("hiss" if tr.has("hiss") else "meow")
    return calls(rng, n, sr, _CALLS[name], scale=1.4 if tr.has("kitten") else 1.0)


_ANIMAL_CALLS = (
    (("cow", "moo", "cattle", "bull"), "moo"), (("wolf", "howl", "coyote"), "howl"),
    (("lion", "roar", "tiger", "bear"), "roar"), (("horse", "neigh", "whinn"), "neigh"),
    (("sheep", "goat", "bleat", "lamb"), "bleat"), (("frog", "toad", "croak"), "croak"),
    (("cricket", "insect", "cicada", "grasshopper"), "chirr"), (("pig", "oink", "grunt"), "grunt"),
)


def animal(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    for stems, name in _ANIMAL_CALLS:
        if tr.has(*stems):
            return calls(rng, n, sr, _CALLS[name])
    return calls(rng, n, sr, _CALLS["call"])


_BELL = ((0.5, 0.45), (1.0, 1.0), (1.19, 0.55), (1.5, 0.35), (2.0, 0.7), (2.52, 0.3),
         (3.0, 0.22), (4.17, 0.15), (5.43, 0.1))  # (partial ratio, amplitude): minor-third bell


def _strike(rng: np.random.Generator, train: np.ndarray, sr: int, freq_hz: float,
            tau_s: float) -> np.ndarray:
    """Bell partials rung by each impulse of ``train``: one damped resonator per partial."""
    out = np.zeros(train.shape)
    for ratio, amp in _BELL:
        if freq_hz * ratio < 0.45 * sr:  # higher partials die faster, as in real bells
            out += amp * resonate(train, freq_hz * ratio, tau_s / ratio**0.6, sr)
    return out + 0.3 * convolve(train, noise_burst(rng, sr, 0.002, low_hz=2000))


def bell(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    if tr.has("church", "tower", "cathedral", "big", "large", "toll", "gong"):
        freq, tau, every = rng.uniform(220, 320), 2.5, 2.5
    elif tr.has("small", "ding", "bicycle", "hand", "doorbell", "service", "desk", "tiny", "chime",
                "triangle", "shop"):
        freq, tau, every = rng.uniform(900, 1500), 0.8, 1.2
    else:
        freq, tau, every = rng.uniform(450, 700), 1.5, 1.8
    tau = min(tau, max(0.35 * total, 0.03))
    at = _onset(total)
    if tr.has("wind chime", "chimes"):
        out = np.zeros((1, n))
        for _ in range(5):
            train = poisson_train(rng, n, sr, 0.5, spread=0.4)
            out += _strike(rng, train, sr, rng.uniform(1200, 3000), min(tau, 1.0))
        return out
    if tr.has("doorbell", "ding dong", "ding-dong"):
        second = at + 0.5 * _fit(total, 2.0)
        return (_strike(rng, place(n, sr, [at], [1.0]), sr, freq, tau)
                + _strike(rng, place(n, sr, [second], [0.9]), sr, 0.8 * freq, tau))
    repeat = tr.has("toll", "ringing", "rings", "peal", "chiming", "clang")
    times = np.arange(at, total, every) if repeat else np.array([at])
    return _strike(rng, place(n, sr, times, np.ones(len(times))), sr, freq, tau)


def _tone(n: int, sr: int, freq_hz: float) -> np.ndarray:
    return odd_tone(cycles(np.full(n, freq_hz), sr), freq_hz, sr)


def alarm(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    t = seconds(n, sr)
    at = _onset(total)
    ramp_s = 0.004  # crisp beeps
    if tr.has("siren", "police", "ambulance", "fire truck", "fire engine"):
        period_s = 0.35 if tr.has("yelp") else 3.5  # wail, or the fast yelp
        freq = 700.0 + 550.0 * (0.5 - 0.5 * np.cos(TWO_PI * t / period_s))
        sound = odd_tone(cycles(freq, sr), 1250.0, sr)
        spans, ramp_s = [(0.0, total)], 0.05
    elif tr.has("horn", "honk"):
        sound = _tone(n, sr, 392.0) + _tone(n, sr, 494.0)  # two horns a third apart
        spans = [(at + 0.6 * i, 0.4) for i in range(1 + int(rng.integers(0, 3)))]
    elif tr.has("phone", "telephone", "ringtone"):
        sound = np.sin(TWO_PI * 1000.0 * t) + np.sin(TWO_PI * min(1200.0, 0.45 * sr) * t)
        sound *= 0.5 + 0.5 * np.sign(np.sin(TWO_PI * 25.0 * t))  # the ringer's 25 Hz rattle
        spans = [(s, 0.4) for ring in np.arange(at, total, 3.0) for s in (ring, ring + 0.6)]
    elif tr.has("beep", "bleep", "pip", "blip", "notification", "monitor", "microwave",
                "scanner"):
        sound = np.sin(TWO_PI * min(float(rng.choice([880, 1000, 1200, 2000])), 0.4 * sr) * t)
        if tr.has("beeping", "beeps", "monitor", "repeat", "continu"):
            starts = np.arange(at, total, 1.0)
        else:
            starts = at + 0.25 * np.arange(int(rng.integers(1, 4)))
        spans = [(s, 0.12) for s in starts]
    else:  # alarm clock, smoke alarm, buzzer: four fast beeps then a rest, repeating
        sound = _tone(n, sr, min(rng.uniform(2500, 3200), 0.4 * sr))
        spans = [(s + 0.14 * i, 0.07) for s in np.arange(at, total, 1.06) for i in range(4)]
    return (sound * gate(n, sr, spans, ramp_s=ramp_s))[None, :]


def typing(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    total = n / sr
    click = noise_burst(rng, sr, 0.0015, low_hz=2000)
    if tr.has("tick", "clock", "metronome"):
        period = 0.5 if tr.has("metronome") else 1.0
        times = np.arange(_onset(total), total, period)
        tick = stack((click, 0.6), (ping(sr, 3500, 0.003), 1.0))
        tock = stack((click, 0.6), (ping(sr, 2600, 0.004), 1.0))
        return (convolve(place(n, sr, times[0::2], np.ones(len(times[0::2]))), tick)
                + convolve(place(n, sr, times[1::2], 0.8 * np.ones(len(times[1::2]))), tock))
    if tr.has("mouse") or not tr.has("typ", "keyboard", "keystroke", "key"):
        times = []
        t = _onset(total)
        while t < total:
            times += [t, t + 0.12] if rng.random() < 0.3 else [t]
            t += rng.exponential(1.0) + 0.2
        kernel = stack((click, 1.0), (ping(sr, rng.uniform(2000, 3500), 0.003), 0.6))
        return convolve(place(n, sr, times, np.ones(len(times))), kernel)
    return _keyboard(rng, n, sr, tr, click)


def _keyboard(
    rng: np.random.Generator, n: int, sr: int, tr: Traits, click: np.ndarray
) -> np.ndarray:
    """Words of 2-8 keystrokes (~8 keys/s), a space bar between words, sometimes a pause."""
    total = n / sr
    keys: list[float] = []
    spaces: list[float] = []
    t = rng.uniform(0.05, 0.2)
    while t < total:
        for _ in range(int(rng.integers(2, 9))):
            keys.append(t)
            t += rng.gamma(4.0, 1.0 / 32.0)
        spaces.append(t)
        t += rng.gamma(4.0, 1.0 / 28.0) + (rng.uniform(0.5, 1.5) if rng.random() < 0.15 else 0.0)
    out = np.zeros((1, n))
    typewriter = tr.has("typewriter")
    for variant in range(3):  # three key colours so a run of keys is not one sample repeated
        chosen = keys[variant::3]
        down = stack((click, 1.0), (ping(sr, rng.uniform(1500, 3000), 0.004), 0.5),
                     (ping(sr, rng.uniform(300, 500), 0.01), 0.4 + 0.4 * typewriter))
        out += convolve(place(n, sr, chosen, rng.uniform(0.6, 1.0, len(chosen))), down)
        released = [k + rng.uniform(0.07, 0.11) for k in chosen]
        out += 0.3 * convolve(place(n, sr, released, np.ones(len(released))), down)
    space = stack((click, 0.6), (ping(sr, rng.uniform(150, 250), 0.02), 1.0))
    out += 0.9 * convolve(place(n, sr, spaces, np.ones(len(spaces))), space)
    if typewriter:  # the carriage bell near each line end
        ends = keys[int(rng.integers(30, 45))::40]
        out += 0.5 * _strike(rng, place(n, sr, ends, np.ones(len(ends))), sr, 2200.0, 0.3)
    return out


def neutral(rng: np.random.Generator, n: int, sr: int, tr: Traits) -> np.ndarray:
    """Soft band-passed pink noise swelling in and out: a placeholder that reads as 'something'."""
    total = n / sr
    source = bandpass(pink(rng, n), 250, 3500, sr)
    env = swell_env(n, sr, attack_s=0.45 * total, release_s=0.45 * total)
    return source * env * np.clip(1.0 + 0.2 * smooth_noise(rng, n, sr, 1.0), 0.0, None)


RECIPES: dict[str, Recipe] = {
    "rain": rain, "wind": wind, "water": water, "fire": fire, "thunder": thunder,
    "engine": engine, "footsteps": footsteps, "door": door, "impact": impact,
    "gunshot": gunshot, "explosion": explosion, "crowd": crowd, "bird": bird, "dog": dog,
    "cat": cat, "animal": animal, "bell": bell, "alarm": alarm, "typing": typing, "pad": pad,
    "neutral": neutral,
}
