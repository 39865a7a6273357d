"""Measurements the index keeps per file: loudness, the main transient, and how well it loops.

All three work on a mono analysis copy at the file's own rate, of at most MAX_ANALYSIS_S
seconds (a two-hour field recording is indexed from its first ten minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import InvalidInputError
from engine.library.metadata import UnreadableFile
from engine.render import measure_lufs

MAX_ANALYSIS_S = 600.0
ENVELOPE_MS = 1.0  # envelope resolution: the transient is found to about this
ONSET_FRACTION = 0.2  # the attack starts where the envelope first reaches 20 % of the peak
ONSET_SEARCH_S = 0.25  # how far before the peak the attack may start
SEAM_WINDOW_S = 0.25  # start/end windows compared for loop cleanliness
SILENCE_DBFS = -70.0


@dataclass(frozen=True)
class Analysis:
    loudness_lufs: float | None
    peak_dbfs: float | None
    transient_s: float | None  # None for silence
    loop_score: float  # 0..1: how seamless the file is when its end runs into its start
    steadiness_db: float  # spread of short-term level; small for beds, large for one-shots


def read_audio(path: Path, *, max_s: float = MAX_ANALYSIS_S) -> tuple[np.ndarray, int]:
    """float32 (channels, frames) of at most ``max_s`` seconds, and the file's rate."""
    try:
        with open(path, "rb") as raw, sf.SoundFile(raw) as handle:
            rate = int(handle.samplerate)
            limit = int(max_s * rate)
            frames = min(int(handle.frames), limit) if handle.frames > 0 else limit
            data = handle.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as error:
        raise UnreadableFile(f"cannot decode audio: {str(error)[:200]}") from None
    if data.shape[0] == 0:
        raise UnreadableFile("no audio frames could be decoded")
    if not np.all(np.isfinite(data)):
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    return np.ascontiguousarray(data.T), rate


def envelope(mono: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Peak envelope in ENVELOPE_MS hops and the hop length in frames."""
    hop = max(1, int(round(rate * ENVELOPE_MS / 1000.0)))
    usable = (len(mono) // hop) * hop
    if usable == 0:
        return np.abs(mono[:1]), hop
    blocks = np.abs(mono[:usable]).reshape(-1, hop).max(axis=1)
    return blocks, hop


def main_transient_s(mono: np.ndarray, rate: int) -> float | None:
    """Where the loudest attack begins: walk back from the envelope peak to where the level
    first rose past ONSET_FRACTION of it, then refine to the sample inside that hop."""
    env, hop = envelope(mono, rate)
    peak = float(env.max()) if env.size else 0.0
    if peak <= 10 ** (SILENCE_DBFS / 20):
        return None
    top = int(np.argmax(env))
    lowest = max(0, top - int(ONSET_SEARCH_S * 1000.0 / ENVELOPE_MS))
    threshold = ONSET_FRACTION * peak
    block = top
    while block > lowest and env[block - 1] >= threshold:
        block -= 1
    start = block * hop
    region = np.abs(mono[start:start + 2 * hop])
    above = np.flatnonzero(region >= threshold)
    frame = start + int(above[0]) if above.size else start
    return frame / rate


def loop_score(mono: np.ndarray, rate: int) -> float:
    """1 for material whose end flows into its start (a steady bed), near 0 for a one-shot.

    Three checks, multiplied: the level of the last SEAM_WINDOW_S against the first (a fade in
    or out breaks a loop), their spectra (a bed that changes colour audibly jumps), and the
    jump between the last and first sample relative to the signal's level (a click)."""
    window = int(SEAM_WINDOW_S * rate)
    if len(mono) < 4 * window:
        return 0.0
    head, tail = mono[:window], mono[-window:]
    rms_head = float(np.sqrt(np.mean(head.astype(np.float64) ** 2)))
    rms_tail = float(np.sqrt(np.mean(tail.astype(np.float64) ** 2)))
    floor = 10 ** (SILENCE_DBFS / 20)
    if max(rms_head, rms_tail) <= floor:
        return 0.0
    level_db = abs(20 * np.log10(max(rms_head, floor) / max(rms_tail, floor)))
    level = float(np.exp(-level_db / 3.0))
    spec_head = np.abs(np.fft.rfft(head * np.hanning(window)))
    spec_tail = np.abs(np.fft.rfft(tail * np.hanning(window)))
    # Compare coarse bands (log magnitude) so noise beds are not penalised for fine detail.
    bands = np.array_split(np.arange(spec_head.size), 24)
    band_head = np.log10(np.array([spec_head[b].mean() for b in bands]) + 1e-9)
    band_tail = np.log10(np.array([spec_tail[b].mean() for b in bands]) + 1e-9)
    colour = float(np.exp(-np.mean(np.abs(band_head - band_tail)) / 0.3))
    rms = 0.5 * (rms_head + rms_tail)
    jump = abs(float(mono[-1]) - float(mono[0])) / max(rms, floor)
    click = float(np.exp(-max(0.0, jump - 2.0) / 2.0))
    return round(level * colour * click, 4)


def steadiness_db(mono: np.ndarray, rate: int) -> float:
    """Standard deviation of 100 ms RMS levels in dB over the non-silent part."""
    hop = max(1, rate // 10)
    usable = (len(mono) // hop) * hop
    if usable < 2 * hop:
        return 99.0
    rms = np.sqrt(np.mean(mono[:usable].astype(np.float64).reshape(-1, hop) ** 2, axis=1))
    levels = 20 * np.log10(np.maximum(rms, 1e-9))
    levels = levels[levels > SILENCE_DBFS]
    return round(float(np.std(levels)), 3) if levels.size >= 2 else 99.0


def analyse(audio: np.ndarray, rate: int) -> Analysis:
    mono = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    try:
        loudness = measure_lufs(audio, rate)
    except InvalidInputError:  # a rate the meter does not take (under 8 kHz, over 384 kHz)
        loudness = None
    if loudness is not None and not np.isfinite(loudness):
        loudness = None
    return Analysis(
        loudness_lufs=None if loudness is None else round(float(loudness), 2),
        peak_dbfs=round(20 * float(np.log10(peak)), 2) if peak > 0 else None,
        transient_s=main_transient_s(mono, rate),
        loop_score=loop_score(mono, rate),
        steadiness_db=steadiness_db(mono, rate),
    )
