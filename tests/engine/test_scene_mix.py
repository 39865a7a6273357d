"""The scene mix streamed from the stem files (long scenes) against the mix made from stems held
in memory: the same samples, bit for bit, and the read-back stems equal to what was written."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine import scene
from engine.plan import Event, Plan
from engine.scene import render_scene
from engine.render_settings import RenderSettings
from tests.engine.test_scene import FakeGenerator

SR = 48000


def overlapping_plan() -> Plan:
    # Three events sound together from 2 s to 3 s, one loud enough to drive the mix limiter.
    return Plan(duration_s=6.0, events=(
        Event(id="a", description="rain on a window", start_s=0.0, end_s=5.0, seed=1,
              target_lufs=-20.0),
        Event(id="b", description="distant thunder", start_s=1.0, end_s=4.0, seed=2,
              target_lufs=-12.0),
        Event(id="c", description="a door slams", start_s=2.0, end_s=3.0, seed=3,
              target_lufs=-10.0),
        Event(id="d", description="short click", start_s=5.5, end_s=5.6, seed=4),
    ))


def _data(path) -> bytes:
    data, _ = sf.read(path, dtype="int32")
    return data.tobytes()


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
def test_streamed_mix_is_bit_identical_to_the_in_memory_mix(tmp_path, monkeypatch, subtype):
    held = render_scene(overlapping_plan(), generator=FakeGenerator(), out_dir=tmp_path / "held",
                        settings=RenderSettings(subtype=subtype))
    monkeypatch.setattr(scene, "MIX_MEMORY_BYTES", 0)  # every stem read back from its file
    streamed = render_scene(overlapping_plan(), generator=FakeGenerator(),
                            out_dir=tmp_path / "streamed", settings=RenderSettings(subtype=subtype))
    held_mix, _ = sf.read(held.mix_path, dtype="float32")
    streamed_mix, _ = sf.read(streamed.mix_path, dtype="float32")
    np.testing.assert_array_equal(streamed_mix, held_mix)
    assert streamed.mix_true_peak_dbtp == held.mix_true_peak_dbtp
    assert [e.measured_lufs for e in streamed.events] == [e.measured_lufs for e in held.events]


def test_stems_read_back_equal_the_samples_that_were_written(tmp_path):
    manifest = render_scene(overlapping_plan(), generator=FakeGenerator(), out_dir=tmp_path)
    for entry in manifest.events:
        held = scene._Rendered(entry, None).samples()
        assert held.dtype == np.float32 and held.flags.c_contiguous
        # 24-bit values are k / 2**23 exactly; reading them again gives the same floats.
        np.testing.assert_array_equal(held * np.float32(2**23), np.round(held * np.float32(2**23)))


def test_keep_or_stream_follows_the_memory_bound():
    plan = overlapping_plan()
    jobs = scene._jobs(plan, FakeGenerator(), SR, -23.0, None)
    assert scene._keep_stems_for_mix(jobs)
    long_jobs = [scene._Job(j.event, j.target_lufs, SR * 600, j.request, j.key) for j in jobs]
    assert not scene._keep_stems_for_mix(long_jobs)  # 4 x 600 s stereo is over 64 MB
