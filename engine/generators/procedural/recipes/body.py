"""Body and breath recipes (mono): screams and cries, coughs and breaths, heartbeats, whistles.

Voices are a glottal buzz through vowel formants with the pitch contour, roughness and
breathiness that make a scream read as a scream; coughs and breaths are shaped noise with a
short voiced edge. Every recipe has the call shape ``sketch_<family>(rng, n_frames,
sample_rate, traits)`` and returns float64 (1, n_frames); the generator sets the level.
"""

from __future__ import annotations

import math

import numpy as np

from engine.generators.procedural.primitives import (
    TWO_PI,
    Knot,
    Rng,
    add_at,
    bandpass,
    buzz,
    contour,
    highpass,
    lowpass,
    noise_burst,
    onset_for,
    ping,
    running_cycles,
    smooth_noise,
    stack_kernels,
    time_axis_s,
    unit_rms,
    white_noise,
)
from engine.generators.procedural.text import Traits

# Open vowels (F1, F2, F3 in Hz): a scream is an /a/ pushed up in pitch, a cry more like /ae/.
_SCREAM_FORMANTS_HZ = (1000.0, 1650.0, 2900.0)
_CRY_FORMANTS_HZ = (850.0, 1900.0, 3100.0)


def _voice(rng: Rng, sample_rate: int, pitch_hz: np.ndarray, formants_hz: tuple[float, ...],
           *, roughness: float, breath: float) -> np.ndarray:
    """A voiced sound following ``pitch_hz`` (one value per frame) through vowel formants."""
    count = pitch_hz.shape[-1]
    jitter = 1.0 + 0.015 * smooth_noise(rng, count, sample_rate, 25.0)[0]
    phase = running_cycles(pitch_hz * jitter, sample_rate)
    source = buzz(phase, 0.8)
    # Roughness: a fast amplitude flutter below the pitch, what makes a scream harsh.
    source *= 1.0 - roughness * (0.5 + 0.5 * np.sin(TWO_PI * 0.5 * phase))
    source = unit_rms(source) + breath * white_noise(rng, count)[0]
    out = np.zeros(count)
    for index, formant_hz in enumerate(formants_hz):
        out += bandpass(source, 0.8 * formant_hz, 1.25 * formant_hz, sample_rate) / (1 + index)
    return out


def _shaped(count: int, attack_frac: float, release_frac: float) -> np.ndarray:
    return contour(count, [Knot(0.0, 0.0), Knot(attack_frac, 1.0), Knot(1.0 - release_frac, 0.85),
                           Knot(1.0, 0.0)])


