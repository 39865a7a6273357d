"""The VTA checkpoint: one folder that training writes and video-cue / eval read.

    checkpoint.json                 format, the VTAConfig (base CLIP / Gemma / HuBERT / Auffusion
                                    ids or local paths, sizes, lambda) and the steps each stage ran
    centroids.npy                   (n_audio_tokens, centroid_dim) float32 k-means centroids
    lora/                           peft adapter of the LLM (adapter_config.json +
                                    adapter_model.safetensors; new token rows as deltas)   stage 1
    connector.safetensors           temporal connector weights                             stage 1
    vta_adapter.json                vocabulary ids and connector sizes                     stage 1
    visual_attention.safetensors    to_k_vis / to_v_vis of every UNet cross-attention      stage 2
    resume/stage1.pt, stage2.pt     optimiser state and step, to resume training (tensors only)

Weights are safetensors; the resume files are read with torch.load(weights_only=True), which
refuses anything but tensors and plain containers, and a peft adapter stored as a pickle
(adapter_model.bin) is refused. Each missing or mismatched part is named with the command that
makes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from engine.errors import InvalidInputError
from engine.video.vta_model import ADAPTER_JSON, CONNECTOR_FILE, LORA_DIR, VISUAL_FILE, VTAConfig

FORMAT = "audio-agent-vta/1"
CONFIG_FILE = "checkpoint.json"
CENTROIDS_FILE = "centroids.npy"
RESUME_DIR = "resume"
Stage = Literal["stage1", "stage2"]
STAGES: tuple[Stage, ...] = ("stage1", "stage2")
_MAKES = {"stage1": "audio-agent vta train stage1 DATA_DIR --out {folder}",
          "stage2": "audio-agent vta train stage2 DATA_DIR --out {folder}"}


def _bad(folder: Path, message: str) -> InvalidInputError:
    return InvalidInputError(f"checkpoint={str(folder)!r}: {message}", field="checkpoint", value=str(folder))


@dataclass(frozen=True)
class CheckpointInfo:
    folder: Path
    config: VTAConfig  # centroids_path points into the folder
    steps: dict[str, int]  # stage -> optimiser steps saved
    visual: dict[str, Any] | None  # {"visual_dim", "scale"} once stage 2 saved

    @property
    def centroids_path(self) -> Path:
        return self.folder / CENTROIDS_FILE


def config_from_mapping(data: dict[str, Any], *, where: str) -> VTAConfig:
    known = {f.name for f in fields(VTAConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInputError(f"{where}: unknown config key {unknown[0]!r}", field=unknown[0], value=data[unknown[0]])
    values = dict(data)
    if "lora_target_modules" in values:
        values["lora_target_modules"] = tuple(values["lora_target_modules"])
    return VTAConfig(**values)


def _config_mapping(config: VTAConfig) -> dict[str, Any]:
    data = asdict(config)
    data.pop("centroids_path")  # fixed by the layout
    data["lora_target_modules"] = list(config.lora_target_modules)
    return data


def load_centroids(path: Path, config: VTAConfig, *, folder: Path) -> np.ndarray:
    if not path.is_file():
        raise _bad(folder, f"no {path.name}; fit one with `audio-agent vta units AUDIO_DIR --out centroids.npy`")
    try:
        centroids = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise _bad(folder, f"{path.name} is not a plain .npy array ({error})") from None
    expected = (config.n_audio_tokens, config.centroid_dim)
    if centroids.shape != expected or not np.all(np.isfinite(centroids)):
        raise _bad(folder, f"{path.name} has shape {centroids.shape}, the config needs {expected} "
                           "(n_audio_tokens, centroid_dim) of finite values")
    return centroids.astype(np.float32)


def create_checkpoint(folder: str | Path, *, config: VTAConfig, centroids_path: str | Path) -> CheckpointInfo:
    """A new checkpoint folder holding the config and a copy of the centroids."""
    from engine.atomic import atomic_file

    folder = Path(folder)
    if (folder / CONFIG_FILE).exists():
        raise _bad(folder, f"already holds a checkpoint ({CONFIG_FILE})")
    centroids = load_centroids(Path(centroids_path), config, folder=Path(centroids_path).parent)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / CENTROIDS_FILE) as handle:
        np.save(handle, centroids, allow_pickle=False)
    _write_json(folder, {"format": FORMAT, "config": _config_mapping(config), "steps": {}, "visual": None})
    return read_checkpoint(folder, need=())


def read_checkpoint(folder: str | Path, *, need: Sequence[Stage] = STAGES) -> CheckpointInfo:
    """Validate the folder and the parts of the stages in ``need``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise _bad(folder, "not a folder")
    meta = _read_json(folder)
    config = config_from_mapping(meta.get("config") or {}, where=str(folder / CONFIG_FILE))
    config = replace(config, centroids_path=str(folder / CENTROIDS_FILE))
    load_centroids(folder / CENTROIDS_FILE, config, folder=folder)
    steps = {str(k): int(v) for k, v in (meta.get("steps") or {}).items()}
    info = CheckpointInfo(folder=folder, config=config, steps=steps, visual=meta.get("visual"))
    for stage in need:
        check_stage(info, stage)
    return info


