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


def sketch_bell(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
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
