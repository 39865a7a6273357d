"""The VTA model as a render backend for video cues: each event's sound comes from its picture.

The onset planner still decides where events are. For one cue the generator is told the video,
the cue range and, per event seed, where that event sits in the range (cue_plan_for_vta re-seeds
the events from their picture range, so a seed names one range and the stem cache never hands
one range's render to another). For each event (or each segment of a long one):

    frames of its range at 21.5 Hz -> CLIP -> connector -> LLM + LoRA -> HuBERT units (50 Hz)
    -> their k-means centroids -> Auffusion's UNet through the decoupled visual attention (λ)
    together with the event's text, -> mel image -> HiFi-GAN -> waveform

Segmenting, batching with out-of-memory halving, progress and cancellation are Auffusion's
(engine.generators._diffusion); jobs of one length share a model call.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import torch

from engine.edits import stable_seed
from engine.errors import InvalidInputError
from engine.generators import GenerationRequest, GenerationResult
from engine.generators._diffusion import SegmentJob, StepFn, cpu_generators
from engine.generators._diffusion_models import local_folder_hash
from engine.generators.auffusion import AuffusionGenerator, AuffusionPipeline
from engine.plan import Plan
from engine.progress import CancelToken, ProgressFn
from engine.video import vta_parts
from engine.video.checkpoint import CheckpointInfo, read_checkpoint
from engine.video.cue_frames import CueFrames
from engine.video.vta_model import (
    VISUAL_FILE,
    CentroidTable,
    FrameEncoder,
    VideoToAudioModel,
    install_visual_attention,
    load_adapter,
    load_visual_attention_state_dict,
)


@dataclass
class VTARuntime:
    """Everything loaded from one checkpoint, on one device."""

    pipeline: AuffusionPipeline  # its UNet carries the trained visual attention
    frame_encoder: FrameEncoder
    model: VideoToAudioModel
    centroids: CentroidTable
    unit_rate_hz: float
    frame_rate_hz: float

    def visual_tokens(self, frames: Sequence[np.ndarray], *, length_s: float) -> torch.Tensor:
        """(batch, units, dim) centroid tokens of the units the model writes for each frame run.

        A run the LLM ends early is padded by repeating its last unit (the sound holds); one
        with no unit at all gets zero tokens, i.e. no visual stream for that sample.
        """
        count = max(1, round(length_s * self.unit_rate_hz))
        rows = []
        for run in frames:
            features = self.frame_encoder(run)[None].to(self.model.connector.proj.weight.device)
            units = self.model.generate_units(features, max_units=count)[0]
            if units:
                units = units + [units[-1]] * (count - len(units))
                rows.append(self.centroids.embed(units))
            else:
                rows.append(torch.zeros(count, self.centroids.dim))
        return torch.stack(rows)


def load_runtime(info: CheckpointInfo, generator: AuffusionGenerator, *, visual_scale: float) -> VTARuntime:
    from safetensors.torch import load_file

    config = info.config
    # A pipeline of its own (the resident cache holds it under the "vta" name): the text-only
    # Auffusion backend must never see a UNet with visual attention installed.
    pipeline = AuffusionGenerator._load(generator)
    install_visual_attention(pipeline.unet, visual_dim=config.centroid_dim, scale=visual_scale)
    try:
        load_visual_attention_state_dict(pipeline.unet, load_file(info.folder / VISUAL_FILE))
    except RuntimeError as error:
        message = (f"checkpoint={str(info.folder)!r}: {VISUAL_FILE} does not fit the UNet of "
                   f"{config.auffusion_model_id!r} ({str(error).splitlines()[0]})")
        raise InvalidInputError(message, field="checkpoint", value=str(info.folder)) from None
    pipeline.unet.to(generator.device, generator.dtype)
    llm, _ = vta_parts.base_llm(config)
    model = load_adapter(info.folder, base_llm=llm).eval().to(generator.device)
    encoder = vta_parts.frame_encoder(config).to(generator.device)
    return VTARuntime(pipeline=pipeline, frame_encoder=encoder, model=model, centroids=vta_parts.centroid_table(info),
                      unit_rate_hz=config.unit_rate_hz, frame_rate_hz=config.frame_rate_hz)


@dataclass(frozen=True)
class PictureRange:
    """Where an event sits, in seconds from the cue start."""

    start_s: float
    end_s: float


class VTAGenerator(AuffusionGenerator):
    """Backend "vta": Auffusion steered by the picture of each event's range."""

    name = "vta"
    preset_section = "auffusion"

    def __init__(
        self,
        *,
        checkpoint: str | Path,
        frames: np.ndarray | CueFrames,
        ranges: Mapping[int, PictureRange],
        video_identity: Mapping[str, Any],
        visual_scale: float | None = None,
        **options: Any,
    ) -> None:
        self.info = read_checkpoint(checkpoint)
        config = self.info.config
        scale = config.visual_scale if visual_scale is None else visual_scale
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0):
            raise InvalidInputError(f"lambda={scale!r}: must be a number >= 0", field="lambda", value=scale)
        super().__init__(model=config.auffusion_model_id, clip_frames=config.auffusion_clip_frames,
                         pad_frames=config.auffusion_pad_frames, **options)
        self.visual_scale = float(scale)
        # The cue range at the checkpoint's frame rate, uint8 (N, S, S, 3): a CueFrames for a real
        # cue (decoded per event when rendered, so a session keeping this generator for its edits
        # holds no frames), or an array already in memory.
        self.frames = frames
        self.ranges = dict(ranges)
        self.video_identity = dict(video_identity)
        self._checkpoint_hash = local_folder_hash(self.info.folder)
        self._requests: list[GenerationRequest] = []

    def _extra_identity(self) -> dict[str, Any]:
        return {**super()._extra_identity(), "vta_checkpoint": self._checkpoint_hash, "lambda": self.visual_scale}

    def identity(self) -> Mapping[str, Any]:
        # The picture is part of what changes the samples; seeds already name each range.
        ranges = json.dumps(sorted((seed, r.start_s, r.end_s) for seed, r in self.ranges.items()))
        return {**super().identity(), "video": self.video_identity,
                "ranges": hashlib.sha256(ranges.encode()).hexdigest()[:16]}

    def _load(self) -> VTARuntime:  # type: ignore[override]
        return load_runtime(self.info, self, visual_scale=self.visual_scale)

    def _geometry(self, runtime: VTARuntime) -> Any:  # type: ignore[override]
        return super()._geometry(runtime.pipeline)

    def _group_key(self, job: SegmentJob) -> Hashable:
        return round(job.length_s, 6)  # one unit count per call

    def rebind_plan(self, plan: Plan, *, previous: Plan) -> Plan:
        """An edit of this cue's plan: an event given new words (which re-seeds it by its text)
        keeps its picture-range seed, so VTA renders the new words from the same picture."""
        before = {event.id: event.seed for event in previous.events if event.seed in self.ranges}
        events = tuple(
            event.model_copy(update={"seed": before[event.id]})
            if event.seed not in self.ranges and event.id in before else event
            for event in plan.events
        )
        return plan.model_copy(update={"events": events})

    def check_plan(self, plan: Plan) -> None:
        """Refuse an edit of a VTA cue with an event this generator has no picture for (an added
        sound, a re-roll to another seed): it would fail at render time with nothing to show."""
        strangers = [event.id for event in plan.events if event.seed not in self.ranges]
        if strangers:
            raise InvalidInputError(
                f"event {strangers[0]!r}: this scene was rendered from a video by the vta generator, "
                "which renders only the events its cue spotted, each from its own picture range; "
                "added sounds and re-rolls cannot be rendered (moves, loudness, new words, deletes, "
                "undo and redo can); send the video_cue again for new events",
                field="event_id", value=strangers[0])

    def generate(self, requests: Sequence[GenerationRequest], *, progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> list[GenerationResult]:
        unknown = [r for r in requests if r.seed not in self.ranges]
        if unknown:
            # Every request of a VTA cue comes from its own plan; anything else has no picture.
            known = [r for r in requests if r.seed in self.ranges]
            done = iter(self.generate(known, progress=progress, cancel=cancel) if known else [])
            return [GenerationResult(error=f"no picture range for seed {r.seed} ({r.description!r}): "
                                     "the vta backend renders only the events of its own video cue")
                    if r.seed not in self.ranges else next(done) for r in requests]
        return super().generate(requests, progress=progress, cancel=cancel)

    def _generate_valid(self, requests: Sequence[GenerationRequest], *, progress: ProgressFn | None,
                        cancel: CancelToken | None) -> list[GenerationResult]:
        # Jobs index the valid requests (malformed ones were set aside), so keep exactly those.
        self._requests = list(requests)
        return super()._generate_valid(requests, progress=progress, cancel=cancel)

    def _job_frames(self, job: SegmentJob, runtime: VTARuntime) -> np.ndarray:
        request = self._requests[job.request_index]
        picture = self.ranges[request.seed]
        geometry = self._geometry(runtime)
        overlap_s = min(self.overlap_s, geometry.max_segment_s / 4)
        start_s = picture.start_s + job.segment_index * (geometry.max_segment_s - overlap_s)
        rate = runtime.frame_rate_hz
        first = min(len(self.frames) - 1, max(0, int(math.floor(start_s * rate + 1e-6))))
        last = max(first + 1, min(len(self.frames), int(math.ceil((start_s + job.length_s) * rate - 1e-6))))
        return self.frames[first:last]

    def _render_batch(self, runtime: VTARuntime, jobs: Sequence[SegmentJob],  # type: ignore[override]
                      on_step: StepFn) -> list[np.ndarray]:
        pipeline = runtime.pipeline
        tokens = runtime.visual_tokens([self._job_frames(job, runtime) for job in jobs], length_s=jobs[0].length_s)
        waves = pipeline.sample([job.description for job in jobs], cpu_generators(jobs), steps=self.steps,
                                guidance=self.guidance, on_step=on_step, visual_tokens=tokens)
        content = pipeline.content_samples
        return [np.ascontiguousarray(wave[..., :content], dtype=np.float32) for wave in waves]


def picture_seed(start_s: float, end_s: float) -> int:
    """A seed named by the picture range, so equal text on another range never shares a render."""
    return stable_seed(f"vta {start_s:.4f}-{end_s:.4f}")


def plan_for_vta(plan: Plan) -> tuple[Plan, dict[int, PictureRange]]:
    """The cue plan with picture-range seeds, and each seed's range (seconds from the cue start)."""
    ranges: dict[int, PictureRange] = {}
    events = []
    for event in plan.events:
        seed = picture_seed(event.start_s, event.end_s)
        ranges[seed] = PictureRange(event.start_s, event.end_s)
        events.append(event.model_copy(update={"seed": seed}))
    return plan.model_copy(update={"events": tuple(events)}), ranges


def video_identity(path: str | Path) -> dict[str, Any]:
    """Name, size and modification time: enough to tell an edited or replaced file apart."""
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def vta_for_cue(plan: Plan, *, video_path: str | Path, start_s: float, end_s: float, checkpoint: str | Path,
                visual_scale: float | None = None, **options: Any) -> tuple[Plan, VTAGenerator]:
    """The cue plan re-seeded by picture range and a VTA generator that renders it from the video."""
    info = read_checkpoint(checkpoint)  # refused here, before any decoding, when a part is missing
    seeded, ranges = plan_for_vta(plan)
    # Where the picture is, not the picture: each event's frames are decoded when it renders.
    frames = CueFrames.of(video_path, start_s=start_s, end_s=end_s, frame_rate_hz=info.config.frame_rate_hz)
    # The ranges are relative to the cue's start in the video: the cue's own place is part of
    # what the picture is, or two cues at the same relative times would share cached renders.
    identity = {**video_identity(video_path), "cue_start_s": round(float(start_s), 6),
                "cue_end_s": round(float(end_s), 6)}
    generator = VTAGenerator(checkpoint=info.folder, frames=frames, ranges=ranges,
                             video_identity=identity, visual_scale=visual_scale, **options)
    return seeded, generator
