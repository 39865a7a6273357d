"""Shaped per-event fades from the plan ("approaches", "fades away") reach the stem files and
the manifest; events without them keep only the short anti-click fades."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from engine.generators import GenerationResult
from engine.plan import Event, Plan
from engine.scene import render_scene


class SteadyTone:
    """A constant-level 440 Hz tone of the requested length: any envelope in the stem is ours."""

    name = "steady"

    def identity(self):
        return {"model": "steady-tone", "revision": 1}

    def generate(self, requests, *, progress=None, cancel=None):
        results = []
        for request in requests:
            frames = int(round(request.length_s * request.sample_rate))
            t = np.arange(frames) / request.sample_rate
            tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
            results.append(GenerationResult(audio=np.stack([tone, tone])))
        return results


def _rms(block: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(block))))


def test_shaped_fades_reach_the_stem_and_the_manifest(tmp_path) -> None:
    plan = Plan(duration_s=4.0, events=(
        Event(id="e1", description="A car approaches", start_s=0.0, end_s=4.0,
              fade_in_s=2.0, fade_out_s=None),
        Event(id="e2", description="A steady hum", start_s=0.0, end_s=4.0),
    ))
    manifest = render_scene(plan, generator=SteadyTone(), out_dir=tmp_path)
    shaped, plain = manifest.event("e1"), manifest.event("e2")
    assert (shaped.fade_in_s, shaped.fade_out_s) == (2.0, None)
    assert (plain.fade_in_s, plain.fade_out_s) == (None, None)
    audio, rate = sf.read(shaped.stem_path, dtype="float32", always_2d=True)
    tenth = rate // 10
    # The first tenth of a second is near silence, the middle of the ramp is about half way
    # up (raised cosine), and the end is at full level.
    start, middle, end = _rms(audio[:tenth]), _rms(audio[rate - tenth // 2 : rate + tenth // 2]), \
        _rms(audio[-2 * tenth : -tenth])
    assert start < 0.05 * end
    assert 0.3 * end < middle < 0.7 * end
    flat, _ = sf.read(plain.stem_path, dtype="float32", always_2d=True)
    # Without a shaped fade the level is full within a few milliseconds.
    assert _rms(flat[tenth : 2 * tenth]) > 0.9 * _rms(flat[-2 * tenth : -tenth])
