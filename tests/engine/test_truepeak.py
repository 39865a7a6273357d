"""engine/truepeak.py: the fast meter against the one reference it defines (8x, every phase),
the reference against an independent polyphase resampler, and the old 4x estimator's error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import freqz, resample_poly

from engine import truepeak

TOLERANCE_DB = 0.05
RATE = 48000


def db(value: float) -> float:
    return 20.0 * np.log10(value)


def reference_peak(audio: np.ndarray) -> float:
    return float(truepeak.reference_envelope(audio).max())


def noise(seconds: float, *, channels: int = 2, scale: float = 0.2, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((channels, int(RATE * seconds))) * scale).astype(np.float32)


def tone(hz: float, seconds: float = 0.5, amplitude: float = 0.5, phase: float = 0.3):
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t + phase)).astype(np.float32)[np.newaxis, :]


def rain(seconds: float = 3.0, seed: int = 2) -> np.ndarray:
    out = noise(seconds, scale=0.03, seed=seed)
    rng = np.random.default_rng(seed)
    for at in rng.integers(0, out.shape[1] - 100, size=int(seconds * 40)):
        out[:, at : at + 100] += (rng.standard_normal((2, 100)) * 0.4 * np.exp(
            -np.arange(100) / 12.0)).astype(np.float32)
    return out


def clicks(seconds: float = 2.0) -> np.ndarray:
    out = np.zeros((1, int(RATE * seconds)), dtype=np.float32)
    out[0, :: RATE // 4] = 0.8
    out[0, 1 :: RATE // 4] = -0.8  # a Nyquist doublet: its true peak is far above 0.8
    return out


SIGNALS = {
    "white_noise_stereo": noise(1.0),
    "rain": rain(),
    "tone_19k9": tone(19900.0),
    "tone_21k": tone(21000.0, phase=1.1),
    "tone_quarter_rate_at_45_degrees": tone(RATE / 4, phase=np.pi / 4),
    "tone_997": tone(997.0),
    "sparse_clicks": clicks(),
    "five_channels": noise(0.3, channels=5, seed=9),
    "short_clip": noise(0.001, seed=4),
    "one_frame": np.array([[0.5]], dtype=np.float32),
}


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_meter_matches_the_reference(name):
    audio = SIGNALS[name]
    assert abs(db(truepeak.true_peak(audio)) - db(reference_peak(audio))) <= TOLERANCE_DB
    assert truepeak.true_peak(audio) == pytest.approx(reference_peak(audio), rel=1e-5)


@pytest.mark.parametrize("name", ["rain", "tone_19k9", "sparse_clicks", "white_noise_stereo"])
def test_frames_over_a_ceiling_are_exactly_the_references(name):
    audio = SIGNALS[name]
    envelope = truepeak.reference_envelope(audio)
    ceiling = float(envelope.max()) * 0.8
    found = truepeak.scan(audio, ceiling=ceiling)
    expected = np.flatnonzero(envelope > ceiling)
    # Float rounding may differ at the last bit between the two products: allow frames that
    # sit on the ceiling itself to go either way.
    on_edge = np.flatnonzero(np.abs(envelope - ceiling) < 1e-6 * ceiling)
    assert set(found.over_frames) ^ set(expected) <= set(on_edge)
    np.testing.assert_allclose(found.over_peaks, envelope[found.over_frames], rtol=1e-5)


def test_blocks_do_not_change_the_answer(monkeypatch):
    audio = rain(1.0)
    audio[:, 2047:2049] = [[0.9, -0.9], [0.9, -0.9]]  # the loudest moment on a block seam
    whole = truepeak.scan(audio, ceiling=0.5)
    monkeypatch.setattr(truepeak, "BLOCK_ROWS", 2 * 2048)
    blocked = truepeak.scan(audio, ceiling=0.5)
    assert blocked.peak == pytest.approx(whole.peak, rel=1e-6)
    np.testing.assert_array_equal(blocked.over_frames, whole.over_frames)


@pytest.mark.parametrize("channels, frames", [(1, 2049), (2, 4801), (5, 1000), (3, 23)])
@pytest.mark.parametrize("block_rows, gemm_rows", [(4096, 256), (600, 5)])
def test_every_frame_refined_is_the_references(channels, frames, block_rows, gemm_rows,
                                               monkeypatch):
    # Rows of 24 frames, blocks that are no multiple of them, batches of blocks, products a
    # few rows at a time, the signal's ends: each frame's value is the reference's.
    monkeypatch.setattr(truepeak, "BLOCK_ROWS", block_rows)
    monkeypatch.setattr(truepeak, "_GEMM_ROWS", gemm_rows)
    audio = noise(frames / RATE, channels=channels, seed=frames)
    audio[0, frames // 2] = 0.9  # a click amid noise
    envelope = truepeak.reference_envelope(audio)
    found = truepeak.scan(audio, ceiling=1e-9)  # every frame is "over": all refined
    np.testing.assert_array_equal(found.over_frames, np.arange(frames))
    np.testing.assert_allclose(found.over_peaks, envelope, rtol=1e-6)
    assert found.peak == pytest.approx(float(envelope.max()), rel=1e-6)
    part = truepeak.scan(audio, ceiling=1e-9, start=7, stop=frames - 3)
    np.testing.assert_array_equal(part.over_frames, np.arange(7, frames - 3))
    np.testing.assert_allclose(part.over_peaks, envelope[7 : frames - 3], rtol=1e-6)


def test_range_scan_uses_the_neighbours_as_context():
    audio = rain(1.0)
    envelope = truepeak.reference_envelope(audio)
    part = truepeak.scan(audio, start=1000, stop=3000)
    assert part.peak == pytest.approx(float(envelope[1000:3000].max()), rel=1e-5)


def test_reference_equals_an_independent_polyphase_resampler():
    audio = rain(1.0)
    # scipy's resample_poly with the same taps: every 8x output, edges left out.
    upsampled = resample_poly(audio, 8, 1, axis=1, window=truepeak.reference_filter() / 8)
    independent = np.abs(upsampled).reshape(2, -1, 8).max(axis=(0, 2))
    ours = truepeak.reference_envelope(audio)
    np.testing.assert_allclose(ours[50:-50], independent[50:-50], atol=1e-3 * ours.max())


def test_reference_filter_is_flat_to_20_khz_and_rejects_images():
    taps = truepeak.reference_filter()
    in_band = [1000.0, 10000.0, 18000.0, 20000.0]
    images = [28000.0, 30000.0, 40000.0]
    _, response = freqz(taps, worN=[2 * np.pi * f / (8 * RATE) for f in in_band + images])
    gain_db = 20 * np.log10(np.abs(response) / 8)  # the filter carries the upsampling gain 8
    assert np.all(np.abs(gain_db[: len(in_band)]) < 0.05)
    assert np.all(gain_db[len(in_band) :] < -40)


def test_the_old_4x_estimate_read_low_where_the_meter_does_not():
    # A 19.9 kHz tone: per frame, 4x oversampling (scipy's default filter, what the limiter
    # used before) misses crests by tenths of a dB; the meter's per-frame values are the
    # reference's.
    audio = tone(19900.0, seconds=0.2, phase=0.7)
    middle = slice(500, -500)  # away from the abrupt start and end (band-limited ringing)
    old = np.abs(resample_poly(audio, 4, 1, axis=1)).reshape(-1, 4).max(axis=1)
    old = np.maximum(old, np.abs(audio[0]))
    ref = truepeak.reference_envelope(audio)
    assert np.max(db(ref[middle]) - db(old[middle])) > 0.3
    found = truepeak.scan(audio, ceiling=1e-9)  # every frame is "over": all refined
    np.testing.assert_allclose(db(found.over_peaks[middle]), db(ref[middle]), atol=0.001)
    assert abs(db(ref[middle].max()) - db(0.5)) < 0.05  # the reference is right on the tone


def test_subnormal_tails_read_as_zero():
    audio = noise(0.2, channels=1)
    tail = np.full((1, 4000), 1e-41, dtype=np.float32)  # subnormal float32
    assert truepeak.true_peak(np.concatenate([audio, tail], axis=1)) == pytest.approx(
        truepeak.true_peak(np.concatenate([audio, np.zeros_like(tail)], axis=1)), rel=1e-7
    )


def test_silence_has_no_peak():
    assert truepeak.true_peak(np.zeros((2, 1000), np.float32)) == 0.0
    assert truepeak.to_dbtp(0.0) is None


def test_interpolation_bound_holds():
    bound = truepeak.interpolation_bound()
    assert 1.0 < bound < 3.0
    for name in ("sparse_clicks", "tone_quarter_rate_at_45_degrees", "rain"):
        audio = SIGNALS[name]
        assert reference_peak(audio) <= bound * float(np.abs(audio).max())


# -- carrying a scan's per-block peaks to the next pass (the limiter's rounds) ----------------


@pytest.mark.parametrize("name", ["rain", "sparse_clicks", "tone_19k9", "white_noise_stereo"])
def test_a_scan_from_carried_blocks_equals_a_fresh_scan(name):
    audio = SIGNALS[name]
    first = truepeak.scan(audio)
    assert first.blocks is not None
    for gain in (1.6, 0.7):
        louder = (audio * np.float32(gain)).astype(np.float32)
        ceiling = 0.9 * reference_peak(louder)
        fresh = truepeak.scan(louder, ceiling=ceiling)
        carried = truepeak.scan(louder, ceiling=ceiling, blocks=first.blocks.scaled(gain))
        assert carried.peak == pytest.approx(fresh.peak, rel=1e-5)
        np.testing.assert_array_equal(carried.over_frames, fresh.over_frames)
        assert truepeak.scan(louder, blocks=first.blocks.scaled(gain)).peak == pytest.approx(
            reference_peak(louder), rel=1e-5)


def test_forgotten_blocks_are_measured_again_and_the_rest_are_not(monkeypatch):
    audio = rain(2.0)
    first = truepeak.scan(audio)
    changed = audio.copy()
    changed[:, 30000:30050] *= 3.0  # a new loudest moment
    visited: list[int] = []
    real = truepeak._block_envelopes

    def counting(array, starts, step, end, bound, ceiling):
        visited.extend(starts.tolist())
        return real(array, starts, step, end, bound, ceiling)

    monkeypatch.setattr(truepeak, "_block_envelopes", counting)
    again = truepeak.scan(changed, blocks=first.blocks.forget([(30000, 30050)]))
    assert again.peak == pytest.approx(reference_peak(changed), rel=1e-5)
    step = truepeak.block_frames(2)
    assert visited == [30000 // step * step]  # the rest is known from the first scan
    visited.clear()
    assert truepeak.scan(changed).peak == pytest.approx(again.peak, rel=1e-6)
    assert len(visited) > 1


def test_carried_blocks_must_fit_the_signal():
    first = truepeak.scan(rain(1.0))
    with pytest.raises(ValueError, match="blocks"):
        truepeak.scan(rain(1.5), blocks=first.blocks)
    assert truepeak.scan(rain(1.0), start=10, stop=2000).blocks is None
