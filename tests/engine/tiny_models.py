"""Tiny random-initialised checkpoints of each diffusion backend, saved in the real layouts.

Every builder writes a folder that the production loader reads exactly as it reads a download:
tokenizers are built in memory from a few dozen characters (no hub), models are a few thousand
parameters, and weights are seeded so the same folder comes out every time.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

CHARS = list(string.ascii_lowercase + string.digits)


def clip_tokenizer(max_length: int = 77):
    """A character-level CLIP BPE tokenizer (no merges)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for char in CHARS:
            vocab[char + suffix] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def t5_tokenizer(max_length: int = 64):
    """A character-level T5 unigram tokenizer."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(char, -2.0) for char in CHARS] + [("\u2581" + char, -1.5) for char in CHARS]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)


def roberta_tokenizer(max_length: int = 77):
    """A character-level RoBERTa byte-BPE tokenizer (no merges)."""
    from transformers import RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "\u0120": 5}
    for char in CHARS + ["\u0120" + c for c in CHARS]:
        vocab[char] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


# --------------------------------------------------------------------------- Auffusion

TINY_HIFIGAN = {
    "resblock": "1",
    "num_mels": 16,
    "upsample_rates": [5, 2],
    "upsample_kernel_sizes": [10, 4],  # odd (kernel - rate) exercises the output_padding path
    "upsample_initial_channel": 16,
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3]],
    "sampling_rate": 2000,
    "hop_size": 10,
}


def _weight_norm_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Store conv weights as weight_g/weight_v, as the published vocoder.pt does."""
    stored = {}
    for key, tensor in state.items():
        if key.endswith(".weight") and tensor.dim() == 3:
            prefix = key[: -len(".weight")]
            norm = tensor.flatten(1).norm(dim=1).reshape(-1, 1, 1)
            stored[prefix + ".weight_g"] = norm.clone()
            stored[prefix + ".weight_v"] = tensor.clone()
        else:
            stored[key] = tensor.clone()
    return stored


def _tiny_clip_encoder(tokenizer, width: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))


