"""Long procedural events: built from segments in bounded memory, exact length, no gaps at
the seams, no fixed loop, deterministic; one-shots ring out once."""

from __future__ import annotations

import numpy as np

from engine.generators.procedural import LONG_EVENT_S, render_sketch
from engine.generators.procedural.long_events import (
    CROSSFADE_S,
    POOL_S,
    SEGMENT_SAMPLES,
    render_continuing,
    segment_frames,
)

RATE = 8000


def window_rms(audio: np.ndarray, window_s: float) -> np.ndarray:
    x = audio.astype(np.float64)
    size = int(window_s * RATE)
    usable = x.shape[-1] // size * size
    frames = x[:, :usable].reshape(x.shape[0], -1, size)
    return np.sqrt(np.mean(frames**2, axis=(0, 2)))


def test_long_bed_has_exact_length_and_no_dips_at_the_seams() -> None:
    length_s = 2 * LONG_EVENT_S + 7.5
    bed = render_sketch("steady rain", length_s=length_s, sample_rate=RATE, seed=4)
    assert bed.shape == (2, round(length_s * RATE)) and bed.dtype == np.float32
    assert np.all(np.isfinite(bed)) and np.max(np.abs(bed)) <= 1.0
    coarse = window_rms(bed, 5.0)
    assert coarse.min() > 0.5 * coarse.max()
    fine = window_rms(bed[:, int(0.5 * RATE): -int(0.5 * RATE)], 0.1)
    assert fine.min() > 0.4 * np.median(fine)  # no gap or dip anywhere, seams included


def test_long_bed_is_deterministic_and_not_a_fixed_loop() -> None:
    length_s = LONG_EVENT_S + 70.0
    first = render_sketch("wind through trees", length_s=length_s, sample_rate=RATE, seed=2)
    again = render_sketch("wind through trees", length_s=length_s, sample_rate=RATE, seed=2)
    other = render_sketch("wind through trees", length_s=length_s, sample_rate=RATE, seed=3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    # The next segment is new material, not the first one again (a loop would repeat it).
    hop_s = segment_frames(channels=2, work_rate=RATE, sample_rate=RATE) / RATE - CROSSFADE_S
    head = first[:, int(1 * RATE): int(11 * RATE)].astype(np.float64)
    later = first[:, int((hop_s + 1) * RATE): int((hop_s + 11) * RATE)].astype(np.float64)
    assert abs(np.corrcoef(head.ravel(), later.ravel())[0, 1]) < 0.5


def test_long_segments_stay_within_the_sample_budget_and_reuse_a_pool() -> None:
    requested: list[int] = []

    def fake_render(index: int, frames: int, steady: bool) -> np.ndarray:
        requested.append(frames)
        return np.full((2, frames), 0.1 + 0.01 * index, dtype=np.float32)

    frames = 600 * 48000
    out = render_continuing(fake_render, family="rain", frames=frames, channels=2,
                            work_rate=48000, sample_rate=48000,
                            order_rng=np.random.default_rng(0))
    assert out.shape == (2, frames) and out.dtype == np.float32
    assert max(requested) * 2 <= SEGMENT_SAMPLES * 1.01  # the recipe's working set is bounded
    assert sum(requested) <= (POOL_S + 2 * CROSSFADE_S + max(requested) / 48000) * 48000
    assert len(requested) >= 2  # distinct material, not one tile
    # Low-rate mono recipes get longer segments for the same budget.
    assert segment_frames(channels=1, work_rate=16000, sample_rate=48000) > segment_frames(
        channels=2, work_rate=48000, sample_rate=48000)


def test_long_pad_swells_once_and_holds() -> None:
    pad = render_sketch("warm music pad", length_s=LONG_EVENT_S + 30.0, sample_rate=RATE,
                        seed=1)
    level = window_rms(pad, 0.5)
    assert level[0] < 0.2 * level.max()  # swells in
    assert level[-1] < 0.3 * level.max()  # and out at the very end
    middle = level[len(level) // 4: -len(level) // 4]
    assert middle.min() > 0.5 * level.max()  # no dips at the segment seams


def test_one_shots_in_long_events_ring_out_once() -> None:
    door = render_sketch("a door slams", length_s=LONG_EVENT_S + 10, sample_rate=RATE, seed=4)
    assert np.abs(door[:, -5 * RATE:]).max() < 0.01 * np.abs(door).max()
    assert np.abs(door[:, : RATE]).max() == np.abs(door).max()


def test_continuing_hits_keep_going_through_a_long_event() -> None:
    barking = render_sketch("a dog barking", length_s=LONG_EVENT_S + 40, sample_rate=RATE,
                            seed=1)
    level = window_rms(barking, 10.0)
    assert level.min() > 0.2 * level.max()  # barks all the way through, not one minute


def test_long_output_lives_in_its_own_mapping_and_behaves_as_any_array() -> None:
    import pickle

    from engine.malloc import mapped_zeros

    blank = mapped_zeros((2, 1000))
    assert blank.shape == (2, 1000) and blank.dtype == np.float32 and not blank.any()
    assert mapped_zeros((1, 0)).shape == (1, 0)
    for description in ("steady rain", "a door slams"):  # continuing, and a one-shot's head
        audio = render_sketch(description, length_s=LONG_EVENT_S + 1.0, sample_rate=RATE, seed=2)
        assert audio.flags.c_contiguous and audio.flags.writeable and not audio.flags.owndata
        copy = pickle.loads(pickle.dumps(audio))  # e.g. handed to another process
        assert copy.tobytes() == audio.tobytes()
        audio *= 0.5  # callers scale stems in place
        assert np.array_equal(audio, copy * np.float32(0.5))
