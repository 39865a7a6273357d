"""The generator interface every text-to-audio backend implements, and the registry by name.

A backend takes a batch of requests and returns one outcome per request, in order. A backend
that fails for one request (OOM after halving, a bad prompt) reports that request's error and
still returns the others, so one bad event never costs the scene its other stems.

Backends are imported lazily by name so the offline default never imports diffusers.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from engine.errors import InvalidInputError
from engine.progress import CancelToken, ProgressFn


@dataclass(frozen=True)
class GenerationRequest:
    description: str
    length_s: float
    seed: int
    sample_rate: int  # the rate the caller wants back; backends resample to it


@dataclass(frozen=True)
class GenerationResult:
    """Audio float32 (channels, frames) at the request's sample rate, or the reason it failed.

    The audio length is close to the requested length but need not be exact: render.fit_to_length
    trims, pads or loops it to the event.
    """

    audio: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.audio is not None


@runtime_checkable
class Generator(Protocol):
    name: str

    def identity(self) -> Mapping[str, Any]:
        """Everything besides the request that changes the samples (model id and revision,
        steps, guidance, dtype...). Part of the stem cache key."""
        ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[GenerationResult]:
        """One result per request, in order. Raises CancelledError if ``cancel`` fires."""
        ...


GeneratorFactory = Callable[..., Generator]

# name -> "module:attribute"; imported on first use.
_BUILTIN: dict[str, str] = {
    "procedural": "engine.generators.procedural:ProceduralGenerator",
    "auffusion": "engine.generators.auffusion:AuffusionGenerator",
    "stable-audio": "engine.generators.stable_audio:StableAudioGenerator",
    "audioldm2": "engine.generators.audioldm2:AudioLDM2Generator",
    "library": "engine.library.backend:LibraryGenerator",  # the designer's own sound files
    "hybrid": "engine.library.backend:HybridGenerator",  # library, else the fallback backend
}
_REGISTERED: dict[str, GeneratorFactory] = {}


def register_generator(name: str, factory: GeneratorFactory) -> None:
    """Make ``factory`` available as ``--backend name`` (tests register fakes this way)."""
    _REGISTERED[name] = factory


def available_generators() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def _factory(name: str) -> GeneratorFactory:
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTIN.get(name)
    if target is None:
        raise InvalidInputError(
            f"backend={name!r}: unknown backend; choose one of {', '.join(available_generators())}",
            field="backend",
            value=name,
        )
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def create_generator(name: str, **options: Any) -> Generator:
    """Build the backend called ``name`` with backend-specific keyword options.

    An option the backend does not take is an InvalidInputError naming it (not a TypeError
    from deep inside a constructor)."""
    factory = _factory(name)
    refused = [option for option in options if not _accepts(factory, option)]
    if refused:
        option = refused[0]
        raise InvalidInputError(
            f"{option}={options[option]!r}: backend {name!r} takes no such option",
            field=option,
            value=options[option],
        )
    return factory(**options)


def _accepts(factory: GeneratorFactory, option: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable: let it decide
        return True
    return option in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
