"""Visual onsets on synthetic videos with known event times (flashes, a wall hit, cuts, VFR)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.eval.onsets import match_count
from engine.video.decode import decode_frames
from engine.video.onsets import detect_onsets, motion_energy, novelty_curve
from tests.engine.video import synth

TOLERANCE_S = 0.1


def _detected(path, **range_s):
    analysis = detect_onsets(decode_frames(path, **range_s))
    return analysis, [onset.time_s for onset in analysis.onsets]


def test_accuracy_over_the_synthetic_set(flash_video, wall_video, cut_video, vfr_video):
    matched = total = extra = 0
    for path, truth in (flash_video, wall_video, cut_video, vfr_video):
        _, found = _detected(path)
        matched += match_count(found, truth, tolerance_s=TOLERANCE_S)
        total += len(truth)
        extra += max(0, len(found) - len(truth))
    assert matched / total >= 0.9
    assert extra == 0  # clean synthetic clips: no false onsets either


def test_flashes_are_hits_at_their_frames(flash_video):
    path, truth = flash_video
    analysis, found = _detected(path)
    assert [o.kind for o in analysis.onsets] == ["hit"] * len(truth)
    np.testing.assert_allclose(found, truth, atol=0.041)  # at most one frame late


def test_block_stopping_at_the_wall_is_one_hit_and_its_travel_a_span(wall_video):
    path, (hit_s,) = wall_video
    analysis, found = _detected(path)
    assert found == pytest.approx([hit_s], abs=TOLERANCE_S)
    (span,) = analysis.spans
    assert span.start_s < hit_s - 0.5 and span.end_s == pytest.approx(hit_s, abs=0.1)


def test_cuts_are_cuts_not_hits(cut_video):
    path, truth = cut_video
    analysis, found = _detected(path)
    assert analysis.hits == [] and len(analysis.cuts) == 2
    np.testing.assert_allclose(found, truth, atol=1e-6)


@pytest.mark.parametrize("flash_frames", [2, 3])
def test_a_flash_of_a_few_frames_is_a_hit_not_cuts(video_dir, flash_frames):
    """Lightning or a muzzle flash lasts 2-3 frames at 25 fps: it starts a hit, and neither its
    start nor its end may read as a change of shot."""
    times = synth.regular_times(3.0)
    first = 30  # 1.2 s

    def frame(index, _t):
        image = np.full((synth.SIZE_PX, synth.SIZE_PX, 3), 20, np.uint8)
        if first <= index < first + flash_frames:
            image[:] = 235
        return image

    path = synth.encode(video_dir / f"flash{flash_frames}.mp4", frame, times)
    analysis, _found = _detected(path)
    assert analysis.cuts == []
    assert analysis.hits and abs(analysis.hits[0].time_s - times[first]) <= TOLERANCE_S


def test_variable_frame_rate_keeps_event_times(vfr_video):
    path, truth = vfr_video
    _, found = _detected(path)
    np.testing.assert_allclose(found, truth, atol=TOLERANCE_S)


def test_range_reports_file_times(flash_video):
    path, truth = flash_video
    _, found = _detected(path, start_s=1.0, end_s=2.5)
    inside = [t for t in truth if 1.0 <= t < 2.5]
    np.testing.assert_allclose(found, inside, atol=0.041)


def test_novelty_dates_rises_and_dead_stops():
    motion = np.array([0, 0, 1, 1, 1, 0, 0], np.float32)
    novelty = novelty_curve(motion)
    assert novelty.argmax() in (2, 4)
    assert novelty[2] == 1 and novelty[4] == 1 and novelty[5] == 0
    frames = np.zeros((5, 4, 4), np.float32)
    frames[2] = 1.0
    np.testing.assert_allclose(motion_energy(frames), [0, 0, 1, 1, 0])


def test_grain_is_not_motion_but_a_small_change_is(video_dir):
    rng = np.random.default_rng(0)
    blink_frames = [15, 40, 52, 70]

    def frame(index, _t):
        image = np.clip(90 + rng.normal(0, 12, (64, 64, 1)), 0, 255).repeat(3, 2).astype(np.uint8)
        if any(f <= index < f + 3 for f in blink_frames):
            image[20:36, 20:36] = 200  # a lamp 1/16 of the picture, on for three frames
        return image

    path = synth.encode(video_dir / "grain.mp4", frame, synth.regular_times(3.2))
    analysis = detect_onsets(decode_frames(path))
    assert analysis.spans == ()  # grain everywhere is not continuous motion
    ons = [f / synth.FPS for f in blink_frames]
    offs = [(f + 3) / synth.FPS for f in blink_frames]
    # Switching on and switching off are both abrupt changes; nothing else fires.
    np.testing.assert_allclose([o.time_s for o in analysis.hits], sorted(ons + offs), atol=0.041)
