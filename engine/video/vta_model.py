"""The paper's video-to-audio-token (VTA) model, built from transformers/diffusers/peft parts.

Pipeline, one clip:
  frames sampled at 21.5 Hz -> CLIPVisionModel, one pooled vector per frame (N, D_clip)
  -> TemporalConnector: 1-D conv across frames (keeps order, mixes neighbours) + projection
     into the LLM embedding size (N, D_llm)
  -> LLM (Gemma2ForCausalLM with LoRA) reads  <VID> frames </VID> <AUD>  and writes audio
     tokens <AUD_0>..<AUD_499> (HuBERT layer-9 k-means units, 50 Hz) up to </AUD>; a logits
     processor lets it write nothing else
  -> each unit's k-means centroid (768-d) conditions the diffusion UNet through an added
     decoupled cross-attention: Z = Attn(Q, K_txt, V_txt) + lambda * Attn(Q, K_vis, V_vis),
     with the visual stream's own to_k / to_v (lambda 0.5 by default).

Sizes come from presets/vta.toml (model ids) and VTAConfig; tests build every part tiny and
random-initialised. The trainable parts are the LoRA weights, the new token rows, the connector
and the visual to_k/to_v; save_adapter/load_adapter round-trip exactly those.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import InvalidInputError
from engine.settings import read_toml

AUDIO_TOKEN_COUNT = 500
MARKERS = ("<VID>", "</VID>", "<AUD>", "</AUD>")
PRESET_PATH = Path(__file__).resolve().parents[2] / "presets" / "vta.toml"
# CLIP's published pixel statistics (the image processor of every CLIP checkpoint uses them).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IGNORE_INDEX = -100


def audio_token(unit: int) -> str:
    return f"<AUD_{unit}>"


# ---------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class VTAConfig:
    clip_model_id: str = "openai/clip-vit-large-patch14"
    llm_model_id: str = "google/gemma-2-2b-it"
    hubert_model_id: str = "facebook/hubert-base-ls960"
    auffusion_model_id: str = "auffusion/auffusion-full"  # the UNet the visual attention is added to
    centroids_path: str = ""  # .npy (n_audio_tokens, centroid_dim) k-means centroids
    frame_rate_hz: float = 21.5
    unit_rate_hz: float = 50.0
    n_audio_tokens: int = AUDIO_TOKEN_COUNT
    hubert_layer: int = 9
    centroid_dim: int = 768
    connector_kernel: int = 3
    connector_hidden: int = 0  # 0: the CLIP hidden size
    lora_r: int = 64
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    visual_scale: float = 0.5  # lambda of the decoupled cross-attention
    # Auffusion's image geometry the visual attention is trained and used at (models.toml's).
    auffusion_clip_frames: int = 1024
    auffusion_pad_frames: int = 24


def load_vta_config(path: str | Path | None = None, **overrides: Any) -> VTAConfig:
    """VTAConfig from a TOML file ([vta] table; default presets/vta.toml) and keyword overrides."""
    path = Path(path) if path is not None else PRESET_PATH
    data = read_toml(path, field="vta_config", what="the VTA config").get("vta", {})
    data.update(overrides)
    known = {f.name for f in fields(VTAConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        key = unknown[0]
        raise InvalidInputError(f"vta_config: unknown key {key!r}", field=key, value=data[key])
    if "lora_target_modules" in data:
        data["lora_target_modules"] = tuple(data["lora_target_modules"])
    config = VTAConfig(**data)
    if config.connector_kernel % 2 == 0 or config.connector_kernel < 1:
        raise InvalidInputError("connector_kernel must be odd (keeps one output per frame)",
                                field="connector_kernel", value=config.connector_kernel)
    if config.frame_rate_hz <= 0 or config.n_audio_tokens < 1:
        raise InvalidInputError("frame_rate_hz and n_audio_tokens must be positive",
                                field="frame_rate_hz", value=config.frame_rate_hz)
    return config


# ------------------------------------------------------------------------------ vocabulary


@dataclass(frozen=True)
class AudioVocabulary:
    """Ids of the added tokens: the four markers then <AUD_0>.. in one contiguous block."""

    vid_start: int
    vid_end: int
    aud_start: int
    aud_end: int
    first_audio_id: int
    n_audio: int

    @property
    def audio_ids(self) -> range:
        return range(self.first_audio_id, self.first_audio_id + self.n_audio)

    @property
    def added_ids(self) -> list[int]:
        return [self.vid_start, self.vid_end, self.aud_start, self.aud_end, *self.audio_ids]

    def to_ids(self, units: Sequence[int] | np.ndarray) -> list[int]:
        return [self.first_audio_id + int(unit) for unit in units]

    def to_units(self, ids: Sequence[int]) -> list[int]:
        """Units of the audio ids in ``ids`` (stops at </AUD>; other ids are skipped)."""
        units = []
        for token_id in ids:
            token_id = int(token_id)
            if token_id == self.aud_end:
                break
            if token_id in self.audio_ids:
                units.append(token_id - self.first_audio_id)
        return units


def extend_tokenizer(tokenizer: Any, *, n_audio_tokens: int = AUDIO_TOKEN_COUNT) -> AudioVocabulary:
    """Add the markers and <AUD_i> tokens (idempotent) and return their ids."""
    new_tokens = [*MARKERS, *(audio_token(i) for i in range(n_audio_tokens))]
    tokenizer.add_tokens(new_tokens, special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(new_tokens)
    if ids != list(range(ids[0], ids[0] + len(ids))):
        raise InvalidInputError("the tokenizer gave the audio tokens non-contiguous ids",
                                field="tokenizer", value=ids[:8])
    return AudioVocabulary(ids[0], ids[1], ids[2], ids[3], ids[4], n_audio_tokens)


def vocabulary_from_size(base_vocab_size: int, *, n_audio_tokens: int = AUDIO_TOKEN_COUNT) -> AudioVocabulary:
    """The vocabulary extend_tokenizer gives a tokenizer of base_vocab_size tokens."""
    first = base_vocab_size
    return AudioVocabulary(first, first + 1, first + 2, first + 3, first + 4, n_audio_tokens)


# ------------------------------------------------------------------------- visual features


def frame_times(duration_s: float, *, rate_hz: float = 21.5) -> np.ndarray:
    """Sample times k / rate_hz inside [0, duration_s)."""
    return np.arange(int(math.ceil(duration_s * rate_hz - 1e-9))) / rate_hz


def clip_pixels(frames: np.ndarray | torch.Tensor, *, image_size: int) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) -> normalised CLIP input (N, 3, image_size, image_size)."""
    pixels = torch.as_tensor(np.asarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False,
                           antialias=True)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


