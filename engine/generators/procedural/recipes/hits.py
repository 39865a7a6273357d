"""Struck and percussive recipes (mono): thunder, footsteps, door, impact, gunshot, explosion,
typing.

Every recipe has one call shape, ``sketch_<family>(rng, n_frames, sample_rate, traits)``, and
returns a float64 array (channels, n_frames); the generator sets the level afterwards.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from engine.generators.procedural.primitives import (
    Rng,
    add_at,
    bandpass,
    brown_noise,
    contour,
    convolve_train,
    decay_scale_for,
    hit_env,
    impulses_at,
    lowpass,
    noise_burst,
    noise_grains,
    onset_for,
    ping,
    poisson_train,
    smooth_noise,
    stack_kernels,
    swept_resonator,
    unit_rms,
    white_noise,
)
from engine.generators.procedural.recipes.tones import strike_bell
from engine.generators.procedural.text import Traits


def sketch_thunder(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    onset = min(0.05 * total_s, 0.25)
    tail = float(np.clip(0.3 * total_s, 0.08, 4.0))
    attack = min(0.15, 0.1 * total_s + 0.005)
    env = hit_env(n_frames, sample_rate, onset_s=onset, attack_s=attack, decay_s=tail)
    for _ in range(int(rng.integers(2, 5))):  # secondary rolls as the bolt's far segments arrive
        later = onset + rng.uniform(0.1, 0.6) * min(total_s, 3.0 * tail)
        gain = rng.uniform(0.3, 0.7)
        roll = hit_env(n_frames, sample_rate, onset_s=later, attack_s=attack, decay_s=0.6 * tail)
        roll *= gain
        env += roll
        del roll
    rolling = smooth_noise(rng, n_frames, sample_rate, 6.0)
    rolling *= 0.6
    rolling += 1.0
    np.clip(rolling, 0.05, None, out=rolling)
    out = unit_rms(
        lowpass(brown_noise(rng, n_frames, sample_rate), 220, sample_rate, order=4,
                in_place=True),
        in_place=True,
    )
    out *= env
    out *= rolling
    if not traits.distant and (
        traits.intensity > 0.7 or traits.has("crack", "strike", "lightning", "close")
    ):
        crack = noise_burst(
            rng, sample_rate, 0.03 * decay_scale_for(total_s, 1.0), low_hz=400, high_hz=4000
        )
        out += 2.0 * convolve_train(impulses_at(n_frames, sample_rate, [onset], [1.0]), crack)
    return out


def sketch_footsteps(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    pace_hz = 2.0
    if traits.has("run", "jog", "sprint", "rush", "gallop", "hurr"):
        pace_hz = 3.2
    elif traits.has("slow", "shuffl", "creep", "sneak", "tiptoe", "limp", "stroll"):
        pace_hz = 1.5
    total_s = n_frames / sample_rate
    times, gains = [], []
    time_s = min(rng.uniform(0.05, 0.15), 0.1 * total_s)
    while time_s < max(total_s - 0.03, 0.01):
        times.append(time_s)
        gains.append(rng.uniform(0.8, 1.0) * (1.0 if len(times) % 2 else 0.85))  # left/right
        time_s += (1.0 / pace_hz) * (1.0 + 0.03 * rng.standard_normal())
    heel_train = impulses_at(n_frames, sample_rate, times, gains)
    toe_delay = rng.uniform(0.05, 0.09) * 2.0 / pace_hz
    toe_train = impulses_at(
        n_frames, sample_rate, [hit_s + toe_delay for hit_s in times], [0.45 * g for g in gains]
    )
    heel = [
        (noise_burst(rng, sample_rate, 0.02, high_hz=400), 1.0),
        (ping(sample_rate, rng.uniform(90, 140), 0.025), 0.8),
    ]
    toe = [(noise_burst(rng, sample_rate, 0.012, low_hz=300, high_hz=2500), 1.0)]
    if traits.has(
        "concrete",
        "tile",
        "marble",
        "pavement",
        "sidewalk",
        "street",
        "hall",
        "heel",
        "stone",
        "corridor",
        "boots",
    ):
        heel.append((noise_burst(rng, sample_rate, 0.004, low_hz=2000), 0.7))
        toe.append((noise_burst(rng, sample_rate, 0.003, low_hz=2500), 0.6))
    if traits.has("wood", "floor", "stair", "board", "deck", "creak"):
        heel.append((ping(sample_rate, rng.uniform(180, 260), 0.05), 0.5))
    out = convolve_train(heel_train, stack_kernels(*heel)) + convolve_train(
        toe_train, stack_kernels(*toe)
    )
    if traits.has(
        "gravel", "snow", "leaves", "leaf", "grass", "dirt", "sand", "forest", "mud", "path"
    ):
        crunch = noise_burst(rng, sample_rate, 0.05, low_hz=800)
        crunch *= rng.random(crunch.size) < 0.08  # sparse grains: gravel shifting under the foot
        out += 0.8 * convolve_train(heel_train, crunch / (np.max(np.abs(crunch)) + 1e-12))
    return out


def knocks(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """Knuckles on wood: three knocks (two for "twice", four light taps), one for a single hit."""
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    decay_scale = decay_scale_for(total_s, 1.5)
    out = np.zeros(n_frames)
    count = 2 if traits.has("double", "twice", "two") else (4 if traits.has("tap") else 3)
    if traits.single_hit:
        count = 1
    spacing_s = rng.uniform(0.16, 0.24) * (0.6 if traits.has("tap") else 1.0)
    heavy = traits.has("pound", "bang", "hammer", "fist")  # a fist, not knuckles: lower, longer
    knock = stack_kernels(
        (ping(sample_rate, rng.uniform(180, 260) * (0.5 if heavy else 1.0), 0.03), 1.0),
        (ping(sample_rate, rng.uniform(700, 1000), 0.012), 0.5),
        (noise_burst(rng, sample_rate, 0.002, low_hz=1500), 0.4),
    )
    for i in range(count):
        add_at(
            out,
            knock * rng.uniform(0.8, 1.0),
            int((onset_s + i * spacing_s * decay_scale) * sample_rate),
        )
    return out[None, :]


def sketch_door(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    if traits.has("knock", "rap", "pound", "taps on", "bangs on"):  # knocking is on a door
        return knocks(rng, n_frames, sample_rate, traits)
    total_s = n_frames / sample_rate
    out = np.zeros(n_frames)
    onset_s = onset_for(total_s)
    decay_scale = decay_scale_for(total_s, 1.5)
    slam = traits.has("slam", "bang", "kick")
    closing = slam or traits.has("clos", "shut")
    opening = traits.has("open") and not closing
    if opening:
        add_at(out, _latch(rng, sample_rate), int(onset_s * sample_rate))
        onset_s += 0.08
    if traits.has("creak", "squeak", "squeal", "groan") or (opening and total_s >= 1.0):
        length_s = float(np.clip(0.5 * total_s, 0.2, 1.8))
        if closing:  # leave room for the slam after the creak
            length_s = min(length_s, max(0.5 * total_s - onset_s, 0.1))
        add_at(out, _creak(rng, sample_rate, length_s), int(onset_s * sample_rate))
        onset_s += length_s
    if closing or not opening:
        strength = 1.0 if slam else 0.55
        add_at(
            out,
            strength * _thump(rng, sample_rate, decay_scale * (1.0 if slam else 0.6)),
            int(onset_s * sample_rate),
        )
        add_at(out, 0.4 * _latch(rng, sample_rate), int((onset_s + 0.01) * sample_rate))
    return out[None, :]


def _thump(rng: Rng, sample_rate: int, decay_scale: float) -> np.ndarray:
    decay = 0.12 * decay_scale + 0.01
    return stack_kernels(
        (noise_burst(rng, sample_rate, decay * 0.6, high_hz=500), 1.0),
        (ping(sample_rate, rng.uniform(60, 90), decay * 1.5), 0.9),
        (noise_burst(rng, sample_rate, 0.004, low_hz=1500), 0.5),
        (
            np.concatenate(
                [
                    np.zeros(int(0.03 * sample_rate)),
                    ping(sample_rate, rng.uniform(2000, 4000), 0.01),
                ]
            ),
            0.15,
        ),
        (
            noise_burst(rng, sample_rate, 0.25 * decay_scale + 0.01, high_hz=1500),
            0.12,
        ),  # the room answering
    )


def _latch(rng: Rng, sample_rate: int) -> np.ndarray:
    first = ping(sample_rate, rng.uniform(2500, 4000), 0.005)
    second = np.concatenate(
        [
            np.zeros(int(rng.uniform(0.04, 0.08) * sample_rate)),
            ping(sample_rate, rng.uniform(1800, 3000), 0.006),
        ]
    )
    return stack_kernels((first, 0.5), (second, 0.35))


def _creak(rng: Rng, sample_rate: int, length_s: float) -> np.ndarray:
    """Stick-slip pulses (rate wandering 25..110 Hz) through a resonance that sweeps."""
    count = int(length_s * sample_rate)
    rate = contour(
        count, [(0.0, rng.uniform(25, 45)), (0.5, rng.uniform(60, 110)), (1.0, rng.uniform(30, 70))]
    )
    rate *= 1.0 + 0.15 * smooth_noise(rng, count, sample_rate, 20.0)[0]
    phase = np.cumsum(rate) / sample_rate
    slips = np.diff(np.floor(phase), prepend=0.0) > 0
    train = slips * rng.lognormal(0.0, 0.4, count)
    centre = contour(count, [(0.0, rng.uniform(400, 600)), (1.0, rng.uniform(800, 1200))])
    # High Q: each slip rings until the next, so the creak is a tone, not a click train.
    body = swept_resonator(train, centre, 30.0, sample_rate)
    body += 0.5 * swept_resonator(train, 2.4 * centre, 40.0, sample_rate)
    body *= np.sin(math.pi * np.linspace(0.0, 1.0, count)) ** 0.5
    return 0.8 * body / (np.max(np.abs(body)) + 1e-12)


def sketch_impact(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    decay_scale = decay_scale_for(total_s, 1.5)
    out = np.zeros(n_frames)
    if traits.has("knock", "tap", "rap"):
        return knocks(rng, n_frames, sample_rate, traits)
    thud = stack_kernels(
        (noise_burst(rng, sample_rate, 0.04 * decay_scale + 0.005, high_hz=600), 1.0),
        (ping(sample_rate, rng.uniform(60, 120), 0.12 * decay_scale + 0.01), 0.8),
        (noise_burst(rng, sample_rate, 0.003, low_hz=1500), 0.5),
    )
    add_at(out, thud, int(onset_s * sample_rate))
    if traits.has("glass", "shatter", "smash", "break", "crash", "window"):
        add_at(out, 0.6 * _shards(rng, sample_rate, decay_scale), int(onset_s * sample_rate))
    if traits.has("metal", "clang", "clank", "anvil", "pipe", "pan", "sword", "crash"):
        add_at(
            out,
            0.7 * _ring(rng, sample_rate, rng.uniform(300, 700), decay_scale),
            int(onset_s * sample_rate),
        )
    return out[None, :]


def _shards(rng: Rng, sample_rate: int, decay_scale: float) -> np.ndarray:
    out = np.zeros(int(1.2 * decay_scale * sample_rate) + int(0.4 * sample_rate))
    for _ in range(int(rng.integers(40, 120))):
        shard = ping(sample_rate, rng.uniform(2500, 9000), rng.uniform(0.01, 0.06))
        add_at(
            out,
            shard * rng.uniform(0.2, 1.0),
            int(rng.exponential(0.15 * decay_scale) * sample_rate),
        )
    return out


class RingPartial(NamedTuple):
    ratio: float  # to the fundamental; inharmonic like a struck bar
    decay_s: float
    weight: float


_METAL_PARTIALS = (
    RingPartial(1.0, 0.6, 1.0),
    RingPartial(2.76, 0.4, 0.6),
    RingPartial(5.40, 0.25, 0.4),
    RingPartial(8.93, 0.15, 0.25),
)


def _ring(rng: Rng, sample_rate: int, freq_hz: float, decay_scale: float) -> np.ndarray:
    return stack_kernels(
        *[
            (
                ping(sample_rate, freq_hz * partial.ratio, partial.decay_s * decay_scale + 0.01),
                partial.weight,
            )
            for partial in _METAL_PARTIALS
        ]
    )


def sketch_gunshot(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    decay_scale = decay_scale_for(total_s, 1.0)
    parts = [
        (noise_burst(rng, sample_rate, 0.03 * decay_scale + 0.003, low_hz=200, high_hz=5000), 0.8),
        (ping(sample_rate, rng.uniform(55, 80), 0.08 * decay_scale + 0.01), 0.6),
        (
            noise_burst(
                rng,
                sample_rate,
                (0.5 if traits.distant else 0.3) * decay_scale + 0.01,
                high_hz=2500,
            ),
            0.15,
        ),
    ]
    if not traits.distant:
        parts.append(
            (noise_burst(rng, sample_rate, 0.0012, low_hz=1500), 1.0)
        )  # the supersonic crack
    shot = stack_kernels(*parts)
    if traits.has("machine gun", "automatic", "burst", "rapid", "gunfire", "firefight", "volley"):
        times = []
        time_s = onset_for(total_s)
        while time_s < 0.85 * total_s:
            times += [time_s + i / 11.0 for i in range(int(rng.integers(4, 10)))]
            time_s = times[-1] + rng.uniform(0.4, 1.2)
    elif traits.has("shots", "several", "multiple", "two", "three"):
        times = list(
            onset_for(total_s) + np.cumsum([0.0] + list(rng.uniform(0.3, 0.9, 3))) * decay_scale
        )
    else:
        times = [onset_for(total_s)]
    times = [hit_s for hit_s in times if hit_s < total_s]
    return convolve_train(
        impulses_at(n_frames, sample_rate, times, rng.uniform(0.8, 1.0, len(times))), shot
    )


def sketch_explosion(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    tail = float(np.clip(0.3 * total_s, 0.12, 2.5))
    env = hit_env(n_frames, sample_rate, onset_s=onset_s, attack_s=0.015, decay_s=tail)
    rolling = np.clip(1.0 + 0.5 * smooth_noise(rng, n_frames, sample_rate, 8.0), 0.1, None)
    boom = unit_rms(
        lowpass(white_noise(rng, n_frames), 350, sample_rate, order=4)
        + lowpass(brown_noise(rng, n_frames, sample_rate), 120, sample_rate)
    )
    out = boom * env * rolling
    out += 1.5 * convolve_train(
        impulses_at(n_frames, sample_rate, [onset_s], [1.0]),
        ping(sample_rate, 45.0, 0.5 * tail, glide=-0.4),
    )
    out += convolve_train(
        impulses_at(n_frames, sample_rate, [onset_s], [1.0]),
        noise_burst(rng, sample_rate, 0.02, low_hz=300, high_hz=6000),
    )
    debris_env = hit_env(
        n_frames, sample_rate, onset_s=onset_s + 0.1, attack_s=0.05, decay_s=0.7 * tail
    )
    debris = poisson_train(rng, n_frames, sample_rate, 80, spread=1.0) * debris_env
    out += 0.15 * bandpass(noise_grains(rng, debris, 0.002, sample_rate), 800, 4000, sample_rate)
    return out


def sketch_typing(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    click = noise_burst(rng, sample_rate, 0.0015, low_hz=2000)
    if traits.has("tick", "clock", "metronome"):
        period_s = 0.5 if traits.has("metronome") else 1.0
        times = np.arange(onset_for(total_s), total_s, period_s)
        tick = stack_kernels((click, 0.6), (ping(sample_rate, 3500, 0.003), 1.0))
        tock = stack_kernels((click, 0.6), (ping(sample_rate, 2600, 0.004), 1.0))
        return convolve_train(
            impulses_at(n_frames, sample_rate, times[0::2], np.ones(len(times[0::2]))), tick
        ) + convolve_train(
            impulses_at(n_frames, sample_rate, times[1::2], 0.8 * np.ones(len(times[1::2]))), tock
        )
    if traits.has("mouse") or not traits.has("typ", "keyboard", "keystroke", "key"):
        times = []
        time_s = onset_for(total_s)
        while time_s < total_s:
            times += [time_s, time_s + 0.12] if rng.random() < 0.3 else [time_s]
            time_s += rng.exponential(1.0) + 0.2
        kernel = stack_kernels(
            (click, 1.0), (ping(sample_rate, rng.uniform(2000, 3500), 0.003), 0.6)
        )
        return convolve_train(
            impulses_at(n_frames, sample_rate, times, np.ones(len(times))), kernel
        )
    return _keyboard(rng, n_frames, sample_rate, traits, click)


def _keyboard(
    rng: Rng, n_frames: int, sample_rate: int, traits: Traits, click: np.ndarray
) -> np.ndarray:
    """Words of 2-8 keystrokes (~8 keys/s), a space bar between words, sometimes a pause."""
    total_s = n_frames / sample_rate
    keys: list[float] = []
    spaces: list[float] = []
    time_s = rng.uniform(0.05, 0.2)
    while time_s < total_s:
        for _ in range(int(rng.integers(2, 9))):
            keys.append(time_s)
            time_s += rng.gamma(4.0, 1.0 / 32.0)
        spaces.append(time_s)
        time_s += rng.gamma(4.0, 1.0 / 28.0) + (
            rng.uniform(0.5, 1.5) if rng.random() < 0.15 else 0.0
        )
    out = np.zeros((1, n_frames))
    typewriter = traits.has("typewriter")
    for variant in range(3):  # three key colours so a run of keys is not one sample repeated
        chosen = keys[variant::3]
        down = stack_kernels(
            (click, 1.0),
            (ping(sample_rate, rng.uniform(1500, 3000), 0.004), 0.5),
            (ping(sample_rate, rng.uniform(300, 500), 0.01), 0.4 + 0.4 * typewriter),
        )
        out += convolve_train(
            impulses_at(n_frames, sample_rate, chosen, rng.uniform(0.6, 1.0, len(chosen))), down
        )
        released = [k + rng.uniform(0.07, 0.11) for k in chosen]
        out += 0.3 * convolve_train(
            impulses_at(n_frames, sample_rate, released, np.ones(len(released))), down
        )
    space = stack_kernels((click, 0.6), (ping(sample_rate, rng.uniform(150, 250), 0.02), 1.0))
    out += 0.9 * convolve_train(
        impulses_at(n_frames, sample_rate, spaces, np.ones(len(spaces))), space
    )
    if typewriter:  # the carriage bell near each line end
        ends = keys[int(rng.integers(30, 45)) :: 40]
        out += 0.5 * strike_bell(
            rng,
            impulses_at(n_frames, sample_rate, ends, np.ones(len(ends))),
            sample_rate,
            2200.0,
            0.3,
        )
    return out
