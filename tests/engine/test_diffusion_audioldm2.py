"""AudioLDM2 backend on a tiny random AudioLDM2Pipeline saved with save_pretrained, on CPU.

Tiny geometry: mono, 1 kHz vocoder with hop 4; segments up to 0.2 s, lengths rounded to 0.05 s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.errors import CancelledError  # noqa: E402
from engine.generators import GenerationRequest, create_generator  # noqa: E402
from engine.generators._diffusion_models import release_resident_models  # noqa: E402
from engine.generators.audioldm2 import AudioLDM2Generator  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from tests.engine.tiny_models import build_tiny_audioldm2  # noqa: E402

# Requests obey the engine's sample-rate rule (engine.limits, >= 8 kHz); the tiny model renders
# at its own low rate and the backend resamples.
RATE = 8000
OPTIONS = {"steps": 3, "overlap_s": 0.02, "length_quantum_s": 0.05, "max_segment_s": 0.2,
           "dtype": "float32", "device": "cpu"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_audioldm2(tmp_path_factory.mktemp("tiny") / "audioldm2")
    yield folder
    release_resident_models()


@pytest.fixture()
def generator(checkpoint: Path) -> AudioLDM2Generator:
    return create_generator("audioldm2", model=str(checkpoint), **OPTIONS)


def _count_calls(monkeypatch) -> list[int]:
    sizes: list[int] = []
    render = AudioLDM2Generator._render_batch
    monkeypatch.setattr(AudioLDM2Generator, "_render_batch",
                        lambda self, p, jobs, step: sizes.append(len(jobs)) or render(self, p, jobs, step))
    return sizes


def test_mono_waveform_at_the_request_rate(generator) -> None:
    result = generator.generate([GenerationRequest("a cat meows", 0.12, 1, 16000)])[0]
    assert result.ok, result.error
    assert result.audio.shape == (1, 1920) and result.audio.dtype == np.float32
    assert np.isfinite(result.audio).all() and np.abs(result.audio).max() > 0


def test_determinism_and_seed_sensitivity(generator) -> None:
    first = generator.generate([GenerationRequest("a kettle whistles", 0.1, 3, RATE)])[0].audio
    again = generator.generate([GenerationRequest("a kettle whistles", 0.1, 3, RATE)])[0].audio
    other = generator.generate([GenerationRequest("a kettle whistles", 0.1, 4, RATE)])[0].audio
    assert np.array_equal(first, again)
    # The tiny vocoder is nearly silent, so compare relative to the signal's own scale.
    scale = float(np.abs(first).max())
    assert float(np.abs(first - other).max()) > 0.05 * scale


def test_batched_equals_unbatched_with_prompts_of_different_lengths(checkpoint: Path, monkeypatch) -> None:
    generator = create_generator("audioldm2", model=str(checkpoint), **OPTIONS)
    sizes = _count_calls(monkeypatch)
    requests = [GenerationRequest("dog", 0.1, 1, RATE),
                GenerationRequest("heavy rain on a car roof with distant thunder", 0.09, 2, RATE),
                GenerationRequest("a door creaks open slowly", 0.2, 3, RATE)]
    batched = generator.generate(requests)
    assert sorted(sizes) == [1, 2]  # 0.1 and 0.09 s share the 0.1 s bucket; 0.2 s is its own
    for request, result in zip(requests, batched):
        alone = generator.generate([request])[0].audio
        scale = float(np.abs(alone).max())
        np.testing.assert_allclose(result.audio, alone, atol=1e-4 * scale)


def test_long_event_segments_and_cancel(generator) -> None:
    long = generator.generate([GenerationRequest("an airplane passes", 0.5, 2, RATE)])[0]
    assert long.ok and long.audio.shape == (1, round(0.5 * RATE))

    token = CancelToken()
    seen: list[float] = []

    def stop(stage: str, fraction: float) -> None:
        seen.append(fraction)
        token.cancel()

    with pytest.raises(CancelledError):
        generator.generate([GenerationRequest("a bell", 0.1, 1, RATE)], progress=stop, cancel=token)
    assert seen == [pytest.approx(1 / 3)]
