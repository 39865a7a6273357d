"""The composition root: the one place that builds planners (with their fallback), generators,
the render cache and the session engine from settings.

Every front door (the CLI commands, ``audio-agent serve``, front doors to come) builds its parts
here, so a rule such as "the LLM planner falls back to the rule planner at the same loudness
target" is written once. Nothing here plans or renders; see engine.seeds for the seed rule
and engine.api for the interface the front doors call.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from engine.errors import GeneratorError
from engine.generators import Generator, create_generator
from engine.planners import Planner, create_planner
from engine.render_settings import RenderSettings
from engine.settings import EngineSettings

if TYPE_CHECKING:  # imported where used: `audio-agent plan` needs neither the cache nor sessions
    from engine.api import SessionEngine
    from engine.cache import RenderCache
    from engine.session import SessionManager


def build_planner(
    name: str | None, *, settings: EngineSettings, llm_model: str | None = None
) -> Planner:
    """``name`` (None: the settings' planner). The LLM planner gets the rule planner as its
    fallback, at the settings' loudness target. Planners are built unsalted (engine.seeds)."""
    key = name or settings.planner
    rules = create_planner("rules", base_lufs=settings.target_lufs)
    if key == "rules":
        return rules
    if key == "llm":
        options: dict[str, object] = {"fallback": rules}
        if llm_model:
            options["model"] = llm_model
        return create_planner("llm", **options)
    return create_planner(key)


def build_generator(name: str, **options: object) -> Generator:
    """A backend by name; a backend whose optional dependencies are missing is a
    GeneratorError naming it (not an ImportError traceback)."""
    try:
        return create_generator(name, **options)
    except ImportError as error:
        raise GeneratorError(
            f"backend={name!r}: cannot be loaded here ({error})", field="backend", value=name
        ) from None


def open_cache(directory: Path, *, max_bytes: int | None = None, required: bool = True) -> RenderCache | None:
    """The raw render cache at ``directory``. When not ``required`` (the CLI), a cache that
    cannot be opened is a warning on stderr and None: rendering works without it."""
    from engine.cache import RenderCache

    try:
        return RenderCache(Path(directory).expanduser(), max_bytes=max_bytes)
    except OSError as error:
        if required:
            raise
        print(f"warning: render cache disabled ({error})", file=sys.stderr)
        return None


def build_session_manager(
    settings: EngineSettings,
    *,
    data_dir: Path,
    planner: str | None = None,
    backend: str | None = None,
    llm_model: str | None = None,
    cache_max_bytes: int | None = None,
) -> SessionManager:
    """Sessions over ``data_dir`` with a shared cache under it; backends load on first use
    (one instance per name, kept by the manager: loading a model is the slow part)."""
    from engine.session import SessionManager

    default_backend = backend or settings.backend

    def planner_factory(name: str | None) -> Planner:
        return build_planner(name or planner, settings=settings, llm_model=llm_model)

    def generator_factory(name: str | None) -> Generator:
        return build_generator(name or default_backend)

    data = Path(data_dir).expanduser()
    cache = open_cache(data / "cache", max_bytes=cache_max_bytes)
    return SessionManager(
        data_dir=data,
        planner_factory=planner_factory,
        generator_factory=generator_factory,
        cache=cache,
        limits=settings.limits(),
        render_settings=RenderSettings.from_settings(settings),
    )


def build_engine(
    settings: EngineSettings,
    *,
    data_dir: Path,
    planner: str | None = None,
    backend: str | None = None,
    llm_model: str | None = None,
    cache_max_bytes: int | None = None,
    max_video_bytes: int | None = None,
    vta_checkpoints: Mapping[str, Path] | None = None,
) -> SessionEngine:
    """The Engine a server (or any front door keeping sessions) talks to (engine.api)."""
    from engine.api import SessionEngine
    from engine.limits import MAX_VIDEO_BYTES

    manager = build_session_manager(
        settings, data_dir=data_dir, planner=planner, backend=backend, llm_model=llm_model,
        cache_max_bytes=cache_max_bytes,
    )
    return SessionEngine(manager, max_video_bytes=max_video_bytes or MAX_VIDEO_BYTES,
                         vta_checkpoints=vta_checkpoints)
