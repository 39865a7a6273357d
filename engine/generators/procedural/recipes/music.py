"""The musical-note recipe (mono): piano, plucked strings, bowed strings, mallets and chiptune
stings, as single notes, chords or short melodies.

Notes are sums of damped partials (``resonate`` on an impulse, one IIR pass per partial), with
the partial ratios, brightness and decay of the instrument family. A note named in the text
("middle C", "A4", "C#3") sets the pitch. Call shape ``sketch_note(rng, n_frames, sample_rate,
traits)``, float64 (1, n_frames); the generator sets the level.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from engine.generators.procedural.primitives import (
    TWO_PI,
    Rng,
    Span,
    convolve_train,
    gate_spans,
    impulses_at,
    lowpass,
    noise_burst,
    odd_tone,
    onset_for,
    resonate,
    running_cycles,
    saw_blep,
    time_axis_s,
)
from engine.generators.procedural.text import Traits


class Timbre(NamedTuple):
    """How an instrument's struck or plucked note is built from damped partials."""

    partials: int
    inharmonicity: float  # stiff strings: partial k sits at k * sqrt(1 + B k^2)
    rolloff: float  # partial k's amplitude is 1 / k**rolloff
    decay_s: float  # of the fundamental at middle C; higher notes and partials die faster
    bar_ratios: tuple[float, ...] = ()  # mallet bars: fixed inharmonic partial ratios instead


_PIANO = Timbre(partials=12, inharmonicity=0.0004, rolloff=1.4, decay_s=1.6)
_PLUCK = Timbre(partials=12, inharmonicity=0.0001, rolloff=1.4, decay_s=0.7)
_MARIMBA = Timbre(partials=3, inharmonicity=0.0, rolloff=1.5, decay_s=0.45,
                  bar_ratios=(1.0, 3.99, 10.0))
_GLOCKENSPIEL = Timbre(partials=3, inharmonicity=0.0, rolloff=0.8, decay_s=1.2,
                       bar_ratios=(1.0, 2.76, 5.40))

_NOTE_NAME = re.compile(r"\b([a-g])(#|sharp|b|flat)?\s?([1-7])\b")
_SEMITONE_OF = {"c": -9, "d": -7, "e": -5, "f": -4, "g": -2, "a": 0, "b": 2}
_WIN = re.compile(r"\b(victory|victorious|win|wins|winning|success|level complete)\b")
_RING_OUT_TIME_CONSTANTS = 7.0  # e^-7: -60 dB, where a note is over
_ONE_NOTE = re.compile(r"\b(a|one|single|one single) (note|key)\b")
_MAJOR = (0, 2, 4, 5, 7, 9, 11, 12)
_PENTATONIC = (0, 2, 4, 7, 9, 12)


def named_pitch_hz(text: str) -> float | None:
    """The pitch a description names ("middle c", "a4", "c#3"), or None."""
    if "middle c" in text:
        return 261.63
    found = _NOTE_NAME.search(text)
    if not found:
        return None
    letter, accidental, octave = found.groups()
    semitones = _SEMITONE_OF[letter] + (1 if accidental in ("#", "sharp") else 0)
    semitones -= 1 if accidental in ("b", "flat") else 0
    return 440.0 * 2 ** ((semitones + 12 * (int(octave) - 4)) / 12)


def _struck(n_frames: int, sample_rate: int, onset_s: float, freq_hz: float, timbre: Timbre,
            *, velocity: float = 1.0, decay_scale: float = 1.0) -> np.ndarray:
    """One note: each partial a damped resonator rung by the same impulse. Only the stretch
    where the note still sounds (until -60 dB) is computed, so a melody costs its notes, not
    notes x event length."""
    out = np.zeros((1, n_frames))
    start = int(round(onset_s * sample_rate))
    if start >= n_frames:
        return out
    ratios = timbre.bar_ratios or tuple(
        k * np.sqrt(1.0 + timbre.inharmonicity * k * k) for k in range(1, timbre.partials + 1))
    pitch_factor = (261.63 / freq_hz) ** 0.5  # high notes ring shorter
    for index, ratio in enumerate(ratios, start=1):
        partial_hz = freq_hz * ratio
        if partial_hz >= 0.45 * sample_rate:
            break
        decay_s = max(timbre.decay_s * decay_scale * pitch_factor / ratio**0.9, 0.01)
        window = min(n_frames - start, int(_RING_OUT_TIME_CONSTANTS * decay_s * sample_rate) + 1)
        train = np.zeros((1, window))
        train[0, 0] = velocity
        out[:, start:start + window] += resonate(train, partial_hz, decay_s,
                                                 sample_rate) / index**timbre.rolloff
    return out


