"""Signal recipes (mono): alarms, sirens, horns and electronic beeps.

Made of odd-harmonic and closed-form buzz tones switched by gates, so each one is the pattern
a listener knows (a siren's sweep, a horn's chord, a beep's single pip). Every recipe has the
call shape ``sketch_<family>(rng, n_frames, sample_rate, traits)`` and returns float64
(1, n_frames); the generator sets the level afterwards.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as scipy_signal

from engine.generators.procedural.primitives import (
    TWO_PI,
    Rng,
    Span,
    buzz,
    gate_spans,
    lowpass,
    odd_tone,
    onset_for,
    running_cycles,
    time_axis_s,
    white_noise,
)
from engine.generators.procedural.recipes.tones import strike_bell
from engine.generators.procedural.recipes.vehicles import motion_for
from engine.generators.procedural.text import Traits


def square_tone(n_frames: int, sample_rate: int, freq_hz: float) -> np.ndarray:
    return odd_tone(running_cycles(np.full(n_frames, freq_hz), sample_rate), freq_hz, sample_rate)


def _gated(sound: np.ndarray, n_frames: int, sample_rate: int, spans: list[Span],
           ramp_s: float = 0.004) -> np.ndarray:
    return (sound * gate_spans(n_frames, sample_rate, spans, ramp_s=ramp_s))[None, :]


def sketch_alarm(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    time_s = time_axis_s(n_frames, sample_rate)
    onset_s = onset_for(total_s)
    if traits.has("phone", "telephone", "ringtone"):
        sound = np.sin(TWO_PI * 1000.0 * time_s) + np.sin(
            TWO_PI * min(1200.0, 0.45 * sample_rate) * time_s
        )
        sound *= 0.5 + 0.5 * np.sign(np.sin(TWO_PI * 25.0 * time_s))  # the ringer's 25 Hz rattle
        spans = [Span(s, 0.4) for ring in np.arange(onset_s, total_s, 3.0)
                 for s in (ring, ring + 0.6)]
        return _gated(sound, n_frames, sample_rate, spans)
    if traits.has("burglar", "alarm bell", "school bell", "bell alarm"):
        # An electric bell: a striker hitting the gong ~20 times a second while powered.
        strikes = np.zeros((1, n_frames))
        period_frames = max(int(sample_rate / 20.0), 1)
        strikes[0, int(onset_s * sample_rate)::period_frames] = 1.0
        rung = strike_bell(rng, strikes, sample_rate, rng.uniform(1800, 2400), 0.25)[0]
        return _gated(rung, n_frames, sample_rate, [Span(0.0, total_s)], ramp_s=0.01)
    if traits.has("car alarm"):
        # Cycling patterns: a fast two-tone warble, then a rising whoop, repeating.
        warble_hz = np.where(np.mod(time_s, 0.16) < 0.08, 1500.0, 2100.0)
        whoop_hz = 900.0 + 1400.0 * np.mod(time_s, 0.5) / 0.5
        freq_hz = np.where(np.mod(time_s, 4.0) < 2.0, warble_hz, whoop_hz)
        sound = odd_tone(running_cycles(freq_hz, sample_rate), 2300.0, sample_rate)
        return _gated(sound, n_frames, sample_rate, [Span(0.0, total_s)], ramp_s=0.02)
    if traits.has("smoke", "fire alarm", "detector"):
        # The evacuation pattern (three 0.5 s beeps, 0.5 s apart, then 1.5 s off) near 3.1 kHz.
        sound = square_tone(n_frames, sample_rate, min(rng.uniform(3000, 3300), 0.4 * sample_rate))
        spans = [Span(s + i, 0.5) for s in np.arange(onset_s, total_s, 4.0) for i in range(3)]
        return _gated(sound, n_frames, sample_rate, spans)
    # alarm clock, buzzer: four fast beeps then a rest, repeating
    sound = square_tone(n_frames, sample_rate, min(rng.uniform(2500, 3200), 0.4 * sample_rate))
    spans = [Span(s + 0.14 * i, 0.07) for s in np.arange(onset_s, total_s, 1.06) for i in range(4)]
    return _gated(sound, n_frames, sample_rate, spans)


def _glide(freq_hz: np.ndarray, sample_rate: int, time_constant_s: float) -> np.ndarray:
    """A one-pole lag on a stepped pitch, so two-tone sirens slide instead of clicking."""
    pole = float(np.exp(-1.0 / (time_constant_s * sample_rate)))
    return scipy_signal.lfilter([1.0 - pole], [1.0, -pole], freq_hz,
                                zi=[pole * freq_hz[0]])[0]


def sketch_siren(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """A wail (slow up-down sweep 650-1300 Hz), a yelp (fast sweep), a two-tone hi-lo, or an
    air-raid siren's slow climb; passing vehicles get Doppler and distance."""
    total_s = n_frames / sample_rate
    time_s = time_axis_s(n_frames, sample_rate)
    if traits.has("air raid", "air-raid", "raid", "civil defence", "civil defense", "tornado"):
        cycle_s = 9.0
        freq_hz = 220.0 + 380.0 * np.sin(np.pi * np.clip(np.mod(time_s, cycle_s) / cycle_s,
                                                          0.0, 1.0)) ** 0.7
        top_hz = 600.0
    elif traits.has("hi-lo", "two-tone", "two tone", "nee", "european", "ambulance"):
        step_s = rng.uniform(0.5, 0.65)
        stepped = np.where(np.mod(time_s, 2.0 * step_s) < step_s, 960.0, 720.0)
        freq_hz, top_hz = _glide(stepped, sample_rate, 0.015), 960.0
    else:
        cycle_s = rng.uniform(0.3, 0.4) if traits.has("yelp") else rng.uniform(3.5, 4.5)
        phase = 0.5 - 0.5 * np.cos(TWO_PI * time_s / cycle_s)
        freq_hz, top_hz = 650.0 + 650.0 * phase, 1300.0
    pitch_ratio, gain = motion_for(n_frames, sample_rate, traits, 20.0)
    sound = odd_tone(running_cycles(freq_hz * pitch_ratio, sample_rate), top_hz * 1.1, sample_rate)
    sound *= gain
    return _gated(sound, n_frames, sample_rate, [Span(0.0, total_s)], ramp_s=0.05)


