"""SessionManager end to end: real RulePlanner, real render_scene, real SQLite and WAV files,
and a counting fake generator so every generator call is accounted for."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from engine.cache import RenderCache
from engine.edits import EventEdit
from engine.errors import CancelledError, InvalidInputError, NotFoundError
from engine.generators import GenerationRequest, GenerationResult
from engine.limits import MAX_SESSION_NAME_CHARS
from engine.manifest import ManifestEvent
from engine.plan import ChangeKind, Event, Plan
from engine.planners import PlanResult
from engine.planners.rules import RulePlanner
from engine.progress import CancelToken
from engine.render_settings import RenderSettings
from engine.session import SessionManager, route_instruction, session_dir_name

RATE = 16000  # the engine's default is 48 kHz; 16 kHz keeps these tests fast on 2 cores
PROMPT = "Rain falls in the background, a car door slams, then an engine starts"


class CountingGenerator:
    """Deterministic noise per (description, seed); records every batch it is asked for."""

    name = "counting"

    def __init__(self, *, fail_on: str | None = None) -> None:
        self.batches: list[list[GenerationRequest]] = []
        self.fail_on = fail_on

    def identity(self) -> dict[str, object]:
        return {"kind": "noise", "version": 1}

    @property
    def calls(self) -> int:
        return len(self.batches)

    @property
    def requested(self) -> list[str]:
        return [request.description for batch in self.batches for request in batch]

    def generate(self, requests, *, progress=None, cancel=None):
        self.batches.append(list(requests))
        results = []
        for request in requests:
            if self.fail_on and self.fail_on in request.description:
                results.append(GenerationResult(error="fake backend refused"))
                continue
            rng = np.random.default_rng(request.seed)
            frames = int(round(request.length_s * request.sample_rate))
            audio = rng.standard_normal((1, frames)).astype(np.float32) * 0.1
            results.append(GenerationResult(audio=audio))
        return results


class Recorder:
    def __init__(self) -> None:
        self.stems: list[tuple[ManifestEvent, ChangeKind]] = []

    def __call__(self, entry: ManifestEvent, kind: ChangeKind) -> None:
        self.stems.append((entry, kind))

    def kinds(self) -> dict[str, ChangeKind]:
        return {entry.id: kind for entry, kind in self.stems}


def _manager(data_dir: Path, generator: CountingGenerator, **options) -> SessionManager:
    return SessionManager(
        data_dir=data_dir,
        planner_factory=lambda name: RulePlanner(),
        generator_factory=lambda name: generator,
        render_settings=RenderSettings(sample_rate=RATE),
        **options,
    )


def _generate(manager: SessionManager, session: str = "scene", **options):
    pending = manager.prepare_generate(session, prompt=PROMPT, duration_s=6.0, **options)
    return pending, manager.render(pending)


def _measured_lufs(path: str) -> float:
    data, rate = sf.read(path, dtype="float64")
    return float(pyloudnorm.Meter(rate).integrated_loudness(data))


@pytest.fixture()
def generator() -> CountingGenerator:
    return CountingGenerator()


@pytest.fixture()
def manager(tmp_path: Path, generator: CountingGenerator) -> SessionManager:
    return _manager(tmp_path / "data", generator)


def test_generate_renders_all_events_in_one_call(manager, generator, tmp_path) -> None:
    pending = manager.prepare_generate("scene", prompt=PROMPT, duration_s=6.0, anchor_s=12.0)
    assert pending.version == 1 and pending.kind == "generate" and generator.calls == 0
    assert set(pending.diff.ids(ChangeKind.ADDED)) == {"e1", "e2", "e3"}
    recorder = Recorder()
    stages: list[str] = []
    version = manager.render(pending, on_stem=recorder, progress=lambda s, f: stages.append(s))
    assert generator.calls == 1 and len(generator.batches[0]) == 3
    assert recorder.kinds() == dict.fromkeys(("e1", "e2", "e3"), ChangeKind.ADDED)
    assert "generate" in stages and "render" in stages
    v1_dir = manager.version_dir("scene", 1)
    for entry in version.manifest.events:
        assert not entry.cache_hit
        assert Path(entry.stem_path).parent == v1_dir.resolve()
        assert sf.info(entry.stem_path).samplerate == RATE
    assert version.manifest.anchor_s == 12.0
    info = manager.get("scene")
    assert info.current_version == 1 and info.plan == pending.plan
    assert [turn.role for turn in info.history] == ["user", "assistant"]
    assert info.history[0].content == PROMPT
    assert info.can_undo is False and info.can_redo is False


def test_text_edit_renders_exactly_that_event(manager, generator) -> None:
    _, v1 = _generate(manager)
    pending = manager.prepare_edit("scene", instruction="replace the car door with a wooden door")
    assert pending.version == 2
    assert pending.diff.kind_of("e1") == ChangeKind.CHANGED
    recorder = Recorder()
    v2 = manager.render(pending, on_stem=recorder)
    assert generator.calls == 2 and generator.requested[-1] == "A wooden door"
    assert len(generator.batches[-1]) == 1
    assert recorder.kinds() == {
        "e1": ChangeKind.CHANGED, "e2": ChangeKind.UNCHANGED, "e3": ChangeKind.UNCHANGED
    }
    for event_id in ("e2", "e3"):
        assert v2.manifest.event(event_id).cache_hit
        assert v2.manifest.event(event_id).stem_path == v1.manifest.event(event_id).stem_path
    assert not v2.manifest.event("e1").cache_hit
    assert v2.manifest.event("e1").stem_path != v1.manifest.event("e1").stem_path


def test_loudness_and_move_edits_never_call_the_generator(manager, generator) -> None:
    _, v1 = _generate(manager)
    rain_before = v1.manifest.event("e2")
    pending = manager.prepare_edit("scene", instruction="make the rain louder")
    assert pending.diff.kind_of("e2") == ChangeKind.REGAINED
    recorder = Recorder()
    v2 = manager.render(pending, on_stem=recorder)
    assert generator.calls == 1  # only the first render
    rain = v2.manifest.event("e2")
    assert rain.stem_path == rain_before.stem_path and rain.cache_hit
    # gain_db is what brings the unchanged file to the new target, measured independently.
    assert rain.target_lufs == pytest.approx(-23.0)
    assert rain.gain_db == pytest.approx(-23.0 - _measured_lufs(rain.stem_path), abs=0.05)
    assert rain.gain_db == pytest.approx(6.0, abs=0.6)
    assert recorder.kinds()["e2"] == ChangeKind.REGAINED

    before = v1.manifest.event("e3")
    moved = manager.render(
        manager.prepare_edit("scene", change=EventEdit(op="move", event_id="e3", start_s=0.5)),
        on_stem=recorder,
    )
    assert generator.calls == 1
    engine = moved.manifest.event("e3")
    assert engine.start_s == 0.5
    assert engine.end_s == pytest.approx(0.5 + before.end_s - before.start_s)
    assert engine.stem_path == v1.manifest.event("e3").stem_path
    assert engine.gain_db == pytest.approx(0.0, abs=0.6)
    assert recorder.kinds()["e3"] == ChangeKind.MOVED
    assert manager.get("scene").history[-2].content.startswith("move(")


def test_undo_and_redo_restore_stems_without_rendering(manager, generator) -> None:
    _, v1 = _generate(manager)
    v2 = manager.render(manager.prepare_edit("scene", instruction="replace the rain with wind"))
    calls = generator.calls
    pending = manager.prepare_edit("scene", instruction="Undo that!")
    assert pending.kind == "undo" and pending.version == 1
    assert pending.diff.kind_of("e2") == ChangeKind.CHANGED
    recorder = Recorder()
    back = manager.render(pending, on_stem=recorder)
    assert generator.calls == calls
    assert [e.stem_path for e in back.manifest.events] == [e.stem_path for e in v1.manifest.events]
    assert len(recorder.stems) == 3 and all(entry.cache_hit for entry, _ in recorder.stems)
    assert all(entry.cache_hit for entry in back.manifest.events)
    info = manager.get("scene")
    assert info.current_version == 1 and info.can_redo and not info.can_undo
    assert info.plan == v1.plan

    forward = manager.render(manager.prepare_edit("scene", instruction="redo"))
    assert forward.version == 2 and generator.calls == calls
    assert [e.stem_path for e in forward.manifest.events] == [
        e.stem_path for e in v2.manifest.events
    ]
    assert manager.get("scene").current_version == 2
    with pytest.raises(InvalidInputError) as info_redo:
        manager.prepare_redo("scene")
    assert info_redo.value.field == "session"


def test_new_edit_after_undo_drops_the_redo_branch(manager, generator) -> None:
    _generate(manager)
    manager.render(manager.prepare_edit("scene", instruction="replace the rain with wind"))
    manager.render(manager.prepare_undo("scene"))
    v3 = manager.render(manager.prepare_edit("scene", instruction="make the engine quieter"))
    # Version numbers are never reused, so v2's folder (maybe open in the DAW) is never rewritten.
    assert v3.version == 3
    info = manager.get("scene")
    assert [v.version for v in info.versions] == [1, 3]
    assert not info.can_redo and info.can_undo
    assert all("wind" not in turn.content for turn in info.history)
    with pytest.raises(InvalidInputError):
        manager.prepare_redo("scene")
    back = manager.render(manager.prepare_undo("scene"))
    assert back.version == 1


def test_undo_rerenders_only_a_missing_stem(tmp_path, generator) -> None:
    manager = _manager(tmp_path / "data", generator)
    _, v1 = _generate(manager)
    manager.render(manager.prepare_edit("scene", instruction="replace the rain with wind"))
    os.remove(v1.manifest.event("e3").stem_path)
    calls = generator.calls
    restored = manager.render(manager.prepare_undo("scene"))
    assert restored.rerendered == ("e3",)
    assert generator.calls == calls + 1 and generator.requested[-1] == "An engine starts"
    assert Path(restored.manifest.event("e3").stem_path).is_file()
    # The repaired manifest is stored: a second undo/redo round trip renders nothing.
    manager.render(manager.prepare_redo("scene"))
    manager.render(manager.prepare_undo("scene"))
    assert generator.calls == calls + 1


def test_sessions_share_the_cache_and_protect_live_keys(tmp_path, generator) -> None:
    cache = RenderCache(tmp_path / "cache", max_bytes=1)  # everything not live gets evicted
    manager = _manager(tmp_path / "data", generator, cache=cache)
    assert cache.is_protected_by(manager.live_cache_keys)
    _, first = _generate(manager, "one")
    live = {entry.cache_key for entry in first.manifest.events}
    assert manager.live_cache_keys() == live and all(key in cache for key in live)
    # The same scene in another session is served from the cache: no generator call.
    _, second = _generate(manager, "two")
    assert generator.calls == 1
    assert all(entry.cache_hit for entry in second.manifest.events)
    # An edit makes e1's old raw render dead in session two, but it is live in session one.
    bell = "replace the car door with a bell"
    edited = manager.render(manager.prepare_edit("two", instruction=bell))
    assert all(key in cache for key in live)
    bell_key = edited.manifest.event("e1").cache_key
    assert bell_key in cache and bell_key in manager.live_cache_keys()
    # Once no current version uses the old door render, the bound evicts it; live ones stay.
    door_key = first.manifest.event("e1").cache_key
    manager.render(manager.prepare_edit("one", instruction=bell))
    assert generator.calls == 2  # session one's bell came from the cache
    assert door_key not in cache
    assert all(key in cache for key in manager.live_cache_keys())


def test_everything_survives_a_restart(tmp_path, generator) -> None:
    data = tmp_path / "data"
    first = _manager(data, generator)
    _, v1 = _generate(first)
    first.render(first.prepare_edit("scene", instruction="make the rain louder"))
    first.close()

    again = _manager(data, generator)
    info = again.get("scene")
    assert info.current_version == 2 and [v.version for v in info.versions] == [1, 2]
    assert len(info.history) == 4 and info.history[2].content == "make the rain louder"
    assert all(Path(entry.stem_path).is_file() for entry in info.manifest.events)
    assert [summary.name for summary in again.list()] == ["scene"]
    # The restarted manager keeps reusing the old stems: no generator call for these.
    moved = again.render(again.prepare_edit("scene", instruction="move the engine 0.5 s earlier"))
    back = again.render(again.prepare_undo("scene"))
    assert generator.calls == 1
    assert moved.version == 3 and back.version == 2
    assert back.manifest.event("e1").stem_path == v1.manifest.event("e1").stem_path


HOSTILE = [
    "../../etc",
    "/etc/passwd",
    "..",
    ".",
    "C:\\Windows\\System32",
    "CON",
    "nul",
    "LPT1.txt",
    "a/../../b",
    "~root",
    "x" * MAX_SESSION_NAME_CHARS,
    "日本語のセッション",
    " spaced out ",
]


def test_hostile_session_names_stay_inside_data_dir(tmp_path, generator) -> None:
    data = tmp_path / "data"
    manager = _manager(data, generator)
    sessions_root = (data / "sessions").resolve()
    folders = set()
    for name in HOSTILE:
        folder = manager.session_dir(name).resolve()
        assert folder.parent == sessions_root, name
        # Slug plus hash: plain ASCII, never a bare device name (CON, NUL...), never '..'.
        assert re.fullmatch(r"[a-z0-9_-]{0,40}-?[a-z0-9_]*-[0-9a-f]{12}", folder.name), folder.name
        folders.add(folder.name)
    assert len(folders) == len(HOSTILE)  # every name gets its own folder
    for name in ("../../etc", "/etc/passwd", "CON"):
        pending = manager.prepare_generate(name, prompt="a bell rings", duration_s=1.0)
        version = manager.render(pending)
        assert Path(version.manifest.events[0].stem_path).resolve().is_relative_to(sessions_root)
        assert manager.get(name).name == name
    # Nothing was written anywhere but the data dir.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    for bad in ("", "   ", "a\x00b", "tab\there", "y" * (MAX_SESSION_NAME_CHARS + 1)):
        with pytest.raises(InvalidInputError) as info:
            manager.prepare_generate(bad, prompt="a bell rings", duration_s=1.0)
        assert info.value.field == "session"


def test_a_link_planted_for_a_version_folder_is_refused_before_writing(tmp_path, generator) -> None:
    data = tmp_path / "data"
    manager = _manager(data, generator)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pending = manager.prepare_generate("victim", prompt="a bell rings", duration_s=1.0)
    folder = manager.session_dir("victim")
    folder.mkdir(parents=True)
    (folder / f"v{pending.version}").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InvalidInputError) as info:
        manager.render(pending)
    assert info.value.field == "session"
    assert list(elsewhere.iterdir()) == [] and generator.calls == 0


def test_session_dir_name_is_stable_and_distinct() -> None:
    assert session_dir_name("My Scene") == session_dir_name("My Scene")
    assert session_dir_name("My Scene") != session_dir_name("my scene")
    assert session_dir_name("My Scene").startswith("my-scene-")
    assert session_dir_name("../..").startswith("session-")


@pytest.mark.parametrize(
    "text, route",
    [
        ("undo", "undo"), ("Undo that.", "undo"), ("  go back ", "undo"), ("UNDO IT!", "undo"),
        ("undo the last change", "undo"), ("please undo", "undo"), ("redo", "redo"),
        ("Redo that", "redo"), ("undo the rain and add wind", None), ("go back to the car", None),
        ("make the rain louder", None), ("redo the rain", None),
    ],
)
def test_route_instruction(text: str, route: str | None) -> None:
    assert route_instruction(text) == route


def test_bad_requests_name_their_field(manager) -> None:
    cases = [
        (dict(prompt="rain", duration_s=-1.0), "duration_s"),
        (dict(prompt="rain", duration_s=float("nan")), "duration_s"),
        (dict(prompt="rain", duration_s=float("inf")), "duration_s"),
        (dict(prompt="rain", duration_s=10_000.0), "duration_s"),
        (dict(prompt="  ", duration_s=5.0), "prompt"),
        (dict(prompt="rain", duration_s=5.0, anchor_s=-2.0), "anchor_s"),
        (dict(prompt="rain", duration_s=5.0, seed=-1), "seed"),
    ]
    for kwargs, field_name in cases:
        with pytest.raises(InvalidInputError) as info:
            manager.prepare_generate("s", **kwargs)
        assert info.value.field == field_name, kwargs
    with pytest.raises(NotFoundError) as missing:
        manager.prepare_edit("nobody", instruction="make it louder")
    assert missing.value.field == "session"
    with pytest.raises(NotFoundError):
        manager.get("nobody")
    with pytest.raises(InvalidInputError):
        manager.prepare_edit("s", instruction="x", change=EventEdit(op="delete", event_id="e1"))
    manager.prepare_generate("empty", prompt="a bell rings", duration_s=1.0)  # never rendered
    with pytest.raises(InvalidInputError) as nothing:
        manager.prepare_edit("empty", instruction="make the bell louder")
    assert nothing.value.field == "session"
    with pytest.raises(InvalidInputError):
        manager.prepare_undo("empty")


def test_cancelled_render_keeps_the_current_version(manager, generator) -> None:
    _generate(manager)
    pending = manager.prepare_edit("scene", instruction="replace the rain with wind")
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        manager.render(pending, cancel=token)
    info = manager.get("scene")
    assert info.current_version == 1 and [v.version for v in info.versions] == [1]
    # The abandoned number is not handed out again.
    assert manager.prepare_edit("scene", instruction="make the rain louder").version == 3


def test_failed_event_is_retried_by_the_next_edit(tmp_path) -> None:
    generator = CountingGenerator(fail_on="engine")
    manager = _manager(tmp_path / "data", generator)
    _, v1 = _generate(manager)
    assert [failed.id for failed in v1.manifest.failed] == ["e3"]
    assert {entry.id for entry in v1.manifest.events} == {"e1", "e2"}
    generator.fail_on = None
    v2 = manager.render(manager.prepare_edit("scene", instruction="make the rain louder"))
    assert generator.requested[-1] == "An engine starts" and len(generator.batches[-1]) == 1
    assert not v2.manifest.failed and len(v2.manifest.events) == 3


def test_seed_option_reseeds_every_event(manager) -> None:
    plain = manager.prepare_generate("a", prompt=PROMPT, duration_s=6.0)
    seeded = manager.prepare_generate("b", prompt=PROMPT, duration_s=6.0, seed=5)
    again = manager.prepare_generate("c", prompt=PROMPT, duration_s=6.0, seed=5)
    assert [e.seed for e in seeded.plan.events] == [e.seed for e in again.plan.events]
    assert all(a.seed != b.seed for a, b in zip(plain.plan.events, seeded.plan.events))


def test_real_procedural_backend(tmp_path) -> None:
    pytest.importorskip("engine.generators.procedural")
    from engine.generators import create_generator

    backend = create_generator("procedural")
    batches: list[int] = []

    class Counted:  # the real backend, with its calls counted
        name = backend.name

        def identity(self):
            return backend.identity()

        def generate(self, requests, **kwargs):
            batches.append(len(requests))
            return backend.generate(requests, **kwargs)

    manager = SessionManager(
        data_dir=tmp_path / "data",
        planner_factory=lambda name: RulePlanner(),
        generator_factory=lambda name: Counted(),
        cache=RenderCache(tmp_path / "cache"),
        render_settings=RenderSettings(sample_rate=RATE),
    )
    _, v1 = _generate(manager)
    assert batches == [3] and len(v1.manifest.events) == 3 and not v1.manifest.failed
    assert any("procedural" in note for note in v1.manifest.notes)
    for entry in v1.manifest.events:
        assert entry.gain_db == pytest.approx(
            entry.target_lufs - _measured_lufs(entry.stem_path), abs=0.05
        )
    v2 = manager.render(manager.prepare_edit("scene", instruction="make the rain louder"))
    assert batches == [3]
    assert v2.manifest.event("e2").stem_path == v1.manifest.event("e2").stem_path
    v3 = manager.render(manager.prepare_edit("scene", instruction="replace the rain with wind"))
    assert batches == [3, 1] and v3.manifest.event("e2").description == "Wind"
    back = manager.render(manager.prepare_undo("scene"))
    assert batches == [3, 1] and back.version == 2

def test_concurrent_sessions_render_independently(tmp_path) -> None:
    generator = CountingGenerator()
    manager = _manager(tmp_path / "data", generator, cache=RenderCache(tmp_path / "cache"))
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            _generate(manager, name)
            manager.render(manager.prepare_edit(name, instruction="make the rain louder"))
            manager.render(manager.prepare_undo(name))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(f"s{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(s.name for s in manager.list()) == ["s0", "s1", "s2", "s3"]
    assert all(s.current_version == 1 and s.can_redo for s in manager.list())
    # Every session planned the same scene: 3 raw renders, however the threads interleaved.
    assert len(set(generator.requested)) == 3


def test_render_rediffs_when_the_current_version_moved(manager, generator) -> None:
    _generate(manager)
    # Two edits planned against version 1; the second is rendered after the first landed.
    louder = manager.prepare_edit("scene", instruction="make the rain louder")
    wind = manager.prepare_edit("scene", instruction="replace the car door with wind")
    manager.render(louder)
    recorder = Recorder()
    result = manager.render(wind, on_stem=recorder)
    assert result.version == 3 and generator.requested[-1] == "Wind"
    # Reuse follows what is current at render time (v2's rain is REGAINED relative to it).
    assert recorder.kinds()["e2"] == ChangeKind.REGAINED
    assert result.manifest.event("e2").cache_hit


def test_prepare_plan_renders_an_outside_plan_as_a_version(manager, generator) -> None:
    plan = Plan(
        duration_s=4.0,
        events=(Event(id="e1", description="steps on gravel", start_s=0.5, end_s=3.5, seed=3),),
    )
    result = PlanResult(plan=plan, planner="video", notes=("from onsets",), reply="Cued 1 event.")
    words = "video cue clip.mp4 0-4 s"
    pending = manager.prepare_plan("cue", result, instruction=words, anchor_s=8.0)
    assert pending.kind == "video_cue" and pending.version == 1
    version = manager.render(pending)
    assert version.manifest.anchor_s == 8.0 and "from onsets" in version.manifest.notes
    info = manager.get("cue")
    assert info.anchor_s == 8.0 and info.versions[0].kind == "video_cue"
    assert info.history[0].content == words
    # A later cue on the same session keeps its anchor unless told otherwise.
    again = manager.prepare_plan("cue", result, instruction="same cue again")
    assert again.anchor_s == 8.0 and again.diff.kind_of("e1") == ChangeKind.UNCHANGED
    assert manager.render(again).manifest.event("e1").cache_hit
    assert generator.calls == 1


def test_two_managers_sharing_a_cache_protect_each_others_live_stems(tmp_path, generator) -> None:
    """Protection is asked of the cache (RenderCache.protect), not set on it: the second
    manager's live stems are kept too, not only the first's."""
    cache = RenderCache(tmp_path / "cache", max_bytes=1)  # everything not live gets evicted
    first = _manager(tmp_path / "a", generator, cache=cache)
    second = _manager(tmp_path / "b", generator, cache=cache)
    _, made = _generate(second, "only-in-b")
    pending = first.prepare_generate("other", prompt="a bell rings", duration_s=2.0)
    first.render(pending)  # evicts whatever no manager holds live
    assert all(entry.cache_key in cache for entry in made.manifest.events)


def test_a_seeded_session_keeps_its_seed_through_edits(manager, generator) -> None:
    """engine.seeds rule 3: edits keep kept events' seeds and mix the session's seed into new ones."""
    from engine.seeds import mix_seed

    _, v1 = _generate(manager, seed=9)
    assert manager.store.require_session("scene").seed == 9
    calls = generator.calls
    pending = manager.prepare_edit(
        "scene", change=EventEdit(op="add", description="a dog barks", start_s=1.0, end_s=2.0))
    added = next(e for e in pending.plan.events if e.description == "a dog barks")
    from engine.edits import stable_seed

    assert added.seed == mix_seed(stable_seed("a dog barks"), 9)
    for before in v1.plan.events:  # every other event keeps its seed, so its stem
        assert pending.plan.event(before.id).seed == before.seed
    manager.render(pending)
    assert generator.calls == calls + 1 and generator.requested[-1] == "a dog barks"
