"""AudioLDM 2 through diffusers' AudioLDM2Pipeline: 16 kHz mono, trained on 10.24 s clips.

The pipeline's latent height follows the requested length, so jobs are grouped by length
(rounded up to the preset's quantum, 2.56 s) and events past 10.24 s become segments.

Prompts are encoded one at a time and padded afterwards. Encoded together, the T5 branch would
be padded to the longest prompt of the batch and the GPT-2 stage would then see shifted
positions, so a prompt's audio would depend on its batch-mates. Padding the finished embeddings
(masked in cross-attention) keeps batched output equal to one-at-a-time output.

diffusers' generate_language_model drives GPT-2 through generation helpers that transformers 5
no longer puts on the bare GPT2Model, so the pipeline fails there as shipped. We subclass it
with our own continuation loop: the same greedy hidden-state continuation, recomputed without a
key/value cache (eight new states over a short sequence; negligible next to denoising).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from engine.generators._diffusion import (
    DiffusionGenerator,
    Geometry,
    SegmentJob,
    StepFn,
    cpu_generators,
)


def _pipeline_class() -> type:
    from diffusers import AudioLDM2Pipeline

    class ContinuingAudioLDM2Pipeline(AudioLDM2Pipeline):
        """AudioLDM2Pipeline with a language-model continuation that runs on transformers 5."""

        def generate_language_model(self, inputs_embeds=None, max_new_tokens=8, **model_kwargs):
            count = max_new_tokens if max_new_tokens is not None else self.language_model.config.max_new_tokens
            mask = model_kwargs.get("attention_mask")
            for _ in range(count):
                output = self.language_model(
                    inputs_embeds=inputs_embeds, attention_mask=mask, use_cache=False, output_hidden_states=True
                )
                inputs_embeds = torch.cat([inputs_embeds, output.hidden_states[-1][:, -1:, :]], dim=1)
                if mask is not None:
                    mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            return inputs_embeds[:, -count:, :]

    return ContinuingAudioLDM2Pipeline


def _pad_rows(rows: list[torch.Tensor], masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (1, seq_i, dim) embeddings zero-padded to the longest, with matching masks."""
    longest = max(row.shape[1] for row in rows)
    padded = [torch.nn.functional.pad(row, (0, 0, 0, longest - row.shape[1])) for row in rows]
    padded_masks = [torch.nn.functional.pad(mask, (0, longest - mask.shape[1])) for mask in masks]
    return torch.cat(padded), torch.cat(padded_masks)


class AudioLDM2Generator(DiffusionGenerator):
    """Backend "audioldm2"."""

    name = "audioldm2"

    def _load(self) -> Any:
        return self._load_diffusers_pipeline(_pipeline_class())

    def _geometry(self, pipeline: Any) -> Geometry:
        rate = int(pipeline.vocoder.config.sampling_rate)
        return Geometry(native_rate=rate, max_segment_s=self.max_segment_s,
                        quantum_s=min(self.length_quantum_s, self.max_segment_s))

    def _encode_one(self, pipeline: Any, prompt: str, guided: bool) -> list[tuple[torch.Tensor, ...]]:
        """[(t5_embeds, mask, generated_embeds)] for the prompt, preceded by the unconditional
        triple when guidance is on (the pipeline returns them stacked [negative, positive])."""
        embeds, mask, generated = pipeline.encode_prompt(
            [prompt], pipeline._execution_device, num_waveforms_per_prompt=1, do_classifier_free_guidance=guided
        )
        return [(embeds[i : i + 1], mask[i : i + 1], generated[i : i + 1]) for i in range(embeds.shape[0])]

    @torch.inference_mode()
    def _render_batch(self, pipeline: Any, jobs: Sequence[SegmentJob], on_step: StepFn) -> list[np.ndarray]:
        guided = self.guidance > 1.0
        encoded = [self._encode_one(pipeline, job.description, guided) for job in jobs]
        positive = [triple[-1] for triple in encoded]
        embeds, mask = _pad_rows([p[0] for p in positive], [p[1] for p in positive])
        call: dict[str, Any] = {
            "prompt_embeds": embeds, "attention_mask": mask,
            "generated_prompt_embeds": torch.cat([p[2] for p in positive]),
        }
        if guided:
            negative = [triple[0] for triple in encoded]
            # Both sides must share one padded length for the pipeline's concatenation.
            rows, masks = _pad_rows([n[0] for n in negative] + [p[0] for p in positive],
                                    [n[1] for n in negative] + [p[1] for p in positive])
            count = len(jobs)
            call.update(
                prompt_embeds=rows[count:], attention_mask=masks[count:],
                negative_prompt_embeds=rows[:count], negative_attention_mask=masks[:count],
                negative_generated_prompt_embeds=torch.cat([n[2] for n in negative]),
            )
        length_s = jobs[0].length_s
        audio = pipeline(
            **call, audio_length_in_s=length_s, num_inference_steps=self.steps, guidance_scale=self.guidance,
            generator=cpu_generators(jobs), callback=lambda step, t, latents: on_step(step + 1), callback_steps=1,
            output_type="np",
        ).audios
        frames = math.ceil(length_s * pipeline.vocoder.config.sampling_rate)
        return [np.ascontiguousarray(np.asarray(wave, dtype=np.float32)[None, :frames]) for wave in audio]
