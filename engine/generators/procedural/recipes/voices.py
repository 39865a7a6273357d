"""Voiced recipes (mono): animal calls, birdsong, dogs, cats.

Every recipe has one call shape, ``sketch_<family>(rng, n_frames, sample_rate, traits)``, and
returns a float64 array (channels, n_frames); the generator sets the level afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from engine.generators.procedural.primitives import (
    TWO_PI,
    Knot,
    Rng,
    add_at,
    bandpass,
    buzz,
    contour,
    mix_balanced,
    running_cycles,
    swept_resonator,
    time_axis_s,
    white_noise,
)
from engine.generators.procedural.text import Traits


class Band(NamedTuple):
    """A pass band: the part of the spectrum a call keeps."""

    low_hz: float
    high_hz: float


class CountRange(NamedTuple):
    """How many calls make one group (inclusive)."""

    fewest: int
    most: int


class DurationRange(NamedTuple):
    shortest_s: float
    longest_s: float


@dataclass(frozen=True)
class Call:
    """A voiced animal call and the rhythm it repeats in."""

    length_s: float
    pitch_hz: tuple[Knot, ...]  # pitch contour over the call
    harmonic_ratio: float = 0.6  # harmonic richness; 0 is a pure sine
    noise_weight: float = 0.1
    band: Band = Band(300.0, 4000.0)
    vibrato_hz: float = 0.0
    vibrato_depth: float = 0.0  # as a fraction of pitch
    tremolo_hz: float = 0.0
    tremolo_depth: float = 0.0  # 0..1
    formant_hz: tuple[Knot, ...] = ()  # optional swept resonance contour
    group_size: CountRange = CountRange(1, 1)
    spacing_s: float = 0.4  # between calls of a group
    gap_s: DurationRange = DurationRange(1.0, 2.5)  # between groups


CALLS: dict[str, Call] = {
    'bark': Call(
        length_s=0.16, pitch_hz=(Knot(0, 550), Knot(0.3, 600), Knot(1, 380)),
        harmonic_ratio=0.82, noise_weight=0.25, band=Band(350, 3000),
        group_size=CountRange(1, 3), spacing_s=0.32, gap_s=DurationRange(0.7, 1.8),
    ),
    'growl': Call(
        length_s=1.2, pitch_hz=(Knot(0, 110), Knot(1, 95)), harmonic_ratio=0.9,
        noise_weight=0.5, band=Band(80, 1200), tremolo_hz=28, tremolo_depth=0.6,
        gap_s=DurationRange(0.3, 0.8),
    ),
    'howl': Call(
        length_s=2.2, pitch_hz=(Knot(0, 420), Knot(0.25, 700), Knot(0.8, 650), Knot(1, 450)),
        harmonic_ratio=0.3, noise_weight=0.05, band=Band(250, 3000), vibrato_hz=5,
        vibrato_depth=0.01, gap_s=DurationRange(1.5, 3.0),
    ),
    'meow': Call(
        length_s=0.7, pitch_hz=(Knot(0, 480), Knot(0.35, 760), Knot(1, 520)),
        harmonic_ratio=0.6, noise_weight=0.05, band=Band(400, 5000),
        formant_hz=(Knot(0, 700), Knot(0.4, 1600), Knot(1, 900)),
        gap_s=DurationRange(1.0, 2.0),
    ),
    'purr': Call(
        length_s=1.5, pitch_hz=(Knot(0, 26), Knot(1, 24)), harmonic_ratio=0.95,
        noise_weight=0.6, band=Band(40, 800), tremolo_hz=0.7, tremolo_depth=0.5,
        gap_s=DurationRange(0.05, 0.2),
    ),
    'hiss': Call(
        length_s=0.8, pitch_hz=(Knot(0, 100), Knot(1, 100)), harmonic_ratio=0.0,
        noise_weight=1.0, band=Band(2500, 9000), gap_s=DurationRange(1.0, 2.0),
    ),
    'moo': Call(
        length_s=1.4, pitch_hz=(Knot(0, 130), Knot(0.2, 150), Knot(1, 110)),
        harmonic_ratio=0.85, noise_weight=0.1, band=Band(100, 1500),
        formant_hz=(Knot(0, 300), Knot(0.5, 800), Knot(1, 400)), gap_s=DurationRange(1.5, 3.0),
    ),
    'roar': Call(
        length_s=1.3, pitch_hz=(Knot(0, 160), Knot(0.3, 210), Knot(1, 120)),
        harmonic_ratio=0.9, noise_weight=0.6, band=Band(80, 2000), tremolo_hz=30,
        tremolo_depth=0.4, gap_s=DurationRange(1.5, 3.0),
    ),
    'neigh': Call(
        length_s=1.2, pitch_hz=(Knot(0, 900), Knot(0.2, 1100), Knot(1, 600)),
        harmonic_ratio=0.6, noise_weight=0.2, band=Band(300, 4000), vibrato_hz=11,
        vibrato_depth=0.08, gap_s=DurationRange(1.5, 3.0),
    ),
    'bleat': Call(
        length_s=0.7, pitch_hz=(Knot(0, 420), Knot(1, 380)), harmonic_ratio=0.7,
        noise_weight=0.1, band=Band(300, 3500), tremolo_hz=7, tremolo_depth=0.8,
        gap_s=DurationRange(1.0, 2.5),
    ),
    'croak': Call(
        length_s=0.35, pitch_hz=(Knot(0, 280), Knot(1, 260)), harmonic_ratio=0.9,
        noise_weight=0.2, band=Band(150, 2000), tremolo_hz=35, tremolo_depth=1.0,
        group_size=CountRange(2, 4), spacing_s=0.5, gap_s=DurationRange(0.8, 2.0),
    ),
    'chirr': Call(
        length_s=0.25, pitch_hz=(Knot(0, 4500), Knot(1, 4500)), harmonic_ratio=0.2,
        noise_weight=0.05, band=Band(3000, 8000), tremolo_hz=40, tremolo_depth=1.0,
        group_size=CountRange(3, 6), spacing_s=0.3, gap_s=DurationRange(0.3, 0.8),
    ),
    'grunt': Call(
        length_s=0.18, pitch_hz=(Knot(0, 220), Knot(1, 180)), harmonic_ratio=0.9,
        noise_weight=0.4, band=Band(150, 2000), group_size=CountRange(1, 3), spacing_s=0.25,
        gap_s=DurationRange(0.6, 1.5),
    ),
    'caw': Call(
        length_s=0.3, pitch_hz=(Knot(0, 700), Knot(1, 550)), harmonic_ratio=0.7,
        noise_weight=0.3, band=Band(500, 2500), group_size=CountRange(2, 4), spacing_s=0.5,
        gap_s=DurationRange(1.5, 3.0),
    ),
    'hoot': Call(
        length_s=0.35, pitch_hz=(Knot(0, 380), Knot(0.5, 400), Knot(1, 370)),
        harmonic_ratio=0.1, noise_weight=0.02, band=Band(200, 1500),
        group_size=CountRange(1, 3), spacing_s=0.6, gap_s=DurationRange(1.5, 3.0),
    ),
    'gull': Call(
        length_s=0.4, pitch_hz=(Knot(0, 1600), Knot(1, 1000)), harmonic_ratio=0.5,
        noise_weight=0.1, band=Band(600, 5000), group_size=CountRange(3, 5), spacing_s=0.25,
        gap_s=DurationRange(1.0, 2.5),
    ),
    'quack': Call(
        length_s=0.15, pitch_hz=(Knot(0, 350), Knot(1, 320)), harmonic_ratio=0.85,
        noise_weight=0.2, band=Band(800, 2500), group_size=CountRange(2, 4), spacing_s=0.22,
        gap_s=DurationRange(0.8, 2.0),
    ),
    'call': Call(
        length_s=0.6, pitch_hz=(Knot(0, 350), Knot(0.4, 450), Knot(1, 300)),
        harmonic_ratio=0.7, noise_weight=0.15, band=Band(200, 3000),
        gap_s=DurationRange(1.0, 2.5),
    ),
}


def _one_call(rng: Rng, sample_rate: int, call: Call, scale: float) -> np.ndarray:
    length_s = call.length_s * rng.uniform(0.85, 1.15) / math.sqrt(scale)
    count = max(int(length_s * sample_rate), 8)
    time_s = time_axis_s(count, sample_rate)
    xs, ys = zip(*call.pitch_hz)
    freq_hz = np.interp(time_s / length_s, xs, ys) * scale * rng.uniform(0.93, 1.07)
    freq_hz *= 1.0 + call.vibrato_depth * np.sin(TWO_PI * call.vibrato_hz * time_s)
    phase = running_cycles(freq_hz, sample_rate)
    tone = buzz(phase, call.harmonic_ratio) if call.harmonic_ratio > 0 else np.sin(TWO_PI * phase)
    sound = mix_balanced((tone, 1.0), (white_noise(rng, count)[0], call.noise_weight))
    if call.formant_hz:
        sound = swept_resonator(sound, contour(count, call.formant_hz) * scale, 4.0, sample_rate)
    sound = bandpass(sound, call.band.low_hz * scale, call.band.high_hz * scale, sample_rate)
    sound *= np.sin(math.pi * np.linspace(0.0, 1.0, count)) ** 0.6
    if call.tremolo_depth:
        sound *= 1.0 - call.tremolo_depth * (0.5 + 0.5 * np.sin(TWO_PI * call.tremolo_hz * time_s))
    return sound


def call_sequence(rng: Rng, n_frames: int, sample_rate: int, call: Call, *, scale: float = 1.0,
                  start_s: float | None = None, one_hit: bool = False) -> np.ndarray:
    """Groups of calls filling the length: the first near the top, then call.gap_s apart.
    ``one_hit``: exactly one call (one event of a counted run, "barks three times")."""
    total_s = n_frames / sample_rate
    out = np.zeros(n_frames)
    time_s = min(rng.uniform(0.02, 0.15), 0.1 * total_s) if start_s is None else start_s
    if one_hit:
        add_at(out, _one_call(rng, sample_rate, call, scale), int(time_s * sample_rate))
        return out[None, :]
    while time_s < total_s - 0.02:
        for _ in range(int(rng.integers(call.group_size.fewest, call.group_size.most + 1))):
            one = _one_call(rng, sample_rate, call, scale) * rng.uniform(0.7, 1.0)
            add_at(out, one, int(time_s * sample_rate))
            time_s += call.spacing_s * rng.uniform(0.9, 1.1)
        time_s += call.length_s + rng.uniform(*call.gap_s)
    return out[None, :]


def sketch_bird(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    for stems, name in (
        (("crow", "raven", "caw"), "caw"),
        (("owl", "hoot"), "hoot"),
        (("gull", "seagull"), "gull"),
        (("duck", "quack"), "quack"),
    ):
        if traits.has(*stems):
            return call_sequence(rng, n_frames, sample_rate, CALLS[name], one_hit=traits.single_hit)
    singers = 3 if traits.has("birds", "flock", "chorus", "forest", "dawn", "songbirds") else 1
    out = np.zeros(n_frames)
    for _ in range(1 if traits.single_hit else singers):
        _song(rng, out, sample_rate, rng.uniform(2500, 5000), phrases=1 if traits.single_hit else 0)
    return out[None, :]


def _song(rng: Rng, out: np.ndarray, sample_rate: int, base_hz: float, *, phrases: int = 0) -> None:
    """Phrases of 2-8 chirp glissandi (down, up or trill), a rest between phrases; ``phrases``
    > 0 stops after that many (one bird call), 0 fills the length."""
    total_s = out.shape[-1] / sample_rate
    time_s = min(rng.uniform(0.05, 0.4), 0.1 * total_s)
    sung = 0
    while time_s < total_s - 0.05 and not (phrases and sung >= phrases):
        sung += 1
        style = int(rng.integers(3))
        for _ in range(int(rng.integers(2, 9))):
            length_s = rng.uniform(0.04, 0.12)
            count = int(length_s * sample_rate)
            ends = {0: (1.3, 0.7), 1: (0.7, 1.3), 2: (1.0, 1.1)}[style]
            freq_hz = contour(count, [(0, base_hz * ends[0]), (1, base_hz * ends[1])])
            if style == 2:
                freq_hz *= 1.0 + 0.08 * np.sin(TWO_PI * 30.0 * time_axis_s(count, sample_rate))
            phase = running_cycles(freq_hz, sample_rate)
            chirp = np.sin(TWO_PI * phase)
            if 2.6 * base_hz < 0.45 * sample_rate:  # a faint second harmonic where the rate allows
                chirp += 0.15 * np.sin(2 * TWO_PI * phase)
            chirp *= np.sin(math.pi * np.linspace(0.0, 1.0, count)) ** 2
            add_at(out, chirp * rng.uniform(0.5, 1.0), int(time_s * sample_rate))
            time_s += length_s + rng.uniform(0.02, 0.08)
        time_s += rng.uniform(0.4, 2.0)


def sketch_dog(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    scale = (
        1.6
        if traits.has("small", "puppy", "chihuahua", "yap", "little")
        else (0.7 if traits.has("big", "large", "huge", "mastiff", "guard") else 1.0)
    )
    if traits.has("growl", "snarl"):
        return call_sequence(rng, n_frames, sample_rate, CALLS["growl"], scale=scale,
                         one_hit=traits.single_hit)
    if traits.has("howl", "wolf"):
        return call_sequence(rng, n_frames, sample_rate, CALLS["howl"], scale=scale,
                         one_hit=traits.single_hit)
    return call_sequence(rng, n_frames, sample_rate, CALLS["bark"], scale=scale,
                         one_hit=traits.single_hit)


def sketch_cat(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    name = "purr" if traits.has("purr") else ("hiss" if traits.has("hiss") else "meow")
    return call_sequence(
        rng, n_frames, sample_rate, CALLS[name], scale=1.4 if traits.has("kitten") else 1.0,
        one_hit=traits.single_hit,
    )


_ANIMAL_CALLS = (
    (("cow", "moo", "cattle", "bull"), "moo"),
    (("wolf", "howl", "coyote"), "howl"),
    (("lion", "roar", "tiger", "bear"), "roar"),
    (("horse", "neigh", "whinn"), "neigh"),
    (("sheep", "goat", "bleat", "lamb"), "bleat"),
    (("frog", "toad", "croak"), "croak"),
    (("cricket", "insect", "cicada", "grasshopper"), "chirr"),
    (("pig", "oink", "grunt"), "grunt"),
)


def sketch_animal(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    for stems, name in _ANIMAL_CALLS:
        if traits.has(*stems):
            return call_sequence(rng, n_frames, sample_rate, CALLS[name], one_hit=traits.single_hit)
    return call_sequence(rng, n_frames, sample_rate, CALLS["call"], one_hit=traits.single_hit)
