"""Stems processed on worker threads: the same files, order, cancel and error behaviour as one
at a time (engine.scene.RENDER_WORKERS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import engine.scene as scene
from engine import malloc, render
from engine.errors import CancelledError
from engine.plan import Event, Plan
from engine.progress import CancelToken
from engine.render_settings import RenderSettings
from engine.scene import MANIFEST_NAME, render_scene
from tests.engine.test_scene import FakeGenerator


def busy_plan() -> Plan:
    # Loud targets on some events so the limiter runs; overlapping events so the mix sums.
    return Plan(duration_s=8.0, events=tuple(
        Event(id=f"e{index}", description=f"sound {index}", start_s=0.5 * index,
              end_s=min(8.0, 0.5 * index + 3.0), seed=index,
              target_lufs=-8.0 if index % 3 == 0 else -24.0)
        for index in range(7)))


def _render(tmp_path, workers: int, monkeypatch, **kwargs):
    monkeypatch.setattr(scene, "RENDER_WORKERS", workers)
    return render_scene(busy_plan(), generator=FakeGenerator(length_factor=1.3),
                        out_dir=tmp_path / f"w{workers}", **kwargs)


@pytest.mark.parametrize("settings", [RenderSettings(), RenderSettings(subtype="FLOAT")])
def test_workers_write_the_same_stems_mix_and_manifest(tmp_path, monkeypatch, settings):
    one = _render(tmp_path, 1, monkeypatch, settings=settings)
    two = _render(tmp_path, 2, monkeypatch, settings=settings)
    assert [e.id for e in two.events] == [e.id for e in one.events]
    for a, b in zip(one.events, two.events):
        assert a.model_dump(exclude={"stem_path"}) == b.model_dump(exclude={"stem_path"})
        # The name holds a hash of the samples and header fields: equal names, equal content.
        assert a.stem_path.rsplit("/", 1)[1] == b.stem_path.rsplit("/", 1)[1]
        np.testing.assert_array_equal(sf.read(a.stem_path, dtype="float32")[0],
                                      sf.read(b.stem_path, dtype="float32")[0])
    np.testing.assert_array_equal(sf.read(one.mix_path, dtype="float32")[0],
                                  sf.read(two.mix_path, dtype="float32")[0])
    assert one.mix_true_peak_dbtp == two.mix_true_peak_dbtp


def test_stems_land_in_plan_order(tmp_path, monkeypatch):
    landed: list[str] = []
    manifest = _render(tmp_path, 2, monkeypatch, on_stem=lambda entry: landed.append(entry.id))
    assert landed == [e.id for e in manifest.events] == [f"e{i}" for i in range(7)]


def test_cancel_after_a_stem_writes_nothing_more(tmp_path, monkeypatch):
    token = CancelToken()
    with pytest.raises(CancelledError, match="stop"):
        _render(tmp_path, 2, monkeypatch, cancel=token, on_stem=lambda entry: token.cancel("stop"))
    assert not (tmp_path / "w2" / MANIFEST_NAME).exists()
    assert len(list((tmp_path / "w2").glob("*.wav"))) == 1


def test_a_failure_while_processing_surfaces_after_the_stems_before_it(tmp_path, monkeypatch):
    original = scene._process_one

    def breaks_on_e3(job, out):
        if job.event.id == "e3":
            raise RuntimeError("filter blew up on e3")
        return original(job, out)

    monkeypatch.setattr(scene, "_process_one", breaks_on_e3)
    with pytest.raises(RuntimeError, match="e3"):
        _render(tmp_path, 2, monkeypatch)
    names = sorted(path.name.split("_")[0] for path in (tmp_path / "w2").glob("*.wav"))
    assert names == ["e0", "e1", "e2"]


def test_limiter_gain_applied_in_slices_matches_one_product():
    # A loud span longer than one slice: the sliced gain equals the whole-span product.
    rng = np.random.default_rng(7)
    frames = 3 * render._GAIN_SLICE_FRAMES + 123
    audio = (rng.standard_normal((2, frames)) * 0.9).astype(np.float32)
    limited = render.limit_true_peak(audio, sample_rate=48000, ceiling_dbtp=-1.0)
    assert render.true_peak_dbtp(limited, 48000) <= -1.0 + 1e-6
    found = render.truepeak.scan(audio, ceiling=render.db_to_gain(-1.0 - render.CEILING_MARGIN_DB))
    expected = audio.copy()
    half = max(1, int(round((render.LIMITER_LOOKAHEAD_MS + render.LIMITER_HOLD_MS) * 48000 / 2000.0)))
    reach = half + half // 2 + 2
    low, high = max(0, int(found.over_frames[0]) - reach), min(frames, int(found.over_frames[-1]) + reach + 1)
    assert high - low > 2 * render._GAIN_SLICE_FRAMES  # one span, several slices
    sliced = audio.copy()
    render._gain_spans(sliced, found, render.db_to_gain(-1.0 - render.CEILING_MARGIN_DB), 48000)
    needed = np.ones(high - low)
    ceiling = render.db_to_gain(-1.0 - render.CEILING_MARGIN_DB)
    needed[found.over_frames - low] = np.minimum(1.0, ceiling / found.over_peaks.astype(np.float64))
    gain = render._smoothed_gain(needed, half)
    expected[:, low:high] = (expected[:, low:high] * gain[np.newaxis, :]).astype(np.float32)
    np.testing.assert_array_equal(sliced, expected)


@pytest.mark.parametrize("length_factor", [0.7, 1.0, 1.3])  # looped, as is, trimmed
def test_events_sharing_one_raw_take_get_equal_stems(tmp_path, monkeypatch, length_factor):
    # Equal content shares one raw take; fades in place must never reach into it.
    monkeypatch.setattr(scene, "RENDER_WORKERS", 2)
    twins = Plan(duration_s=6.0, events=(
        Event(id="a", description="rain", start_s=0.0, end_s=2.0, seed=5),
        Event(id="b", description="rain", start_s=3.0, end_s=5.0, seed=5)))
    manifest = render_scene(twins, generator=FakeGenerator(length_factor=length_factor),
                            out_dir=tmp_path, settings=RenderSettings(write_mix=False))
    a, b = (sf.read(e.stem_path, dtype="float32")[0] for e in manifest.events)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[0]).max() < 0.01  # the fade-in starts near silence


# -- one worker: the stem pipeline (the next stem prepared, the last file written, beside) ----


@pytest.fixture
def piped(monkeypatch):
    monkeypatch.setattr(scene, "PIPELINE_MIN_S", 0.0)  # these scenes are short: pipe them


def _one_at_a_time(jobs, out, write, cancel):
    for job in jobs:
        if cancel is not None:
            cancel.raise_if_cancelled()
        yield job, write(job, scene._process_one(job, out))


@pytest.mark.parametrize("settings", [RenderSettings(), RenderSettings(subtype="FLOAT")])
def test_the_stem_pipeline_writes_what_one_at_a_time_writes(tmp_path, monkeypatch, settings,
                                                             piped):
    piped = _render(tmp_path / "piped", 1, monkeypatch, settings=settings)
    monkeypatch.setattr(scene, "_render_pipelined", _one_at_a_time)
    plain = _render(tmp_path / "plain", 1, monkeypatch, settings=settings)
    for a, b in zip(plain.events, piped.events, strict=True):
        assert a.model_dump(exclude={"stem_path"}) == b.model_dump(exclude={"stem_path"})
        assert a.stem_path.rsplit("/", 1)[1] == b.stem_path.rsplit("/", 1)[1]
    np.testing.assert_array_equal(sf.read(plain.mix_path, dtype="float32")[0],
                                  sf.read(piped.mix_path, dtype="float32")[0])


def test_the_stem_pipeline_hands_on_each_stem_once_its_file_is_complete(tmp_path, monkeypatch,
                                                                       piped):
    seen: list[tuple[str, bool]] = []
    manifest = _render(tmp_path, 1, monkeypatch,
                       on_stem=lambda e: seen.append((e.id, Path(e.stem_path).is_file())))
    assert seen == [(e.id, True) for e in manifest.events]


def test_a_stem_failing_in_the_pipeline_keeps_the_stems_before_it(tmp_path, monkeypatch, piped):
    original = scene._finish_one
    landed: list[str] = []

    def breaks_on_e3(job, prepared, out):
        if job.event.id == "e3":
            raise RuntimeError("filter blew up on e3")
        return original(job, prepared, out)

    monkeypatch.setattr(scene, "_finish_one", breaks_on_e3)
    with pytest.raises(RuntimeError, match="e3"):
        _render(tmp_path, 1, monkeypatch, on_stem=lambda e: landed.append(e.id))
    names = sorted(path.name.split("_")[0] for path in (tmp_path / "w1").glob("*.wav"))
    assert names == landed == ["e0", "e1", "e2"]


def test_a_cancel_during_a_stem_still_delivers_the_one_before(tmp_path, monkeypatch, piped):
    token = CancelToken()
    original = scene._finish_one
    landed: list[str] = []

    def cancels_during_e2(job, prepared, out):
        if job.event.id == "e2":
            token.cancel("stop")  # seen before the next stem starts
        return original(job, prepared, out)

    monkeypatch.setattr(scene, "_finish_one", cancels_during_e2)
    with pytest.raises(CancelledError, match="stop"):
        _render(tmp_path, 1, monkeypatch, cancel=token, on_stem=lambda e: landed.append(e.id))
    names = sorted(path.name.split("_")[0] for path in (tmp_path / "w1").glob("*.wav"))
    assert names == landed == ["e0", "e1"]


def test_only_scenes_with_enough_stem_audio_use_the_pipeline(tmp_path, monkeypatch):
    used: list[int] = []
    real = scene._render_pipelined

    def recording(jobs, out, write, cancel):
        used.append(len(jobs))
        return real(jobs, out, write, cancel)

    monkeypatch.setattr(scene, "_render_pipelined", recording)
    short = _render(tmp_path / "short", 1, monkeypatch)  # 7 stems, 21 s of audio in all
    assert used == []
    monkeypatch.setattr(scene, "PIPELINE_MIN_S", 19.0)
    piped_manifest = _render(tmp_path / "long", 1, monkeypatch)
    assert used == [7]
    assert ([e.stem_path.rsplit("/", 1)[1] for e in short.events]
            == [e.stem_path.rsplit("/", 1)[1] for e in piped_manifest.events])


# -- handing freed memory back to the OS -------------------------------------------------------


@pytest.mark.parametrize("trim_min_s, trims", [(240.0, 1), (0.0, 7 + 1)])
def test_long_scenes_hand_memory_back_after_each_stem_short_ones_once(
        tmp_path, monkeypatch, trim_min_s, trims):
    # Short scenes: a trim per stem only made the next stem fault its pages in afresh.
    calls: list[int] = []
    monkeypatch.setattr(malloc, "return_freed_memory", lambda: calls.append(1))
    monkeypatch.setattr(scene, "TRIM_EACH_STEM_MIN_S", trim_min_s)
    manifest = _render(tmp_path, 1, monkeypatch)
    assert len(manifest.events) == 7
    assert len(calls) == trims  # (the last one at the end of the scene)
