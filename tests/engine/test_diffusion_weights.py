"""Real checkpoints on a real GPU. Skipped unless both are present.

Set AUDIO_AGENT_WEIGHTS_DIR to a folder holding downloaded checkpoints in sub-folders named
auffusion/, stable-audio/ and audioldm2/ (each a Hub snapshot: the folder from_pretrained or
snapshot_download would use).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.generators import GenerationRequest, create_generator

pytestmark = [pytest.mark.weights, pytest.mark.gpu]

WEIGHTS_DIR = os.environ.get("AUDIO_AGENT_WEIGHTS_DIR")


def _checkpoint(backend: str) -> Path:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if not WEIGHTS_DIR:
        pytest.skip("set AUDIO_AGENT_WEIGHTS_DIR to run real-weight tests")
    folder = Path(WEIGHTS_DIR) / backend
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


@pytest.mark.parametrize("backend,channels", [("auffusion", 1), ("stable-audio", 2), ("audioldm2", 1)])
def test_real_checkpoint_renders_a_scene_batch(backend: str, channels: int) -> None:
    generator = create_generator(backend, model=str(_checkpoint(backend)), steps=10)
    requests = [GenerationRequest("a dog barking in a yard", 3.0, 1, 48000),
                GenerationRequest("steady rain on a window", 12.5, 2, 48000)]  # 12.5 s: segmented
    results = generator.generate(requests)
    for request, result in zip(requests, results):
        assert result.ok, result.error
        assert result.audio.shape == (channels, round(request.length_s * 48000))
        assert np.isfinite(result.audio).all()
        assert float(np.sqrt(np.mean(result.audio**2))) > 1e-4  # not silence
    again = generator.generate(requests[:1])[0].audio
    np.testing.assert_allclose(again, results[0].audio, atol=5e-2)  # half precision on GPU
