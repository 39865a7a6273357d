"""Loading the base models a VTA checkpoint names (ids or local folders) in one place, so training,
evaluation and video-cue build them the same way: the frozen CLIP frame encoder, the frozen
HuBERT unit tokenizer, the LLM with its audio vocabulary, and Auffusion at the checkpoint's
image geometry."""

from __future__ import annotations

from typing import Any

import torch

from engine.errors import GeneratorError, InvalidInputError
from engine.video.checkpoint import CheckpointInfo
from engine.video.vta_model import (
    AudioVocabulary,
    CentroidTable,
    FrameEncoder,
    HubertUnitTokenizer,
    VTAConfig,
    extend_tokenizer,
)


def _loading(what: str, model_id: str, load: Any) -> Any:
    try:
        return load()
    except (InvalidInputError, GeneratorError):
        raise
    except Exception as error:  # noqa: BLE001 - a loader failure becomes one line naming the model
        raise GeneratorError(f"cannot load the {what} {model_id!r}: {error}", field=what, value=model_id) from error


def frame_encoder(config: VTAConfig) -> FrameEncoder:
    return _loading("clip_model_id", config.clip_model_id, lambda: FrameEncoder.from_pretrained(config.clip_model_id))


def unit_tokenizer(info: CheckpointInfo) -> HubertUnitTokenizer:
    from transformers import HubertModel

    config = info.config
    hubert = _loading("hubert_model_id", config.hubert_model_id,
                      lambda: HubertModel.from_pretrained(config.hubert_model_id))
    table = CentroidTable.load(info.centroids_path, n_units=config.n_audio_tokens, dim=config.centroid_dim)
    return HubertUnitTokenizer(hubert, table, layer=config.hubert_layer)


def centroid_table(info: CheckpointInfo) -> CentroidTable:
    config = info.config
    return CentroidTable.load(info.centroids_path, n_units=config.n_audio_tokens, dim=config.centroid_dim)


def base_llm(config: VTAConfig) -> tuple[torch.nn.Module, AudioVocabulary]:
    """The base causal LM and the ids its tokenizer gives the audio vocabulary."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load() -> tuple[torch.nn.Module, AudioVocabulary]:
        tokenizer = AutoTokenizer.from_pretrained(config.llm_model_id)
        vocab = extend_tokenizer(tokenizer, n_audio_tokens=config.n_audio_tokens)
        # Gemma 2's soft-capped attention is only exact in the eager implementation.
        llm = AutoModelForCausalLM.from_pretrained(config.llm_model_id, attn_implementation="eager")
        return llm, vocab

    return _loading("llm_model_id", config.llm_model_id, load)


def auffusion(config: VTAConfig, *, device: str | None = None, dtype: str | None = None,
              steps: int | None = None, guidance: float | None = None) -> Any:
    """A fresh AuffusionGenerator and its own (not the shared resident) pipeline: the visual
    attention is installed into this UNet, which text-only renders must never see."""
    from engine.generators.auffusion import AuffusionGenerator

    generator = AuffusionGenerator(model=config.auffusion_model_id, clip_frames=config.auffusion_clip_frames,
                                   pad_frames=config.auffusion_pad_frames, device=device, dtype=dtype, steps=steps,
                                   guidance=guidance)
    return generator, _loading("auffusion_model_id", config.auffusion_model_id, generator._load)
