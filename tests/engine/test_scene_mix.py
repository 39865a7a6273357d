"""The scene mix, summed on the bus while stems are rendered, against a one-shot mix of the stem
files: the same samples, bit for bit, and the read-back stems equal to what was written."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine import render, scene
from engine.manifest import ManifestEvent
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
def test_mix_fed_during_render_equals_a_mix_of_the_stem_files(tmp_path, subtype):
    manifest = render_scene(overlapping_plan(), generator=FakeGenerator(), out_dir=tmp_path,
                            settings=RenderSettings(subtype=subtype))
    stems = [render.PlacedStem(scene._Rendered(e, None).samples(), e.start_s, e.gain_db)
             for e in manifest.events]
    expected, peak = render.mix(stems, duration_s=6.0, sample_rate=SR)
    written, _ = sf.read(manifest.mix_path, dtype="float32", always_2d=True)
    if subtype == "FLOAT":
        np.testing.assert_array_equal(written.T, expected)
    else:  # what the 24-bit file holds of the same float32 mix
        np.testing.assert_array_equal(written.T, np.round(expected * np.float32(2**23))
                                      / np.float32(2**23))
    assert manifest.mix_true_peak_dbtp == peak


def test_reused_stems_join_the_mix_in_plan_order(tmp_path):
    first = render_scene(overlapping_plan(), generator=FakeGenerator(), out_dir=tmp_path / "a")
    # "a" and "c" reused (read from their files), "b" and "d" rendered again: the bus must
    # still add a, b, c, d in that order to equal the first render's mix.
    reuse = {e.id: e for e in first.events if e.id in ("a", "c")}
    again = render_scene(overlapping_plan(), generator=FakeGenerator(), out_dir=tmp_path / "b",
                         reuse=reuse)
    assert [e.cache_hit for e in again.events] == [True, False, True, False]
    np.testing.assert_array_equal(sf.read(again.mix_path, dtype="float32")[0],
                                  sf.read(first.mix_path, dtype="float32")[0])
    assert again.mix_true_peak_dbtp == first.mix_true_peak_dbtp


def test_feed_adds_in_plan_order_whatever_order_stems_arrive_in(tmp_path):
    out = scene._Output(tmp_path, 1.0, 0.0, SR, "FLOAT", -1.0)
    rng = np.random.default_rng(5)
    parts = {name: (rng.standard_normal((2, SR // 2)).astype(np.float32), start, gain)
             for name, start, gain in (("x", 0.0, -3.0), ("y", 0.25, 2.0), ("z", 0.3, 0.5))}
    feed = scene._MixFeed(["x", "y", "z"], 2, out)
    for name in ("z", "x", "y"):  # z waits until x and y are on the bus
        audio, start, gain = parts[name]
        entry = ManifestEvent(id=name, description=name, start_s=start, end_s=start + 0.5,
                              target_lufs=-20.0, measured_lufs=-20.0, true_peak_dbtp=None,
                              gain_db=gain,
                              stem_path=str(tmp_path / f"{name}.wav"))
        feed.offer(name, scene._Rendered(entry, audio))
        assert feed.next == {"z": 0, "x": 1, "y": 3}[name]
    assert feed.complete()
    expected, _ = render.mix([render.PlacedStem(a, s, g) for a, s, g in parts.values()],
                             duration_s=1.0, sample_rate=SR, ceiling_dbtp=60.0)
    np.testing.assert_array_equal(feed.bus.audio, expected)


def test_stems_read_back_equal_the_samples_that_were_written(tmp_path):
    manifest = render_scene(overlapping_plan(), generator=FakeGenerator(), out_dir=tmp_path)
    for entry in manifest.events:
        held = scene._Rendered(entry, None).samples()
        assert held.dtype == np.float32 and held.flags.c_contiguous
        # 24-bit values are k / 2**23 exactly; reading them again gives the same floats.
        np.testing.assert_array_equal(held * np.float32(2**23), np.round(held * np.float32(2**23)))
