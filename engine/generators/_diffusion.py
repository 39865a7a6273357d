"""The shared loop of the three diffusion backends: a request batch becomes segment jobs, the jobs
run in batches on the resident model, and the samples are joined back into one waveform per
request. The parts live beside this file, one job each:

    _diffusion_presets.py   presets/models.toml sections, placement settings, model override
    _diffusion_device.py    device and dtype choice, cache release, seeded CPU noise
    _diffusion_models.py    model identity (cache key), the resident model, scheduler swap
    _diffusion_segments.py  segment planning, seeds, crossfade join, rate (pure numpy)
    _diffusion_batching.py  batching with out-of-memory halving, progress, cancellation

A backend subclasses DiffusionGenerator and writes three methods: _load (build its pipeline),
_geometry (native rate and clip lengths of the loaded model) and _render_batch (one batched model
call for jobs of one group).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Hashable, Mapping, Sequence

import numpy as np

from engine.errors import AudioAgentError, GeneratorError, InvalidInputError
from engine.generators import GenerationRequest, GenerationResult
from engine.generators._diffusion_batching import StepFn, run_in_batches
from engine.generators._diffusion_device import cpu_generators, dtype_name, resolve_device, resolve_dtype
from engine.generators._diffusion_models import RENDER_LOCK, model_source_identity, resident_model, scheduler_from
from engine.generators._diffusion_presets import default_model_override, diffusion_settings, load_model_preset
from engine.generators._diffusion_segments import SegmentJob, join_segments, plan_jobs, to_request_rate
from engine.limits import check_sample_rate
from engine.progress import CancelToken, ProgressFn

# What a backend module needs from here, in one import.
__all__ = ["DiffusionGenerator", "Geometry", "SegmentJob", "StepFn", "cpu_generators", "default_model_override",
           "scheduler_from"]


@dataclass(frozen=True)
class Geometry:
    """What a loaded model produces: its rate, longest clip and length rounding step."""

    native_rate: int
    max_segment_s: float
    quantum_s: float


class DiffusionGenerator:
    """generate() for a diffusion backend; subclasses provide _load, _geometry, _render_batch."""

    name: ClassVar[str] = ""
    # Which presets/models.toml section supplies defaults; a subclass may pick per checkpoint.
    preset_section: str = ""

    def __init__(
        self,
        *,
        model: str | None = None,
        revision: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        scheduler: str | None = None,
        max_batch: int | None = None,
        cpu_offload: bool | None = None,
        overlap_s: float | None = None,
        max_segment_s: float | None = None,
        length_quantum_s: float | None = None,
        presets_path: Path | None = None,
    ) -> None:
        self.preset = load_model_preset(self.preset_section or self.name, path=presets_path)
        model = model or default_model_override(self.name)
        self.model = model or self.preset.model
        # A revision only means something for a Hub id; a local folder is identified by its hash.
        self.revision = revision if revision is not None else (None if model else self.preset.revision)
        # Unset placement options come from DiffusionSettings (environment, then config file).
        placement = diffusion_settings(device=device, dtype=dtype, max_batch=max_batch, cpu_offload=cpu_offload)
        device, dtype = placement.device, placement.dtype
        max_batch, cpu_offload = placement.max_batch, placement.cpu_offload
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device, gpu_dtype=self.preset.gpu_dtype)
        self.steps = _positive_int("steps", steps if steps is not None else self.preset.steps)
        self.guidance = _non_negative("guidance", guidance if guidance is not None else self.preset.guidance)
        self.scheduler = scheduler or self.preset.scheduler
        self.max_batch = _positive_int("max_batch", max_batch)
        self.cpu_offload = bool(cpu_offload) and self.device.type == "cuda"
        self.overlap_s = _non_negative("overlap_s", overlap_s if overlap_s is not None else self.preset.overlap_s)
        self._source_identity: dict[str, str] | None = None
        self.max_segment_s = _positive("max_segment_s", max_segment_s or self.preset.max_segment_s)
        self.length_quantum_s = _positive("length_quantum_s", length_quantum_s or self.preset.length_quantum_s)

    # -- subclass hooks
    def _load(self) -> Any:
        raise NotImplementedError

    def _geometry(self, pipeline: Any) -> Geometry:
        raise NotImplementedError

    def _load_diffusers_pipeline(self, pipeline_class: Any) -> Any:
        """Load a stock diffusers pipeline with our scheduler, placement and no progress bar."""
        pipeline = pipeline_class.from_pretrained(self.model, revision=self.revision, torch_dtype=self.dtype)
        if type(pipeline.scheduler).__name__ != self.scheduler:
            pipeline.scheduler = scheduler_from(self.scheduler, pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        if self.cpu_offload:
            pipeline.enable_model_cpu_offload(device=self.device)
        else:
            pipeline.to(self.device)
        return pipeline

    def _render_batch(self, pipeline: Any, jobs: Sequence[SegmentJob], on_step: StepFn) -> list[np.ndarray]:
        """Native-rate float32 (channels, frames) per job, from one batched model call."""
        raise NotImplementedError

    def _group_key(self, job: SegmentJob) -> Hashable:
        """Jobs with equal keys may share one model call."""
        return round(job.length_s, 6)

    def _extra_identity(self) -> dict[str, Any]:
        return {}

    # -- public API
    def identity(self) -> Mapping[str, Any]:
        # Hashed once per instance: the cache asks for every event, and the resident model was
        # loaded from the folder as it was then.
        if self._source_identity is None:
            self._source_identity = model_source_identity(self.model, self.revision)
        return {
            "backend": self.name,
            **self._source_identity,
            "steps": self.steps,
            "guidance": self.guidance,
            "scheduler": self.scheduler,
            "dtype": dtype_name(self.dtype),
            "device": self.device.type,
            "overlap_s": self.overlap_s,
            "max_segment_s": self.max_segment_s,
            "length_quantum_s": self.length_quantum_s,
            **self._extra_identity(),
        }

    def pipeline(self) -> Any:
        """The loaded model, from the resident cache (loaded on first use)."""
        # Backend options baked into the loaded object (Auffusion's clip_frames and spectrogram
        # range) are part of the key too, or a second generator would sample with the first's.
        extra = json.dumps(self._extra_identity(), sort_keys=True, default=str)
        key = (self.name, self.model, self.revision, str(self.device), dtype_name(self.dtype),
               self.scheduler, self.cpu_offload, extra)
        try:
            return resident_model(key, self._load)
        except AudioAgentError:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear error
            message = f"{self.name}: cannot load model {self.model!r}: {exc}"
            raise GeneratorError(message, field="model", value=self.model) from exc

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[GenerationResult]:
        # A malformed request fails alone, like any other per-request failure.
        problems = [_request_problem(request) for request in requests]
        valid = [request for request, problem in zip(requests, problems) if problem is None]
        if cancel is not None:
            cancel.raise_if_cancelled()
        rendered = iter(self._generate_valid(valid, progress=progress, cancel=cancel) if valid else [])
        return [GenerationResult(error=problem) if problem else next(rendered) for problem in problems]

    def _generate_valid(
        self, requests: Sequence[GenerationRequest], *, progress: ProgressFn | None, cancel: CancelToken | None
    ) -> list[GenerationResult]:
        with RENDER_LOCK:
            pipeline = self.pipeline()
            geometry = self._geometry(pipeline)
            overlap_s = min(self.overlap_s, geometry.max_segment_s / 4)
            jobs = plan_jobs(requests, max_segment_s=geometry.max_segment_s, quantum_s=geometry.quantum_s,
                             overlap_s=overlap_s)
            outcomes = run_in_batches(
                jobs,
                lambda batch, on_step: self._render_batch(pipeline, batch, on_step),
                group_key=self._group_key,
                max_batch=self.max_batch,
                steps=self.steps,
                progress=progress,
                cancel=cancel,
            )
        return _assemble(requests, jobs, outcomes, geometry=geometry, overlap_s=overlap_s)


def _assemble(
    requests: Sequence[GenerationRequest],
    jobs: Sequence[SegmentJob],
    outcomes: Sequence[np.ndarray | str],
    *,
    geometry: Geometry,
    overlap_s: float,
) -> list[GenerationResult]:
    per_request: list[list[np.ndarray | str]] = [[] for _ in requests]
    for job, outcome in zip(jobs, outcomes):
        per_request[job.request_index].append(outcome)
    results = []
    overlap_frames = round(overlap_s * geometry.native_rate)
    for request, parts in zip(requests, per_request):
        errors = [part for part in parts if isinstance(part, str)]
        if errors:
            results.append(GenerationResult(error=errors[0]))
            continue
        audio = join_segments([p for p in parts if isinstance(p, np.ndarray)], overlap_frames=overlap_frames)
        audio = to_request_rate(audio, native_rate=geometry.native_rate, request=request)
        results.append(GenerationResult(audio=audio))
    return results


def _request_problem(request: GenerationRequest) -> str | None:
    if not (isinstance(request.length_s, (int, float)) and request.length_s > 0 and math.isfinite(request.length_s)):
        return f"length_s={request.length_s!r}: must be a positive number of seconds"
    try:
        check_sample_rate(request.sample_rate)  # the engine's one rule (engine.limits)
    except InvalidInputError as error:
        return error.message
    if not request.description.strip():
        return "description is empty"
    return None


def _positive_int(field: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInputError(f"{field}={value!r}: must be a positive integer", field=field, value=value)
    return value


def _positive(field: str, value: Any) -> float:
    if _non_negative(field, value) <= 0:
        raise InvalidInputError(f"{field}={value!r}: must be > 0", field=field, value=value)
    return float(value)


def _non_negative(field: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise InvalidInputError(f"{field}={value!r}: must be a number >= 0", field=field, value=value)
    return float(value)
