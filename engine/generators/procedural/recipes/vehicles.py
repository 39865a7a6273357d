"""The engine recipe (mono): a firing-rate buzz with per-cycle unevenness, rpm contours and
Doppler pass-bys.

Every recipe has one call shape, ``sketch_<family>(rng, n_frames, sample_rate, traits)``, and
returns a float64 array (channels, n_frames); the generator sets the level afterwards.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine.generators.procedural.primitives import (
    TWO_PI,
    Rng,
    bandpass,
    buzz,
    contour,
    edge_fade,
    gate_spans,
    hit_env,
    lowpass,
    mix_balanced,
    running_cycles,
    smooth_noise,
    time_axis_s,
    unit_rms,
    white_noise,
)
from engine.generators.procedural.text import Traits


class EngineVoice(NamedTuple):
    idle_hz: float  # firing rate at idle
    harmonic_ratio: float
    noise_weight: float
    top_hz: float  # low-pass corner
    speed_m_s: float  # typical travel speed, for Doppler and distance


class Motion(NamedTuple):
    pitch_ratio: np.ndarray
    gain: np.ndarray


_ENGINES = {
    "jet": EngineVoice(60.0, 0.5, 1.6, 5000.0, 80.0),
    "prop": EngineVoice(85.0, 0.8, 0.6, 3000.0, 60.0),
    "bike": EngineVoice(55.0, 0.82, 0.45, 3500.0, 25.0),
    "truck": EngineVoice(24.0, 0.86, 0.6, 1500.0, 18.0),
    "car": EngineVoice(32.0, 0.78, 0.35, 2000.0, 22.0),
}


def _engine_kind(traits: Traits) -> str:
    if traits.has("jet"):
        return "jet"
    if traits.has("plane", "airplane", "aeroplane", "aircraft", "propeller", "helicopter", "drone"):
        return "prop"
    if traits.has("motorbike", "motorcycle", "scooter", "moped", "dirt bike", "chainsaw"):
        return "bike"
    if traits.has("truck", "lorry", "bus", "tractor", "diesel", "train", "boat"):
        return "truck"
    return "car"


def _rpm_curve(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    rpm = 1.0 + 0.04 * smooth_noise(rng, n_frames, sample_rate, 0.7)[0]
    if traits.has("rev"):
        total_s = n_frames / sample_rate
        for start in np.arange(rng.uniform(0.1, 0.4), total_s, rng.uniform(1.0, 1.6)):
            rpm += 1.3 * hit_env(n_frames, sample_rate, onset_s=start, attack_s=0.25, decay_s=0.35)
    elif traits.has(
        "accelerat",
        "speed",
        "race",
        "racing",
        "zoom",
        "away",
        "drives off",
        "take off",
        "takes off",
        "pulls out",
    ):
        rpm *= contour(
            n_frames, [(0.0, 1.0), (0.45, 2.1), (0.5, 1.5), (1.0, 2.4)]
        )  # one gear change
    elif traits.has("decelerat", "slow", "stop", "brake", "pulls up", "arriv"):
        rpm *= contour(n_frames, [(0.0, 2.0), (0.8, 1.0), (1.0, 1.0)])
    return rpm


def motion_for(n_frames: int, sample_rate: int, traits: Traits, speed_m_s: float) -> Motion:
    """Pitch ratio and gain for a pass-by (Doppler about the midpoint), a departure or approach."""
    total_s = n_frames / sample_rate
    time_s = time_axis_s(n_frames, sample_rate)
    if traits.has(
        "pass",
        "passing",
        "drives by",
        "flies by",
        "flyby",
        "fly over",
        "flies over",
        "overhead",
        "goes by",
        "whoosh",
    ):
        closest_m = 6.0 if speed_m_s < 50 else 80.0
        # Built in place, three arrays in all: a segment is up to a million frames.
        offset_m = time_s
        offset_m -= 0.5 * total_s
        offset_m *= speed_m_s
        distance_m = offset_m * offset_m
        distance_m += closest_m * closest_m
        np.sqrt(distance_m, out=distance_m)
        radial_m_s = np.multiply(offset_m, speed_m_s, out=offset_m)  # > 0 once it recedes
        radial_m_s /= distance_m
        radial_m_s += 343.0
        pitch_ratio = np.divide(343.0, radial_m_s, out=radial_m_s)
        gain = np.divide(closest_m, distance_m, out=distance_m)
        return Motion(pitch_ratio, np.maximum(gain, 0.03, out=gain))
    if traits.has("away", "leav", "depart", "drives off", "takes off"):
        return Motion(np.ones(n_frames), 1.0 / (1.0 + time_s * speed_m_s / 10.0))
    if traits.has("approach", "arriv", "pulls up", "coming", "toward"):
        return Motion(np.ones(n_frames), 1.0 / (1.0 + (total_s - time_s) * speed_m_s / 10.0))
    return Motion(np.ones(n_frames), np.ones(n_frames))


def sketch_engine(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    kind = _engine_kind(traits)
    voice = _ENGINES[kind]
    pitch_ratio, gain = motion_for(n_frames, sample_rate, traits, voice.speed_m_s)
    rpm = _rpm_curve(rng, n_frames, sample_rate, traits)
    # In place where the arrays are ours: a segment is up to a million frames.
    rpm *= voice.idle_hz
    rpm *= pitch_ratio
    phase = running_cycles(rpm, sample_rate, in_place=True)
    # Each firing differs a little in strength: that unevenness is what makes it an engine.
    per_cycle = 1.0 + 0.15 * rng.standard_normal(int(phase[-1]) + 2)
    tone = buzz(phase, voice.harmonic_ratio)
    tone *= per_cycle[phase.astype(np.int64)]
    tone = lowpass(tone, voice.top_hz, sample_rate, in_place=True)
    pulse = np.multiply(phase, TWO_PI)
    np.cos(pulse, out=pulse)
    pulse *= 0.5
    pulse += 0.5
    np.power(pulse, 4, out=pulse)
    pulse += 0.3
    noise = bandpass(white_noise(rng, n_frames), 150, voice.top_hz, sample_rate)[0]
    noise *= pulse
    del pulse
    out = mix_balanced((tone, 1.0), (noise, voice.noise_weight), in_place=True)
    if traits.has("helicopter"):  # rotor blade slap
        out *= (
            0.4
            + (0.5 + 0.5 * np.cos(TWO_PI * running_cycles(np.full(n_frames, 5.5), sample_rate)))
            ** 6
        )
    if traits.has("start", "ignition") and n_frames / sample_rate > 1.2:
        out = _with_starter(rng, out, sample_rate)
    out *= gain
    return edge_fade(out[None, :], sample_rate, fade_s=0.01)


def _with_starter(rng: Rng, running: np.ndarray, sample_rate: int) -> np.ndarray:
    """A starter motor cranking for ~0.8 s, then the engine catching."""
    n_frames = running.shape[-1]
    crank_s = 0.8
    crank = bandpass(white_noise(rng, n_frames), 300, 2500, sample_rate)[0]
    crank *= (0.5 + 0.5 * np.cos(TWO_PI * 9.0 * time_axis_s(n_frames, sample_rate))) ** 2
    crank_gate = gate_spans(n_frames, sample_rate, [(0.0, crank_s + 0.05)], ramp_s=0.02)
    catch = np.clip((time_axis_s(n_frames, sample_rate) - crank_s) / 0.15, 0.0, 1.0)
    return unit_rms(crank) * 0.6 * crank_gate + running * catch
