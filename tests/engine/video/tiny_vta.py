"""Tiny random-initialised parts of the VTA model, saved and reloaded through the real loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

WORDS = ["<pad>", "<unk>", "<bos>", "<eos>"] + [f"w{i}" for i in range(28)]
CLIP_DIM = 32
LLM_DIM = 32
HUBERT_DIM = 32
VISUAL_DIM = HUBERT_DIM  # centroid vectors condition the UNet


def tokenizer(folder: Path):
    """A word-level fast tokenizer built in memory, saved, and loaded with AutoTokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<bos>", eos_token="<eos>")
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def gemma(folder: Path, vocab_size: int = len(WORDS)):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        config = Gemma2Config(vocab_size=vocab_size, hidden_size=LLM_DIM, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                              max_position_embeddings=512, sliding_window=128, pad_token_id=0, bos_token_id=2,
                              eos_token_id=3, attn_implementation="eager")
        Gemma2ForCausalLM(config).save_pretrained(folder)
    return Gemma2ForCausalLM.from_pretrained(folder, attn_implementation="eager")


def clip(folder: Path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    if not (folder / "config.json").is_file():
        torch.manual_seed(1)
        config = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=CLIP_DIM, intermediate_size=64,
                                  num_hidden_layers=2, num_attention_heads=2, projection_dim=CLIP_DIM)
        CLIPVisionModel(config).save_pretrained(folder)
    return folder


def hubert(folder: Path):
    """Nine layers (layer 9 is read), a 320x downsampling conv stack like HuBERT-Base's (50 Hz)."""
    from transformers import HubertConfig, HubertModel

    if not (folder / "config.json").is_file():
        torch.manual_seed(2)
        config = HubertConfig(hidden_size=HUBERT_DIM, num_hidden_layers=9, num_attention_heads=2,
                              intermediate_size=64, conv_dim=(16, 16, 16, 16), conv_stride=(5, 4, 4, 4),
                              conv_kernel=(10, 4, 4, 4), num_conv_pos_embeddings=16,
                              num_conv_pos_embedding_groups=2, feat_extract_norm="group")
        HubertModel(config).save_pretrained(folder)
    return HubertModel.from_pretrained(folder)


def centroids(path: Path, *, units: int = 500, dim: int = HUBERT_DIM) -> Path:
    np.save(path, np.random.default_rng(4).standard_normal((units, dim)).astype(np.float32))
    return path


def unet(folder: Path):
    from diffusers import UNet2DConditionModel

    if not (folder / "config.json").is_file():
        torch.manual_seed(3)
        UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
            norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=24, attention_head_dim=4,
        ).save_pretrained(folder)
    return UNet2DConditionModel.from_pretrained(folder)


# ---------------------------------------------------------------------------- a whole tiny world
UNITS = 8  # k-means clusters of the tiny configs: enough to tell units apart, fast to fit


def flash_clip(path: Path, *, tone_hz: float, flash_every: int, seconds: float = 1.0) -> Path:
    """A training clip: a dark frame with a bright square every ``flash_every`` frames, and a tone."""
    from tests.engine.video import synth

    def frame(index: int, _t: float) -> np.ndarray:
        image = np.full((synth.SIZE_PX, synth.SIZE_PX, 3), 40, np.uint8)
        if index % flash_every == 0:
            image[8:40, 8:40] = 230
        return image

    return synth.encode(path, frame, synth.regular_times(seconds), audio_tone_hz=tone_hz)


def tiny_world(root: Path) -> dict[str, Path]:
    """Two labelled training clips, every tiny base model saved in its real layout, and a
    vta.toml naming them: what `audio-agent vta units/train` need to run end to end."""
    data = root / "data"
    for label, tone_hz, every in (("dog_bark", 600.0, 5), ("hammer", 1500.0, 9)):
        (data / label).mkdir(parents=True)
        flash_clip(data / label / "take1.mp4", tone_hz=tone_hz, flash_every=every)
    return {"root": root, "data": data, "config": tiny_bases(root)}


def tiny_bases(root: Path) -> Path:
    """Every tiny base model saved under ``root`` in its real layout, and the vta.toml naming
    them (returned)."""
    from tests.engine.tiny_models import build_tiny_auffusion

    tokenizer(root / "llm")
    gemma(root / "llm")
    clip(root / "clip")
    hubert(root / "hubert")
    build_tiny_auffusion(root / "auffusion")
    config = root / "vta.toml"
    config.write_text(
        "[vta]\n"
        f'clip_model_id = "{root / "clip"}"\nllm_model_id = "{root / "llm"}"\n'
        f'hubert_model_id = "{root / "hubert"}"\nauffusion_model_id = "{root / "auffusion"}"\n'
        f"n_audio_tokens = {UNITS}\ncentroid_dim = {HUBERT_DIM}\nlora_r = 4\nlora_alpha = 4\n"
        "auffusion_clip_frames = 32\nauffusion_pad_frames = 2\n"
    )
    return config

