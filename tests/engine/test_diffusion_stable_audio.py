"""Stable Audio backend on a tiny random StableAudioPipeline saved with save_pretrained, on CPU.

Tiny geometry: stereo at 400 Hz, a DiT window of 40 latents x hop 2 = 0.2 s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.errors import CancelledError  # noqa: E402
from engine.generators import GenerationRequest, create_generator  # noqa: E402
from engine.generators._diffusion_models import release_resident_models  # noqa: E402
from engine.generators.stable_audio import StableAudioGenerator  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from tests.engine.tiny_models import build_tiny_stable_audio  # noqa: E402

# Requests obey the engine's sample-rate rule (engine.limits, >= 8 kHz); the tiny model renders
# at its own low rate and the backend resamples.
RATE = 8000
OPTIONS = {"steps": 3, "overlap_s": 0.02, "length_quantum_s": 0.05, "dtype": "float32", "device": "cpu"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_stable_audio(tmp_path_factory.mktemp("tiny") / "stable-audio")
    yield folder
    release_resident_models()


@pytest.fixture()
def generator(checkpoint: Path) -> StableAudioGenerator:
    return create_generator("stable-audio", model=str(checkpoint), **OPTIONS)


def _count_calls(monkeypatch) -> list[int]:
    sizes: list[int] = []
    render = StableAudioGenerator._render_batch
    monkeypatch.setattr(StableAudioGenerator, "_render_batch",
                        lambda self, p, jobs, step: sizes.append(len(jobs)) or render(self, p, jobs, step))
    return sizes


def test_stereo_waveform_at_the_request_rate(generator) -> None:
    result = generator.generate([GenerationRequest("a hammer on wood", 0.15, 1, 48000)])[0]
    assert result.ok and result.audio.shape == (2, 7200) and result.audio.dtype == np.float32
    assert np.isfinite(result.audio).all() and np.abs(result.audio).max() > 0
    assert generator.identity()["scheduler"] == "CosineDPMSolverMultistepScheduler"


def test_determinism_and_seed_sensitivity(generator) -> None:
    request = GenerationRequest("thunder far away", 0.1, 4, RATE)
    first, again = generator.generate([request, request])
    other = generator.generate([GenerationRequest("thunder far away", 0.1, 5, RATE)])[0]
    np.testing.assert_allclose(first.audio, again.audio, atol=1e-5)
    assert not np.allclose(first.audio, other.audio, rtol=1e-3, atol=1e-4)


def test_every_length_shares_one_call_and_matches_unbatched(checkpoint: Path, monkeypatch) -> None:
    generator = create_generator("stable-audio", model=str(checkpoint), **OPTIONS)
    sizes = _count_calls(monkeypatch)
    requests = [GenerationRequest("footsteps on gravel", 0.05, 1, RATE), GenerationRequest("rain", 0.17, 2, RATE),
                GenerationRequest("a car horn in the street", 0.12, 3, RATE)]
    batched = generator.generate(requests)
    assert sizes == [3]
    for request, result in zip(requests, batched):
        assert result.audio.shape == (2, round(request.length_s * RATE))
        np.testing.assert_allclose(result.audio, generator.generate([request])[0].audio, atol=1e-4)


def test_events_longer_than_the_window_are_segmented(checkpoint: Path, monkeypatch) -> None:
    generator = create_generator("stable-audio", model=str(checkpoint), **OPTIONS)
    sizes = _count_calls(monkeypatch)
    result = generator.generate([GenerationRequest("a crowd murmuring", 0.5, 7, RATE)])[0]
    assert result.audio.shape == (2, round(0.5 * RATE))
    assert sizes == [3]  # (0.5 - 0.02) / (0.2 - 0.02) -> 3 windows, one call


def test_cancel_between_denoising_steps(generator) -> None:
    token = CancelToken()
    calls: list[float] = []

    def stop_after_first(stage: str, fraction: float) -> None:
        calls.append(fraction)
        token.cancel()

    with pytest.raises(CancelledError):
        generator.generate([GenerationRequest("glass breaking", 0.1, 1, RATE)], progress=stop_after_first, cancel=token)
    assert calls == [pytest.approx(1 / 3)]


# --------------------------------------------------------------------------- Stable Audio 3


@pytest.fixture(scope="module")
def checkpoint_v3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.engine.tiny_models import build_tiny_stable_audio_3

    folder = build_tiny_stable_audio_3(tmp_path_factory.mktemp("tiny") / "stable-audio-3")
    yield folder
    release_resident_models()


def test_stable_audio_3_checkpoint_gets_its_own_defaults_and_groups_by_length(checkpoint_v3: Path, monkeypatch) -> None:
    generator = create_generator("stable-audio", model=str(checkpoint_v3), dtype="float32", device="cpu",
                                 overlap_s=0.05, length_quantum_s=0.05, max_segment_s=0.3)
    identity = generator.identity()
    assert (identity["steps"], identity["guidance"], identity["pipeline"]) == (8, 1.0, "StableAudio3Pipeline")
    assert identity["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    vae = generator.pipeline().vae
    decoded: list = []
    decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda latents, **kw: decoded.extend(latents.clone()) or decode(latents, **kw))
    sizes = _count_calls(monkeypatch)
    requests = [GenerationRequest("a whistle", 0.1, 1, RATE), GenerationRequest("an owl at night", 0.2, 3, RATE),
                GenerationRequest("a drum hit", 0.1, 2, RATE)]
    fractions: list[float] = []
    batched = generator.generate(requests, progress=lambda s, f: fractions.append(f))
    assert sizes == [2, 1] and fractions[-1] == 1.0 and len(fractions) == 2 * 8
    for request, result in zip(requests, batched):
        assert result.ok and result.audio.shape == (2, round(request.length_s * RATE))
    batched_latents = {0: decoded[0], 2: decoded[1], 1: decoded[2]}  # calls run group by group
    for index, request in enumerate(requests):
        decoded.clear()
        generator.generate([request])
        torch.testing.assert_close(decoded[0], batched_latents[index], atol=1e-4, rtol=1e-4)
    decoded.clear()
    generator.generate([GenerationRequest("a whistle", 0.1, 9, RATE)])
    assert not torch.allclose(decoded[0], batched_latents[0], atol=1e-2)
