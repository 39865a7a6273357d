"""The VTA model at the paper's sizes from real checkpoints. Skipped unless they are present.

Set AUDIO_AGENT_WEIGHTS_DIR to a folder with Hub snapshots in sub-folders clip-vit-large-patch14/,
gemma-2-2b-it/ and hubert-base-ls960/ (and optionally vta-centroids.npy, 500 x 768).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.video import vta_model as vta

pytestmark = [pytest.mark.weights, pytest.mark.slow]

WEIGHTS_DIR = os.environ.get("AUDIO_AGENT_WEIGHTS_DIR")


def _folder(name: str) -> Path:
    if not WEIGHTS_DIR:
        pytest.skip("set AUDIO_AGENT_WEIGHTS_DIR to run real-weight tests")
    folder = Path(WEIGHTS_DIR) / name
    if not folder.exists():
        pytest.skip(f"{folder} not found")
    return folder


def test_paper_sized_model_builds_and_emits_audio_tokens():
    from transformers import AutoTokenizer, Gemma2ForCausalLM

    clip_dir, llm_dir = _folder("clip-vit-large-patch14"), _folder("gemma-2-2b-it")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = vta.FrameEncoder.from_pretrained(str(clip_dir)).to(device)
    assert encoder.hidden_size == 1024  # ViT-L/14
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    vocab = vta.extend_tokenizer(tokenizer)
    llm = Gemma2ForCausalLM.from_pretrained(llm_dir, torch_dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model = vta.build_vta_model(llm, vocab, clip_dim=encoder.hidden_size, config=vta.load_vta_config()).to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < trainable < 0.1 * sum(p.numel() for p in model.parameters())
    frames = np.random.default_rng(0).integers(0, 255, (22, 224, 224, 3), dtype=np.uint8)
    (units,) = model.generate_units(encoder(frames)[None].to(device), max_units=50)
    assert all(0 <= unit < 500 for unit in units)


def test_hubert_base_layer_9_units():
    from transformers import HubertModel

    hubert_dir = _folder("hubert-base-ls960")
    centroids = Path(WEIGHTS_DIR or "") / "vta-centroids.npy"
    table = (vta.CentroidTable.load(centroids) if centroids.is_file()
             else vta.CentroidTable(np.random.default_rng(0).standard_normal((500, 768)).astype(np.float32)))
    units = vta.HubertUnitTokenizer(HubertModel.from_pretrained(hubert_dir), table, layer=9).units(
        np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1)
    assert 48 <= len(units) <= 50  # 50 Hz
