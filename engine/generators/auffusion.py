"""Auffusion: text -> mel-spectrogram image (latent diffusion) -> HiFi-GAN -> 16 kHz waveform.

We load the published checkpoint layouts directly on current diffusers/transformers instead of
the project's original pipeline file, which targets long-gone library versions. Two layouts:

"adapter" (auffusion/auffusion, auffusion/auffusion-full):
    condition_config.json        list of {text_encoder_name, condition_adapter_name, ...}
    text_encoder_0/              CLIP (or T5) text encoder, with its tokenizer files
    condition_adapter_0/         config.json {condition_dim, cross_attention_dim} + condition_adapter.pt
    unet/ vae/ scheduler/        diffusers UNet2DConditionModel, AutoencoderKL, scheduler config
    vocoder/                     config.json + vocoder.pt (HiFi-GAN, see hifigan.py)

"plain" (auffusion/auffusion-full-no-adapter): a stock Stable Diffusion folder (model_index.json,
text_encoder/, tokenizer/, unet/, vae/, scheduler/) plus the same vocoder/. Upstream samples it
with diffusers' StableDiffusionPipeline, so prompts are padded to the tokenizer's full length
before encoding and the unconditional branch of guidance is the encoding of the empty prompt,
where the adapter layout's unconditional is all zeros.

The mel image is 3 identical channels of a log-mel spectrogram (256 bins x 1024 frames at hop
160 = 10.24 s), flipped so low frequencies sit at the bottom, scaled to [0, 1]. Upstream trained
on 10 s clips padded with 0.24 s of silence and trims its output to 10.0 s, so the last
``pad_frames`` (24) frames of every image are learned silence: we segment, round and crossfade
on the 10.0 s of content and cut the padding off each clip before joining. Sampling:
classifier-free guidance, DPM-Solver++ by default.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import torch
from torch import nn

from engine.errors import InvalidInputError
from engine.generators._diffusion import (
    DiffusionGenerator,
    Geometry,
    SegmentJob,
    StepFn,
    cpu_generators,
    scheduler_from,
)
from engine.generators.hifigan import HiFiGAN, load_hifigan

CONDITION_CONFIG = "condition_config.json"
ADAPTER_WEIGHTS = "condition_adapter.pt"
MODEL_INDEX = "model_index.json"
# diffusers pipeline classes whose folder is the plain layout (text_encoder/ + tokenizer/).
PLAIN_PIPELINES = ("StableDiffusionPipeline",)


class ConditionAdapter(nn.Module):
    """Projects text-encoder states to the UNet's cross-attention width, then LayerNorm."""

    def __init__(self, *, condition_dim: int, cross_attention_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(condition_dim, cross_attention_dim)
        self.norm = nn.LayerNorm(cross_attention_dim)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(states))

    @classmethod
    def from_folder(cls, folder: Path) -> "ConditionAdapter":
        config_path, weights_path = folder / "config.json", folder / ADAPTER_WEIGHTS
        for path in (config_path, weights_path):
            if not path.is_file():
                raise InvalidInputError(f"{path}: condition adapter file missing", field="model", value=str(folder))
        config = json.loads(config_path.read_text(encoding="utf-8"))
        adapter = cls(condition_dim=int(config["condition_dim"]),
                      cross_attention_dim=int(config["cross_attention_dim"]))
        adapter.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        return adapter.eval().requires_grad_(False)


class _Condition:
    """One text branch: tokenizer -> encoder -> adapter, padded to a fixed token count."""

    def __init__(self, tokenizer: Any, encoder: nn.Module, adapter: ConditionAdapter, *, max_length: int) -> None:
        self.tokenizer, self.encoder, self.adapter, self.max_length = tokenizer, encoder, adapter, max_length

    def embed(self, prompt: str, device: torch.device) -> torch.Tensor:
        # Each prompt is encoded alone, unpadded, as the model was trained; the zero padding goes
        # on the encoder output, so a prompt's embedding never depends on its batch-mates.
        ids = self.tokenizer(prompt, truncation=True, max_length=self.max_length, return_tensors="pt").input_ids
        states = self.encoder(ids.to(device)).last_hidden_state[:, : self.max_length]
        states = nn.functional.pad(states, (0, 0, 0, self.max_length - states.shape[1]))
        return self.adapter(states.to(self.adapter.proj.weight.dtype))


