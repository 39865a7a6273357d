"""engine/loudness.py against pyloudnorm (the reference) on signals that stress the edges:
odd sample rates, five channels, clips under one gating block, levels at the -70 LUFS gate,
sparse clicks with long silences between them."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest

from engine import loudness, render
from engine.errors import InvalidInputError

TOLERANCE_LU = 0.01


def reference_lufs(audio: np.ndarray, rate: int) -> float:
    return float(pyloudnorm.Meter(rate).integrated_loudness(audio.T.astype(np.float64)))


def noise(rate: int, seconds: float, *, channels: int = 2, scale: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((channels, int(rate * seconds))) * scale).astype(np.float32)


def rain(rate: int, seconds: float, seed: int = 1) -> np.ndarray:
    base = noise(rate, seconds, scale=0.02, seed=seed)
    rng = np.random.default_rng(seed + 100)
    drops = rng.integers(0, base.shape[1] - 200, size=int(seconds * 30))
    for at in drops:
        base[:, at : at + 200] += (rng.standard_normal((2, 200)) * 0.3 * np.exp(
            -np.arange(200) / 30.0)).astype(np.float32)
    return base


def clock_ticks(rate: int, seconds: float) -> np.ndarray:
    out = np.zeros((1, int(rate * seconds)), dtype=np.float32)
    tick = int(0.002 * rate)
    for at in range(0, out.shape[1] - tick, rate // 2):
        out[0, at : at + tick] = 0.5 * np.sin(np.linspace(0, 40 * np.pi, tick))
    return out


def sine(rate: int, seconds: float, hz: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)[np.newaxis, :]


def near_gate(rate: int) -> np.ndarray:
    # About -69 LUFS with a quieter middle: some blocks sit just under the absolute gate.
    quiet = noise(rate, 3.0, channels=2, scale=0.00024, seed=5)
    quiet[:, rate : 2 * rate] *= 0.5
    return quiet


CASES = {
    "rain_48k_stereo": (rain(48000, 6.0), 48000),
    "rain_44k1": (rain(44100, 3.0), 44100),
    "noise_8k_mono": (noise(8000, 2.0, channels=1), 8000),
    "noise_11025": (noise(11025, 1.7), 11025),
    "noise_odd_rate_37111": (noise(37111, 1.3, seed=3), 37111),
    "noise_96k": (noise(96000, 1.0, seed=4), 96000),
    "five_channels": (noise(48000, 2.0, channels=5, seed=6), 48000),
    "exactly_one_block": (noise(48000, 0.4, seed=7), 48000),
    "just_over_one_block_22050": (noise(22050, 0.4013, seed=8), 22050),
    "near_minus_70_gate": (near_gate(48000), 48000),
    "clock_ticks": (clock_ticks(48000, 8.0), 48000),
    "loud_then_silent": (np.concatenate([noise(48000, 1.0, scale=0.5), np.zeros((2, 48000 * 6),
                                         dtype=np.float32)], axis=1), 48000),
    "sine_997hz": (sine(48000, 2.0, 997.0, 0.5), 48000),
    "sine_16k_at_44k1": (sine(44100, 1.5, 16000.0, 0.3), 44100),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pyloudnorm(name):
    audio, rate = CASES[name]
    expected = reference_lufs(audio, rate)
    got = loudness.integrated_lufs(audio, rate)
    assert math.isfinite(expected)
    assert abs(got - expected) <= TOLERANCE_LU
    assert abs(got - expected) < 1e-6  # in practice it is float-rounding close


@pytest.mark.parametrize("frames", [1, 37, 4800, 19199])
def test_clips_under_one_block_match_the_reference_on_the_looped_clip(frames):
    # render.measure_lufs defines a short clip's loudness as that of the clip looped to fill
    # the block; the reference can measure the looped clip directly.
    clip = noise(48000, 1.0, seed=frames)[:, :frames]
    clip[:, 0] = 0.4  # a single frame still has loudness
    looped = np.tile(clip, (1, math.ceil(19201 / frames)))
    assert render.measure_lufs(clip, 48000) == pytest.approx(reference_lufs(looped, 48000),
                                                             abs=1e-6)


def test_all_gated_and_silent_signals_have_no_loudness():
    rate = 48000
    assert loudness.integrated_lufs(np.zeros((2, rate), np.float32), rate) == -math.inf
    far_below_gate = noise(rate, 1.0, scale=1e-6)
    assert loudness.integrated_lufs(far_below_gate, rate) == -math.inf
    assert render.measure_lufs(far_below_gate, rate) is None


def test_filter_state_never_holds_subnormals(monkeypatch):
    # A loud second then silence: the K-weighting state decays towards zero and, unflushed,
    # would sit in the subnormal range (slow on x86) for the rest of the signal.
    import scipy.signal

    seen: list[np.ndarray] = []
    real = scipy.signal.sosfilt

    def recording(sos, x, axis=-1, zi=None):
        seen.append(np.array(zi, copy=True))
        return real(sos, x, axis=axis, zi=zi)

    monkeypatch.setattr(scipy.signal, "sosfilt", recording)
    audio, rate = CASES["loud_then_silent"]
    got = loudness.integrated_lufs(audio, rate)
    states = np.abs(np.concatenate([state.ravel() for state in seen]))
    tiny = np.finfo(np.float64).tiny
    assert len(seen) > 10 and not np.any((states > 0) & (states < tiny))
    assert got == pytest.approx(reference_lufs(audio, rate), abs=1e-6)


def test_block_edges_follow_the_reference_at_odd_rates():
    # pyloudnorm places block j at int(0.4 * (j * 0.25) * rate); so does the meter.
    lower, upper = loudness._block_edges(44100 * 3 + 17, 44100)
    assert lower[1] == int(0.4 * (1 * 0.25) * 44100)
    assert upper[3] == int(0.4 * (3 * 0.25 + 1) * 44100)
    assert len(lower) == int(np.round(((3 + 17 / 44100) - 0.4) / 0.1)) + 1


@pytest.mark.parametrize(
    "audio, rate, field",
    [
        (np.zeros((6, 48000), np.float32), 48000, "audio"),
        (np.zeros((2, 100), np.float32), 48000, "audio"),
        (np.zeros(48000, np.float32), 48000, "audio"),
        (np.zeros((1, 48000), np.float32), 0, "sample_rate"),
    ],
)
def test_bad_input_names_the_field(audio, rate, field):
    with pytest.raises(InvalidInputError) as info:
        loudness.integrated_lufs(audio, rate)
    assert info.value.field == field


# -- measuring again after a gain and local changes (the limiter's make-up rounds) -----------


def _changed(audio: np.ndarray, gain: float, spans) -> np.ndarray:
    out = (audio * np.float32(gain)).astype(np.float32)
    for low, high in spans:
        out[:, low:high] *= np.float32(0.3)  # what a limiter might do around a peak
    return out


@pytest.mark.parametrize("name", ["rain_48k_stereo", "clock_ticks", "loud_then_silent",
                                  "five_channels", "noise_11025"])
def test_a_measurement_taken_again_after_changes_equals_a_fresh_one(name):
    audio, rate = CASES[name]
    first = loudness.Measurement.of(audio, rate)
    assert first.lufs == loudness.integrated_lufs(audio, rate)
    frames = audio.shape[1]
    spans = [(frames // 7, frames // 7 + 900), (frames // 2, frames // 2 + 40)]
    for gain in (1.0, 1.7, 0.2):
        changed = _changed(audio, gain, spans)
        again = first.after(changed, gain=gain, changed=spans)
        fresh = loudness.integrated_lufs(changed, rate)
        assert again.lufs == pytest.approx(fresh, abs=1e-6)
        assert again.lufs == pytest.approx(reference_lufs(changed, rate), abs=TOLERANCE_LU)
        # ... and it can be taken again from there (chained rounds).
        twice = again.after(_changed(changed, 1.3, spans[:1]), gain=1.3, changed=spans[:1])
        assert twice.lufs == pytest.approx(
            loudness.integrated_lufs(_changed(changed, 1.3, spans[:1]), rate), abs=1e-6)


def test_only_chunks_near_a_change_are_filtered_again(monkeypatch):
    import scipy.signal

    audio, rate = CASES["rain_48k_stereo"]  # 6 s: nine chunks of 32768 frames
    first = loudness.Measurement.of(audio, rate)
    calls: list[int] = []
    real = scipy.signal.sosfilt

    def counting(sos, x, axis=-1, zi=None):
        calls.append(x.shape[1])
        return real(sos, x, axis=axis, zi=zi)

    monkeypatch.setattr(scipy.signal, "sosfilt", counting)
    spans = [(100_000, 100_500)]  # inside the fourth chunk
    again = first.after(_changed(audio, 1.5, spans), gain=1.5, changed=spans)
    assert 1 <= len(calls) <= 2 < len(first.chunks)  # that piece, maybe the next one
    # ... from the start of its 100 ms segment, not of its chunk, until the filter settles.
    assert sum(calls) <= 2 * 4800 < loudness.FILTER_CHUNK_FRAMES
    assert again.lufs == pytest.approx(
        loudness.integrated_lufs(_changed(audio, 1.5, spans), rate), abs=1e-6)
    calls.clear()
    first.after((audio * np.float32(0.5)).astype(np.float32), gain=0.5, changed=[])
    assert calls == []  # a gain alone needs no filtering at all


def test_a_measurement_refuses_audio_of_another_length():
    audio, rate = CASES["rain_44k1"]
    with pytest.raises(InvalidInputError, match="audio"):
        loudness.Measurement.of(audio, rate).after(audio[:, :-1], gain=1.0, changed=[])


@pytest.mark.parametrize("rate", [8000, 44100, 48000, 192000, 384000])
def test_a_pieces_state_is_recovered_from_the_frames_before_it(rate):
    # What lets a measurement taken again start at any 100 ms segment of a chunk.
    from scipy.signal import sosfilt

    sos = loudness.k_weighting_sos(rate)
    audio = rain(rate, 0.3)[0].astype(np.float64)
    from_inputs, from_outputs = loudness._state_recovery(rate)
    for at in (40, audio.size // 2, audio.size - 1):
        output, state = sosfilt(sos, audio[:at], zi=np.zeros((sos.shape[0], 2)))
        window = slice(at - loudness.RECOVER_FRAMES, at)
        recovered = audio[window] @ from_inputs + output[window] @ from_outputs
        np.testing.assert_allclose(recovered, state.ravel(), atol=1e-9 * np.abs(state).max())


def test_pieces_too_close_to_a_chunks_start_fall_back_to_an_earlier_state(monkeypatch):
    # A cut a few frames into a chunk: no state for that piece (too few frames before it),
    # so a change there is measured again from the chunk's start. Same answer either way.
    audio, rate = CASES["rain_48k_stereo"]
    monkeypatch.setattr(loudness, "FILTER_CHUNK_FRAMES", 4800 * 3 - 10)  # cuts 10 frames in
    first = loudness.Measurement.of(audio, rate)
    unknown = [c for c in first.chunks if np.isnan(c.states[1:]).any()]
    assert unknown  # the setting above made such pieces
    chunk = unknown[0]
    spans = [(chunk.start + 12, chunk.start + 300)]
    again = first.after(_changed(audio, 0.8, spans), gain=0.8, changed=spans)
    assert again.lufs == pytest.approx(
        loudness.integrated_lufs(_changed(audio, 0.8, spans), rate), abs=1e-6)


def test_the_silence_after_a_changed_click_is_not_filtered_again(monkeypatch):
    # Between ticks the states of the changed and the unchanged signal decay together: their
    # relative difference never shrinks, but it soon stops mattering against the signal's
    # level, and filtering stops there instead of running on to the next tick.
    import scipy.signal

    audio, rate = CASES["clock_ticks"]  # a 2 ms tick every 0.5 s
    first = loudness.Measurement.of(audio, rate)
    ticks = np.flatnonzero(np.abs(audio[0]) > 0.1)
    spans = [(int(at), int(at) + 50) for at in ticks[np.diff(ticks, prepend=-rate) > 1000]]
    changed = _changed(audio, 2.0, spans)
    filtered: list[int] = []
    real = scipy.signal.sosfilt
    monkeypatch.setattr(scipy.signal, "sosfilt", lambda sos, x, axis=-1, zi=None: (
        filtered.append(x.shape[-1]) or real(sos, x, axis=axis, zi=zi)))
    again = first.after(changed, gain=2.0, changed=spans)
    assert sum(filtered) < 0.65 * audio.shape[1]  # (0.875 without the level floor)
    assert again.lufs == pytest.approx(loudness.integrated_lufs(changed, rate), abs=1e-6)