def _save_auffusion_image_parts(root: Path) -> None:
    """UNet, VAE, scheduler and vocoder: the parts both Auffusion layouts share."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel

    from engine.generators.hifigan import HiFiGAN

    UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8, attention_head_dim=4,
    ).save_pretrained(root / "unet")
    AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
    ).save_pretrained(root / "vae")
    PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1,
    ).save_pretrained(root / "scheduler")

    vocoder = HiFiGAN(TINY_HIFIGAN)
    (root / "vocoder").mkdir()
    (root / "vocoder" / "config.json").write_text(json.dumps(TINY_HIFIGAN))
    torch.save({"generator": _weight_norm_layout(vocoder.state_dict())}, root / "vocoder" / "vocoder.pt")


def build_tiny_auffusion(root: Path) -> Path:
    """The adapter layout of auffusion/auffusion-full: text encoder -> condition adapter -> UNet."""
    from engine.generators.auffusion import ConditionAdapter

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    _tiny_clip_encoder(tokenizer, 16).save_pretrained(root / "text_encoder_0")
    tokenizer.save_pretrained(root / "text_encoder_0")

    adapter = ConditionAdapter(condition_dim=16, cross_attention_dim=8)
    (root / "condition_adapter_0").mkdir()
    (root / "condition_adapter_0" / "config.json").write_text(
        json.dumps({"condition_dim": 16, "cross_attention_dim": 8, "model_name": "tiny"}))
    torch.save(adapter.state_dict(), root / "condition_adapter_0" / "condition_adapter.pt")
    (root / "condition_config.json").write_text(json.dumps([{
        "text_encoder_name": "text_encoder_0", "condition_adapter_name": "condition_adapter_0",
        "condition_max_length": 77, "condition_dim": 16, "cross_attention_dim": 8,
    }]))
    _save_auffusion_image_parts(root)
    return root


def build_tiny_auffusion_plain(root: Path) -> Path:
    """The plain layout of auffusion/auffusion-full-no-adapter: a Stable Diffusion folder whose
    CLIP text encoder feeds the UNet directly, plus the vocoder."""
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    _tiny_clip_encoder(tokenizer, 8).save_pretrained(root / "text_encoder")
    tokenizer.save_pretrained(root / "tokenizer")
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.21.0",
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None], "feature_extractor": [None, None],
    }))
    _save_auffusion_image_parts(root)
    return root


# --------------------------------------------------------------------------- Stable Audio


def build_tiny_stable_audio(root: Path) -> Path:
    """A StableAudioPipeline whose DiT window is 40 latents x hop 2 at 400 Hz = 0.2 s."""
    from diffusers import (
        AutoencoderOobleck,
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tokenizer = t5_tokenizer()
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=16, d_ff=32, d_kv=8, num_heads=2, num_layers=1, decoder_start_token_id=0,
    ))
    pipeline = StableAudioPipeline(
        vae=AutoencoderOobleck(
            encoder_hidden_size=6, downsampling_ratios=[1, 2], decoder_channels=3, decoder_input_channels=3,
            audio_channels=2, channel_multiples=[2, 4], sampling_rate=400,
        ),
        text_encoder=text_encoder,
        projection_model=StableAudioProjectionModel(text_encoder_dim=16, conditioning_dim=4, min_value=0, max_value=64),
        tokenizer=tokenizer,
        transformer=StableAudioDiTModel(
            sample_size=40, in_channels=3, num_layers=1, attention_head_dim=4, num_key_value_attention_heads=2,
            out_channels=3, cross_attention_dim=4, time_proj_dim=8, global_states_input_dim=8, cross_attention_input_dim=4,
        ),
        scheduler=CosineDPMSolverMultistepScheduler(
            solver_order=2, prediction_type="v_prediction", sigma_data=1.0, sigma_schedule="exponential",
        ),
    )
    pipeline.save_pretrained(root)
    return root


# --------------------------------------------------------------------------- AudioLDM2


def build_tiny_audioldm2(root: Path) -> Path:
    """An AudioLDM2Pipeline with a 1 kHz vocoder (hop 4 -> 250 mel frames per second)."""
    from diffusers import AudioLDM2Pipeline, AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel, AutoencoderKL, DDIMScheduler
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        GPT2Config,
        GPT2Model,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        T5Config,
        T5EncoderModel,
    )

    torch.manual_seed(0)
    unet = AudioLDM2UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 16], [None, 16, 16]), attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 16], in_channels=1, out_channels=1, norm_num_groups=4, layers_per_block=1,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4,
    )
    clap_tokenizer = roberta_tokenizer()
    clap = ClapModel(ClapConfig(
        text_config=ClapTextConfig(
            bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16, intermediate_size=32,
            num_attention_heads=2, num_hidden_layers=1, vocab_size=len(clap_tokenizer) + 8, projection_dim=16,
        ),
        audio_config=ClapAudioConfig(
            spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=37, depths=[2, 2],
            num_attention_heads=[2, 2], num_hidden_layers=2, hidden_size=192, projection_dim=16,
            patch_size=2, patch_stride=2, patch_embed_input_channels=4,
        ),
        projection_dim=16,
    ))
    tokenizer_2 = t5_tokenizer()
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=16, d_ff=32, d_kv=8, num_heads=2, num_layers=1))
    language_model = GPT2Model(GPT2Config(n_embd=16, n_head=2, n_layer=1, vocab_size=64, n_ctx=99, n_positions=99))
    language_model.config.max_new_tokens = 4
    pipeline = AudioLDM2Pipeline(
        vae=vae,
        text_encoder=clap,
        text_encoder_2=t5,
        projection_model=AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=16, langauge_model_dim=16),
        language_model=language_model,
        tokenizer=clap_tokenizer,
        tokenizer_2=tokenizer_2,
        feature_extractor=ClapFeatureExtractor(),
        unet=unet,
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                set_alpha_to_one=False),
        vocoder=SpeechT5HifiGan(SpeechT5HifiGanConfig(
            model_in_dim=8, sampling_rate=1000, upsample_initial_channel=16, upsample_rates=[2, 2],
            upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
            normalize_before=False,
        )),
    )
    pipeline.save_pretrained(root)
    return root


# --------------------------------------------------------------------------- Stable Audio 3


def gemma_tokenizer(max_length: int = 64):
    """A character-level Gemma BPE tokenizer (no merges)."""
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "\u2581": 5}
    for char in CHARS + ["\u2581" + c for c in CHARS]:
        vocab[char] = len(vocab)
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def build_tiny_stable_audio_3(root: Path) -> Path:
    """A StableAudio3Pipeline: stereo at 400 Hz, latent hop 4, latent length set by the duration."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableAudio3DiTModel, StableAudio3Pipeline
    from diffusers.models.autoencoders.autoencoder_same import AutoencoderSAME
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder
    from transformers import T5GemmaConfig, T5GemmaEncoderModel
    from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig

    width = 16  # text width = DiT conditioning width = duration embedding width
    torch.manual_seed(0)
    tokenizer = gemma_tokenizer()
    module = T5GemmaModuleConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=64, sliding_window=64, layer_types=["full_attention"],
    )
    # The tiny SAME decoder turns out nearly blind to its latents, so tests of this model check
    # the latents the sampler hands to it (seeds, batching) as well as the waveform's shape.
    vae = AutoencoderSAME(
        audio_channels=2, patch_size=2, encoder_channels=8, encoder_c_mults=(2,), encoder_strides=(2,),
        encoder_transformer_depths=(1,), latent_dim=8, use_differential_attention=False, dim_heads=4, ff_mult=2,
        sampling_rate=400,
    )
    pipeline = StableAudio3Pipeline(
        transformer=StableAudio3DiTModel(
            io_channels=8, patch_size=1, embed_dim=32, depth=1, num_heads=4, cond_token_dim=width, global_cond_dim=width,
            local_add_cond_dim=5, timestep_features_dim=16, ff_mult=2, num_memory_tokens=3, use_differential_attention=False,
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(stochastic_sampling=True),
        vae=vae,
        text_encoder=T5GemmaEncoderModel(T5GemmaConfig(encoder=module.to_dict(), decoder=module.to_dict(),
                                                       is_encoder_decoder=False)),
        tokenizer=tokenizer,
        duration_embedder=StableAudio3DurationEmbedder(output_dim=width, fourier_dim=16),
    )
    pipeline.save_pretrained(root)
    return root
