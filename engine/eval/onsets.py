"""Onset ACC and Onset AP: how well the onsets of generated audio line up with a reference.

Onset detection (ours, numpy only): mono audio -> STFT (Hann, 23 ms window, 10 ms hop,
frames centred on their time) -> log-compressed magnitude -> spectral flux (sum over bins of
the positive frame-to-frame increase) -> peaks above an adaptive threshold (local median over
0.5 s + delta * max) at least min_separation_s apart. Each onset has a time (the frame centre)
and a strength (its flux value).

Metrics, with tolerance window w (default 0.1 s, i.e. |t_gen - t_ref| <= w):

* Matching is one-to-one. For ACC the reference onsets are visited in time order and each takes
  the earliest still-unmatched generated onset within w; in one dimension this greedy sweep
  yields the largest possible number of matched pairs.
* ACC = matched / |reference onsets|. No reference onsets: ACC = 1 if nothing was generated
  either, else 0.
* AP: generated onsets are ranked by strength (descending). Going down the ranking, an onset is
  a true positive if an unmatched reference onset lies within w (it takes the nearest one), else
  a false positive. With P(k) the precision of the top k,
  AP = (1 / |reference onsets|) * sum over true-positive ranks k of P(k)
  (non-interpolated average precision; recall only grows at true positives). No reference
  onsets: AP = 1 if nothing was generated, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_TOLERANCE_S = 0.1
HOP_S = 0.01
WINDOW_S = 0.023  # ~1024 samples at 44.1 kHz: short enough to date an attack to ~10 ms


@dataclass(frozen=True)
class AudioOnsets:
    times_s: np.ndarray
    strengths: np.ndarray


@dataclass(frozen=True)
class OnsetScores:
    acc: float
    ap: float
    n_generated: int
    n_reference: int
    n_matched: int
    # The AVSync15 / CondFoleyGen scripts' AP (see onset_average_precision_avsync): compare
    # this one with published Onset AP figures.
    ap_avsync: float = 0.0


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    return audio if audio.ndim == 1 else audio.mean(axis=0)


def onset_envelope(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(frame times in s, spectral-flux onset strength) of float audio (channels, frames) or 1-D."""
    mono = _mono(audio)
    hop = max(1, int(round(HOP_S * sample_rate)))
    n_fft = max(16, int(round(WINDOW_S * sample_rate)))
    padded = np.pad(mono, (n_fft // 2, n_fft // 2))
    n_frames = 1 + max(0, (len(padded) - n_fft) // hop)
    if n_frames < 2:
        return np.zeros(n_frames), np.zeros(n_frames)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))
    log_mag = np.log1p(100.0 * spectrum)
    flux = np.concatenate([[0.0], np.maximum(0.0, np.diff(log_mag, axis=0)).sum(axis=1)])
    times_s = np.arange(n_frames) * hop / sample_rate  # frames are centred by the padding
    return times_s, flux


def detect_audio_onsets(
    audio: np.ndarray,
    sample_rate: int,
    *,
    delta: float = 0.1,
    median_window_s: float = 0.5,
    min_separation_s: float = 0.05,
) -> AudioOnsets:
    """Peaks of the onset envelope above median(local) + delta * max(envelope)."""
    times_s, flux = onset_envelope(audio, sample_rate)
    if len(flux) < 3 or float(flux.max()) <= 1e-9:
        return AudioOnsets(np.zeros(0), np.zeros(0))
    half = max(1, int(round(median_window_s / HOP_S / 2)))
    padded = np.pad(flux, half, mode="edge")
    local = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
    threshold = local + delta * float(flux.max())
    is_peak = (flux > threshold) & (flux >= np.roll(flux, 1)) & (flux >= np.roll(flux, -1))
    is_peak[0] = is_peak[0] and flux[0] > flux[1]
    order = np.argsort(-flux[is_peak], kind="stable")
    candidates = np.flatnonzero(is_peak)[order]
    kept: list[int] = []
    for index in candidates:
        if all(abs(times_s[index] - times_s[other]) >= min_separation_s for other in kept):
            kept.append(int(index))
    kept.sort()
    return AudioOnsets(times_s[kept], flux[kept])


def match_count(generated_s: Sequence[float], reference_s: Sequence[float], *, tolerance_s: float) -> int:
    """Largest one-to-one matching with |gen - ref| <= tolerance_s (time-ordered greedy sweep)."""
    generated = sorted(generated_s)
    used = [False] * len(generated)
    matched = 0
    for ref in sorted(reference_s):
        for index, gen in enumerate(generated):
            if used[index] or gen < ref - tolerance_s:
                continue
            if gen > ref + tolerance_s:
                break
            used[index] = True
            matched += 1
            break
    return matched


def onset_accuracy(
    generated_s: Sequence[float], reference_s: Sequence[float], *, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> float:
    if len(reference_s) == 0:
        return 1.0 if len(generated_s) == 0 else 0.0
    return match_count(generated_s, reference_s, tolerance_s=tolerance_s) / len(reference_s)


def onset_average_precision(
    generated_s: Sequence[float],
    strengths: Sequence[float],
    reference_s: Sequence[float],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> float:
    if len(reference_s) == 0:
        return 1.0 if len(generated_s) == 0 else 0.0
    references = list(reference_s)
    free = [True] * len(references)
    order = sorted(range(len(generated_s)), key=lambda i: (-strengths[i], generated_s[i]))
    true_positives, total = 0, 0.0
    for rank, index in enumerate(order, start=1):
        gen = generated_s[index]
        best, best_gap = None, tolerance_s
        for ref_index, ref in enumerate(references):
            gap = abs(gen - ref)
            if free[ref_index] and gap <= best_gap + 1e-12:
                best, best_gap = ref_index, gap
        if best is None:
            continue
        free[best] = False
        true_positives += 1
        total += true_positives / rank
    return total / len(references)


def onset_average_precision_avsync(
    generated_s: Sequence[float],
    strengths: Sequence[float],
    reference_s: Sequence[float],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> float:
    """Onset AP the way the AVSync15 / CondFoleyGen evaluation scripts score it.

    Each reference onset, in time order, takes the strongest unmatched generated onset within
    the window and becomes a positive scored with that strength; a reference with none becomes
    a positive scored 0 (it still counts, at the bottom of the ranking). Unmatched generated
    onsets are negatives scored with their strength. AP is then the step-wise area of the
    precision-recall curve over score thresholds, sum (R_n - R_n-1) * P_n, as scikit-learn's
    average_precision_score computes it. Unlike onset_average_precision, a miss still earns
    the precision of the whole list (so a file with no generated onset at all scores 1.0; read
    it beside ACC); the paper's Onset AP figures use this form.
    """
    if len(reference_s) == 0:
        return 1.0 if len(generated_s) == 0 else 0.0
    free = [True] * len(generated_s)
    labelled: list[tuple[float, int]] = []  # (score, 1 positive / 0 negative)
    for ref in sorted(reference_s):
        near = [i for i in range(len(generated_s)) if free[i] and abs(generated_s[i] - ref) <= tolerance_s + 1e-12]
        if not near:
            labelled.append((0.0, 1))
            continue
        best = max(near, key=lambda i: strengths[i])
        free[best] = False
        labelled.append((float(strengths[best]), 1))
    labelled += [(float(strengths[i]), 0) for i in range(len(generated_s)) if free[i]]
    positives = sum(label for _, label in labelled)
    area, recall_before, seen, hits = 0.0, 0.0, 0, 0
    for threshold in sorted({score for score, _ in labelled}, reverse=True):
        # Tied scores enter together, as one threshold.
        group = [label for score, label in labelled if score == threshold]
        seen, hits = seen + len(group), hits + sum(group)
        recall = hits / positives
        area += (recall - recall_before) * (hits / seen)
        recall_before = recall
    return area


def score_onsets(
    generated: AudioOnsets, reference_s: Sequence[float], *, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> OnsetScores:
    gen_times = [float(t) for t in generated.times_s]
    strengths = [float(s) for s in generated.strengths]
    return OnsetScores(
        acc=onset_accuracy(gen_times, reference_s, tolerance_s=tolerance_s),
        ap=onset_average_precision(gen_times, strengths, reference_s, tolerance_s=tolerance_s),
        n_generated=len(gen_times),
        n_reference=len(reference_s),
        n_matched=match_count(gen_times, reference_s, tolerance_s=tolerance_s),
        ap_avsync=onset_average_precision_avsync(gen_times, strengths, reference_s, tolerance_s=tolerance_s),
    )


def score_audio_pair(
    generated: np.ndarray,
    reference: np.ndarray,
    *,
    sample_rate: int,
    reference_rate: int | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> OnsetScores:
    """Detect onsets in both signals and score the generated ones against the reference's."""
    gen = detect_audio_onsets(generated, sample_rate)
    ref = detect_audio_onsets(reference, reference_rate or sample_rate)
    return score_onsets(gen, [float(t) for t in ref.times_s], tolerance_s=tolerance_s)


def score_folders(
    generated_dir: Path, reference_dir: Path, *, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> dict:
    """Per-file scores for WAVs present (same name) in both folders, and their mean."""
    import soundfile as sf

    from engine.errors import InvalidInputError

    generated_dir, reference_dir = Path(generated_dir), Path(reference_dir)
    for name, folder in (("gen_dir", generated_dir), ("ref_dir", reference_dir)):
        if not folder.is_dir():
            raise InvalidInputError(f"{name}={str(folder)!r}: not a folder", field=name, value=str(folder))
    names = sorted(p.name for p in generated_dir.glob("*.wav") if (reference_dir / p.name).is_file())
    if not names:
        raise InvalidInputError(
            f"gen_dir={str(generated_dir)!r}: no WAV file shares its name with one in {reference_dir}",
            field="gen_dir",
            value=str(generated_dir),
        )
    files = {}
    for name in names:
        gen, gen_rate = sf.read(generated_dir / name, dtype="float32", always_2d=True)
        ref, ref_rate = sf.read(reference_dir / name, dtype="float32", always_2d=True)
        scores = score_audio_pair(
            gen.T, ref.T, sample_rate=gen_rate, reference_rate=ref_rate, tolerance_s=tolerance_s
        )
        files[name] = scores.__dict__
    mean = {
        "acc": float(np.mean([f["acc"] for f in files.values()])),
        "ap": float(np.mean([f["ap"] for f in files.values()])),
        "ap_avsync": float(np.mean([f["ap_avsync"] for f in files.values()])),
    }
    return {"tolerance_s": tolerance_s, "files": files, "mean": mean}
