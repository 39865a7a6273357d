"""Diffusion backend defaults as data: presets/models.toml sections, the placement settings a
user sets without code ([diffusion] table, AUDIO_AGENT_DIFFUSION_*), and the per-backend model
override variable. No torch here: a bad preset or setting is refused before any model import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from engine.errors import InvalidInputError
from engine.settings import TableSettings, read_toml

PRESETS_PATH = Path(__file__).resolve().parents[2] / "presets" / "models.toml"


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


def model_env_var(backend: str) -> str:
    """E.g. AUDIO_AGENT_STABLE_AUDIO_MODEL=/weights/stable-audio-open-1.0."""
    return f"AUDIO_AGENT_{backend.upper().replace('-', '_')}_MODEL"


def default_model_override(backend: str) -> str | None:
    """The server builds backends by name alone; this variable points one at local weights."""
    return os.environ.get(model_env_var(backend)) or None
