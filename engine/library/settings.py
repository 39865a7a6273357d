"""The ``[library]`` settings: environment AUDIO_AGENT_LIBRARY_* over the config file's
``[library]`` table over these defaults."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict

from engine.errors import InvalidInputError
from engine.settings import TableSettings


class LibrarySettings(TableSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIO_AGENT_LIBRARY_", extra="ignore")
    config_table_name: ClassVar[str] = "library"

    index: Path | None = None  # default: <data_dir>/library.sqlite
    # hybrid: an event whose best match scores below this goes to the fallback backend
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    fallback: str = "procedural"  # hybrid's backend where the library has nothing good enough
    candidates: int = Field(default=6, ge=1, le=100)  # near-best files repeated hits rotate through
    clap_model: str | None = None  # Hub id or local folder of a CLAP model; enables semantic search
    # "ucs": stems of events with a UCS category are named CatID_Description_AudioAgent_<id>-<hash>;
    # "plain": <id>_<hash> like every other backend.
    stem_names: Literal["ucs", "plain"] = "ucs"


def load_library_settings(**overrides: object) -> LibrarySettings:
    try:
        return LibrarySettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        name = "library." + ".".join(str(part) for part in first["loc"])
        raise InvalidInputError(f"{name}={first.get('input')!r}: {first['msg']}", field=name,
                                value=first.get("input")) from None


def index_path(settings: LibrarySettings | None = None, *, data_dir: Path | None = None) -> Path:
    """Where the index lives: the [library] index setting, else <data_dir>/library.sqlite."""
    from engine.library.store import INDEX_NAME
    from engine.settings import load_settings

    settings = settings or load_library_settings()
    if settings.index is not None:
        return settings.index.expanduser()
    base = data_dir if data_dir is not None else load_settings().resolved_data_dir()
    return Path(base).expanduser() / INDEX_NAME