def check_stage(info: CheckpointInfo, stage: Stage) -> None:
    folder = info.folder
    makes = _MAKES[stage].format(folder=folder)
    if stage == "stage1":
        lora = folder / LORA_DIR
        if (lora / "adapter_model.bin").is_file() and not (lora / "adapter_model.safetensors").is_file():
            raise _bad(folder, f"{LORA_DIR}/adapter_model.bin is a pickle, which is never loaded; save the "
                               "adapter as safetensors")
        for part in (ADAPTER_JSON, CONNECTOR_FILE, f"{LORA_DIR}/adapter_config.json",
                     f"{LORA_DIR}/adapter_model.safetensors"):
            if not (folder / part).is_file():
                raise _bad(folder, f"no {part} (stage 1: connector + LoRA); run `{makes}`")
        adapter = json.loads((folder / ADAPTER_JSON).read_text(encoding="utf-8"))
        n_audio = int(adapter.get("vocab", {}).get("n_audio", -1))
        if n_audio != info.config.n_audio_tokens:
            raise _bad(folder, f"{ADAPTER_JSON} has {n_audio} audio tokens, the config "
                               f"{info.config.n_audio_tokens}")
    else:
        if not (folder / VISUAL_FILE).is_file() or not info.visual:
            raise _bad(folder, f"no {VISUAL_FILE} (stage 2: the UNet's visual attention); run `{makes}`")
        if int(info.visual.get("visual_dim", -1)) != info.config.centroid_dim:
            raise _bad(folder, f"{VISUAL_FILE} reads {info.visual.get('visual_dim')}-d tokens, the centroids "
                               f"are {info.config.centroid_dim}-d")


def record_stage(folder: Path, stage: Stage, *, step: int, visual: dict[str, Any] | None = None) -> None:
    meta = _read_json(folder)
    meta.setdefault("steps", {})[stage] = int(step)
    if visual is not None:
        meta["visual"] = visual
    _write_json(folder, meta)


def check_same_config(info: CheckpointInfo, config: VTAConfig) -> None:
    """Resuming with another config would mix two models in one folder: refuse, naming the key."""
    saved, given = _config_mapping(info.config), _config_mapping(config)
    for key in saved:
        if saved[key] != given[key]:
            message = f"the folder was made with {key}={saved[key]!r}, the given config has {given[key]!r}"
            raise InvalidInputError(f"checkpoint={str(info.folder)!r}: {message}", field=key, value=given[key])


def save_resume_state(folder: Path, stage: Stage, state: dict[str, Any]) -> None:
    import torch

    from engine.atomic import atomic_file

    with atomic_file(folder / RESUME_DIR / f"{stage}.pt") as handle:
        torch.save(state, handle)


def load_resume_state(folder: Path, stage: Stage) -> dict[str, Any] | None:
    import torch

    path = folder / RESUME_DIR / f"{stage}.pt"
    if not path.is_file():
        return None
    try:
        return dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # noqa: BLE001 - unpickling refusals come as several types
        raise _bad(folder, f"{RESUME_DIR}/{stage}.pt cannot be read safely ({error})") from None


def _read_json(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise _bad(folder, f"no {CONFIG_FILE}, not a VTA checkpoint; make one with "
                           f"`audio-agent vta train stage1 DATA_DIR --out {folder} --centroids centroids.npy`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise _bad(folder, f"{CONFIG_FILE} is not JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise _bad(folder, f"{CONFIG_FILE} has format {found!r}, this version reads {FORMAT!r}")
    return meta


def _write_json(folder: Path, meta: dict[str, Any]) -> None:
    from engine.atomic import atomic_file

    with atomic_file(folder / CONFIG_FILE) as handle:
        handle.write(json.dumps(meta, indent=2).encode("utf-8"))
