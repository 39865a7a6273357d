"""Cue -> stems through engine.scene.render_scene; the stems' onsets are measured from audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from engine.eval.onsets import detect_audio_onsets, match_count
from engine.generators import GenerationResult, register_generator
from engine.manifest import read_manifest
from engine.scene import render_scene
from engine.render_settings import SceneLabels
from engine.stems import read_bext
from engine.video.cue import plan_from_video
from server.cli import main

TOLERANCE_S = 0.1


class ClickGenerator:
    """A struck-object stand-in: a decaying noise burst at sample 0 of every request."""

    name = "video-test-clicks"

    def identity(self):
        return {"name": self.name, "version": 1}

    def generate(self, requests, *, progress=None, cancel=None):
        out = []
        for request in requests:
            frames = int(request.length_s * request.sample_rate)
            rng = np.random.default_rng(request.seed)
            decay = np.exp(-np.arange(frames) / (0.02 * request.sample_rate))
            out.append(GenerationResult(audio=(0.5 * decay * rng.standard_normal(frames))[None, :].astype(np.float32)))
        return out


register_generator(ClickGenerator.name, ClickGenerator)

# The default offline backend, and a bare click that shows timing with no synthesis in between.
BACKENDS = ["procedural", "video-test-clicks"]


def _stem_onsets(manifest):
    """Each stem's first measured onset, on the scene timeline (event start + offset in file)."""
    found = []
    for event in manifest.events:
        audio, rate = sf.read(event.stem_path, dtype="float32", always_2d=True)
        onsets = detect_audio_onsets(audio.T, rate)
        if len(onsets.times_s):
            found.append(event.start_s + float(onsets.times_s[0]))
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_rendered_hits_sound_on_the_visual_onsets(flash_video, tmp_path, backend):
    from engine.generators import create_generator

    path, truth = flash_video
    result = plan_from_video(path, start_s=0.0, end_s=3.0, hint="hand claps")
    manifest = render_scene(result.plan, generator=create_generator(backend), out_dir=tmp_path / "out",
                            labels=SceneLabels(backend, result.planner))
    assert not manifest.failed and len(manifest.events) == len(truth)
    found = _stem_onsets(manifest)
    assert match_count(found, truth, tolerance_s=TOLERANCE_S) / len(truth) >= 0.9
    mix, rate = sf.read(manifest.mix_path, dtype="float32", always_2d=True)
    mix_onsets = detect_audio_onsets(mix.T, rate).times_s
    assert match_count(list(mix_onsets), truth, tolerance_s=TOLERANCE_S) / len(truth) >= 0.9


def test_cli_renders_a_range_at_its_anchor(flash_video, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AUDIO_AGENT_CACHE_DIR", str(tmp_path / "cache"))
    path, truth = flash_video
    out = tmp_path / "cue"
    code = main(["video-cue", str(path), "--start", "1.0", "--end", "3.0", "--hint", "footsteps",
                 "--out", str(out), "--anchor", "10"])  # default backend: procedural
    assert code == 0
    manifest_path = capsys.readouterr().out.strip().splitlines()[-1]
    manifest = read_manifest(manifest_path)
    assert manifest.anchor_s == 10.0 and manifest.duration_s == pytest.approx(2.0)
    inside = [t - 1.0 for t in truth if 1.0 <= t < 3.0]
    assert sorted(e.start_s for e in manifest.events) == pytest.approx(inside, abs=0.041)
    assert {e.description for e in manifest.events} == {"a single footstep"}
    found = _stem_onsets(manifest)
    assert match_count(found, inside, tolerance_s=TOLERANCE_S) == len(inside)
    for event in manifest.events:  # the DAW spots each stem at anchor + event start
        stamp = read_bext(event.stem_path)["time_reference_samples"]
        assert stamp == round((10.0 + event.start_s) * manifest.sample_rate)
    data = json.loads((out / "manifest.json").read_text())
    assert data["planner"] == "video-onsets" and data["backend"] == "procedural"
    assert not any(e.cache_hit for e in manifest.events)
    # Spotting the same range again renders nothing new: every stem is reused.
    assert main(["video-cue", str(path), "--start", "1.0", "--end", "3.0", "--hint", "footsteps",
                 "--out", str(out), "--anchor", "10"]) == 0
    again = read_manifest(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(e.cache_hit for e in again.events)
    assert [e.stem_path for e in again.events] == [e.stem_path for e in manifest.events]


def test_cli_reports_a_bad_video_in_one_line(tmp_path, capsys):
    code = main(["video-cue", str(tmp_path / "missing.mp4"), "--start", "0", "--end", "1",
                 "--out", str(tmp_path / "o"), "--backend", "video-test-clicks", "--no-cache"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "missing.mp4" in err and len(err.splitlines()) == 1


def test_cli_reports_a_bad_setting_in_one_line(flash_video, tmp_path, capsys):
    path, _ = flash_video
    code = main(["video-cue", str(path), "--start", "0", "--end", "1", "--out", str(tmp_path / "o"),
                 "--sample-rate", "5", "--no-cache"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("audio-agent: error: sample_rate=5")
