"""Bell recipes (mono): church bells, hand bells, doorbells, chimes; the bell strike that
other recipes reuse.

Every recipe has one call shape, ``sketch_<family>(rng, n_frames, sample_rate, traits)``, and
returns a float64 array (channels, n_frames); the generator sets the level afterwards.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine.generators.procedural.primitives import (
    Rng,
    convolve_train,
    decay_scale_for,
    impulses_at,
    noise_burst,
    onset_for,
    poisson_train,
    resonate,
)
from engine.generators.procedural.text import Traits


class Partial(NamedTuple):
    ratio: float  # to the strike note
    amplitude: float


# A minor-third bell: hum, prime, tierce, quint, nominal and upper partials.
_BELL = tuple(Partial(ratio, amplitude) for ratio, amplitude in (
    (0.5, 0.45), (1.0, 1.0), (1.19, 0.55), (1.5, 0.35), (2.0, 0.7), (2.52, 0.3), (3.0, 0.22),
    (4.17, 0.15), (5.43, 0.1)))


def strike_bell(rng: Rng, train: np.ndarray, sample_rate: int, freq_hz: float,
            decay_s: float) -> np.ndarray:
    """Bell partials rung by each impulse of ``train``: one damped resonator per partial."""
    out = np.zeros(train.shape)
    for ratio, amplitude in _BELL:
        if freq_hz * ratio < 0.45 * sample_rate:  # higher partials die faster, as in real bells
            out += amplitude * resonate(train, freq_hz * ratio, decay_s / ratio**0.6, sample_rate)
    return out + 0.3 * convolve_train(train, noise_burst(rng, sample_rate, 0.002, low_hz=2000))


def _ring_at(rng: Rng, n_frames: int, sample_rate: int, times_s: list[float],
             gains: list[float], freq_hz: float, decay_s: float) -> np.ndarray:
    return strike_bell(rng, impulses_at(n_frames, sample_rate, times_s, gains), sample_rate,
                       freq_hz, decay_s)


def _small_struck(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray | None:
    """Glass, coins, dishes, a till: small struck things the lexicon files under bells."""
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    if traits.has("coin", "penny", "slot machine", "shell casing", "casings"):
        # A dropped coin bounces: each bounce sooner and softer than the last.
        times, gains, gap_s = [], [], 0.22
        time_s, gain = onset_s, 1.0
        while time_s < total_s - 0.05 and gain > 0.05 and len(times) < 12:
            times.append(time_s)
            gains.append(gain)
            time_s += gap_s
            gap_s *= 0.72
            gain *= 0.75
        freq_hz = rng.uniform(3500, 5000)
        # Bounces are short taps; only the final settle rings on.
        return (_ring_at(rng, n_frames, sample_rate, times[:-1], gains[:-1], freq_hz, 0.06)
                + _ring_at(rng, n_frames, sample_rate, times[-1:], gains[-1:], freq_hz, 0.35))
    if traits.has("dishes", "plates", "cutlery", "silverware", "clatter", "rattl", "forks",
                  "ice cube", "washing up"):
        out = np.zeros((1, n_frames))
        for _ in range(4):  # four objects knocking against each other at random
            train = poisson_train(rng, n_frames, sample_rate, 3.0, spread=0.6)
            out += strike_bell(rng, train, sample_rate, rng.uniform(1500, 4500),
                               rng.uniform(0.06, 0.2))
        return out
    if traits.has("clink", "glass", "toast", "cheers", "bottle"):
        freq_hz = rng.uniform(2200, 3200)
        times = [onset_s] if traits.single_hit or not traits.has("glasses") else [
            onset_s, onset_s + rng.uniform(0.03, 0.06)]  # two glasses touching
        return _ring_at(rng, n_frames, sample_rate, times, [1.0] * len(times), freq_hz, 0.3)
    if traits.has("cash register", "till", "ka-ching", "register"):
        ding = _ring_at(rng, n_frames, sample_rate, [onset_s + 0.12], [1.0],
                        rng.uniform(1800, 2300), 0.6)
        drawer = noise_burst(rng, sample_rate, 0.04, low_hz=300, high_hz=2500)
        return ding + 0.6 * convolve_train(
            impulses_at(n_frames, sample_rate, [onset_s], [1.0]), drawer)
    if traits.has("kitchen timer", "timer rings"):
        # A clockwork timer's bell: a striker hammering ~15 times a second for about a second.
        times = list(np.arange(onset_s, min(total_s - 0.1, onset_s + 1.2), 1.0 / 15.0))
        return _ring_at(rng, n_frames, sample_rate, times, [1.0] * len(times),
                        rng.uniform(2500, 3200), 0.15)
    return None


def sketch_bell(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    small = _small_struck(rng, n_frames, sample_rate, traits)
    if small is not None:
        return small
    if traits.has("church", "tower", "cathedral", "big", "large", "toll", "gong"):
        freq_hz, decay_s, period_s = rng.uniform(220, 320), 2.5, 2.5
    elif traits.has(
        "small",
        "ding",
        "bicycle",
        "hand",
        "doorbell",
        "service",
        "desk",
        "tiny",
        "chime",
        "triangle",
        "shop",
    ):
        freq_hz, decay_s, period_s = rng.uniform(900, 1500), 0.8, 1.2
    else:
        freq_hz, decay_s, period_s = rng.uniform(450, 700), 1.5, 1.8
    decay_s = min(decay_s, max(0.35 * total_s, 0.03))
    onset_s = onset_for(total_s)
    if traits.has("wind chime", "chimes"):
        out = np.zeros((1, n_frames))
        for _ in range(5):
            train = poisson_train(rng, n_frames, sample_rate, 0.5, spread=0.4)
            out += strike_bell(rng, train, sample_rate, rng.uniform(1200, 3000), min(decay_s, 1.0))
        return out
    if traits.has("doorbell", "ding dong", "ding-dong"):
        second = onset_s + 0.5 * decay_scale_for(total_s, 2.0)
        return strike_bell(
            rng, impulses_at(n_frames, sample_rate, [onset_s], [1.0]), sample_rate, freq_hz, decay_s
        ) + strike_bell(
            rng,
            impulses_at(n_frames, sample_rate, [second], [0.9]),
            sample_rate,
            0.8 * freq_hz,
            decay_s,
        )
    repeating = traits.has("toll", "ringing", "rings", "peal", "chiming", "clang")
    if repeating and not traits.single_hit:
        times = np.arange(onset_s, total_s, period_s)
    else:
        times = np.array([onset_s])
    return strike_bell(
        rng,
        impulses_at(n_frames, sample_rate, times, np.ones(len(times))),
        sample_rate,
        freq_hz,
        decay_s,
    )
