"""Tonal recipes (mono): bells and alarms.

Every recipe has one call shape, ``sketch_<family>(rng, n_frames, sample_rate, traits)``, and
returns a float64 array (channels, n_frames); the generator sets the level afterwards.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine.generators.procedural.primitives import (
    Rng,
    TWO_PI,
    convolve_train,
    decay_scale_for,
    gate_spans,
    impulses_at,
    noise_burst,
    odd_tone,
    onset_for,
    poisson_train,
    resonate,
    running_cycles,
    time_axis_s,
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
    times = np.arange(onset_s, total_s, period_s) if repeating else np.array([onset_s])
    return strike_bell(
        rng,
        impulses_at(n_frames, sample_rate, times, np.ones(len(times))),
        sample_rate,
        freq_hz,
        decay_s,
    )


def square_tone(n_frames: int, sample_rate: int, freq_hz: float) -> np.ndarray:
    return odd_tone(running_cycles(np.full(n_frames, freq_hz), sample_rate), freq_hz, sample_rate)


def sketch_alarm(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    time_s = time_axis_s(n_frames, sample_rate)
    onset_s = onset_for(total_s)
    ramp_s = 0.004  # crisp beeps
    if traits.has("siren", "police", "ambulance", "fire truck", "fire engine"):
        period_s = 0.35 if traits.has("yelp") else 3.5  # wail, or the fast yelp
        freq_hz = 700.0 + 550.0 * (0.5 - 0.5 * np.cos(TWO_PI * time_s / period_s))
        sound = odd_tone(running_cycles(freq_hz, sample_rate), 1250.0, sample_rate)
        spans, ramp_s = [(0.0, total_s)], 0.05
    elif traits.has("horn", "honk"):
        sound = square_tone(n_frames, sample_rate, 392.0) + square_tone(
            n_frames, sample_rate, 494.0
        )  # two horns a third apart
        spans = [(onset_s + 0.6 * i, 0.4) for i in range(1 + int(rng.integers(0, 3)))]
    elif traits.has("phone", "telephone", "ringtone"):
        sound = np.sin(TWO_PI * 1000.0 * time_s) + np.sin(
            TWO_PI * min(1200.0, 0.45 * sample_rate) * time_s
        )
        sound *= 0.5 + 0.5 * np.sign(np.sin(TWO_PI * 25.0 * time_s))  # the ringer's 25 Hz rattle
        spans = [(s, 0.4) for ring in np.arange(onset_s, total_s, 3.0) for s in (ring, ring + 0.6)]
    elif traits.has(
        "beep", "bleep", "pip", "blip", "notification", "monitor", "microwave", "scanner"
    ):
        sound = np.sin(
            TWO_PI * min(float(rng.choice([880, 1000, 1200, 2000])), 0.4 * sample_rate) * time_s
        )
        if traits.has("beeping", "beeps", "monitor", "repeat", "continu"):
            starts = np.arange(onset_s, total_s, 1.0)
        else:
            starts = onset_s + 0.25 * np.arange(int(rng.integers(1, 4)))
        spans = [(s, 0.12) for s in starts]
    else:  # alarm clock, smoke alarm, buzzer: four fast beeps then a rest, repeating
        sound = square_tone(n_frames, sample_rate, min(rng.uniform(2500, 3200), 0.4 * sample_rate))
        spans = [(s + 0.14 * i, 0.07) for s in np.arange(onset_s, total_s, 1.06) for i in range(4)]
    return (sound * gate_spans(n_frames, sample_rate, spans, ramp_s=ramp_s))[None, :]
