"""Which VTA checkpoint a server's client may use: a name the server was started with, never a path.

A server lists its allowed checkpoints as a name -> folder table: the settings file's
``[vta] checkpoints`` table (``VTASettings``), with ``serve --vta-checkpoint NAME=DIR`` (repeatable)
adding names or replacing a name's folder. A `video_cue` request with `generator: "vta"` names one; the name is checked here
before the job is accepted, so a wrong name costs the client one error listing the allowed names
and leaves no empty session behind. Imports nothing heavy: the dispatcher calls this on its loop.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import ClassVar, Iterable, Mapping

from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from engine.errors import InvalidInputError
from engine.settings import CONFIG_ENV, TableSettings, config_file

# Names go on the wire and into backend labels ("vta:NAME"): short, no separators or spaces.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
BACKEND_PREFIX = "vta:"  # a session version rendered by checkpoint NAME is labelled "vta:NAME"


def parse_checkpoint_table(items: Iterable[str]) -> dict[str, Path]:
    """`NAME=DIR` strings (the serve flag) as a table; a malformed or repeated name is refused."""
    table: dict[str, Path] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        name = name.strip()
        if not sep or not folder.strip():
            raise InvalidInputError(f"vta_checkpoint={item!r}: expected NAME=DIR", field="vta_checkpoint",
                                    value=item)
        add_checkpoint(table, name, folder.strip())
    return table


def add_checkpoint(table: dict[str, Path], name: str, folder: str | Path) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidInputError(f"vta_checkpoint name {name!r}: use 1-48 letters, digits, '_', '.' or '-'",
                                field="vta_checkpoint", value=name)
    if name in table:
        raise InvalidInputError(f"vta_checkpoint name {name!r}: given twice", field="vta_checkpoint", value=name)
    table[name] = Path(folder).expanduser()


VTA_CHECKPOINTS_ENV = "AUDIO_AGENT_VTA_CHECKPOINTS"


class VTASettings(TableSettings):
    """The settings file's ``[vta]`` table::

        [vta.checkpoints]          # or: [vta] checkpoints = { foley = "/models/vta-ckpt" }
        foley = "/models/vta-ckpt"

    (environment: AUDIO_AGENT_VTA_CHECKPOINTS as a JSON object). Unknown keys are refused, so a
    misspelt ``checkpoint =`` is an error rather than a server that silently offers nothing."""

    config_table_name: ClassVar[str] = "vta"
    model_config = SettingsConfigDict(env_prefix="AUDIO_AGENT_VTA_", extra="forbid")

    checkpoints: dict[str, str] = {}


def _settings_source(table: str = "[vta] checkpoints") -> str:
    path = config_file()
    return f"{path} {table}" if path is not None else table


def _relative_bases(names: Iterable[str]) -> dict[str, Path]:
    """Where each entry's relative folder starts from: the settings file's own folder (as a
    designer who keeps models beside the file means it, whatever folder `serve` is started
    from); the working folder for an entry the environment variable gives (its JSON wins
    over the file's entry of the same name)."""
    path = config_file()
    file_base = Path.cwd() if path is None else path.resolve().parent
    try:
        from_env = json.loads(os.environ.get(VTA_CHECKPOINTS_ENV) or "{}")
    except ValueError:
        from_env = {}  # pydantic has refused it already, naming the variable
    env_names = set(from_env) if isinstance(from_env, dict) else set()
    return {name: Path.cwd() if name in env_names else file_base for name in names}


def settings_checkpoint_table() -> dict[str, Path]:
    """The ``[vta] checkpoints`` table of the settings, names checked (folders are checked by
    check_vta_table when the server starts); a bad entry is refused naming it and the file."""
    try:
        checkpoints = VTASettings().checkpoints
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "vta"
        raise InvalidInputError(f"{_settings_source('[vta]')}: {where}={first.get('input')!r}: {first['msg']} "
                                f"(the table holds checkpoints, each entry NAME = \"DIR\"; {CONFIG_ENV} "
                                "names the file)",
                                field=f"vta.{where}", value=first.get("input")) from None
    table: dict[str, Path] = {}
    bases = _relative_bases(checkpoints)
    for name, folder in checkpoints.items():
        if not folder.strip():
            raise InvalidInputError(f"{_settings_source()}: {name} = {folder!r}: no folder given",
                                    field=f"vta.checkpoints.{name}", value=folder)
        try:
            add_checkpoint(table, name, bases[name] / Path(folder.strip()).expanduser())
        except InvalidInputError as error:
            raise InvalidInputError(f"{_settings_source()}: {error.message}", field=f"vta.checkpoints.{name}",
                                    value=name) from None
    return table


def serve_checkpoint_table(flag_items: Iterable[str], *, settings: Mapping[str, Path] | None = None
                           ) -> dict[str, Path]:
    """What `serve` offers: the settings' table, then each ``--vta-checkpoint NAME=DIR`` on top
    (a new name is added, a name the settings list gets the flag's folder). Every folder is
    checked complete here, each failure naming its entry and where it came from."""
    base = settings_checkpoint_table() if settings is None else dict(settings)
    flags = parse_checkpoint_table(flag_items)
    where = {name: _settings_source() for name in base}
    where.update({name: "--vta-checkpoint" for name in flags})
    table = {**base, **flags}
    check_vta_table(table, where=where)
    return table


def check_vta_table(table: Mapping[str, Path], *, where: Mapping[str, str] | None = None) -> None:
    """At server start: every allowed checkpoint must be a readable, complete folder (each part
    named with the command that makes it), so a client never meets a half-trained one. Errors
    name the entry (and ``where[name]``, the setting it came from)."""
    from engine.video.checkpoint import read_checkpoint  # reads JSON and .npy only, no models

    for name, folder in table.items():
        add_checkpoint({}, name, folder)  # the name rule, for tables built in code
        try:
            read_checkpoint(folder)
        except InvalidInputError as error:
            source = f" ({where[name]})" if where and name in where else ""
            raise InvalidInputError(f"vta checkpoint {name!r}{source}: {error.message}",
                                    field="vta_checkpoint", value=name) from None


def choose_checkpoint(generator: str, checkpoint: str | None, visual_scale: float | None,
                      allowed: Mapping[str, Path]) -> Path | None:
    """The folder of the checkpoint a request names (None for the text generator).

    Refuses, with a message a designer can act on: vta without a name, a name the server does not
    list (the allowed names are given), a checkpoint or lambda with the text generator, and a
    lambda that is not a finite number >= 0.
    """
    if generator != "vta":
        if checkpoint is not None or visual_scale is not None:
            raise InvalidInputError(f"generator={generator!r}: checkpoint and vta_lambda apply to "
                                    "generator \"vta\" only", field="generator", value=generator)
        return None
    names = ", ".join(sorted(allowed)) or "none: start the server with --vta-checkpoint NAME=DIR"
    if not checkpoint:
        raise InvalidInputError(f"generator=\"vta\" needs checkpoint, the name of one of the server's "
                                f"VTA checkpoints (allowed: {names})", field="checkpoint")
    if checkpoint not in allowed:
        raise InvalidInputError(f"checkpoint={checkpoint!r}: not a VTA checkpoint this server offers "
                                f"(allowed: {names})", field="checkpoint", value=checkpoint)
    if visual_scale is not None and not (math.isfinite(visual_scale) and visual_scale >= 0):
        raise InvalidInputError(f"vta_lambda={visual_scale!r}: must be a number >= 0", field="vta_lambda",
                                value=visual_scale)
    return allowed[checkpoint]
