"""Turn one library file into audio for one event.

* One-shots (and each hit of a run) start at the file's main transient, less a PRE_ROLL_S
  lead-in so the attack's first samples survive, and are cut to the event; when the event is
  shorter than the file the cut gets a short fade-out, when it is longer the file's full tail
  plays and the rest is silence.
* Beds and sustained sounds are looped with equal-power crossfades (engine.render) when the
  file is shorter than the event; a longer file starts at a seeded offset, so two beds from one
  file do not play the same stretch.

Audio keeps its channels (mono stays mono, stereo stays stereo; more than two channels keep
the front pair) and is resampled to the requested rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from engine.library.analysis import read_audio
from engine.render import fit_to_length

PRE_ROLL_S = 0.002
TRIM_FADE_S = 0.02  # fade-out when an event cuts a one-shot short
BED_CROSSFADE_MAX_S = 1.0
BED_CROSSFADE_MIN_S = 0.05
MAX_SOURCE_S = 3600.0  # a source is never read past an hour, whatever the event asks


def load_source(path: Path, sample_rate: int, *, max_s: float = MAX_SOURCE_S) -> np.ndarray:
    """float32 (channels <= 2, frames) at ``sample_rate``."""
    audio, rate = read_audio(path, max_s=max_s)
    if audio.shape[0] > 2:
        audio = audio[:2]
    if rate != sample_rate:
        audio = soxr.resample(audio.T, rate, sample_rate, quality="HQ").T
    return np.ascontiguousarray(audio, dtype=np.float32)


def place_one_shot(audio: np.ndarray, *, transient_s: float | None, frames: int,
                   sample_rate: int) -> np.ndarray:
    """The file from just before its transient, cut or padded to ``frames``."""
    start = 0
    if transient_s is not None:
        start = max(0, int(round((transient_s - PRE_ROLL_S) * sample_rate)))
    clip = audio[:, start:start + frames]
    out = np.zeros((audio.shape[0], frames), dtype=np.float32)
    out[:, :clip.shape[1]] = clip
    if audio.shape[1] - start > frames:  # the event ends before the sound does
        fade = min(int(TRIM_FADE_S * sample_rate), frames // 4)
        if fade > 0:
            ramp = np.cos(0.5 * np.pi * (np.arange(fade) + 0.5) / fade).astype(np.float32)
            out[:, frames - fade:] *= ramp
    return out


def bed_crossfade_s(length_s: float) -> float:
    """Long enough to hide the seam, short enough for four to fit in the file."""
    return float(min(BED_CROSSFADE_MAX_S, max(BED_CROSSFADE_MIN_S, length_s / 8.0)))


def place_bed(
    audio: np.ndarray, *, frames: int, sample_rate: int, offset_fraction: float
) -> np.ndarray:
    """Loop (crossfaded) or cut the file to ``frames``; ``offset_fraction`` in [0, 1) picks
    where a longer file starts."""
    have = audio.shape[1]
    if have > frames:
        start = int(offset_fraction * (have - frames))
        return np.ascontiguousarray(audio[:, start:start + frames])
    crossfade_ms = 1000.0 * bed_crossfade_s(have / sample_rate)
    return fit_to_length(audio, frames=frames, sample_rate=sample_rate, crossfade_ms=crossfade_ms)
