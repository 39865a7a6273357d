"""Which VTA checkpoint a server's client may use: a name the server was started with, never a path.

A server lists its allowed checkpoints as a name -> folder table (`serve --vta-checkpoint NAME=DIR`,
repeatable). A `video_cue` request with `generator: "vta"` names one; the name is checked here
before the job is accepted, so a wrong name costs the client one error listing the allowed names
and leaves no empty session behind. Imports nothing heavy: the dispatcher calls this on its loop.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Mapping

from engine.errors import InvalidInputError

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


def check_vta_table(table: Mapping[str, Path]) -> None:
    """At server start: every allowed checkpoint must be a readable, complete folder (each part
    named with the command that makes it), so a client never meets a half-trained one."""
    from engine.video.checkpoint import read_checkpoint  # reads JSON and .npy only, no models

    for name, folder in table.items():
        add_checkpoint({}, name, folder)  # the name rule, for tables built in code
        read_checkpoint(folder)


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
