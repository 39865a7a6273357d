"""Training the VTA model's two stages on an AVSync15-style folder, resumable.

Stage 1 trains the temporal connector, the LoRA weights and the new token rows of the LLM on
clip -> unit sequences (CLIP frame features in, HuBERT k-means units of the clip's own audio
out). Stage 2 trains only the visual to_k / to_v added to Auffusion's UNet, with the
noise-prediction loss on the mel-image latents of each clip's audio, its caption (the class
folder name) as text and the centroids of its units as visual tokens.

The frozen encoders run once per clip before the first step. Every ``save_every`` steps and at
the end the trainable weights, the optimiser state and the step go into the checkpoint folder;
a later run with more ``steps`` continues from there. Step k always uses the same clips and the
same random seed, so a resumed run retraces an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.errors import InvalidInputError
from engine.generators._diffusion_device import resolve_device
from engine.video import vta_parts
from engine.video.checkpoint import (
    CheckpointInfo,
    load_resume_state,
    record_stage,
    save_resume_state,
)
from engine.video.dataset import AVSyncDataset
from engine.video.train import (
    VisualAttentionBatch,
    VTABatch,
    make_optimizer,
    make_visual_attention_optimizer,
    seed_everything,
    train_step,
    visual_attention_train_step,
)
from engine.video.vta_model import (
    VISUAL_FILE,
    build_vta_model,
    install_visual_attention,
    load_adapter,
    load_visual_attention_state_dict,
    save_adapter,
    visual_attention_state_dict,
)

# (stage, step done, steps in all, loss) after each step.
StepProgress = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class TrainOptions:
    steps: int
    batch_size: int = 2
    lr: float = 1e-4
    save_every: int = 50
    seed: int = 0
    max_clip_s: float = 10.0  # clips are cut to this (the paper trains on 10 s clips)
    device: str = "auto"  # "auto": cuda, then mps, then cpu

    def check(self) -> None:
        for name in ("steps", "batch_size", "save_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name}={value!r}: must be an integer >= 1", field=name, value=value)
        for name in ("lr", "max_clip_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidInputError(f"{name}={value!r}: must be a number > 0", field=name, value=value)


@dataclass(frozen=True)
class StageReport:
    stage: str
    start_step: int  # steps already saved when this run began
    end_step: int
    losses: list[float]
    n_clips: int


def _dataset(data_dir: str | Path, info: CheckpointInfo, options: TrainOptions, frame_size_px: int) -> AVSyncDataset:
    return AVSyncDataset(data_dir, frame_rate_hz=info.config.frame_rate_hz, frame_size_px=frame_size_px,
                         max_duration_s=options.max_clip_s)


def _batch_indices(step: int, *, batch_size: int, n_clips: int) -> list[int]:
    return [(step * batch_size + offset) % n_clips for offset in range(batch_size)]


def caption(label: str) -> str:
    """The class folder as text: "dog_barking" -> "dog barking"."""
    return " ".join(label.replace("_", " ").replace("-", " ").split())


# ------------------------------------------------------------------------------ stage 1


def train_stage1(data_dir: str | Path, info: CheckpointInfo, *, options: TrainOptions,
                 progress: StepProgress | None = None) -> StageReport:
    options.check()
    config = info.config
    device = resolve_device(options.device)
    encoder = vta_parts.frame_encoder(config).to(device)
    tokenizer = vta_parts.unit_tokenizer(info)
    tokenizer.hubert.to(device)
    dataset = _dataset(data_dir, info, options, int(encoder.clip.config.image_size))
    features, units = [], []
    for index in range(len(dataset)):
        item = dataset[index]
        features.append(encoder(item.frames))
        units.append(torch.from_numpy(tokenizer.units(item.waveform)))
    llm, vocab = vta_parts.base_llm(config)
    start = info.steps.get("stage1", 0)
    state = load_resume_state(info.folder, "stage1") if start else None
    if state is not None:
        model = load_adapter(info.folder, base_llm=llm, trainable=True)
    else:
        seed_everything(options.seed)
        model = build_vta_model(llm, vocab, clip_dim=encoder.hidden_size, config=config)
        start = 0
    model.to(device)
    optimizer = make_optimizer(model, lr=options.lr)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    losses = []
    for step in range(start, options.steps):
        picks = _batch_indices(step, batch_size=options.batch_size, n_clips=len(features))
        frames = min(features[i].shape[0] for i in picks)
        steps_units = min(units[i].shape[0] for i in picks)
        batch = VTABatch(torch.stack([features[i][:frames] for i in picks]).to(device),
                         torch.stack([units[i][:steps_units] for i in picks]).to(device))
        seed_everything(options.seed + step)  # LoRA dropout: the same masks on a resumed run
        losses.append(train_step(model, batch, optimizer))
        if progress is not None:
            progress("stage1", step + 1, options.steps, losses[-1])
        if (step + 1) % options.save_every == 0 or step + 1 == options.steps:
            save_adapter(model, info.folder, config=config)
            save_resume_state(info.folder, "stage1", {"optimizer": optimizer.state_dict(), "step": step + 1})
            record_stage(info.folder, "stage1", step=step + 1)
    return StageReport("stage1", start, max(start, options.steps), losses, len(features))


# ------------------------------------------------------------------------------ stage 2


@dataclass(frozen=True)
class _Stage2Clip:
    latents: torch.Tensor  # (1, C, H, W)
    text_states: torch.Tensor  # (1, L, cross_dim)
    tokens: torch.Tensor  # (T, centroid_dim)


def _stage2_clips(dataset: AVSyncDataset, pipeline: object, tokenizer: object, *, seed: int,
                  unit_rate_hz: float) -> list[_Stage2Clip]:
    import soxr

    rate = pipeline.vocoder.sampling_rate  # type: ignore[attr-defined]
    content_units = int(round(pipeline.content_s * unit_rate_hz))  # type: ignore[attr-defined]
    clips = []
    for index in range(len(dataset)):
        item = dataset[index]
        wave = item.waveform if item.sample_rate == rate else soxr.resample(item.waveform, item.sample_rate, rate)
        latents = pipeline.encode_audio(np.asarray(wave, np.float32)[None],  # type: ignore[attr-defined]
                                        generator=torch.Generator().manual_seed(seed + index))
        with torch.inference_mode():
            text = pipeline.encode([caption(item.label)])  # type: ignore[attr-defined]
        units = tokenizer.units(item.waveform)[:content_units]  # type: ignore[attr-defined]
        tokens = tokenizer.centroids.embed(units)  # type: ignore[attr-defined]
        # Inference tensors cannot enter autograd; clones made here are ordinary tensors.
        clips.append(_Stage2Clip(latents.clone(), text.clone().float(), tokens.clone()))
    return clips


def train_stage2(data_dir: str | Path, info: CheckpointInfo, *, options: TrainOptions,
                 progress: StepProgress | None = None) -> StageReport:
    from diffusers import DDPMScheduler
    from safetensors.torch import load_file

    options.check()
    config = info.config
    # float32 on every device: the trained weights are small and the loss is an MSE of noise.
    _, pipeline = vta_parts.auffusion(config, device=options.device, dtype="float32")
    tokenizer = vta_parts.unit_tokenizer(info)
    tokenizer.hubert.to(pipeline.device)
    dataset = _dataset(data_dir, info, options, 32)
    clips = _stage2_clips(dataset, pipeline, tokenizer, seed=options.seed, unit_rate_hz=config.unit_rate_hz)
    unet = pipeline.unet
    seed_everything(options.seed)  # fresh visual weights come from the seed: runs reproduce
    install_visual_attention(unet, visual_dim=config.centroid_dim, scale=config.visual_scale)
    start = info.steps.get("stage2", 0)
    state = load_resume_state(info.folder, "stage2") if start else None
    if state is not None:
        load_visual_attention_state_dict(unet, load_file(info.folder / VISUAL_FILE))
    else:
        start = 0
    unet.to(pipeline.device)
    optimizer = make_visual_attention_optimizer(unet, lr=options.lr)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    losses = []
    for step in range(start, options.steps):
        picks = _batch_indices(step, batch_size=options.batch_size, n_clips=len(clips))
        count = min(clips[i].tokens.shape[0] for i in picks)
        if count == 0:
            raise InvalidInputError(f"data_dir={str(data_dir)!r}: a clip has no audio units (shorter than 20 ms)",
                                    field="data_dir", value=str(data_dir))
        device, dtype = pipeline.device, unet.dtype
        batch = VisualAttentionBatch(
            latents=torch.cat([clips[i].latents for i in picks]).to(device, dtype),
            text_states=torch.cat([clips[i].text_states for i in picks]).to(device, dtype),
            visual_tokens=torch.stack([clips[i].tokens[:count] for i in picks]).to(device, dtype),
        )
        losses.append(visual_attention_train_step(unet, noise_scheduler, batch, optimizer, seed=options.seed + step))
        if progress is not None:
            progress("stage2", step + 1, options.steps, losses[-1])
        if (step + 1) % options.save_every == 0 or step + 1 == options.steps:
            _save_visual_attention(unet, info.folder / VISUAL_FILE)
            save_resume_state(info.folder, "stage2", {"optimizer": optimizer.state_dict(), "step": step + 1})
            record_stage(info.folder, "stage2", step=step + 1,
                         visual={"visual_dim": config.centroid_dim, "scale": config.visual_scale})
    return StageReport("stage2", start, max(start, options.steps), losses, len(clips))


def _save_visual_attention(unet: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save

    from engine.atomic import atomic_file

    with atomic_file(path) as handle:
        handle.write(save(visual_attention_state_dict(unet)))


def stage_runner(stage: str) -> Callable[..., StageReport]:
    runners: dict[str, Callable[..., StageReport]] = {"stage1": train_stage1, "stage2": train_stage2}
    if stage not in runners:
        raise InvalidInputError(f"stage={stage!r}: choose stage1 or stage2", field="stage", value=stage)
    return runners[stage]
