"""Engine-wide settings: environment (AUDIO_AGENT_*) over an optional TOML file over defaults.

The TOML file is the one named by AUDIO_AGENT_CONFIG, else ~/.config/audio-agent/config.toml
when it exists. Its top-level keys are these settings' names, e.g.::

    sample_rate = 48000
    target_lufs = -20.0
    backend = "auffusion"

Other modules keep their own small settings classes on ``TableSettings``, each reading its own
table of the same file: ``[llm]`` (engine.planners.llm_config), ``[diffusion]``
(engine.generators._diffusion_presets), ``[library]`` (engine.library.settings) and ``[vta]``
(engine.video.vta_choice: the checkpoints a server offers by name).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from engine.errors import InvalidInputError
from engine.limits import (
    DEFAULT_CEILING_DBTP,
    DEFAULT_MAX_OVERLAP,
    DEFAULT_SAMPLE_RATE,
    DEFAULT_TARGET_LUFS,
    MAX_CEILING_DBTP,
    MAX_DURATION_S,
    MAX_OVERLAP_SETTING,
    MAX_SAMPLE_RATE,
    MAX_TARGET_LUFS,
    MIN_CEILING_DBTP,
    MIN_SAMPLE_RATE,
    MIN_TARGET_LUFS,
)
from engine.plan import PlanLimits

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib  # type: ignore[no-redef]

CONFIG_ENV = "AUDIO_AGENT_CONFIG"
DEFAULT_CONFIG = Path("~/.config/audio-agent/config.toml")


def config_file() -> Path | None:
    """The TOML file to read, or None. A file named by AUDIO_AGENT_CONFIG must exist."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise InvalidInputError(
                f"{CONFIG_ENV}={named!r}: no such config file", field=CONFIG_ENV, value=named
            )
        return path
    default = DEFAULT_CONFIG.expanduser()
    return default if default.is_file() else None


def read_toml(path: Path, *, field: str, what: str) -> dict[str, Any]:
    """A TOML file as a dict; InvalidInputError naming ``field`` and the file when unreadable."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InvalidInputError(
            f"{path}: cannot read {what}: {error}", field=field, value=str(path)
        ) from None


def config_table(name: str) -> dict[str, Any]:
    """One ``[name]`` table of the config file, or its top-level keys for name "" ({} when
    there is no file or no such table)."""
    path = config_file()
    if path is None:
        return {}
    data = read_toml(path, field=CONFIG_ENV, what="config")
    if not name:
        return {key: value for key, value in data.items() if not isinstance(value, dict)}
    table = data.get(name, {})
    return table if isinstance(table, dict) else {}


class TableSettings(BaseSettings):
    """Settings of one module: keyword arguments beat the environment, which beats the
    ``[config_table_name]`` table of the config file ("" for its top-level keys).
    pydantic-settings' own TOML source fails on a file without the table, so it is read here."""

    config_table_name: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        table = config_table(cls.config_table_name)
        if table:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=table))
        return tuple(sources)


class EngineSettings(TableSettings):
    """Defaults every entry point (CLI, server, benchmarks) starts from."""

    model_config = SettingsConfigDict(env_prefix="AUDIO_AGENT_", extra="ignore")
    config_table_name: ClassVar[str] = ""  # the file's top-level keys

    sample_rate: int = Field(default=DEFAULT_SAMPLE_RATE, ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE)
    target_lufs: float = Field(default=DEFAULT_TARGET_LUFS, ge=MIN_TARGET_LUFS, le=MAX_TARGET_LUFS)
    ceiling_dbtp: float = Field(
        default=DEFAULT_CEILING_DBTP, ge=MIN_CEILING_DBTP, le=MAX_CEILING_DBTP
    )
    backend: str = "procedural"
    planner: str = "rules"
    cache_dir: Path = Path("~/.cache/audio-agent")
    data_dir: Path = Path("~/.local/share/audio-agent")
    max_overlap: int = Field(default=DEFAULT_MAX_OVERLAP, ge=1, le=MAX_OVERLAP_SETTING)
    max_duration_s: float = Field(default=MAX_DURATION_S, gt=0.0)

    def limits(self) -> PlanLimits:
        return PlanLimits(max_overlap=self.max_overlap, max_duration_s=self.max_duration_s)

    def resolved_cache_dir(self) -> Path:
        return self.cache_dir.expanduser()

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser()


def load_settings(**overrides: object) -> EngineSettings:
    """EngineSettings, with a bad value or config file reported as one InvalidInputError."""
    try:
        return EngineSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        value = first.get("input")
        raise InvalidInputError(
            f"{name}={value!r}: {first['msg']}",
            field=name,
            value=value,
        ) from None