class FrameEncoder(nn.Module):
    """Frozen CLIPVisionModel: one pooled feature per frame (the frame's [CLS] after LN)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip.eval().requires_grad_(False)

    @property
    def hidden_size(self) -> int:
        return int(self.clip.config.hidden_size)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> "FrameEncoder":
        from transformers import CLIPVisionModel

        return cls(CLIPVisionModel.from_pretrained(model_id, **kwargs))

    @torch.no_grad()
    def forward(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB (N, H, W, 3) -> (N, hidden)."""
        pixels = clip_pixels(frames, image_size=int(self.clip.config.image_size))
        return self.clip(pixel_values=pixels.to(self.clip.device, self.clip.dtype)).pooler_output.float()


class TemporalConnector(nn.Module):
    """1-D convolution over the frame axis, then a projection into the LLM embedding size."""

    def __init__(self, *, clip_dim: int, llm_dim: int, kernel_size: int = 3, hidden_dim: int = 0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise InvalidInputError("kernel_size must be odd", field="connector_kernel", value=kernel_size)
        hidden_dim = hidden_dim or clip_dim
        self.dims = {
            "clip_dim": clip_dim, "llm_dim": llm_dim, "kernel_size": kernel_size, "hidden_dim": hidden_dim
        }
        self.conv = nn.Conv1d(clip_dim, hidden_dim, kernel_size, padding=kernel_size // 2)
        self.act = nn.GELU()
        self.proj = nn.Linear(hidden_dim, llm_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, N, clip_dim) -> (B, N, llm_dim)."""
        mixed = self.act(self.conv(features.transpose(1, 2))).transpose(1, 2)
        return self.proj(mixed)


# ------------------------------------------------------------------------- audio tokens


class AudioTokenOnlyProcessor:
    """A transformers LogitsProcessor that leaves only audio ids (and optionally </AUD>) open."""

    def __init__(self, vocab: AudioVocabulary, *, allow_end: bool = True) -> None:
        self.allowed = list(vocab.audio_ids) + ([vocab.aud_end] if allow_end else [])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        masked = torch.full_like(scores, float("-inf"))
        masked[:, self.allowed] = scores[:, self.allowed]
        return masked


class CentroidTable:
    """The k-means centroids of HuBERT features: unit <-> centroid vector."""

    def __init__(self, centroids: np.ndarray) -> None:
        centroids = np.asarray(centroids, dtype=np.float32)
        if centroids.ndim != 2 or not np.all(np.isfinite(centroids)):
            raise InvalidInputError("centroids must be a finite 2-D array (units, dim)",
                                    field="centroids", value=getattr(centroids, "shape", None))
        self.centroids = centroids

    @classmethod
    def load(cls, path: str | Path, *, n_units: int = AUDIO_TOKEN_COUNT, dim: int = 768) -> "CentroidTable":
        try:
            centroids = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InvalidInputError(f"centroids_path={str(path)!r}: {error}", field="centroids_path",
                                    value=str(path)) from None
        if centroids.shape != (n_units, dim):
            raise InvalidInputError(
                f"centroids_path={str(path)!r}: shape {centroids.shape}, expected ({n_units}, {dim})",
                field="centroids_path", value=str(path))
        return cls(centroids)

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    def assign(self, features: np.ndarray) -> np.ndarray:
        """Nearest centroid (squared L2) of each feature row: (T, dim) -> (T,) int64 units."""
        features = np.asarray(features, dtype=np.float32)
        distances = ((features**2).sum(1, keepdims=True) - 2 * features @ self.centroids.T
                     + (self.centroids**2).sum(1)[None, :])
        return distances.argmin(axis=1).astype(np.int64)

    def embed(self, units: Sequence[int] | np.ndarray) -> torch.Tensor:
        """(T,) units -> (T, dim) centroid vectors, the UNet's visual-stream tokens."""
        return torch.from_numpy(self.centroids[np.asarray(units, dtype=np.int64)])


class HubertUnitTokenizer:
    """Reference audio (16 kHz mono) -> HuBERT layer-`layer` features -> k-means units (50 Hz)."""

    sample_rate = 16000

    def __init__(self, hubert: nn.Module, centroids: CentroidTable, *, layer: int = 9) -> None:
        if not 1 <= layer <= hubert.config.num_hidden_layers:
            layers = hubert.config.num_hidden_layers
            raise InvalidInputError(f"hubert_layer={layer}: the model has {layers} layers",
                                    field="hubert_layer", value=layer)
        if centroids.dim != hubert.config.hidden_size:
            raise InvalidInputError(
                f"centroids are {centroids.dim}-d, HuBERT features {hubert.config.hidden_size}-d",
                field="centroids", value=centroids.dim)
        self.hubert = hubert.eval().requires_grad_(False)
        self.centroids = centroids
        self.layer = layer

    @classmethod
    def from_config(cls, config: VTAConfig, **kwargs: Any) -> "HubertUnitTokenizer":
        from transformers import HubertModel

        hubert = HubertModel.from_pretrained(config.hubert_model_id, **kwargs)
        table = CentroidTable.load(
            config.centroids_path, n_units=config.n_audio_tokens, dim=config.centroid_dim
        )
        return cls(hubert, table, layer=config.hubert_layer)

    @torch.no_grad()
    def features(self, waveform: np.ndarray) -> np.ndarray:
        """(samples,) float32 at 16 kHz -> (frames, hidden); hidden_states[layer] is layer's output."""
        audio = torch.as_tensor(np.asarray(waveform, dtype=np.float32))[None, :].to(self.hubert.device)
        output = self.hubert(input_values=audio, output_hidden_states=True)
        return output.hidden_states[self.layer][0].float().cpu().numpy()

    def units(self, waveform: np.ndarray) -> np.ndarray:
        return self.centroids.assign(self.features(waveform))


# ---------------------------------------------------------------------------- the model


def prepare_llm(llm: nn.Module, vocab: AudioVocabulary) -> nn.Module:
    """Grow the embedding (and the tied head) to hold the added tokens."""
    needed = vocab.first_audio_id + vocab.n_audio
    if llm.get_input_embeddings().num_embeddings < needed:
        llm.resize_token_embeddings(needed, mean_resizing=False)
    return llm


def apply_lora(llm: nn.Module, vocab: AudioVocabulary, *, config: VTAConfig) -> nn.Module:
    """LoRA on the attention projections; the added token rows train as well (all else frozen)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        task_type="CAUSAL_LM",
        # New tokens start random: without training their rows the LLM cannot read <VID> or write units.
        trainable_token_indices={"embed_tokens": vocab.added_ids},
    )
    return get_peft_model(prepare_llm(llm, vocab), lora)


class VideoToAudioModel(nn.Module):
    """Connector + LLM: frame features in, audio units out (and the training loss)."""

    def __init__(self, *, llm: nn.Module, connector: TemporalConnector, vocab: AudioVocabulary) -> None:
        super().__init__()
        self.llm = llm
        self.connector = connector
        self.vocab = vocab

    def _embed_ids(self, ids: Sequence[int], batch: int) -> torch.Tensor:
        tensor = torch.tensor([list(ids)] * batch, dtype=torch.long, device=self.connector.proj.weight.device)
        return self.llm.get_input_embeddings()(tensor)

    def prompt_embeds(self, features: torch.Tensor) -> torch.Tensor:
        """<VID> connector(features) </VID> <AUD>  as (B, N + 3, D_llm)."""
        batch = features.shape[0]
        video = self.connector(features)
        start = self._embed_ids([self.vocab.vid_start], batch)
        end = self._embed_ids([self.vocab.vid_end, self.vocab.aud_start], batch)
        return torch.cat([start, video.to(start.dtype), end], dim=1)

    def training_inputs(self, features: torch.Tensor, units: torch.Tensor) -> dict[str, torch.Tensor]:
        """Prompt + target units + </AUD>; labels ignore the prompt, so only audio is learnt."""
        batch, prompt = features.shape[0], features.shape[1] + 3
        target_ids = torch.cat(
            [units + self.vocab.first_audio_id,
             torch.full((batch, 1), self.vocab.aud_end, device=units.device)], dim=1
        ).to(self.connector.proj.weight.device)
        embeds = torch.cat([self.prompt_embeds(features), self.llm.get_input_embeddings()(target_ids)], dim=1)
        ignored = torch.full((batch, prompt), IGNORE_INDEX, device=target_ids.device)
        labels = torch.cat([ignored, target_ids], dim=1)
        mask = torch.ones(labels.shape, dtype=torch.long, device=target_ids.device)
        return {"inputs_embeds": embeds, "attention_mask": mask, "labels": labels}

    def loss(self, features: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        return self.llm(**self.training_inputs(features, units)).loss

    @torch.no_grad()
    def generate_units(
        self, features: torch.Tensor, *, max_units: int, do_sample: bool = False, temperature: float = 1.0
    ) -> list[list[int]]:
        """Audio units per clip, generation constrained to audio tokens (stops at </AUD>)."""
        from transformers import LogitsProcessorList

        embeds = self.prompt_embeds(features)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        ids = self.llm.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            max_new_tokens=max_units + 1,
            do_sample=do_sample,
            temperature=temperature if do_sample else None,
            top_p=None,
            top_k=None,
            logits_processor=LogitsProcessorList([AudioTokenOnlyProcessor(self.vocab)]),
            eos_token_id=self.vocab.aud_end,
            pad_token_id=self.vocab.aud_end,
        )
        return [self.vocab.to_units(row.tolist())[:max_units] for row in ids]


def build_vta_model(
    llm: nn.Module, vocab: AudioVocabulary, *, clip_dim: int, config: VTAConfig, lora: bool = True
) -> VideoToAudioModel:
    """Wrap a base causal LM (resized, LoRA unless lora=False) with a fresh connector."""
    llm = apply_lora(llm, vocab, config=config) if lora else prepare_llm(llm, vocab)
    connector = TemporalConnector(clip_dim=clip_dim, llm_dim=int(llm.config.hidden_size),
                                  kernel_size=config.connector_kernel, hidden_dim=config.connector_hidden)
    return VideoToAudioModel(llm=llm, connector=connector, vocab=vocab)


# ------------------------------------------------------------- decoupled cross-attention


class DecoupledVisualAttnProcessor(nn.Module):
    """Attention processor: Z = Attn(Q, K_txt, V_txt) + scale * Attn(Q, K_vis, V_vis).

    The text path is diffusers' AttnProcessor2_0 step for step, so with scale 0 (or no visual
    tokens) a UNet gives bit-identical output to the text-only UNet. K_vis / V_vis come from
    this processor's own to_k_vis / to_v_vis applied to the visual tokens, which arrive as
    ``cross_attention_kwargs={"visual_hidden_states": (B, T, visual_dim)}``. Self-attention
    layers get an instance without visual weights (visual_dim=None).
    """

    def __init__(self, *, inner_dim: int, visual_dim: int | None, scale: float = 0.5) -> None:
        super().__init__()
        self.scale = scale
        self.visual_dim = visual_dim
        if visual_dim is not None:
            self.to_k_vis = nn.Linear(visual_dim, inner_dim, bias=False)
            self.to_v_vis = nn.Linear(visual_dim, inner_dim, bias=False)

    def _heads(self, tensor: torch.Tensor, batch: int, heads: int) -> torch.Tensor:
        return tensor.view(batch, -1, heads, tensor.shape[-1] // heads).transpose(1, 2)

    def __call__(  # noqa: C901 - mirrors AttnProcessor2_0 on purpose
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        visual_hidden_states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        is_cross = encoder_hidden_states is not None
        batch_size, sequence_length, _ = (encoder_hidden_states if is_cross else hidden_states).shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        if is_cross and self.visual_dim is not None and visual_hidden_states is not None:
            visual = _visual_batch(visual_hidden_states, batch_size).to(query.dtype)
            key_vis = self._heads(self.to_k_vis(visual), batch_size, attn.heads)
            value_vis = self._heads(self.to_v_vis(visual), batch_size, attn.heads)
            # No text mask applies to the visual tokens: every query sees every visual token.
            visual_out = F.scaled_dot_product_attention(
                query, key_vis, value_vis, dropout_p=0.0, is_causal=False
            )
            hidden_states = hidden_states + self.scale * visual_out
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _visual_batch(visual: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Visual tokens (B, T, dim) matched to the UNet's batch.

    One row is shared by the whole batch (e.g. both halves of a classifier-free-guidance
    batch). Any other mismatch is refused: reshaping it into heads would silently hand each
    sample another sample's tokens.
    """
    if visual.ndim != 3:
        raise InvalidInputError(f"visual_hidden_states must be (batch, tokens, dim), got {tuple(visual.shape)}",
                                field="visual_hidden_states", value=tuple(visual.shape))
    if visual.shape[0] == batch_size:
        return visual
    if visual.shape[0] == 1:
        return visual.expand(batch_size, -1, -1)
    raise InvalidInputError(
        f"visual_hidden_states has batch {visual.shape[0]}, the UNet batch is {batch_size} (give 1 or {batch_size})",
        field="visual_hidden_states", value=int(visual.shape[0]))


def install_visual_attention(unet: nn.Module, *, visual_dim: int, scale: float = 0.5) -> dict[str, nn.Module]:
    """Give every attention layer of ``unet`` a DecoupledVisualAttnProcessor (unet.set_attn_processor).

    Cross-attention layers (attn2) get visual weights; returns {processor name: processor} of those.
    """
    processors: dict[str, Any] = {}
    visual: dict[str, nn.Module] = {}
    for name in unet.attn_processors:
        attention = unet.get_submodule(name.removesuffix(".processor"))
        if getattr(attention, "is_cross_attention", False):
            processor = DecoupledVisualAttnProcessor(inner_dim=attention.to_k.out_features,
                                                     visual_dim=visual_dim, scale=scale)
            visual[name] = processor
        else:
            processor = DecoupledVisualAttnProcessor(inner_dim=attention.to_k.out_features, visual_dim=None,
                                                     scale=scale)
        processors[name] = processor
    unet.set_attn_processor(processors)
    return visual


def set_visual_scale(unet: nn.Module, scale: float) -> None:
    """Change lambda on every installed processor (0 turns the visual stream off)."""
    for processor in unet.attn_processors.values():
        if isinstance(processor, DecoupledVisualAttnProcessor):
            processor.scale = scale


def visual_attention_state_dict(unet: nn.Module) -> dict[str, torch.Tensor]:
    state = {}
    for name, processor in unet.attn_processors.items():
        if isinstance(processor, DecoupledVisualAttnProcessor) and processor.visual_dim is not None:
            for key, tensor in processor.state_dict().items():
                state[f"{name}.{key}"] = tensor.detach().cpu().contiguous()
    return state


def load_visual_attention_state_dict(unet: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    processors = unet.attn_processors
    for name, processor in processors.items():
        if isinstance(processor, DecoupledVisualAttnProcessor) and processor.visual_dim is not None:
            prefix = f"{name}."
            own = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
            processor.load_state_dict(own)


# ----------------------------------------------------------------------- save / load


ADAPTER_JSON = "vta_adapter.json"
CONNECTOR_FILE = "connector.safetensors"
VISUAL_FILE = "visual_attention.safetensors"
LORA_DIR = "lora"


def save_adapter(model: VideoToAudioModel, directory: str | Path, *, unet: nn.Module | None = None,
                 config: VTAConfig | None = None) -> Path:
    """LoRA + new token rows (peft), connector and visual attention weights, and their shapes."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # The added rows travel as trainable-token deltas; never a copy of the whole (256k-row) table.
    model.llm.save_pretrained(directory / LORA_DIR, save_embedding_layers=False)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.connector.state_dict().items()},
              directory / CONNECTOR_FILE)
    meta: dict[str, Any] = {"vocab": asdict(model.vocab), "connector": model.connector.dims,
                            "config": asdict(config) if config else None}
    if unet is not None:
        state = visual_attention_state_dict(unet)
        save_file(state, directory / VISUAL_FILE)
        any_processor = next(p for p in unet.attn_processors.values()
                             if isinstance(p, DecoupledVisualAttnProcessor) and p.visual_dim is not None)
        meta["visual"] = {"visual_dim": any_processor.visual_dim, "scale": any_processor.scale}
    (directory / ADAPTER_JSON).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return directory


def load_adapter(directory: str | Path, *, base_llm: nn.Module, unet: nn.Module | None = None,
                 trainable: bool = False) -> VideoToAudioModel:
    """Rebuild a VideoToAudioModel on ``base_llm`` (and install visual attention in ``unet``)."""
    from peft import PeftModel
    from safetensors.torch import load_file

    directory = Path(directory)
    meta_path = directory / ADAPTER_JSON
    if not meta_path.is_file():
        raise InvalidInputError(f"adapter_dir={str(directory)!r}: no {ADAPTER_JSON}", field="adapter_dir",
                                value=str(directory))
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    vocab = AudioVocabulary(**meta["vocab"])
    llm = PeftModel.from_pretrained(
        prepare_llm(base_llm, vocab), directory / LORA_DIR, is_trainable=trainable
    )
    connector = TemporalConnector(**meta["connector"])
    connector.load_state_dict(load_file(directory / CONNECTOR_FILE))
    if unet is not None and "visual" in meta:
        install_visual_attention(unet, visual_dim=meta["visual"]["visual_dim"], scale=meta["visual"]["scale"])
        load_visual_attention_state_dict(unet, load_file(directory / VISUAL_FILE))
    return VideoToAudioModel(llm=llm, connector=connector, vocab=vocab)
