"""Onset ACC / AP against hand-computed values, and audio onset detection on known bursts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from engine.eval.onsets import (
    detect_audio_onsets,
    match_count,
    onset_accuracy,
    onset_average_precision,
    onset_average_precision_avsync,
    score_audio_pair,
    score_folders,
)
from server.cli import main

RATE = 48000


def bursts(times_s, *, duration_s=2.0, rate=RATE, seed=0, gains=None):
    """Decaying noise bursts (15 ms decay) starting at each time, over faint noise."""
    rng = np.random.default_rng(seed)
    audio = 0.001 * rng.standard_normal(int(duration_s * rate))
    decay = np.exp(-np.arange(int(0.15 * rate)) / (0.015 * rate))
    for index, time_s in enumerate(times_s):
        start = int(time_s * rate)
        piece = decay * rng.standard_normal(len(decay)) * (gains[index] if gains else 0.5)
        audio[start : start + len(piece)] += piece[: len(audio) - start]
    return audio.astype(np.float32)


def test_accuracy_hand_computed():
    # 1.0 <- 1.05 (1.08 is a duplicate), 2.0 has nothing within 0.1 s, 3.0 <- 3.09.
    assert onset_accuracy([1.05, 1.08, 2.5, 3.09], [1.0, 2.0, 3.0], tolerance_s=0.1) == pytest.approx(2 / 3)
    # One generated onset can match only one reference onset.
    assert onset_accuracy([1.01], [1.0, 1.02], tolerance_s=0.1) == 0.5
    # The sweep finds the larger matching where "nearest first" would not.
    assert match_count([0.95, 1.05], [1.0, 1.12], tolerance_s=0.1) == 2
    # Window edges are inclusive; outside is a miss.
    assert onset_accuracy([1.1], [1.0], tolerance_s=0.1) == 1.0
    assert onset_accuracy([1.11], [1.0], tolerance_s=0.1) == 0.0
    assert onset_accuracy([], [], tolerance_s=0.1) == 1.0
    assert onset_accuracy([1.0], [], tolerance_s=0.1) == 0.0


def test_average_precision_hand_computed():
    # Ranked by strength: TP (P=1), TP (P=1), FP, TP (P=3/4); 4 references -> (1+1+0.75)/4.
    ap = onset_average_precision([1.0, 2.05, 5.0, 3.0], [0.9, 0.8, 0.7, 0.1], [1.0, 2.0, 3.0, 4.0],
                                 tolerance_s=0.1)
    assert ap == pytest.approx(0.6875)
    # The strong duplicate takes the reference, the weak one is a false positive after it.
    assert onset_average_precision([1.0, 1.01], [0.5, 0.9], [1.0], tolerance_s=0.1) == 1.0
    # The same two onsets with the false positive ranked first: P(2) = 1/2.
    assert onset_average_precision([1.0, 3.0], [0.1, 0.9], [1.0], tolerance_s=0.1) == 0.5
    assert onset_average_precision([], [], [1.0], tolerance_s=0.1) == 0.0


def test_detects_bursts_at_their_times():
    times = [0.3, 0.9, 1.25, 1.6]
    found = detect_audio_onsets(bursts(times), RATE)
    assert len(found.times_s) == len(times)
    np.testing.assert_allclose(found.times_s, times, atol=0.02)
    assert np.all(found.strengths > 0)


def test_silence_has_no_onsets_and_other_rates_work():
    assert len(detect_audio_onsets(np.zeros((2, RATE), np.float32), RATE).times_s) == 0
    found = detect_audio_onsets(bursts([0.5, 1.2], rate=16000), 16000)
    np.testing.assert_allclose(found.times_s, [0.5, 1.2], atol=0.02)


def test_pair_scores_shifted_and_missing_onsets():
    reference = bursts([0.3, 0.9, 1.6], seed=1)
    early = bursts([0.25, 0.95, 1.6], seed=2)  # all within 0.1 s
    scores = score_audio_pair(early, reference, sample_rate=RATE)
    assert (scores.acc, scores.n_matched) == (1.0, 3) and scores.ap == pytest.approx(1.0)
    sparse = bursts([0.3, 1.3], seed=3)  # one hit, one miss, one reference left unmatched
    scores = score_audio_pair(sparse, reference, sample_rate=RATE)
    assert scores.acc == pytest.approx(1 / 3)


def test_cli_scores_folders(tmp_path, capsys):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir(), ref.mkdir()
    sf.write(gen / "a.wav", bursts([0.3, 0.9], seed=4), RATE)
    sf.write(ref / "a.wav", bursts([0.32, 0.88], seed=5), RATE)
    sf.write(gen / "b.wav", bursts([0.5], seed=6), RATE)
    sf.write(ref / "b.wav", bursts([1.5], seed=7), RATE)
    sf.write(gen / "only_here.wav", bursts([0.5], seed=8), RATE)
    assert main(["onsets", str(gen), str(ref), "--tolerance-s", "0.1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["files"]) == {"a.wav", "b.wav"}
    assert result["files"]["a.wav"]["acc"] == 1.0 and result["files"]["b.wav"]["acc"] == 0.0
    assert result["mean"]["acc"] == pytest.approx(0.5) and result["tolerance_s"] == 0.1
    direct = score_folders(gen, ref, tolerance_s=0.1)
    assert direct["mean"] == result["mean"]


def test_cli_rejects_empty_pairing(tmp_path, capsys):
    (tmp_path / "gen").mkdir(), (tmp_path / "ref").mkdir()
    assert main(["onsets", str(tmp_path / "gen"), str(tmp_path / "ref")]) == 2
    assert "gen_dir" in capsys.readouterr().err


def test_avsync_style_average_precision_hand_computed():
    # The docs' example under the AVSync15 / CondFoleyGen scoring: references take 1.0 (0.9),
    # 2.05 (0.8), 3.0 (0.1); 4.0 is missed (positive, score 0); 5.0 (0.7) is a negative.
    # Thresholds 0.9, 0.8, 0.7, 0.1, 0 -> recall steps .25, .25, 0, .25, .25 at precision
    # 1, 1, 2/3, 3/4, 4/5 -> 0.25 + 0.25 + 0.1875 + 0.2 = 0.8875.
    ap = onset_average_precision_avsync([1.0, 2.05, 5.0, 3.0], [0.9, 0.8, 0.7, 0.1], [1.0, 2.0, 3.0, 4.0],
                                        tolerance_s=0.1)
    assert ap == pytest.approx(0.8875)
    # Inside one window the reference takes the strongest onset; the weaker one is a negative
    # ranked below it.
    assert onset_average_precision_avsync([1.0, 1.05], [0.2, 0.9], [1.0], tolerance_s=0.1) == 1.0
    # A stronger false positive first: precision 1/2 when the reference is reached.
    assert onset_average_precision_avsync([1.0, 3.0], [0.9, 0.95], [1.0], tolerance_s=0.1) == 0.5
    # Tied scores enter as one threshold.
    assert onset_average_precision_avsync([1.0, 3.0], [0.5, 0.5], [1.0], tolerance_s=0.1) == 0.5
    # Misses still count at score 0: 2 positives and 1 negative above them -> 2/3.
    assert onset_average_precision_avsync([5.0], [0.3], [1.0, 2.0], tolerance_s=0.1) == pytest.approx(2 / 3)
    assert onset_average_precision_avsync([], [], [], tolerance_s=0.1) == 1.0


def test_cli_reports_both_average_precisions(tmp_path, capsys):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir(), ref.mkdir()
    sf.write(gen / "a.wav", bursts([0.3, 1.4], seed=9), RATE)
    sf.write(ref / "a.wav", bursts([0.32, 0.9], seed=10), RATE)
    assert main(["onsets", str(gen), str(ref)]) == 0
    result = json.loads(capsys.readouterr().out)
    scores = result["files"]["a.wav"]
    # One hit, one miss, one false positive: the ranked AP gives the miss nothing, the
    # AVSync form gives it the precision of the whole list.
    assert scores["acc"] == 0.5 and scores["ap"] <= 0.5 < scores["ap_avsync"]
    assert result["mean"]["ap_avsync"] == scores["ap_avsync"]