def sketch_scream(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """A scream (high, rough, rising then falling), a yell/shout (lower, shorter), or a baby's
    cry (repeated falling "waah"s with breaths between)."""
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    out = np.zeros(n_frames)
    if traits.has("baby", "infant", "cry", "cri", "sob", "weep", "wail"):  # "cri": cries, cried
        time_s = onset_s
        while time_s < total_s - 0.2:
            length_s = min(rng.uniform(0.7, 1.2), total_s - time_s)
            count = int(length_s * sample_rate)
            top_hz = rng.uniform(420, 560)
            pitch_hz = contour(count, [Knot(0.0, 0.8 * top_hz), Knot(0.2, top_hz),
                                       Knot(1.0, 0.7 * top_hz)])
            wail = _voice(rng, sample_rate, pitch_hz, _CRY_FORMANTS_HZ, roughness=0.2, breath=0.2)
            add_at(out, wail * _shaped(count, 0.1, 0.3), int(time_s * sample_rate))
            if traits.single_hit:
                break
            time_s += length_s + rng.uniform(0.25, 0.5)  # the gasp before the next wail
        return out[None, :]
    male = traits.has("man", "male", "men", "he", "his", "guy", "boy")
    shout = traits.has("yell", "shout", "cries out", "calls out")
    peak_hz = rng.uniform(250, 380) if shout else (
        rng.uniform(500, 700) if male else rng.uniform(950, 1300))
    repeats = traits.has("screaming", "screams repeatedly", "keeps screaming", "shouting",
                         "yelling") and not traits.single_hit
    time_s = onset_s
    while time_s < total_s - 0.1:
        typical_s = rng.uniform(0.5, 0.8) if shout else rng.uniform(1.2, 1.9)
        length_s = min(typical_s, total_s - time_s - 0.02)
        count = max(int(length_s * sample_rate), 16)
        pitch_hz = contour(count, [Knot(0.0, 0.75 * peak_hz), Knot(0.15, peak_hz),
                                   Knot(0.7, 0.97 * peak_hz), Knot(1.0, 0.8 * peak_hz)])
        pitch_hz *= 1.0 + 0.025 * np.sin(TWO_PI * 6.0 * time_axis_s(count, sample_rate))
        formants = _SCREAM_FORMANTS_HZ if not shout else (700.0, 1200.0, 2600.0)
        voice = _voice(rng, sample_rate, pitch_hz, formants, roughness=0.35, breath=0.25)
        add_at(out, voice * _shaped(count, 0.05, 0.25), int(time_s * sample_rate))
        if not repeats:
            break
        time_s += length_s + rng.uniform(0.4, 0.9)
    return out[None, :]


def _one_cough(rng: Rng, sample_rate: int, strength: float, voice_hz: float) -> np.ndarray:
    """An explosive release, a turbulent breathy body and a short voiced edge (~0.3 s)."""
    length_s = rng.uniform(0.22, 0.34)
    count = int(length_s * sample_rate)
    time_s = time_axis_s(count, sample_rate)
    envelope = np.minimum(time_s / 0.006, 1.0) * np.exp(-time_s / (0.3 * length_s))
    noise = white_noise(rng, count)[0]
    body = bandpass(noise, 400, 2500, sample_rate) + 0.5 * bandpass(noise, 1400, 2000, sample_rate)
    voiced = buzz(running_cycles(np.full(count, voice_hz), sample_rate), 0.7)
    voiced *= np.exp(-time_s / 0.05)
    burst = unit_rms(body) * envelope + 0.6 * lowpass(voiced, 1500, sample_rate)
    return strength * burst


def _breath(rng: Rng, sample_rate: int, length_s: float, *, low_hz: float,
            high_hz: float) -> np.ndarray:
    count = max(int(length_s * sample_rate), 16)
    air = bandpass(white_noise(rng, count), low_hz, high_hz, sample_rate)[0]
    return air * np.sin(math.pi * np.linspace(0.0, 1.0, count)) ** 1.5


def sketch_cough(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """Coughs (one per hit, fits of 2-4), throat clearing, sneezes, breaths, sighs, snores."""
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    out = np.zeros(n_frames)
    male = traits.has("man", "male", "he", "his", "old man", "guy")
    voice_hz = rng.uniform(110, 150) if male else rng.uniform(190, 250)
    if traits.has("snor", "sleeping"):  # "snor": snore, snores, snoring
        time_s = onset_s
        while time_s < total_s - 0.5:
            inhale_s = min(1.3, total_s - time_s)
            count = int(inhale_s * sample_rate)
            flutter = (0.5 + 0.5 * np.cos(TWO_PI * 32.0 * time_axis_s(count, sample_rate))) ** 3
            rattle = lowpass(white_noise(rng, count)[0] * flutter, 900, sample_rate)
            rattle *= np.sin(math.pi * np.linspace(0, 1, count))
            add_at(out, rattle, int(time_s * sample_rate))
            exhale = _breath(rng, sample_rate, 1.4, low_hz=300, high_hz=2000) * 0.3
            add_at(out, exhale, int((time_s + inhale_s + 0.2) * sample_rate))
            time_s += rng.uniform(3.5, 4.5)
        return out[None, :]
    if traits.has("sneez", "achoo"):
        inhale_s = min(0.45, 0.5 * total_s)
        count = int(inhale_s * sample_rate)
        rising = contour(count, [Knot(0.0, voice_hz), Knot(1.0, 1.6 * voice_hz)])
        ah = _voice(rng, sample_rate, rising, (750.0, 1250.0), roughness=0.0, breath=0.6)
        add_at(out, 0.5 * ah * np.linspace(0.2, 1.0, count), int(onset_s * sample_rate))
        choo = noise_burst(rng, sample_rate, 0.08, low_hz=1500)
        choo *= 2.0 / (np.max(np.abs(choo)) + 1e-12)
        add_at(out, choo, int((onset_s + inhale_s) * sample_rate))
        return out[None, :]
    if traits.has("gasp", "sigh", "breath", "breathe", "inhale", "exhale", "pant", "groan",
                  "moan", "grunt", "yawn"):
        if traits.has("pant"):
            for time_s in np.arange(onset_s, total_s - 0.2, 0.4):
                add_at(out, _breath(rng, sample_rate, 0.18, low_hz=600, high_hz=3500),
                       int(time_s * sample_rate))
            return out[None, :]
        if traits.has("groan", "moan", "grunt", "yawn"):
            length_s = min(total_s - onset_s, 0.4 if traits.has("grunt") else 1.2)
            count = int(length_s * sample_rate)
            pitch = contour(count, [Knot(0.0, voice_hz), Knot(1.0, 0.8 * voice_hz)])
            moan = _voice(rng, sample_rate, pitch, (550.0, 900.0), roughness=0.1, breath=0.3)
            add_at(out, moan * _shaped(count, 0.15, 0.4), int(onset_s * sample_rate))
            return out[None, :]
        length_s = min(total_s - onset_s, 0.35 if traits.has("gasp", "inhale") else 1.0)
        band = (900, 4000) if traits.has("gasp", "inhale") else (300, 2500)
        add_at(out, _breath(rng, sample_rate, length_s, low_hz=band[0], high_hz=band[1]),
               int(onset_s * sample_rate))
        return out[None, :]
    if traits.has("clear", "throat") and not traits.has("cough"):
        for index, start_s in enumerate((onset_s, onset_s + 0.25)):
            ahem = _one_cough(rng, sample_rate, 0.5 + 0.3 * index, 0.8 * voice_hz)
            add_at(out, lowpass(ahem, 1200, sample_rate), int(start_s * sample_rate))
        return out[None, :]
    time_s = onset_s
    while time_s < total_s - 0.15:
        fit = 1 if traits.single_hit else int(rng.integers(2, 5))
        for index in range(fit):
            add_at(out, _one_cough(rng, sample_rate, 1.0 - 0.15 * index, voice_hz),
                   int(time_s * sample_rate))
            time_s += rng.uniform(0.3, 0.42)
        if traits.single_hit:
            break
        time_s += rng.uniform(0.8, 1.8)
    return out[None, :]


def sketch_heartbeat(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """Lub-dub: two low thumps ~0.3 s apart, once per beat at a resting or racing rate."""
    total_s = n_frames / sample_rate
    if traits.has("fast", "racing", "pounding", "pounds", "rapid", "panic", "running", "excited"):
        beats_per_min = rng.uniform(115, 135)
    elif traits.has("slow", "calm", "resting", "sleep", "dying", "faint"):
        beats_per_min = rng.uniform(48, 58)
    else:
        beats_per_min = rng.uniform(66, 76)
    period_s = 60.0 / beats_per_min
    lub = stack_kernels((ping(sample_rate, rng.uniform(45, 60), 0.045), 1.0),
                        (noise_burst(rng, sample_rate, 0.02, high_hz=150), 0.5))
    dub = stack_kernels((ping(sample_rate, rng.uniform(65, 85), 0.03), 1.0),
                        (noise_burst(rng, sample_rate, 0.012, high_hz=200), 0.4))
    out = np.zeros(n_frames)
    time_s = min(0.05, 0.1 * total_s)
    systole_s = 0.32 * min(period_s, 0.9) ** 0.5
    while time_s < total_s - 0.05:
        add_at(out, lub, int(time_s * sample_rate))
        add_at(out, 0.7 * dub, int((time_s + systole_s) * sample_rate))
        if traits.single_hit:
            break
        time_s += period_s * (1.0 + 0.02 * rng.standard_normal())
    return lowpass(out, 220, sample_rate)[None, :]


def _pea_whistle(rng: Rng, n_frames: int, sample_rate: int, spans: list[tuple[float, float]]
                 ) -> np.ndarray:
    """A referee's whistle: ~3 kHz with the pea's 25-35 Hz trill in pitch and loudness."""
    time_s = time_axis_s(n_frames, sample_rate)
    trill_hz = rng.uniform(25, 35)
    trill = np.sin(TWO_PI * trill_hz * time_s)
    freq_hz = rng.uniform(2900, 3400) * (1.0 + 0.04 * trill)
    tone = np.sin(TWO_PI * running_cycles(freq_hz, sample_rate))
    tone *= 0.65 + 0.35 * trill
    air = highpass(white_noise(rng, n_frames), 2000, sample_rate)[0] * 0.08
    envelope = np.zeros(n_frames)
    for start_s, length_s in spans:
        envelope += (time_s >= start_s) & (time_s < start_s + length_s)
    envelope = lowpass(np.minimum(envelope, 1.0), 60.0, sample_rate)  # soft edges
    return (tone + air) * envelope


def _whistled_notes(rng: Rng, n_frames: int, sample_rate: int, notes_hz: list[float],
                    start_s: float, note_s: float, *, breath: float, harmonic: float
                    ) -> np.ndarray:
    """Legato notes with glides between them and a gentle vibrato (a person or a flute)."""
    total_s = n_frames / sample_rate
    knots = []
    for index, freq_hz in enumerate(notes_hz):
        knots += [Knot((start_s + index * note_s) / total_s, freq_hz),
                  Knot(min((start_s + (index + 0.8) * note_s) / total_s, 1.0), freq_hz)]
    knots = [Knot(0.0, notes_hz[0])] + [k for k in knots if k.at_fraction <= 1.0]
    knots.append(Knot(1.0, knots[-1].value))
    time_s = time_axis_s(n_frames, sample_rate)
    freq_hz = contour(n_frames, knots) * (1.0 + 0.01 * np.sin(TWO_PI * 5.5 * time_s))
    phase = running_cycles(freq_hz, sample_rate)
    tone = np.sin(TWO_PI * phase) + harmonic * np.sin(2 * TWO_PI * phase)
    air = bandpass(white_noise(rng, n_frames), 0.7 * notes_hz[0], 2.5 * notes_hz[0],
                   sample_rate)[0]
    end_s = min(start_s + len(notes_hz) * note_s, total_s)
    envelope = ((time_s >= start_s) & (time_s < end_s)).astype(float)
    envelope = lowpass(envelope, 25.0, sample_rate)
    return (tone + breath * unit_rms(air)) * envelope


_PENTATONIC = (0, 2, 4, 7, 9, 12)


def sketch_whistle(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """A referee's pea whistle (default), a wolf whistle, a kettle, a person whistling a tune,
    a flute, or an arrow's whistle and thunk."""
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    available_s = max(total_s - onset_s - 0.03, 0.05)
    if traits.has("wolf whistle"):
        out = np.zeros(n_frames)
        for start_s, knots in ((onset_s, [Knot(0, 1000), Knot(1, 2600)]),
                               (onset_s + 0.4, [Knot(0, 1100), Knot(0.4, 2800), Knot(1, 900)])):
            length_s = 0.25 if start_s == onset_s else 0.6
            count = int(length_s * sample_rate)
            glide = np.sin(TWO_PI * running_cycles(contour(count, knots), sample_rate))
            glide *= np.sin(math.pi * np.linspace(0, 1, count))
            add_at(out, glide, int(start_s * sample_rate))
        return out[None, :]
    if traits.has("kettle"):
        time_s = time_axis_s(n_frames, sample_rate)
        rise = np.clip(time_s / max(0.6 * total_s, 0.05), 0.0, 1.0)
        base_hz = rng.uniform(1800, 2300) * (0.92 + 0.08 * rise)
        tone = np.sin(TWO_PI * running_cycles(base_hz, sample_rate))
        tone += 0.6 * np.sin(TWO_PI * running_cycles(base_hz + 35.0, sample_rate))  # two holes beat
        steam = highpass(white_noise(rng, n_frames), 3000, sample_rate)[0] * 0.2
        return ((tone * rise + steam) * np.minimum(time_s / 0.3, 1.0))[None, :]
    if traits.has("arrow", "bow", "archer"):
        out = np.zeros(n_frames)
        flight_s = min(0.35, 0.6 * available_s)
        count = int(flight_s * sample_rate)
        centre_hz = contour(count, [Knot(0, 3200), Knot(1, 900)])
        air = white_noise(rng, count)[0]
        whoosh = np.zeros(count)
        for index in range(0, count, 512):  # a band sweeping down: the arrow passing
            span = slice(index, index + 512)
            middle_hz = float(centre_hz[min(index + 256, count - 1)])
            whoosh[span] = bandpass(air[span], 0.8 * middle_hz, 1.25 * middle_hz, sample_rate)
        whoosh *= np.sin(math.pi * np.linspace(0, 1, count))
        add_at(out, whoosh, int(onset_s * sample_rate))
        thunk = stack_kernels((ping(sample_rate, rng.uniform(140, 200), 0.04), 1.0),
                              (noise_burst(rng, sample_rate, 0.01, high_hz=2000), 0.6))
        add_at(out, 1.5 * thunk * np.max(np.abs(whoosh)), int((onset_s + flight_s) * sample_rate))
        return out[None, :]
    if traits.has("flute", "recorder", "piccolo", "ocarina", "pan flute", "whistling",
                  "tune", "melody", "whistles a", "someone whistles", "man whistles",
                  "woman whistles"):
        flute = traits.has("flute", "recorder", "piccolo", "ocarina")
        root_hz = (rng.uniform(520, 700) * (2.0 if traits.has("piccolo") else 1.0)
                   if flute else rng.uniform(1000, 1400))
        note_s = rng.uniform(0.3, 0.5)
        count = 1 if traits.single_hit else max(int(available_s / note_s), 1)
        notes_hz = [root_hz * 2 ** (rng.choice(_PENTATONIC) / 12) for _ in range(count)]
        if traits.single_hit:
            note_s = min(available_s, 0.8)
        return _whistled_notes(rng, n_frames, sample_rate, notes_hz, onset_s, note_s,
                               breath=0.25 if flute else 0.08,
                               harmonic=0.25 if flute else 0.03)[None, :]
    blasts = [(onset_s, min(0.8, available_s))]
    if not traits.single_hit and traits.has("whistles", "blows", "whistling", "blasts"):
        blasts = [(onset_s, min(0.25, available_s))]  # short, short, long
        if available_s > 1.6:
            blasts += [(onset_s + 0.4, 0.25), (onset_s + 0.8, min(0.9, available_s - 0.8))]
    return _pea_whistle(rng, n_frames, sample_rate, blasts)[None, :]
