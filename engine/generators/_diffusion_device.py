"""Where a diffusion model runs: device and dtype from the user's words, allocator cache
release, and the seeded CPU noise generators that make samples the same on every device."""

from __future__ import annotations

from typing import Sequence

import torch

from engine.errors import InvalidInputError
from engine.generators._diffusion_segments import SegmentJob

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


def empty_device_caches() -> None:
    """Hand the allocator's cached blocks back to the device (CUDA and Apple MPS alike)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        torch.mps.empty_cache()


def cpu_generators(jobs: Sequence[SegmentJob]) -> list[torch.Generator]:
    """One seeded CPU generator per job: noise is drawn per sample, so a job's noise does not
    depend on its batch-mates, and CPU draws are the same on every machine."""
    return [torch.Generator("cpu").manual_seed(job.seed) for job in jobs]
