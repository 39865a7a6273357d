"""Bed recipes (stereo, slightly decorrelated channels): rain, wind, water, fire, crowd, pad,
and the neutral fallback swell (mono).

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
    convolve_train,
    edge_fade,
    highpass,
    hit_env,
    lowpass,
    mix_balanced,
    narrow_stereo,
    noise_burst,
    noise_grains,
    ping,
    pink_noise,
    poisson_train,
    resonate,
    saw_blep,
    smooth_noise,
    swell_env,
    time_axis_s,
    unit_rms,
    white_noise,
)
from engine.generators.procedural.text import Traits

# beds (stereo)


def sketch_rain(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    # Temporaries are filtered, scaled and summed in place: a segment is a million samples.
    heavy = traits.intensity
    noise = narrow_stereo(pink_noise(rng, n_frames, 2), 0.5)
    hiss = highpass(noise, 600, sample_rate)
    drops = np.zeros((2, n_frames))
    for _ in range(3):  # droplet pitches, each its own train; short decays keep them unpitched
        train = poisson_train(rng, n_frames, sample_rate, 60 + 600 * heavy, channels=2)
        drops += resonate(train, rng.uniform(1500, 6000), rng.uniform(0.0008, 0.002), sample_rate)
        del train
    grains = noise_grains(
        rng,
        poisson_train(rng, n_frames, sample_rate, 40 + 200 * heavy, channels=2, spread=0.9),
        0.003,
        sample_rate,
        in_place=True,
    )
    splats = highpass(grains, 1500, sample_rate, in_place=True)
    # The same air, its low band: roofs and ground (the last use of ``noise``).
    body = bandpass(noise, 150, 900, sample_rate, in_place=True)
    sway = smooth_noise(rng, n_frames, sample_rate, 0.4)
    sway *= 0.2
    sway += 1.0
    # Light rain is separate drops on quiet air; heavy rain merges into a roar of hiss.
    out = mix_balanced((hiss, 0.15 + 0.85 * heavy), (drops, 0.6), (splats, 0.35), (body, 0.25),
                       in_place=True)
    out *= sway
    return edge_fade(out, sample_rate)


def sketch_wind(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    strong = traits.intensity
    source = narrow_stereo(white_noise(rng, n_frames, 2), 0.45)
    out = np.zeros((2, n_frames))
    # Three bands whose gusts rise and fall independently: the ear hears one moving band-pass.
    # (Envelopes and bands are built in place: a segment is a million samples.)
    for centre in (180.0, 420.0, 900.0):
        centre *= 1.0 + 0.6 * strong
        band = unit_rms(bandpass(source, centre * 0.6, centre * 1.5, sample_rate), in_place=True)
        gust = smooth_noise(rng, n_frames, sample_rate, rng.uniform(0.1, 0.35))
        gust += 0.6
        wobble = smooth_noise(rng, n_frames, sample_rate, 0.5, 2)
        wobble *= 0.25
        wobble += gust
        np.clip(wobble, 0.0, None, out=wobble)
        wobble *= wobble
        band *= wobble
        out += band
        del band, gust, wobble
    if strong > 0.75 or traits.has("howl", "whistl", "storm", "gale", "gust", "blizzard"):
        centre = rng.uniform(600, 1200)
        whistle = unit_rms(bandpass(source, centre * 0.97, centre * 1.03, sample_rate),
                           in_place=True)
        whistle *= 0.5
        swell = np.clip(smooth_noise(rng, n_frames, sample_rate, 0.3), 0.0, None)
        swell *= swell
        whistle *= swell
        out += whistle
        del whistle, swell
    del source
    rumble = unit_rms(
        lowpass(brown_noise(rng, n_frames, sample_rate, 2), 90, sample_rate, in_place=True),
        in_place=True,
    )
    rumble *= 0.3
    out += rumble
    return edge_fade(out, sample_rate)


def _bubbles(
    rng: Rng, n_frames: int, sample_rate: int, rate_hz: float, low_hz: float, high_hz: float
) -> np.ndarray:
    out = np.zeros((2, n_frames))
    for _ in range(3):  # rising pings: a bubble's resonance climbs as it nears the surface
        kernel = ping(
            sample_rate,
            rng.uniform(low_hz, high_hz),
            rng.uniform(0.006, 0.02),
            glide=rng.uniform(0.3, 1.0),
        )
        out += convolve_train(
            poisson_train(rng, n_frames, sample_rate, rate_hz / 3, channels=2, spread=0.7), kernel
        )
    return out


def sketch_water(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    if traits.has("ocean", "sea", "wave", "surf", "shore", "beach", "tide"):
        return _waves(rng, n_frames, sample_rate, traits)
    if traits.has("drip", "drop", "leak"):
        return _drips(rng, n_frames, sample_rate, traits)
    bubbles = _bubbles(rng, n_frames, sample_rate, 120 + 500 * traits.intensity, 250, 1600)
    gurgle = narrow_stereo(lowpass(pink_noise(rng, n_frames, 2), 700, sample_rate), 0.5)
    gurgle *= np.clip(1.0 + 0.5 * smooth_noise(rng, n_frames, sample_rate, 3.0, 2), 0.0, None)
    hiss = narrow_stereo(highpass(white_noise(rng, n_frames, 2), 2500, sample_rate), 0.5)
    out = mix_balanced((bubbles, 0.7), (gurgle, 0.5), (hiss, 0.15 + 0.2 * traits.intensity))
    return edge_fade(out, sample_rate)


def _waves(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    period_s = rng.uniform(5.0, 8.0)
    env = np.zeros(n_frames)
    start = -rng.uniform(0.0, period_s)
    while start < total_s:
        env += rng.uniform(0.6, 1.0) * hit_env(
            n_frames, sample_rate, onset_s=start, attack_s=0.4 * period_s, decay_s=0.25 * period_s
        )
        start += period_s * rng.uniform(0.8, 1.2)
    env /= np.max(env) + 1e-12
    low = unit_rms(narrow_stereo(lowpass(pink_noise(rng, n_frames, 2), 500, sample_rate), 0.5))
    high = unit_rms(narrow_stereo(highpass(white_noise(rng, n_frames, 2), 1200, sample_rate), 0.5))
    return edge_fade(low * (0.2 + env) + 0.6 * high * env**2, sample_rate)


def _drips(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    out = np.zeros((2, n_frames))
    time_s = rng.uniform(0.02, 0.3)
    while time_s < total_s:
        drip = ping(sample_rate, rng.uniform(900, 2600), 0.04, glide=0.6)
        pan = rng.uniform(0.3, 0.7)
        for channel, gain in enumerate((math.sqrt(1 - pan), math.sqrt(pan))):
            add_at(out[channel], drip * gain * rng.uniform(0.5, 1.0), int(time_s * sample_rate))
        if traits.single_hit:  # one drip of a counted run, nothing under it
            return out
        time_s += rng.exponential(1.0 / (1.0 + 2.5 * traits.intensity)) + 0.05
    bed = _bubbles(rng, n_frames, sample_rate, 20, 300, 900)
    return edge_fade(mix_balanced((out, 1.0), (bed, 0.15)), sample_rate)


def sketch_fire(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    roar = traits.intensity
    rumble = narrow_stereo(
        lowpass(brown_noise(rng, n_frames, sample_rate, 2), 200, sample_rate), 0.5
    )
    rumble *= 1.0 + 0.35 * smooth_noise(rng, n_frames, sample_rate, 1.5)
    hiss = narrow_stereo(bandpass(white_noise(rng, n_frames, 2), 1500, 6000, sample_rate), 0.6)
    hiss *= np.clip(1.0 + 0.8 * smooth_noise(rng, n_frames, sample_rate, 4.0, 2), 0.0, None)
    # Crackles come in clusters (a resin pocket bursting): centres convolved with a sparse
    # random pulse pattern, then with the click.
    cluster = np.zeros(int(0.08 * sample_rate) + 1)
    np.add.at(cluster, rng.integers(0, cluster.size, 8), rng.lognormal(0.0, 0.7, 8))
    centres = poisson_train(rng, n_frames, sample_rate, 2 + 6 * roar, channels=2)
    pulses = convolve_train(centres, cluster)
    pulses += poisson_train(rng, n_frames, sample_rate, 10 + 30 * roar, channels=2, spread=1.0)
    crackle = highpass(noise_grains(rng, pulses, 0.0007, sample_rate), 1200, sample_rate)
    pops = resonate(
        poisson_train(rng, n_frames, sample_rate, 1 + 2 * roar, channels=2),
        rng.uniform(150, 400),
        0.015,
        sample_rate,
    )
    bed = mix_balanced((rumble, 0.6 + 0.4 * roar), (hiss, 0.2), (pops, 0.3))
    # Crackle is set by its peak, not its RMS: a few sparse snaps would otherwise dwarf the
    # bed and leave no headroom when the stem is normalised to its loudness target.
    crackle = np.tanh(crackle / (4.0 * math.sqrt(float(np.mean(crackle**2))) + 1e-12))
    out = bed + (3.0 + 2.0 * roar) * crackle
    return edge_fade(out, sample_rate)


class Formants(NamedTuple):
    f1_hz: float
    f2_hz: float


_VOWELS = tuple(
    Formants(f1, f2)
    for f1, f2 in (  # a i u e o
        (730, 1090),
        (270, 2290),
        (300, 870),
        (530, 1840),
        (570, 840),
    )
)


def sketch_crowd(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    if traits.has("applau", "clap", "ovation"):
        return _applause(rng, n_frames, sample_rate, traits)
    voices = int(4 + 16 * traits.intensity)
    # The description, not the lexicon name ("crowd chatter" is any crowd), sets its size.
    if traits.in_text("large", "stadium", "busy", "packed", "huge", "many", "cheer", "crowd",
                      "market"):
        voices += 8
    elif traits.has("few", "couple", "two people", "pair"):
        voices = 3
    # Syllables are summed per vowel, so each vowel's formant filters run once per bed.
    excitation = np.zeros((len(_VOWELS), 2, n_frames), dtype=np.float32)
    for _ in range(voices):
        _babble_voice(rng, excitation, sample_rate)
    out = np.zeros((2, n_frames))
    for vowel, (f1_hz, f2_hz) in enumerate(_VOWELS):
        source = excitation[vowel].astype(np.float64)
        out += bandpass(source, f1_hz * 0.8, f1_hz * 1.25, sample_rate)
        out += 0.6 * bandpass(source, f2_hz * 0.85, f2_hz * 1.15, sample_rate)
    out = highpass(out, 120, sample_rate)
    room = narrow_stereo(bandpass(pink_noise(rng, n_frames, 2), 200, 1500, sample_rate), 0.6)
    return edge_fade(mix_balanced((out, 1.0), (room, 0.3)), sample_rate)


def _babble_voice(rng: Rng, excitation: np.ndarray, sample_rate: int) -> None:
    n_frames = excitation.shape[-1]
    total_s = n_frames / sample_rate
    f0 = rng.uniform(95, 140) if rng.random() < 0.5 else rng.uniform(170, 250)
    pan = rng.uniform(0.2, 0.8)
    gains = (math.sqrt(1.0 - pan) * rng.uniform(0.4, 1.0), math.sqrt(pan) * rng.uniform(0.4, 1.0))
    time_s = rng.uniform(-1.0, 1.0)
    while time_s < total_s:
        spurt_end = time_s + rng.uniform(0.8, 3.0)  # talk spurts separated by pauses
        while time_s < min(spurt_end, total_s):
            length_s = rng.uniform(0.12, 0.28)
            start, count = int(time_s * sample_rate), int(length_s * sample_rate)
            if start >= 0 and count > 4:
                tt = np.arange(count) / sample_rate
                glide = 1.0 + rng.uniform(-0.15, 0.1) * tt / length_s  # syllable intonation
                freq_hz = f0 * rng.uniform(0.88, 1.12) * glide
                source = 2.0 * np.mod(np.cumsum(freq_hz) / sample_rate + rng.random(), 1.0) - 1.0
                source *= np.hanning(count) * rng.uniform(0.5, 1.0)
                vowel = rng.integers(len(_VOWELS))
                stop = min(n_frames, start + count)
                for channel, gain in enumerate(gains):
                    excitation[vowel, channel, start:stop] += gain * source[: stop - start]
            time_s += length_s * rng.uniform(0.9, 1.2)
        time_s += rng.uniform(0.3, 1.5)


def _applause(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    people = 10 + 40 * traits.intensity
    out = np.zeros((2, n_frames))
    for _ in range(4):  # hands differ: four clap colours
        kernel = noise_burst(
            rng,
            sample_rate,
            rng.uniform(0.004, 0.009),
            low_hz=rng.uniform(700, 1200),
            high_hz=rng.uniform(2000, 4000),
        )
        out += convolve_train(
            poisson_train(rng, n_frames, sample_rate, people * 3.5 / 4, channels=2, spread=0.4),
            kernel,
        )
    total_s = n_frames / sample_rate
    env = swell_env(
        n_frames, sample_rate, attack_s=min(0.15 * total_s, 1.0), release_s=min(0.3 * total_s, 2.0)
    )
    return edge_fade(out * env, sample_rate)


def sketch_pad(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    if traits.has("drone", "hum"):
        intervals = (0, 7, 12, 19)
    elif traits.has(
        "dark",
        "tense",
        "ominous",
        "horror",
        "sad",
        "eerie",
        "sinister",
        "scary",
        "creepy",
        "suspens",
        "melanchol",
        "minor",
    ):
        intervals = (0, 3, 7, 10, 15)
    elif traits.has("bright", "happy", "hopeful", "uplift", "warm", "joy", "major"):
        intervals = (0, 4, 7, 11, 14)
    else:
        intervals = (0, 7, 12, 16)
    root = float(rng.choice([98.0, 110.0, 116.5, 130.8, 146.8]))
    time_s = time_axis_s(n_frames, sample_rate)
    out = np.zeros((2, n_frames))
    for semitones in intervals:
        freq_hz = root * 2.0 ** (semitones / 12.0)
        detuned = freq_hz * 2.0 ** (rng.uniform(-6, 6) / 1200.0)
        out += saw_blep(
            detuned * time_s + rng.random(), detuned / sample_rate
        )  # the voice both sides share
        for channel in range(2):  # plus one detuned voice per side: wide, never two monos
            detuned = freq_hz * 2.0 ** (rng.uniform(-12, 12) / 1200.0)
            out[channel] += 0.6 * saw_blep(detuned * time_s + rng.random(), detuned / sample_rate)
    sweep = 0.5 + 0.5 * np.tanh(smooth_noise(rng, n_frames, sample_rate, 0.15))
    cutoff = 500 if intervals[1] == 3 else 900
    out = (
        lowpass(out, cutoff, sample_rate) * (1.0 - sweep)
        + lowpass(out, 2.2 * cutoff, sample_rate) * sweep
    )
    if traits.steady:  # a segment of a long pad: the swell is applied once over the event
        return out
    total_s = n_frames / sample_rate
    env = swell_env(
        n_frames,
        sample_rate,
        attack_s=min(max(0.3 * total_s, 0.02), 4.0),
        release_s=min(max(0.25 * total_s, 0.02), 3.0),
    )
    return out * env


def sketch_neutral(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """Soft band-passed pink noise swelling in and out: a placeholder that reads as 'something'."""
    total_s = n_frames / sample_rate
    source = bandpass(pink_noise(rng, n_frames), 250, 3500, sample_rate)
    if traits.steady:  # a segment of a long event: the swell is applied once over the event
        env = np.ones(n_frames)
    else:
        env = swell_env(n_frames, sample_rate, attack_s=0.45 * total_s,
                        release_s=0.45 * total_s)
    return (
        source * env * np.clip(1.0 + 0.2 * smooth_noise(rng, n_frames, sample_rate, 1.0), 0.0, None)
    )