class _PlainCondition:
    """The plain (no-adapter) layout's text branch, as StableDiffusionPipeline encodes prompts:
    padded to the full token count before the encoder, whose last hidden state is the context."""

    def __init__(self, tokenizer: Any, encoder: nn.Module, *, max_length: int) -> None:
        self.tokenizer, self.encoder, self.max_length = tokenizer, encoder, max_length
        self.adapter = None

    def embed(self, prompt: str, device: torch.device) -> torch.Tensor:
        ids = self.tokenizer(prompt, padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt").input_ids
        return self.encoder(ids.to(device)).last_hidden_state


class AuffusionPipeline:
    """Our own sampling loop over the loaded Auffusion components."""

    def __init__(
        self,
        *,
        conditions: Sequence[_Condition | _PlainCondition],
        unet: nn.Module,
        vae: nn.Module,
        scheduler: Any,
        vocoder: HiFiGAN,
        clip_frames: int,
        spec_min_value: float,
        spec_max_value: float,
        device: torch.device,
        dtype: torch.dtype,
        pad_frames: int = 0,
        empty_prompt_unconditional: bool = False,
    ) -> None:
        self.conditions, self.unet, self.vae, self.scheduler, self.vocoder = conditions, unet, vae, scheduler, vocoder
        self.clip_frames, self.device, self.dtype = clip_frames, device, dtype
        if not 0 <= pad_frames < clip_frames:
            raise InvalidInputError(f"pad_frames={pad_frames}: must be >= 0 and below clip_frames={clip_frames}",
                                    field="pad_frames", value=pad_frames)
        self.pad_frames = pad_frames
        self.empty_prompt_unconditional = empty_prompt_unconditional
        self.log_min, self.log_max = math.log(spec_min_value), math.log(spec_max_value)
        self.mel_bins = int(vocoder.config["num_mels"])
        self.vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)
        for name, size in (("mel bins", self.mel_bins), ("clip_frames", clip_frames)):
            if size % self.vae_scale:
                raise InvalidInputError(f"{name}={size} is not a multiple of the VAE's downscale {self.vae_scale}",
                                        field="clip_frames", value=size)
        self._steps_accept_generator = "generator" in inspect.signature(scheduler.step).parameters

    @property
    def clip_s(self) -> float:
        """Length of one rendered image, padding included."""
        return self.clip_frames * self.vocoder.hop_length / self.vocoder.sampling_rate

    @property
    def content_samples(self) -> int:
        """Waveform samples of one clip before its learned-silence padding."""
        return (self.clip_frames - self.pad_frames) * self.vocoder.hop_length

    @property
    def content_s(self) -> float:
        return self.content_samples / self.vocoder.sampling_rate

    @property
    def layout(self) -> str:
        return "plain" if self.empty_prompt_unconditional else "adapter"

    def modules(self) -> list[nn.Module]:
        encoders = [part for c in self.conditions for part in (c.encoder, c.adapter) if part is not None]
        return [*encoders, self.unet, self.vae, self.vocoder]

    def enable_model_cpu_offload(self, device: torch.device) -> None:
        """Keep weights in RAM and move each model to the GPU only while it runs."""
        from accelerate import cpu_offload_with_hook

        hook = None
        for module in self.modules():
            module.to("cpu")
            _, hook = cpu_offload_with_hook(module, device, prev_module_hook=hook)

    @torch.inference_mode()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        rows = [torch.cat([c.embed(p, self.device) for c in self.conditions], dim=1) for p in prompts]
        return torch.cat(rows).to(self.device, self.unet.dtype)

    def unconditional(self, condition: torch.Tensor) -> torch.Tensor:
        """The context of guidance's unconditional branch, shaped like ``condition``."""
        if not self.empty_prompt_unconditional:
            return torch.zeros_like(condition)
        return self.encode([""]).expand_as(condition)

    @torch.inference_mode()
    def sample(
        self,
        prompts: Sequence[str],
        generators: list[torch.Generator],
        *,
        steps: int,
        guidance: float,
        on_step: Callable[[int], None],
        visual_tokens: torch.Tensor | None = None,
    ) -> np.ndarray:
        """(batch, 1, clip_frames * hop) float32 waveforms at the vocoder's rate.

        ``visual_tokens`` (1 or batch, tokens, dim) feed a UNet fitted with the VTA model's
        decoupled visual attention (engine.video.vta_model.install_visual_attention). The
        unconditional half of a guided step gets zeros, i.e. no visual stream, as it gets no text.
        """
        condition = self.encode(prompts)
        guided = guidance > 1.0
        context = torch.cat([self.unconditional(condition), condition]) if guided else condition
        attention_kwargs = None
        if visual_tokens is not None:
            self._check_visual(visual_tokens, batch=len(prompts))
            visual = visual_tokens.to(self.device, self.unet.dtype).expand(len(prompts), -1, -1)
            visual = torch.cat([torch.zeros_like(visual), visual]) if guided else visual
            attention_kwargs = {"visual_hidden_states": visual}
        shape = (len(prompts), self.unet.config.in_channels,
                 self.mel_bins // self.vae_scale, self.clip_frames // self.vae_scale)
        noise = torch.stack([torch.randn(shape[1:], generator=g, dtype=torch.float32) for g in generators])
        latents = noise.to(self.device, self.unet.dtype) * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(steps, device=self.device)
        extra = {"generator": generators} if self._steps_accept_generator else {}
        for index, timestep in enumerate(self.scheduler.timesteps):
            model_in = torch.cat([latents, latents]) if guided else latents
            model_in = self.scheduler.scale_model_input(model_in, timestep)
            predicted = self.unet(model_in, timestep, encoder_hidden_states=context,
                                  cross_attention_kwargs=attention_kwargs, return_dict=False)[0]
            if guided:
                unconditional, conditional = predicted.chunk(2)
                predicted = unconditional + guidance * (conditional - unconditional)
            latents = self.scheduler.step(predicted, timestep, latents, return_dict=False, **extra)[0]
            on_step(index + 1)
        return self.decode(latents)

    def _check_visual(self, tokens: torch.Tensor, *, batch: int) -> None:
        # diffusers' stock processors drop unknown attention kwargs with only a log line; visual
        # tokens sent to a UNet without the visual attention would vanish silently.
        if not any(getattr(p, "visual_dim", None) for p in self.unet.attn_processors.values()):
            raise InvalidInputError("visual_tokens given but the UNet has no visual attention installed",
                                    field="visual_tokens", value=tuple(tokens.shape))
        if tokens.ndim != 3 or tokens.shape[0] not in (1, batch):
            raise InvalidInputError(f"visual_tokens must be (1 or {batch}, tokens, dim), got {tuple(tokens.shape)}",
                                    field="visual_tokens", value=tuple(tokens.shape))

    @torch.no_grad()
    def encode_audio(self, waveforms: np.ndarray, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """(batch, samples) float32 at the vocoder's rate -> scaled VAE latents of their mel images.

        The inverse of decode(), as the training images were made: each clip is cut to the
        content length and padded with silence to the full image, log-mel scaled to [0, 1],
        flipped, three channels, then encoded. Training the VTA model's visual attention needs it.
        """
        from engine.generators.hifigan import log_mel

        content, total = self.content_samples, self.clip_frames * self.vocoder.hop_length
        audio = torch.zeros(len(waveforms), total)
        for row, wave in enumerate(waveforms):
            clip = torch.as_tensor(np.asarray(wave, dtype=np.float32)[:content])
            audio[row, : len(clip)] = clip
        mel = log_mel(audio, self.vocoder.config)[..., : self.clip_frames]
        unit = ((mel.clamp(self.log_min, self.log_max) - self.log_min) / (self.log_max - self.log_min)).flip(1)
        image = (unit[:, None].expand(-1, 3, -1, -1) * 2 - 1).to(self.device, self.vae.dtype)
        latents = self.vae.encode(image).latent_dist.sample(generator)
        return latents * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        image = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        image = (image / 2 + 0.5).clamp(0, 1)
        # Row 0 of the image is the highest mel bin; all three channels carry the same data.
        unit = image.flip(2)[:, 0].float()
        log_mel = unit * (self.log_max - self.log_min) + self.log_min
        vocoder_dtype = next(self.vocoder.parameters()).dtype
        wave = self.vocoder(log_mel.to(self.device, vocoder_dtype))
        return wave.float().cpu().numpy()


def checkpoint_folder(model: str, revision: str | None) -> Path:
    """A local folder as is; a Hub id through the Hub cache (honours HF_HUB_OFFLINE)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model, revision=revision))


def _load_text_encoder(folder: Path, dtype: torch.dtype) -> nn.Module:
    import transformers

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    architecture = (config.get("architectures") or ["CLIPTextModel"])[0]
    if architecture not in ("CLIPTextModel", "CLIPTextModelWithProjection", "T5EncoderModel"):
        message = f"{folder}: text encoder {architecture!r} is not supported"
        raise InvalidInputError(message, field="model", value=architecture)
    model_class = getattr(transformers, "CLIPTextModel" if architecture.startswith("CLIP") else architecture)
    return model_class.from_pretrained(folder, dtype=dtype).eval().requires_grad_(False)


def _load_tokenizer(encoder_folder: Path, root: Path) -> Any:
    from transformers import AutoTokenizer

    for folder in (encoder_folder, root / "tokenizer"):
        names = ("tokenizer.json", "vocab.json", "tokenizer_config.json", "spiece.model")
        if any((folder / name).is_file() for name in names):
            return AutoTokenizer.from_pretrained(folder)
    raise InvalidInputError(f"{encoder_folder}: no tokenizer files", field="model", value=str(encoder_folder))


def checkpoint_layout(root: Path) -> str:
    """"adapter" or "plain"; anything else is refused with what each layout needs."""
    if (root / CONDITION_CONFIG).is_file():
        return "adapter"
    index_path = root / MODEL_INDEX
    if index_path.is_file():
        try:
            pipeline_class = json.loads(index_path.read_text(encoding="utf-8")).get("_class_name")
        except (ValueError, AttributeError) as exc:
            raise InvalidInputError(f"{index_path}: not a JSON object: {exc}", field="model", value=str(root)) from exc
        if pipeline_class not in PLAIN_PIPELINES:
            message = (f"{index_path}: a {pipeline_class} checkpoint is not Auffusion; the plain layout is a "
                       f"{' or '.join(PLAIN_PIPELINES)} folder with a vocoder/ beside it")
            raise InvalidInputError(message, field="model", value=str(root))
        missing = [name for name in ("text_encoder", "tokenizer", "unet", "vae", "scheduler", "vocoder")
                   if not (root / name).is_dir()]
        if missing:
            raise InvalidInputError(f"{root}: plain Auffusion layout without {', '.join(missing)}/", field="model",
                                    value=str(root))
        return "plain"
    message = (f"{root / CONDITION_CONFIG}: missing, and no {MODEL_INDEX} either; not an Auffusion checkpoint "
               "(expected the adapter layout of auffusion/auffusion-full or the plain Stable Diffusion layout of "
               "auffusion/auffusion-full-no-adapter)")
    raise InvalidInputError(message, field="model", value=str(root))


def _adapter_conditions(root: Path, dtype: torch.dtype, text_max_length: int) -> list[_Condition]:
    conditions = []
    for entry in json.loads((root / CONDITION_CONFIG).read_text(encoding="utf-8")):
        encoder_folder = root / entry["text_encoder_name"]
        conditions.append(
            _Condition(
                _load_tokenizer(encoder_folder, root),
                _load_text_encoder(encoder_folder, dtype),
                ConditionAdapter.from_folder(root / entry["condition_adapter_name"]).to(dtype),
                max_length=int(entry.get("condition_max_length", text_max_length)),
            )
        )
    return conditions


def _plain_condition(root: Path, dtype: torch.dtype, text_max_length: int, unet: nn.Module) -> _PlainCondition:
    encoder = _load_text_encoder(root / "text_encoder", dtype)
    width = int(encoder.config.hidden_size)
    if width != int(unet.config.cross_attention_dim):
        message = (f"{root}: text encoder width {width} differs from the UNet's cross_attention_dim "
                   f"{unet.config.cross_attention_dim}; the plain layout has no adapter to bridge them")
        raise InvalidInputError(message, field="model", value=str(root))
    tokenizer = _load_tokenizer(root / "tokenizer", root)
    return _PlainCondition(tokenizer, encoder, max_length=min(text_max_length, int(tokenizer.model_max_length)))


def load_auffusion(
    model: str,
    *,
    revision: str | None,
    device: torch.device,
    dtype: torch.dtype,
    scheduler: str,
    clip_frames: int,
    spec_min_value: float,
    spec_max_value: float,
    text_max_length: int,
    pad_frames: int = 0,
    cpu_offload: bool = False,
) -> AuffusionPipeline:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    root = checkpoint_folder(model, revision)
    layout = checkpoint_layout(root)
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=dtype).eval().requires_grad_(False)
    conditions: Sequence[_Condition | _PlainCondition]
    if layout == "adapter":
        conditions = _adapter_conditions(root, dtype, text_max_length)
    else:
        conditions = [_plain_condition(root, dtype, text_max_length, unet)]
    vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=dtype).eval().requires_grad_(False)
    scheduler_config = json.loads((root / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    pipeline = AuffusionPipeline(
        conditions=conditions,
        unet=unet,
        vae=vae,
        scheduler=scheduler_from(scheduler, scheduler_config),
        vocoder=load_hifigan(root / "vocoder").to(dtype),
        clip_frames=clip_frames,
        spec_min_value=spec_min_value,
        spec_max_value=spec_max_value,
        device=device,
        dtype=dtype,
        pad_frames=pad_frames,
        empty_prompt_unconditional=layout == "plain",
    )
    if cpu_offload:
        pipeline.enable_model_cpu_offload(device)
    else:
        for module in pipeline.modules():
            module.to(device)
    return pipeline


class AuffusionGenerator(DiffusionGenerator):
    """Backend "auffusion". Every sample is one native 10.24 s image (the length the UNet was
    trained on) of which the first 10.0 s are content, so all events and all segments of long
    events share batches; events longer than 10.0 s are overlapping clips, each cut to its
    content, joined by crossfades."""

    name = "auffusion"

    def __init__(self, *, clip_frames: int | None = None, pad_frames: int | None = None, **options: Any) -> None:
        super().__init__(**options)
        frames = clip_frames if clip_frames is not None else self.preset.clip_frames
        if not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0:
            message = f"clip_frames={frames!r}: must be a positive integer"
            raise InvalidInputError(message, field="clip_frames", value=frames)
        pad = pad_frames if pad_frames is not None else (self.preset.pad_frames or 0)
        if not isinstance(pad, int) or isinstance(pad, bool) or not 0 <= pad < frames:
            message = f"pad_frames={pad!r}: must be an integer >= 0 and below clip_frames={frames}"
            raise InvalidInputError(message, field="pad_frames", value=pad)
        self.clip_frames, self.pad_frames = frames, pad

    def _extra_identity(self) -> dict[str, Any]:
        return {"clip_frames": self.clip_frames, "pad_frames": self.pad_frames,
                "spec_range": [self.preset.spec_min_value, self.preset.spec_max_value]}

    def _load(self) -> AuffusionPipeline:
        return load_auffusion(
            self.model,
            revision=self.revision,
            device=self.device,
            dtype=self.dtype,
            scheduler=self.scheduler,
            clip_frames=self.clip_frames,
            spec_min_value=self.preset.spec_min_value or 1e-5,
            spec_max_value=self.preset.spec_max_value or 200.0,
            text_max_length=self.preset.text_max_length or 77,
            pad_frames=self.pad_frames,
            cpu_offload=self.cpu_offload,
        )

    def _geometry(self, pipeline: AuffusionPipeline) -> Geometry:
        # Segments, rounding and the crossfade hop count content only: a 10.1 s event is two
        # clips rather than one whose last 0.1 s is the learned silence.
        content_s = pipeline.content_s
        return Geometry(native_rate=pipeline.vocoder.sampling_rate, max_segment_s=content_s, quantum_s=content_s)

    def _group_key(self, job: SegmentJob) -> Hashable:
        return "clip"

    def _render_batch(
        self, pipeline: AuffusionPipeline, jobs: Sequence[SegmentJob], on_step: StepFn
    ) -> list[np.ndarray]:
        prompts = [job.description for job in jobs]
        waves = pipeline.sample(prompts, cpu_generators(jobs), steps=self.steps, guidance=self.guidance, on_step=on_step)
        # Cut the padding before joining, so crossfades blend content into content.
        content = pipeline.content_samples
        return [np.ascontiguousarray(wave[..., :content], dtype=np.float32) for wave in waves]