def _bowed(n_frames: int, sample_rate: int, span: Span, freq_hz: float) -> np.ndarray:
    """A bowed string: a band-limited saw with vibrato that comes in after the attack."""
    time_s = time_axis_s(n_frames, sample_rate)
    vibrato = 1.0 + 0.008 * np.sin(TWO_PI * 5.5 * time_s) * np.clip(
        (time_s - span.start_s) / 0.4, 0.0, 1.0)
    tone = saw_blep(running_cycles(freq_hz * vibrato, sample_rate), freq_hz / sample_rate)
    tone = lowpass(tone, min(8.0 * freq_hz, 5000.0), sample_rate)
    return tone * gate_spans(n_frames, sample_rate, [span], ramp_s=0.12)


def sketch_note(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    available_s = max(total_s - onset_s, 0.05)
    decay_scale = min(1.0, total_s / 2.0)
    if traits.has("game over", "lose", "failure", "victory", "win", "success"):
        # A chiptune sting: four square notes, falling for a loss, rising for a win.
        falling = not _WIN.search(traits.text)  # the text decides, not the lexicon's name
        steps = (7, 6, 5, 0) if falling else (0, 4, 7, 12)
        note_s = min(0.18, available_s / 5)
        root_hz = 392.0 if falling else 523.25
        out = np.zeros(n_frames)
        for index, semitones in enumerate(steps):
            freq_hz = root_hz * 2 ** (semitones / 12)
            length_s = available_s - index * note_s if index == len(steps) - 1 else 0.9 * note_s
            span = Span(onset_s + index * note_s, min(length_s, 0.8))
            tone = odd_tone(running_cycles(np.full(n_frames, freq_hz), sample_rate), freq_hz,
                            sample_rate)
            out += tone * gate_spans(n_frames, sample_rate, [span], ramp_s=0.003)
        return out[None, :]
    root_hz = named_pitch_hz(traits.text) or float(rng.choice([196.0, 220.0, 261.63, 293.66]))
    if traits.has("startup", "start-up", "boot", "chime plays", "heal", "healing", "restore"):
        # A computer's startup chord, or a game's healing shimmer (a rising mallet arpeggio).
        out = np.zeros((1, n_frames))
        rising = traits.has("heal", "restore")
        for index, semitones in enumerate((0, 4, 7, 12, 16)):
            out += _struck(n_frames, sample_rate, onset_s + (0.07 * index if rising else 0.0),
                           root_hz * (4 if rising else 1) * 2 ** (semitones / 12),
                           _GLOCKENSPIEL if rising else _PIANO, decay_scale=decay_scale)
        return out
    if traits.has("violin", "fiddle", "cello", "viola", "strings", "double bass"):
        if traits.has("cello", "double bass"):
            root_hz /= 2
        elif traits.has("violin", "fiddle"):
            root_hz *= 2
        return _bowed(n_frames, sample_rate, Span(onset_s, available_s), root_hz)[None, :]
    if traits.has("xylophone", "marimba"):
        timbre, root_hz = _MARIMBA, root_hz * 2
    elif traits.has("glockenspiel", "music box", "celesta", "chime"):
        timbre, root_hz = _GLOCKENSPIEL, root_hz * 4
    elif traits.has("guitar", "strum", "pluck", "harp", "ukulele", "banjo", "lute"):
        timbre = _PLUCK
    else:
        timbre = _PIANO
    out = np.zeros((1, n_frames))
    if traits.has("chord", "strum"):
        spread_s = 0.025 if traits.has("strum") else 0.004
        for index, semitones in enumerate((0, 4, 7, 12)):
            out += _struck(n_frames, sample_rate, onset_s + index * spread_s,
                           root_hz * 2 ** (semitones / 12), timbre, decay_scale=decay_scale)
    elif traits.single_hit or _ONE_NOTE.search(traits.text) or not traits.has(
            "melody", "tune", "notes", "arpeggio", "jingle", "music box", "scale", "plays") or (
            named_pitch_hz(traits.text) and not traits.has("melody", "tune", "notes", "scale")):
        out += _struck(n_frames, sample_rate, onset_s, root_hz, timbre, decay_scale=decay_scale)
    else:
        steps = _MAJOR if traits.has("scale") else (
            (0, 4, 7, 12, 7, 4) if traits.has("arpeggio") else None)
        note_s = rng.uniform(0.22, 0.4)
        # Played notes are let go: each rings a few notes' worth, not its full natural decay.
        melody_decay = min(1.0, 3.0 * note_s / timbre.decay_s)
        time_s, index = onset_s, 0
        while time_s < total_s - 0.1:
            semitones = steps[index % len(steps)] if steps else int(rng.choice(_PENTATONIC))
            out += _struck(n_frames, sample_rate, time_s, root_hz * 2 ** (semitones / 12),
                           timbre, velocity=rng.uniform(0.7, 1.0), decay_scale=melody_decay)
            time_s += note_s
            index += 1
    if timbre is _PIANO or timbre is _PLUCK:  # the hammer or the plectrum: a soft knock
        knock = noise_burst(rng, sample_rate, 0.004, high_hz=2500)
        out += 0.02 * convolve_train(impulses_at(n_frames, sample_rate, [onset_s], [1.0]), knock)
    return out
