"""engine/scene.py render_scene: stems, names, reuse, batching, failures, cancel, mix, manifest.

Stem loudness and peaks are measured here on the files read back with soundfile, with
pyloudnorm and an 8x oversampler of our own, never through engine.render.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from engine.cache import RenderCache
from engine.errors import CancelledError, GeneratorError, InvalidInputError
from engine.generators import GenerationResult
from engine.manifest import read_manifest
from engine.plan import Event, Plan
from engine.progress import CancelToken
from engine.render_settings import RenderSettings, SceneLabels
from engine.scene import MANIFEST_NAME, PROCEDURAL_NOTE, render_scene
from engine.stems import read_bext

SR = 48000
STEM_NAME = re.compile(r"^(?P<id>[A-Za-z0-9_.-]+)_[0-9a-f]{12}\.wav$")


class FakeGenerator:
    """Deterministic noise per (description, seed); records every batch it is given.

    ``length_factor`` < 1 returns clips shorter than asked (exercising the loop), > 1 longer.
    Descriptions containing ``fail_word`` come back as per-request failures.
    """

    def __init__(
        self, *, name: str = "fake", length_factor: float = 0.8, fail_word: str = ""
    ) -> None:
        self.name = name
        self.length_factor = length_factor
        self.fail_word = fail_word
        self.calls: list[list] = []

    def identity(self):
        return {"model": "fake-noise", "revision": 1}

    def generate(self, requests, *, progress=None, cancel=None):
        self.calls.append(list(requests))
        results = []
        for index, request in enumerate(requests):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if self.fail_word and self.fail_word in request.description:
                results.append(GenerationResult(error="model refused this prompt"))
                continue
            digest = sum(map(ord, request.description)) + request.seed
            rng = np.random.default_rng(digest)
            frames = max(1, int(request.length_s * request.sample_rate * self.length_factor))
            envelope = 0.3 + 0.2 * np.sin(np.linspace(0, 7, frames))
            audio = rng.standard_normal((2, frames)) * 0.05 * envelope
            results.append(GenerationResult(audio=audio.astype(np.float32)))
            if progress is not None:
                progress("generate", (index + 1) / len(requests))
        return results

    @property
    def requests_made(self) -> int:
        return sum(len(batch) for batch in self.calls)


def demo_plan(**changes) -> Plan:
    events = {
        "e1": Event(id="e1", description="rain on a window", start_s=0.0, end_s=6.0, seed=1,
                    target_lufs=-28.0),
        "e2": Event(id="e2", description="distant thunder", start_s=1.5, end_s=5.25, seed=2),
        "e3": Event(id="e3", description="a door slams", start_s=6.0, end_s=6.3, seed=3,
                    target_lufs=-18.0),
    }
    for event_id, update in changes.items():
        events[event_id] = events[event_id].model_copy(update=update)
    return Plan(duration_s=8.0, events=tuple(events.values()))


def file_lufs(path: str) -> float:
    data, rate = sf.read(path, dtype="float64", always_2d=True)
    block = int(0.4 * rate) + 1
    if len(data) < block:  # the documented short-clip rule: measure the clip looped
        data = np.tile(data, (math.ceil(block / len(data)), 1))
    return float(pyloudnorm.Meter(rate).integrated_loudness(data))


def file_true_peak(path: str) -> float:
    data, _ = sf.read(path, dtype="float64", always_2d=True)
    up = resample_poly(data, 8, 1, axis=0, window=("kaiser", 8.0))
    return 20 * math.log10(max(np.abs(up).max(), np.abs(data).max()))


@pytest.fixture
def rendered(tmp_path):
    generator = FakeGenerator()
    stages: list[tuple[str, float]] = []
    landed = []
    manifest = render_scene(
        demo_plan(),
        generator=generator,
        out_dir=tmp_path / "out",
        anchor_s=12.5,
        progress=lambda stage, fraction: stages.append((stage, fraction)),
        on_stem=landed.append,
        labels=SceneLabels(planner="rules"),
    )
    return manifest, generator, stages, landed, tmp_path / "out"


def test_every_stem_hits_its_loudness_target(rendered):
    manifest, *_ = rendered
    targets = {"e1": -28.0, "e2": -23.0, "e3": -18.0}
    for event in manifest.events:
        assert event.target_lufs == targets[event.id]
        assert abs(file_lufs(event.stem_path) - targets[event.id]) <= 0.5, event.id
        assert event.measured_lufs == pytest.approx(file_lufs(event.stem_path), abs=0.05)
        assert file_true_peak(event.stem_path) <= -1.0
        assert abs(event.gain_db) <= 0.5


def test_stems_have_exact_length_name_and_bwf_position(rendered):
    manifest, *_ = rendered
    plan = demo_plan()
    for event in manifest.events:
        planned = plan.event(event.id)
        info = sf.info(event.stem_path)
        assert info.frames == round(planned.length_s * SR)
        assert (info.samplerate, info.subtype) == (SR, "PCM_24")
        name = Path(event.stem_path).name
        assert STEM_NAME.match(name) and STEM_NAME.match(name)["id"] == event.id
        assert Path(event.stem_path).is_absolute()
        bext = read_bext(event.stem_path)
        assert bext["time_reference_samples"] == round((12.5 + planned.start_s) * SR)
        assert bext["description"] == planned.description


def test_one_batched_generator_call_for_all_misses(rendered):
    _, generator, *_ = rendered
    assert len(generator.calls) == 1
    assert [r.description for r in generator.calls[0]] == [
        "rain on a window", "distant thunder", "a door slams"
    ]
    assert all(r.sample_rate == SR for r in generator.calls[0])


def test_mix_and_manifest_written_mix_under_ceiling(rendered):
    manifest, _, _, _, out = rendered
    assert read_manifest(out / MANIFEST_NAME) == manifest
    info = sf.info(manifest.mix_path)
    assert info.frames == 8 * SR
    assert file_true_peak(manifest.mix_path) <= -1.0
    assert manifest.mix_true_peak_dbtp is not None and manifest.mix_true_peak_dbtp <= -1.0
    assert read_bext(manifest.mix_path)["time_reference_samples"] == 12.5 * SR
    assert manifest.anchor_s == 12.5 and manifest.planner == "rules" and manifest.backend == "fake"
    assert manifest.failed == [] and manifest.notes == []
    # The manifest is written last: nothing in the folder is newer than it.
    newest = max(p.stat().st_mtime_ns for p in out.iterdir() if p.is_file())
    assert (out / MANIFEST_NAME).stat().st_mtime_ns == newest


def test_progress_stages_and_stem_callbacks(rendered):
    manifest, _, stages, landed, _ = rendered
    names = [stage for stage, _ in stages]
    assert names.index("generate") < names.index("render") < names.index("mix")
    assert all(0.0 <= fraction <= 1.0 for _, fraction in stages)
    assert ("mix", 1.0) in stages
    assert [entry.id for entry in landed] == ["e1", "e2", "e3"]
    assert landed == manifest.events


def test_loudness_only_edit_reuses_file_and_changes_gain(rendered):
    first, generator, _, _, out = rendered
    old = first.event("e1")
    before = Path(old.stem_path).read_bytes()
    edited = demo_plan(e1={"target_lufs": -24.0})
    second = render_scene(
        edited, generator=generator, out_dir=out, anchor_s=12.5,
        reuse={event.id: event for event in first.events},
    )
    assert len(generator.calls) == 1  # no new generator call
    new = second.event("e1")
    assert new.stem_path == old.stem_path and new.cache_hit
    assert Path(new.stem_path).read_bytes() == before
    assert new.target_lufs == -24.0
    assert new.gain_db == pytest.approx(-24.0 - old.measured_lufs, abs=1e-3)
    assert new.gain_db == pytest.approx(4.0, abs=0.5)
    assert all(event.cache_hit for event in second.events)


def test_moved_event_keeps_its_file(rendered):
    first, generator, _, _, out = rendered
    moved = demo_plan(e3={"start_s": 7.0, "end_s": 7.3})
    second = render_scene(
        moved, generator=generator, out_dir=out, reuse={e.id: e for e in first.events}
    )
    assert generator.requests_made == 3
    assert second.event("e3").stem_path == first.event("e3").stem_path
    assert second.event("e3").start_s == 7.0


def test_changed_event_gets_new_file_and_old_file_survives(rendered):
    first, generator, _, _, out = rendered
    old_path = first.event("e2").stem_path
    old_bytes = Path(old_path).read_bytes()
    changed = demo_plan(e2={"description": "a motorbike passes"})
    second = render_scene(
        changed, generator=generator, out_dir=out, reuse={e.id: e for e in first.events}
    )
    assert [r.description for r in generator.calls[-1]] == ["a motorbike passes"]
    assert second.event("e2").stem_path != old_path
    assert not second.event("e2").cache_hit
    assert Path(old_path).read_bytes() == old_bytes


def test_same_render_twice_keeps_names_and_files(tmp_path):
    generator = FakeGenerator()
    first = render_scene(demo_plan(), generator=generator, out_dir=tmp_path)
    stamps = {e.stem_path: Path(e.stem_path).stat().st_mtime_ns for e in first.events}
    second = render_scene(demo_plan(), generator=generator, out_dir=tmp_path)
    assert [e.stem_path for e in second.events] == list(stamps)
    assert {p: Path(p).stat().st_mtime_ns for p in stamps} == stamps  # not rewritten
    louder = render_scene(
        demo_plan(e2={"target_lufs": -20.0}), generator=generator, out_dir=tmp_path
    )
    assert louder.event("e2").stem_path != first.event("e2").stem_path


def test_render_cache_serves_raw_audio_without_generator(tmp_path):
    cache = RenderCache(tmp_path / "cache")
    generator = FakeGenerator()
    first = render_scene(demo_plan(), generator=generator, out_dir=tmp_path / "a", cache=cache)
    assert not any(e.cache_hit for e in first.events)
    second = render_scene(demo_plan(), generator=generator, out_dir=tmp_path / "b", cache=cache)
    assert len(generator.calls) == 1
    assert all(e.cache_hit for e in second.events)
    assert [e.cache_key for e in second.events] == [e.cache_key for e in first.events]
    for a, b in zip(first.events, second.events):
        np.testing.assert_array_equal(sf.read(a.stem_path)[0], sf.read(b.stem_path)[0])


def test_per_event_failure_lands_in_failed(tmp_path):
    generator = FakeGenerator(fail_word="thunder")
    manifest = render_scene(demo_plan(), generator=generator, out_dir=tmp_path)
    assert [e.id for e in manifest.events] == ["e1", "e3"]
    assert [(f.id, f.error) for f in manifest.failed] == [("e2", "model refused this prompt")]
    assert sf.info(manifest.mix_path).frames == 8 * SR
    assert read_manifest(tmp_path / MANIFEST_NAME).failed == manifest.failed


def test_generator_crash_fails_its_events_not_the_call(tmp_path):
    class Crashing(FakeGenerator):
        def generate(self, requests, *, progress=None, cancel=None):
            raise GeneratorError("CUDA out of memory")

    manifest = render_scene(demo_plan(), generator=Crashing(), out_dir=tmp_path)
    assert manifest.events == []
    assert {f.id for f in manifest.failed} == {"e1", "e2", "e3"}
    assert "CUDA out of memory" in manifest.failed[0].error


def test_a_batch_crash_caused_by_one_event_fails_only_that_event(tmp_path):
    """The backend raises for the whole batch when one prompt breaks it: each request is tried
    alone, the culprit fails alone, the other events still get their stems."""

    class CrashesOnDoor(FakeGenerator):
        def generate(self, requests, *, progress=None, cancel=None):
            if any("door" in request.description for request in requests):
                self.calls.append(list(requests))
                raise GeneratorError("tensor shape mismatch")
            return super().generate(requests, progress=progress, cancel=cancel)

    generator = CrashesOnDoor()
    manifest = render_scene(demo_plan(), generator=generator, out_dir=tmp_path)
    door = [e.id for e in demo_plan().events if "door" in e.description]
    assert [f.id for f in manifest.failed] == door
    assert "tensor shape mismatch" in manifest.failed[0].error
    assert {e.id for e in manifest.events} == {e.id for e in demo_plan().events} - set(door)
    assert all(Path(e.stem_path).is_file() for e in manifest.events)
    # One batched call, then one call per request.
    assert [len(batch) for batch in generator.calls] == [3, 1, 1, 1]


def test_cancel_between_events_leaves_no_manifest(tmp_path):
    token = CancelToken()

    def cancel_after_first(entry):
        token.cancel("user pressed stop")

    with pytest.raises(CancelledError, match="user pressed stop"):
        render_scene(
            demo_plan(), generator=FakeGenerator(), out_dir=tmp_path, cancel=token,
            on_stem=cancel_after_first,
        )
    assert not (tmp_path / MANIFEST_NAME).exists()
    assert len(list(tmp_path.glob("*.wav"))) == 1


def test_aligned_copies_span_the_scene_from_zero(tmp_path):
    manifest = render_scene(
        demo_plan(), generator=FakeGenerator(), out_dir=tmp_path, settings=RenderSettings(aligned=True), anchor_s=3.0
    )
    for event in manifest.events:
        assert Path(event.aligned_path).parent == tmp_path / "aligned"
        full, _ = sf.read(event.aligned_path, dtype="float32", always_2d=True)
        stem, _ = sf.read(event.stem_path, dtype="float32", always_2d=True)
        assert len(full) == 8 * SR
        offset = round(event.start_s * SR)
        assert not np.any(full[:offset])
        np.testing.assert_array_equal(full[offset : offset + len(stem)], stem)
        assert read_bext(event.aligned_path)["time_reference_samples"] == 3 * SR


def test_float_stems_and_other_sample_rate(tmp_path):
    manifest = render_scene(
        demo_plan(), generator=FakeGenerator(length_factor=1.5), out_dir=tmp_path,
        settings=RenderSettings(subtype="FLOAT", sample_rate=44100, write_mix=False),
    )
    assert manifest.mix_path is None and not (tmp_path / "mix.wav").exists()
    for event in manifest.events:
        info = sf.info(event.stem_path)
        assert (info.subtype, info.samplerate) == ("FLOAT", 44100)
        assert info.frames == round((event.end_s - event.start_s) * 44100)


def test_procedural_backend_is_noted_as_a_sketch(tmp_path):
    manifest = render_scene(
        demo_plan(), generator=FakeGenerator(name="procedural"), out_dir=tmp_path,
        labels=SceneLabels(notes=("planner note",)),
    )
    assert manifest.notes == ["planner note", PROCEDURAL_NOTE]
    assert manifest.backend == "procedural"


@pytest.mark.parametrize(
    "kwargs, field",
    [({"anchor_s": -1.0}, "anchor_s"), ({"settings": RenderSettings(subtype="MP3")}, "subtype"),
     ({"settings": RenderSettings(sample_rate=100)}, "sample_rate"),
     ({"settings": RenderSettings(ceiling_dbtp=3.0)}, "ceiling_dbtp"),
     ({"settings": RenderSettings(default_target_lufs=-99.0)}, "default_target_lufs"),
     ({"settings": RenderSettings(cue_markers_bpm=0.0)}, "tempo_bpm")],
)
def test_bad_arguments_name_the_field(tmp_path, kwargs, field):
    with pytest.raises(InvalidInputError) as info:
        render_scene(demo_plan(), generator=FakeGenerator(), out_dir=tmp_path, **kwargs)
    assert info.value.field == field
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_out_dir_that_is_a_file_is_bad_input(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InvalidInputError) as info:
        render_scene(demo_plan(), generator=FakeGenerator(), out_dir=blocker / "sub")
    assert info.value.field == "out_dir"


def test_identical_events_share_one_request_but_get_their_own_files(tmp_path):
    knock = dict(description="a knock on the door", seed=5)
    plan = Plan(duration_s=4.0, events=(
        Event(id="k1", start_s=0.5, end_s=1.5, **knock),
        Event(id="k2", start_s=2.5, end_s=3.5, **knock),
        Event(id="bed", description="room tone", start_s=0.0, end_s=4.0, seed=1),
    ))
    generator = FakeGenerator()
    manifest = render_scene(plan, generator=generator, out_dir=tmp_path)
    assert [[r.description for r in batch] for batch in generator.calls] == [
        ["a knock on the door", "room tone"]
    ]
    k1, k2 = manifest.event("k1"), manifest.event("k2")
    assert k1.cache_key == k2.cache_key and k1.stem_path != k2.stem_path
    np.testing.assert_array_equal(sf.read(k1.stem_path)[0], sf.read(k2.stem_path)[0])
    assert read_bext(k2.stem_path)["time_reference_samples"] == 2.5 * SR


def test_folder_reuse_offers_only_stems_at_the_same_place(tmp_path):
    """The CLI's reuse rule (engine.reuse): same folder, same anchor, same start."""
    from engine.reuse import folder_reuse

    plan = demo_plan()
    first = render_scene(plan, generator=FakeGenerator(), out_dir=tmp_path, anchor_s=1.0)
    assert set(folder_reuse(tmp_path, plan, 1.0)) == {e.id for e in first.events}
    assert folder_reuse(tmp_path, plan, 2.0) == {}  # another anchor: every BWF stamp is wrong
    moved = plan.model_copy(update={"events": (
        plan.events[0].model_copy(update={"start_s": plan.events[0].start_s + 0.5,
                                          "end_s": plan.events[0].end_s + 0.5}),
        *plan.events[1:])})
    assert plan.events[0].id not in folder_reuse(tmp_path, moved, 1.0)
    assert folder_reuse(tmp_path / "empty", plan, 1.0) == {}
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    assert folder_reuse(tmp_path, plan, 1.0) == {}  # unreadable: costs the reuse, not the render


def test_broken_generator_output_fails_only_that_event(tmp_path):
    """NaN samples or a wrong shape from a backend cost that event (the one audio rule,
    engine.limits.check_audio), never the scene."""

    class Broken(FakeGenerator):
        def generate(self, requests, *, progress=None, cancel=None):
            results = super().generate(requests, progress=progress, cancel=cancel)
            bad = {"distant thunder": np.full((1, 10), np.nan, dtype=np.float32),
                   "a door slams": np.zeros((1, 2, 3), dtype=np.float32)}
            return [GenerationResult(audio=bad[r.description]) if r.description in bad else result
                    for r, result in zip(requests, results)]

    manifest = render_scene(demo_plan(), generator=Broken(), out_dir=tmp_path)
    assert [e.id for e in manifest.events] == ["e1"]
    errors = {failed.id: failed.error for failed in manifest.failed}
    assert "NaN" in errors["e2"] and "shape" in errors["e3"]
