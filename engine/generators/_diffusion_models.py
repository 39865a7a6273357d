"""Which model a backend loaded and keeping it loaded: the identity of a Hub id or local folder
(part of the stem cache key), the one resident model, the render lock, and scheduler swaps."""

from __future__ import annotations

import gc
import hashlib
import threading
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping

from engine.errors import InvalidInputError
from engine.generators._diffusion_device import empty_device_caches

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


def scheduler_from(name: str, config: Mapping[str, Any]) -> Any:
    """Build diffusers scheduler ``name`` from another scheduler's config."""
    import diffusers

    scheduler_class = getattr(diffusers, name, None)
    if scheduler_class is None or not name.endswith("Scheduler"):
        raise InvalidInputError(f"scheduler={name!r}: not a diffusers scheduler class", field="scheduler", value=name)
    return scheduler_class.from_config(config)
