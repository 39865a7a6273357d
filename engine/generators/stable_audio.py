"""Stable Audio (Open 1.0 and kin) through diffusers' StableAudioPipeline: 44.1 kHz stereo.

The DiT always denoises its whole window (about 47 s for Open 1.0) and learns the wanted length
from its timing conditioning, then the pipeline cuts the waveform. diffusers conditions a whole
batch on one length, so we subclass the pipeline to condition each prompt on its own length:
events of every length then share one batched call, and a request's samples do not depend on
its batch-mates. Events longer than the window become overlapping segments (see _diffusion).

This diffusers also ships StableAudio3Pipeline (a distilled, few-step rectified-flow model with
a different text encoder and autoencoder). Its latent length follows the requested duration, so
its jobs are grouped by length; it is chosen automatically when the checkpoint's
model_index.json names it.
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Sequence

import numpy as np

from engine.generators._diffusion import (
    DiffusionGenerator,
    default_model_override,
    Geometry,
    SegmentJob,
    StepFn,
    cpu_generators,
)

STABLE_AUDIO_3 = "StableAudio3Pipeline"


def _timed_pipeline_class() -> type:
    from diffusers import StableAudioPipeline

    class PerPromptLengthStableAudioPipeline(StableAudioPipeline):
        """StableAudioPipeline whose timing conditioning takes one end time per prompt."""

        per_prompt_end_s: list[float] | None = None

        def encode_duration(self, audio_start_in_s, audio_end_in_s, device, do_classifier_free_guidance, batch_size):
            if self.per_prompt_end_s is not None:
                audio_end_in_s = list(self.per_prompt_end_s)
            return super().encode_duration(
                audio_start_in_s, audio_end_in_s, device, do_classifier_free_guidance, batch_size
            )

    return PerPromptLengthStableAudioPipeline


def _pipeline_class_name(model: str, revision: str | None) -> str | None:
    """The checkpoint's pipeline class from its model_index.json, or None if unreadable."""
    from diffusers import DiffusionPipeline

    try:
        config = DiffusionPipeline.load_config(model, revision=revision)
    except Exception:  # noqa: BLE001 - offline and uncached: fall back to the default preset
        return None
    return str(config.get("_class_name")) if config.get("_class_name") else None


class StableAudioGenerator(DiffusionGenerator):
    """Backend "stable-audio". Defaults come from [stable-audio], or from [stable-audio-3]
    when the checkpoint is a Stable Audio 3 one (8 distilled steps, no guidance, its own
    sampler)."""

    name = "stable-audio"

    def __init__(self, *, model: str | None = None, revision: str | None = None, **options: Any) -> None:
        chosen = model or default_model_override(self.name)
        if chosen and _pipeline_class_name(chosen, revision) == STABLE_AUDIO_3:
            self.preset_section = "stable-audio-3"
        super().__init__(model=chosen, revision=revision, **options)

    def _extra_identity(self) -> dict[str, Any]:
        return {"pipeline": self.preset.pipeline or "StableAudioPipeline"}

    def _load(self) -> Any:
        if self.is_v3:
            from diffusers import StableAudio3Pipeline as pipeline_class
        else:
            pipeline_class = _timed_pipeline_class()
        return self._load_diffusers_pipeline(pipeline_class)

    @property
    def is_v3(self) -> bool:
        return self.preset_section == "stable-audio-3"

    def _geometry(self, pipeline: Any) -> Geometry:
        rate = int(pipeline.vae.config.sampling_rate)
        if self.is_v3:
            window_s = self.max_segment_s
        else:
            window_s = pipeline.transformer.config.sample_size * pipeline.vae.hop_length / rate
        max_segment_s = min(self.max_segment_s, window_s)
        quantum_s = min(self.length_quantum_s, max_segment_s)
        return Geometry(native_rate=rate, max_segment_s=max_segment_s, quantum_s=quantum_s)

    def _group_key(self, job: SegmentJob) -> Hashable:
        # Open 1.0 denoises a fixed window whatever the length; 3.x sizes its latent to it.
        return round(job.length_s, 6) if self.is_v3 else "window"

    def _render_batch(self, pipeline: Any, jobs: Sequence[SegmentJob], on_step: StepFn) -> list[np.ndarray]:
        prompts = [job.description for job in jobs]
        longest_s = max(job.length_s for job in jobs)
        if self.is_v3:
            def on_step_end(pipe: Any, index: int, timestep: Any, tensors: dict) -> dict:
                on_step(index + 1)
                return tensors

            audio = pipeline(
                prompts, duration=longest_s, num_inference_steps=self.steps, guidance_scale=self.guidance,
                generator=cpu_generators(jobs), callback_on_step_end=on_step_end, output_type="pt",
            ).audios
        else:
            pipeline.per_prompt_end_s = [job.length_s for job in jobs]
            try:
                audio = pipeline(
                    prompts, audio_end_in_s=longest_s, num_inference_steps=self.steps, guidance_scale=self.guidance,
                    generator=cpu_generators(jobs), callback=lambda step, t, latents: on_step(step + 1),
                    callback_steps=1, output_type="pt",
                ).audios
            finally:
                pipeline.per_prompt_end_s = None
        rate = int(pipeline.vae.config.sampling_rate)
        waves = audio.float().cpu().numpy()
        return [np.ascontiguousarray(wave[:, : math.ceil(job.length_s * rate)]) for wave, job in zip(waves, jobs)]
