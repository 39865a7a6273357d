"""What the three diffusion backends share: presets, device/dtype choice, the resident-model
cache, splitting requests into segment jobs, batching with out-of-memory halving, progress and
cancellation per denoising step, and joining segments back into one waveform per request.

A backend subclasses DiffusionGenerator and writes three methods: _load (build its pipeline),
_geometry (native rate and clip lengths of the loaded model) and _render_batch (one batched model
call for jobs of one group). Everything else lives here once.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Hashable, Literal, Mapping, Sequence

import numpy as np
import soxr
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from engine.errors import AudioAgentError, GeneratorError, InvalidInputError
from engine.generators import GenerationRequest, GenerationResult
from engine.progress import CancelToken, ProgressFn
from engine.settings import TableSettings, read_toml

log = logging.getLogger(__name__)

PRESETS_PATH = Path(__file__).resolve().parents[2] / "presets" / "models.toml"

# Called after each denoising step with the 1-based step index.
StepFn = Callable[[int], None]


# --------------------------------------------------------------------------- presets


class ModelPreset(BaseModel):
    """One backend's section of presets/models.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    revision: str | None = None
    sample_rate: int = Field(gt=0)
    channels: Literal[1, 2]
    max_segment_s: float = Field(gt=0)
    length_quantum_s: float = Field(gt=0)
    overlap_s: float = Field(ge=0)
    steps: int = Field(gt=0, le=1000)
    guidance: float = Field(ge=0)
    scheduler: str = Field(min_length=1)
    gpu_dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    # diffusers pipeline class, where one backend serves several model generations.
    pipeline: str | None = None
    # Auffusion's spectrogram geometry; unused by the other backends.
    mel_bins: int | None = Field(default=None, gt=0)
    hop_length: int | None = Field(default=None, gt=0)
    clip_frames: int | None = Field(default=None, gt=0)
    # Trailing frames of each training image that were silence padding (cut before joining).
    pad_frames: int | None = Field(default=None, ge=0)
    spec_min_value: float | None = Field(default=None, gt=0)
    spec_max_value: float | None = Field(default=None, gt=0)
    text_max_length: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> "ModelPreset":
        if self.overlap_s >= self.max_segment_s / 2:
            raise ValueError(f"overlap_s={self.overlap_s} must be under half of max_segment_s")
        if self.length_quantum_s > self.max_segment_s + 1e-9:
            raise ValueError(f"length_quantum_s={self.length_quantum_s} exceeds max_segment_s")
        if self.spec_min_value and self.spec_max_value and self.spec_min_value >= self.spec_max_value:
            raise ValueError("spec_min_value must be below spec_max_value")
        return self


def load_model_preset(backend: str, *, path: Path | None = None) -> ModelPreset:
    """Read and validate ``[backend]`` of presets/models.toml; errors name the bad key."""
    source = path or PRESETS_PATH
    table = read_toml(source, field="presets", what="model presets")
    section = table.get(backend)
    if not isinstance(section, dict):
        raise InvalidInputError(f"{source}: no [{backend}] section", field="backend", value=backend)
    try:
        return ModelPreset(**section)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or backend
        raise InvalidInputError(
            f"{source}: [{backend}] {key}: {first['msg']}", field=f"{backend}.{key}", value=first.get("input")
        ) from exc


# --------------------------------------------------------------------------- placement settings


class DiffusionSettings(TableSettings):
    """Where and how the diffusion backends run when their caller does not say.

    The server and the CLI build backends by name alone, so this is how a user picks the GPU,
    the precision and offloading: keyword arguments, then AUDIO_AGENT_DIFFUSION_* variables
    (e.g. AUDIO_AGENT_DIFFUSION_DTYPE=bfloat16), then the ``[diffusion]`` table of the engine's
    config file (engine.settings.config_file)::

        [diffusion]
        device = "cuda:1"
        dtype = "bfloat16"
        cpu_offload = true
        max_batch = 4
    """

    model_config = SettingsConfigDict(env_prefix="AUDIO_AGENT_DIFFUSION_", extra="ignore")
    config_table_name: ClassVar[str] = "diffusion"

    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    max_batch: int = Field(default=8, gt=0)