def _brass(n_frames: int, sample_rate: int, freq_hz: float, spans: list[Span]) -> np.ndarray:
    """A brass-like note: harmonics that brighten as it swells, a little vibrato."""
    time_s = time_axis_s(n_frames, sample_rate)
    envelope = gate_spans(n_frames, sample_rate, spans, ramp_s=0.04)
    vibrato = 1.0 + 0.006 * np.sin(TWO_PI * 5.5 * time_s) * envelope
    phase = running_cycles(freq_hz * vibrato, sample_rate)
    bright = buzz(phase, 0.75) * envelope**2 + 0.5 * buzz(phase, 0.45) * envelope
    return lowpass(bright, min(12.0 * freq_hz, 6000.0), sample_rate)


def sketch_horn(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """Car horn (two reedy tones a third apart, short honks), train/ship/air horn (a long low
    chord), or a brass instrument's call."""
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    available_s = max(total_s - onset_s - 0.02, 0.05)
    if traits.has("trumpet", "bugle", "fanfare", "trombone", "tuba", "sax", "brass",
                  "french horn", "horn section"):
        root_hz = 130.8 if traits.has("tuba", "trombone") else 392.0
        steps = (0, 4, 7, 12) if not traits.single_hit else (0,)
        note_s = min(0.28, available_s / (len(steps) + 2))
        out = np.zeros(n_frames)
        for index, semitones in enumerate(steps):
            last = index == len(steps) - 1
            length_s = available_s - index * note_s if last else 0.9 * note_s
            span = Span(onset_s + index * note_s, length_s)
            out += _brass(n_frames, sample_rate, root_hz * 2 ** (semitones / 12), [span])
        return out[None, :]
    if traits.has("train", "ship", "foghorn", "fog horn", "steam", "boat", "air horn", "truck"):
        chord_hz = (311.0, 370.0, 440.0) if traits.has("train", "air horn", "truck") else (98.0,)
        blasts = [Span(onset_s, min(2.5, available_s))]
        if not traits.single_hit and available_s > 4.0:
            blasts.append(Span(onset_s + 3.0, min(1.2, available_s - 3.0)))
        out = sum(_brass(n_frames, sample_rate, freq_hz, blasts) for freq_hz in chord_hz)
        return np.asarray(out)[None, :]
    honk_s = float(np.clip(0.8 * available_s, 0.12, 0.6))
    count = 1 if traits.single_hit else 1 + int(rng.integers(0, 3))
    if traits.has("honking", "repeatedly", "keeps honking", "honks again"):
        count = max(count, int(available_s / 0.55))
    spans = [Span(onset_s + 0.55 * i, honk_s) for i in range(count)]
    time_s = time_axis_s(n_frames, sample_rate)
    out = np.zeros(n_frames)
    for freq_hz in (rng.uniform(400, 430), rng.uniform(500, 540)):  # two horns a third apart
        out += buzz(running_cycles(np.full(n_frames, freq_hz), sample_rate), 0.8)
    out *= 1.0 + 0.15 * np.sin(TWO_PI * 90.0 * time_s)  # the diaphragm's rasp
    out = lowpass(out, 4000.0, sample_rate)
    return _gated(out, n_frames, sample_rate, spans, ramp_s=0.01)


_DTMF_LOW_HZ = (697.0, 770.0, 852.0, 941.0)
_DTMF_HIGH_HZ = (1209.0, 1336.0, 1477.0)


def sketch_beep(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """Electronic beeps: one pip per hit, monitors and reversing beepers in time, phone tones,
    game pickups, lasers and error buzzes."""
    total_s = n_frames / sample_rate
    time_s = time_axis_s(n_frames, sample_rate)
    onset_s = onset_for(total_s)
    one_hit = traits.single_hit
    if traits.has("dial tone"):
        sound = np.sin(TWO_PI * 350.0 * time_s) + np.sin(TWO_PI * 440.0 * time_s)
        return _gated(sound, n_frames, sample_rate, [Span(0.0, total_s)], ramp_s=0.01)
    if traits.has("busy signal", "engaged"):
        sound = np.sin(TWO_PI * 480.0 * time_s) + np.sin(TWO_PI * 620.0 * time_s)
        spans = [Span(s, 0.5) for s in np.arange(onset_s, total_s, 1.0)]
        return _gated(sound, n_frames, sample_rate, spans)
    if traits.has("dial", "touch tone", "keypad"):
        out = np.zeros(n_frames)
        for start_s in np.arange(onset_s, total_s - 0.1, 0.18):
            low_hz, high_hz = rng.choice(_DTMF_LOW_HZ), rng.choice(_DTMF_HIGH_HZ)
            tone = np.sin(TWO_PI * low_hz * time_s) + np.sin(TWO_PI * high_hz * time_s)
            out += tone * gate_spans(n_frames, sample_rate, [Span(start_s, 0.1)])
        return out[None, :]
    if traits.has("laser", "blaster", "zap", "ray gun", "phaser"):
        shots = 1 if one_hit else 1 + int(rng.integers(0, 3))
        out = np.zeros(n_frames)
        for index in range(shots):
            start_s = onset_s + 0.3 * index
            local_s = np.clip(time_s - start_s, 0.0, None)
            freq_hz = 300.0 + 2700.0 * np.exp(-local_s / 0.06)  # a fast downward sweep
            tone = odd_tone(running_cycles(freq_hz, sample_rate), 3000.0, sample_rate)
            out += tone * gate_spans(n_frames, sample_rate, [Span(start_s, 0.25)], ramp_s=0.002)
        return out[None, :]
    if traits.has("pickup", "pick up", "coin", "collect", "level up", "reward", "achievement",
                  "unlock"):
        out = square_tone(n_frames, sample_rate, 988.0) * gate_spans(
            n_frames, sample_rate, [Span(onset_s, 0.07)], ramp_s=0.002)
        high = square_tone(n_frames, sample_rate, 1319.0) * gate_spans(
            n_frames, sample_rate, [Span(onset_s + 0.07, 0.3)], ramp_s=0.002)
        decay = np.exp(-np.clip(time_s - onset_s - 0.07, 0.0, None) / 0.12)
        return (out + high * decay)[None, :]
    if traits.has("error", "wrong", "denied", "invalid"):
        sound = square_tone(n_frames, sample_rate, 180.0) + 0.5 * square_tone(
            n_frames, sample_rate, 187.0)  # a slightly beating low buzz
        spans = [Span(onset_s, 0.15)]
        if not one_hit:
            spans.append(Span(onset_s + 0.2, 0.3))
        return _gated(sound, n_frames, sample_rate, spans)
    if traits.has("robot", "servo", "droid", "android", "mechanical arm"):
        sweep_hz = 500.0 + 400.0 * np.abs(np.sin(TWO_PI * time_s / rng.uniform(1.2, 2.0)))
        whine = odd_tone(running_cycles(sweep_hz, sample_rate), 900.0, sample_rate)
        whine = whine + 0.3 * white_noise(rng, n_frames)[0]
        chirps = [Span(s, 0.06) for s in np.arange(onset_s + 0.4, total_s, rng.uniform(0.8, 1.4))]
        chirp = np.sin(TWO_PI * 1800.0 * time_s) * gate_spans(n_frames, sample_rate, chirps)
        return (lowpass(whine, 3000.0, sample_rate) * 0.6 + chirp)[None, :]
    if traits.has("ringing ears", "ear ringing", "tinnitus", "ringing in"):
        tone = np.sin(TWO_PI * min(rng.uniform(5500, 7000), 0.4 * sample_rate) * time_s)
        return _gated(tone, n_frames, sample_rate, [Span(0.0, total_s)], ramp_s=0.5)
    if traits.has("countdown"):
        starts = [onset_s] if one_hit else list(np.arange(onset_s, total_s - 0.7, 1.0))
        spans = [Span(t, 0.1) for t in starts[:-1]] + [Span(starts[-1], 0.6)] if starts else []
        return _gated(np.sin(TWO_PI * 1000.0 * time_s), n_frames, sample_rate, spans)
    if traits.has("jump", "boing", "power up"):
        local_s = np.clip(time_s - onset_s, 0.0, None)
        sweep_hz = 300.0 + 900.0 * np.clip(local_s / 0.18, 0.0, 1.0)
        tone = odd_tone(running_cycles(sweep_hz, sample_rate), 1200.0, sample_rate)
        return _gated(tone, n_frames, sample_rate, [Span(onset_s, 0.2)], ramp_s=0.003)
    if traits.has("modem", "dial-up", "dial up", "fax"):
        out = np.zeros(n_frames)
        for start_s in np.arange(onset_s, total_s - 0.05, 0.3):
            freq_hz = float(rng.choice([1070.0, 1270.0, 2025.0, 2225.0, 980.0, 1650.0]))
            out += np.sin(TWO_PI * freq_hz * time_s) * gate_spans(
                n_frames, sample_rate, [Span(start_s, 0.28)], ramp_s=0.005)
        hiss = white_noise(rng, n_frames)[0] * 0.3 * (time_s > 0.5 * total_s)
        return (out + hiss)[None, :]
    if traits.has("sonar", "ping"):
        period_s = 2.5
        starts = [onset_s] if one_hit else np.arange(onset_s, total_s, period_s)
        out = np.zeros(n_frames)
        for start_s in starts:
            local_s = time_s - start_s
            out += np.where(local_s >= 0, np.exp(-np.clip(local_s, 0, None) / 0.35), 0.0) * np.sin(
                TWO_PI * 1500.0 * time_s)
        return out[None, :]
    freq_hz = min(float(rng.choice([880, 1000, 1200, 2000])), 0.4 * sample_rate)
    if traits.has("reversing", "reverse", "backing up"):
        freq_hz, period_s, beep_s = 1100.0, 1.0, 0.5
    else:
        period_s, beep_s = 1.0, 0.12
    if one_hit:
        starts = [onset_s]
    elif traits.has("beeping", "beeps", "monitor", "repeat", "continu", "reversing", "reverse",
                    "backing up"):
        starts = list(np.arange(onset_s, total_s, period_s))
    else:
        starts = list(onset_s + 0.25 * np.arange(int(rng.integers(1, 4))))
    sound = np.sin(TWO_PI * freq_hz * time_s)
    return _gated(sound, n_frames, sample_rate, [Span(s, beep_s) for s in starts])
