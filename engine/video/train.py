"""Training the VTA model: batches from clips, one optimiser step, a small loop.

What trains (the paper's split): LoRA weights and the added token rows of the LLM, the temporal
connector, and - in a separate stage on the diffusion side - the visual to_k/to_v of the UNet
(visual_attention_* below: the usual noise-prediction loss with the whole UNet frozen but those).
CLIP and HuBERT stay frozen, so their outputs can be computed once per clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from engine.video.dataset import AVItem
from engine.video.vta_model import (
    DecoupledVisualAttnProcessor,
    FrameEncoder,
    HubertUnitTokenizer,
    VideoToAudioModel,
)


@dataclass(frozen=True)
class VTABatch:
    features: torch.Tensor  # (B, N, clip_dim) frame features at 21.5 Hz
    units: torch.Tensor  # (B, T) int64 audio units at 50 Hz


def batch_from_items(items: Sequence[AVItem], *, frame_encoder: FrameEncoder,
                     unit_tokenizer: HubertUnitTokenizer) -> VTABatch:
    """Encode frames and audio; clips are cut to the shortest so the batch is rectangular."""
    features = [frame_encoder(item.frames) for item in items]
    units = [torch.from_numpy(unit_tokenizer.units(item.waveform)) for item in items]
    frames = min(f.shape[0] for f in features)
    steps = min(u.shape[0] for u in units)
    return VTABatch(torch.stack([f[:frames] for f in features]), torch.stack([u[:steps] for u in units]))


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(
    model: torch.nn.Module, *, lr: float = 1e-4, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(trainable_parameters(model), lr=lr, weight_decay=weight_decay)


def train_step(model: VideoToAudioModel, batch: VTABatch, optimizer: torch.optim.Optimizer, *,
               max_grad_norm: float = 1.0) -> float:
    """One forward/backward/update; returns the loss before the update."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = model.loss(batch.features, batch.units)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable_parameters(model), max_grad_norm)
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def evaluate_loss(model: VideoToAudioModel, batch: VTABatch) -> float:
    """Loss with dropout off (so two evaluations of the same weights agree)."""
    was_training = model.training
    model.eval()
    try:
        return float(model.loss(batch.features, batch.units))
    finally:
        model.train(was_training)


def train(model: VideoToAudioModel, batches: Iterable[VTABatch], *, lr: float = 1e-4,
          on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Plain loop over prepared batches; returns each step's loss."""
    optimizer = make_optimizer(model, lr=lr)
    losses = []
    for step, batch in enumerate(batches):
        losses.append(train_step(model, batch, optimizer))
        if on_step is not None:
            on_step(step, losses[-1])
    return losses


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


# ------------------------------------------------------------- the diffusion side (stage 2)


@dataclass(frozen=True)
class VisualAttentionBatch:
    """What one step of the visual cross-attention stage needs, all precomputed (frozen parts)."""

    latents: torch.Tensor  # (B, C, H, W) VAE latents of the reference mel images, scaled
    text_states: torch.Tensor  # (B, L, cross_dim) the captions through encoder + adapter
    visual_tokens: torch.Tensor  # (B, T, visual_dim) centroids of the reference audio's units


def visual_attention_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The to_k_vis / to_v_vis weights install_visual_attention added to ``unet``."""
    return [param for processor in unet.attn_processors.values()
            if isinstance(processor, DecoupledVisualAttnProcessor) and processor.visual_dim is not None
            for param in processor.parameters()]


def make_visual_attention_optimizer(unet: torch.nn.Module, *, lr: float = 1e-4) -> torch.optim.Optimizer:
    """Freeze the UNet (text attention included) and optimise only the visual weights."""
    params = visual_attention_parameters(unet)
    if not params:
        raise ValueError("the UNet has no visual attention; call install_visual_attention first")
    unet.requires_grad_(False)
    for param in params:
        param.requires_grad_(True)
    return torch.optim.AdamW(params, lr=lr)


def visual_attention_loss(unet: torch.nn.Module, scheduler, batch: VisualAttentionBatch, *,
                          seed: int) -> torch.Tensor:
    """Noise-prediction MSE at seeded noise and timesteps (the scheduler's training objective)."""
    generator = torch.Generator().manual_seed(seed)
    latents = batch.latents
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
    timesteps = torch.randint(0, int(scheduler.config.num_train_timesteps), (latents.shape[0],),
                              generator=generator).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    predicted = unet(noisy, timesteps, encoder_hidden_states=batch.text_states,
                     cross_attention_kwargs={"visual_hidden_states": batch.visual_tokens}).sample
    prediction_type = scheduler.config.get("prediction_type", "epsilon")
    target = scheduler.get_velocity(latents, noise, timesteps) if prediction_type == "v_prediction" else noise
    return torch.nn.functional.mse_loss(predicted.float(), target.float())


def visual_attention_train_step(unet: torch.nn.Module, scheduler, batch: VisualAttentionBatch,
                                optimizer: torch.optim.Optimizer, *, seed: int,
                                max_grad_norm: float = 1.0) -> float:
    """One update of the visual weights; returns the loss before it."""
    unet.train()
    optimizer.zero_grad(set_to_none=True)
    loss = visual_attention_loss(unet, scheduler, batch, seed=seed)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(visual_attention_parameters(unet), max_grad_norm)
    optimizer.step()
    return float(loss.detach())