def diffusion_settings(**given: Any) -> DiffusionSettings:
    """DiffusionSettings with ``given`` (None values ignored); errors name the bad key."""
    try:
        return DiffusionSettings(**{key: value for key, value in given.items() if value is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "diffusion"
        raise InvalidInputError(f"diffusion settings: {key}: {first['msg']}", field=key,
                                value=first.get("input")) from exc


# --------------------------------------------------------------------------- device and dtype

_DTYPES = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}


def resolve_device(device: str) -> torch.device:
    """"auto" picks cuda, then mps, then cpu."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(f"device={device!r}: not a torch device", field="device", value=device) from exc
    # Refused here, by name, rather than as a loader traceback on the first render.
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device={device!r}: no CUDA device here; use auto or cpu", field="device",
                                value=device)
    mps = getattr(torch.backends, "mps", None)
    if chosen.type == "mps" and not (mps is not None and mps.is_available()):
        raise InvalidInputError(f"device={device!r}: Apple MPS is not available here; use auto or cpu",
                                field="device", value=device)
    return chosen


def resolve_dtype(dtype: str, device: torch.device, *, gpu_dtype: str) -> torch.dtype:
    """"auto" is the preset's half precision on a GPU and float32 on the CPU."""
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else _DTYPES[gpu_dtype]
    if dtype not in _DTYPES:
        message = f"dtype={dtype!r}: choose auto, float16, bfloat16 or float32"
        raise InvalidInputError(message, field="dtype", value=dtype)
    return _DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --------------------------------------------------------------------------- model identity

_CONFIG_SUFFIXES = (".json", ".txt", ".toml", ".yaml", ".yml", ".model")


def local_folder_hash(folder: Path) -> str:
    """Hash of every config file's content plus each weight file's name and size.

    Hashing gigabytes of weights on every cache lookup would be too slow; a retrained
    checkpoint changes its config or its weight sizes in practice, and the user can always pin
    a revision by hand.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        digest.update(relative.encode())
        if path.suffix in _CONFIG_SUFFIXES:
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()[:16]


def _cached_commit(repo_id: str, revision: str) -> str | None:
    """The commit a branch name points at in the local Hub cache, without touching the network."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub ships with diffusers
        return None
    ref = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / revision
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def model_source_identity(model: str, revision: str | None) -> dict[str, str]:
    folder = Path(model).expanduser()
    if folder.is_dir():
        return {"model": str(folder.resolve()), "revision": "local-" + local_folder_hash(folder)}
    wanted = revision or "main"
    return {"model": model, "revision": _cached_commit(model, wanted) or wanted}


# --------------------------------------------------------------------------- resident models

_RESIDENT: dict[Hashable, Any] = {}
_RESIDENT_LOCK = threading.Lock()
# One GPU, one denoising loop at a time: schedulers keep per-run state.
RENDER_LOCK = threading.RLock()


def resident_model(key: Hashable, load: Callable[[], Any]) -> Any:
    """Load once and keep; asking for a different model frees the one held before."""
    with _RESIDENT_LOCK:
        if key in _RESIDENT:
            return _RESIDENT[key]
        _release_locked()
        model = load()
        _RESIDENT[key] = model
        return model


def release_resident_models() -> None:
    with _RESIDENT_LOCK:
        _release_locked()


def resident_keys() -> list[Hashable]:
    with _RESIDENT_LOCK:
        return list(_RESIDENT)


def _release_locked() -> None:
    if not _RESIDENT:
        return
    _RESIDENT.clear()
    gc.collect()
    empty_device_caches()


def empty_device_caches() -> None:
    """Hand the allocator's cached blocks back to the device (CUDA and Apple MPS alike)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        torch.mps.empty_cache()


# --------------------------------------------------------------------------- segment jobs


@dataclass(frozen=True)
class SegmentJob:
    """One model sample: a whole short event, or one segment of a long one."""

    request_index: int
    segment_index: int
    description: str
    length_s: float  # generated length of this sample at the model's native rate
    seed: int


def plan_segments(length_s: float, *, max_segment_s: float, quantum_s: float, overlap_s: float) -> list[float]:
    """Lengths of the samples that cover ``length_s``.

    Short events render at their length rounded up to the quantum; long ones as full clips that
    overlap by ``overlap_s`` (the last clip may run past the end; it is trimmed after joining).
    """
    if length_s <= max_segment_s + 1e-9:
        steps = math.ceil(length_s / quantum_s - 1e-9)
        return [min(max_segment_s, max(1, steps) * quantum_s)]
    hop_s = max_segment_s - overlap_s
    count = math.ceil((length_s - overlap_s) / hop_s - 1e-9)
    return [max_segment_s] * count


def segment_seed(seed: int, index: int) -> int:
    """Segment 0 keeps the request's seed; later segments get independent, stable seeds."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)


def plan_jobs(
    requests: Sequence[GenerationRequest], *, max_segment_s: float, quantum_s: float, overlap_s: float
) -> list[SegmentJob]:
    jobs = []
    for index, request in enumerate(requests):
        lengths = plan_segments(request.length_s, max_segment_s=max_segment_s, quantum_s=quantum_s, overlap_s=overlap_s)
        for segment, length_s in enumerate(lengths):
            jobs.append(SegmentJob(index, segment, request.description, length_s, segment_seed(request.seed, segment)))
    return jobs


# --------------------------------------------------------------------------- batching


def is_out_of_memory(error: BaseException) -> bool:
    # torch.OutOfMemoryError exists from torch 2.5 on; we allow 2.3, which has only the CUDA
    # name. Looked up on each call so a missing one can never turn an error into a crash.
    kinds = tuple(kind for kind in (getattr(torch, "OutOfMemoryError", None),
                                    getattr(torch.cuda, "OutOfMemoryError", None)) if isinstance(kind, type))
    if kinds and isinstance(error, kinds):
        return True
    # MPS and older backends raise a plain RuntimeError with this wording.
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


class _Progress:
    """Denoising steps done over steps needed by all jobs, reported monotonically."""

    def __init__(self, progress: ProgressFn | None, *, total_units: int) -> None:
        self._progress = progress
        self._total = max(1, total_units)
        self._done = 0
        self._last = 0.0

    def report(self, units_in_flight: int = 0) -> None:
        fraction = min(1.0, (self._done + units_in_flight) / self._total)
        if self._progress is not None and fraction > self._last:
            self._last = fraction
            self._progress("generate", fraction)

    def finish_chunk(self, units: int) -> None:
        self._done += units


def run_in_batches(
    jobs: Sequence[SegmentJob],
    render: Callable[[Sequence[SegmentJob], StepFn], list[np.ndarray]],
    *,
    group_key: Callable[[SegmentJob], Hashable],
    max_batch: int,
    steps: int,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[np.ndarray | str]:
    """Render every job in as few calls as memory allows; one outcome (audio or error) per job.

    Jobs of one group share a call, up to ``max_batch``. An out-of-memory error halves the chunk
    and retries both halves, and later chunks start at the size that last fitted; a single job
    that still does not fit gets an error instead of audio.
    """
    outcomes: list[np.ndarray | str | None] = [None] * len(jobs)
    tracker = _Progress(progress, total_units=len(jobs) * steps)
    limit = max(1, max_batch)
    groups: dict[Hashable, list[int]] = {}
    for position, job in enumerate(jobs):
        groups.setdefault(group_key(job), []).append(position)
    pending: deque[list[int]] = deque()
    for members in groups.values():
        pending.extend(members[start : start + limit] for start in range(0, len(members), limit))

    while pending:
        chunk = pending.popleft()
        if len(chunk) > limit:  # a smaller size fitted since this chunk was queued
            pending.extendleft(reversed([chunk[i : i + limit] for i in range(0, len(chunk), limit)]))
            continue
        if cancel is not None:
            cancel.raise_if_cancelled()

        def on_step(step: int, size: int = len(chunk)) -> None:
            if cancel is not None:
                cancel.raise_if_cancelled()
            tracker.report(size * step)

        out_of_memory = ""
        try:
            audios = render([jobs[p] for p in chunk], on_step)
        except AudioAgentError:
            raise
        except Exception as error:  # noqa: BLE001 - one failing call must not sink the other jobs
            if not is_out_of_memory(error):
                log.exception("generation failed for %d job(s)", len(chunk))
                for position in chunk:
                    outcomes[position] = f"{type(error).__name__}: {error}"
                tracker.finish_chunk(len(chunk) * steps)
                continue
            out_of_memory = str(error) or type(error).__name__
        if out_of_memory:
            # Freed only now: inside the except block the traceback still holds the failed
            # call's frames and the activations in them, which empty_cache cannot give back.
            _free_after_oom()
            if len(chunk) == 1:
                outcomes[chunk[0]] = f"out of memory even at batch size 1: {out_of_memory}"
                tracker.finish_chunk(steps)
                continue
            half = len(chunk) // 2
            limit = max(1, half)
            log.warning("out of memory at batch %d; retrying as %d + %d", len(chunk), half, len(chunk) - half)
            pending.extendleft([chunk[half:], chunk[:half]])
            continue
        for position, audio in zip(chunk, audios):
            outcomes[position] = audio
        tracker.finish_chunk(len(chunk) * steps)
        tracker.report()
    tracker.report()  # reaches 1.0 even when the last chunk failed
    return [outcome if outcome is not None else "no output" for outcome in outcomes]


def _free_after_oom() -> None:
    gc.collect()
    empty_device_caches()


# --------------------------------------------------------------------------- joining and rate


def join_segments(segments: Sequence[np.ndarray], *, overlap_frames: int) -> np.ndarray:
    """Concatenate (channels, frames) clips, crossfading each joint over ``overlap_frames``.

    Equal-power curves: neighbouring segments are independent renders, so their sum keeps a
    steady loudness through the joint when the gains' squares add to one.
    """
    joined = segments[0]
    for segment in segments[1:]:
        fade = min(overlap_frames, joined.shape[-1], segment.shape[-1])
        if fade == 0:
            joined = np.concatenate([joined, segment], axis=-1)
            continue
        angle = np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)
        mixed = joined[:, -fade:] * np.cos(angle) + segment[:, :fade] * np.sin(angle)
        joined = np.concatenate([joined[:, :-fade], mixed, segment[:, fade:]], axis=-1)
    return joined


def to_request_rate(audio: np.ndarray, *, native_rate: int, request: GenerationRequest) -> np.ndarray:
    """Trim to the event, resample with soxr, and return exactly round(length_s * rate) frames."""
    audio = audio[:, : math.ceil(request.length_s * native_rate)]
    if native_rate != request.sample_rate:
        audio = soxr.resample(audio.T.astype(np.float64), native_rate, request.sample_rate, quality="HQ").T
    frames = round(request.length_s * request.sample_rate)
    if audio.shape[-1] < frames:
        audio = np.pad(audio, ((0, 0), (0, frames - audio.shape[-1])))
    return np.ascontiguousarray(audio[:, :frames], dtype=np.float32)


# --------------------------------------------------------------------------- the generator base


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


def model_env_var(backend: str) -> str:
    """E.g. AUDIO_AGENT_STABLE_AUDIO_MODEL=/weights/stable-audio-open-1.0."""
    return f"AUDIO_AGENT_{backend.upper().replace('-', '_')}_MODEL"


def default_model_override(backend: str) -> str | None:
    """The server builds backends by name alone; this variable points one at local weights."""
    return os.environ.get(model_env_var(backend)) or None


def _request_problem(request: GenerationRequest) -> str | None:
    if not (isinstance(request.length_s, (int, float)) and request.length_s > 0 and math.isfinite(request.length_s)):
        return f"length_s={request.length_s!r}: must be a positive number of seconds"
    if not isinstance(request.sample_rate, int) or request.sample_rate <= 0:
        return f"sample_rate={request.sample_rate!r}: must be a positive integer"
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


def cpu_generators(jobs: Sequence[SegmentJob]) -> list[torch.Generator]:
    """One seeded CPU generator per job: noise is drawn per sample, so a job's noise does not
    depend on its batch-mates, and CPU draws are the same on every machine."""
    return [torch.Generator("cpu").manual_seed(job.seed) for job in jobs]


def scheduler_from(name: str, config: Mapping[str, Any]) -> Any:
    """Build diffusers scheduler ``name`` from another scheduler's config."""
    import diffusers

    scheduler_class = getattr(diffusers, name, None)
    if scheduler_class is None or not name.endswith("Scheduler"):
        raise InvalidInputError(f"scheduler={name!r}: not a diffusers scheduler class", field="scheduler", value=name)
    return scheduler_class.from_config(config)
