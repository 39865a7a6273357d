"""Every limit and input check of the engine and its front doors, defined once.

The CLI, the server's wire models (and so docs/protocol.schema.json), the session manager,
the plan gate and the renderer all import their numbers and checks from here, so a request
that one front door accepts is never refused by the next layer for a different rule.

Checks raise InvalidInputError naming the field and the bad value, like every other input
error of the project. This module imports nothing heavy (numpy only inside ``check_audio``):
the protocol and the CLI's start-up import it.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import TYPE_CHECKING

from engine.errors import InvalidInputError

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

# ---------------------------------------------------------------------------- text
# Prompts, edit instructions and hints: a sentence or a paragraph, never a document.
MAX_PROMPT_CHARS = 4000
# One event's description: what a generator's text encoder can use (CLAP/T5 read ~77-512 tokens).
MAX_DESCRIPTION_CHARS = 300
# Session names are shown in DAW menus and become (slugged) folder names.
MAX_SESSION_NAME_CHARS = 128
# Characters of a session name kept in its folder name (a hash keeps names apart).
SESSION_SLUG_CHARS = 40
# Control characters (NUL above all) never make sense in a name and break file APIs; the C1
# range (U+0080-U+009F) includes terminal escapes (CSI) that garble logs and DAW track names.
CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"
_CONTROL = re.compile(f"[{CONTROL_CHARS}]")

# ---------------------------------------------------------------------------- plans
MAX_EVENTS = 64
MAX_DURATION_S = 600.0  # default scene length limit (setting max_duration_s)
# Timeline and video positions: a feature film runs for hours, so only a sanity bound.
MAX_POSITION_S = 1e7
# Simultaneous events a plan may hold by default (setting max_overlap). The paper asks for
# "fewer than three at once", but real layered scenes (wind, rain, thunder, a fire, a voice and
# a door) need more; per-event loudness targets keep the layers from piling up.
# MAX_OVERLAP_SETTING bounds what the setting may say.
DEFAULT_MAX_OVERLAP = 6
MAX_OVERLAP_SETTING = 16
# Loudness outside this window is either inaudible next to other stems or cannot be reached
# without clipping a 24-bit file; -70 LUFS is the BS.1770 absolute gate.
MIN_TARGET_LUFS = -70.0
MAX_TARGET_LUFS = -5.0
DEFAULT_TARGET_LUFS = -23.0  # EBU R128 programme loudness
MIN_CEILING_DBTP = -20.0
MAX_CEILING_DBTP = 0.0
DEFAULT_CEILING_DBTP = -1.0
# Seeds are 32-bit: every backend's generator (numpy, torch) takes them.
SEED_LIMIT = 2**32

# ---------------------------------------------------------------------------- audio
# One rule for every stage: a rate a DAW session can run at. Below 8 kHz nothing a generator
# makes survives; 384 kHz is the highest rate DAWs offer.
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000
DEFAULT_SAMPLE_RATE = 48000
MAX_CHANNELS = 64  # a WAV stem; far above any backend's output (1-2)

# ---------------------------------------------------------------------------- wire
MAX_ID_CHARS = 128  # request ids
MAX_JOB_ID_CHARS = 64
MAX_EVENT_ID_CHARS = 64
MAX_PATH_CHARS = 4096
MAX_FRAME_BYTES = 64 * 1024  # one client WebSocket frame
MAX_DATAGRAM_BYTES = 8 * 1024  # one client OSC datagram
MAX_VIDEO_BYTES = 8 * 1024**3  # a video a client names for a cue (setting max_video_bytes)


def clamp_target_lufs(value: float) -> float:
    """A loudness target moved inside [MIN_TARGET_LUFS, MAX_TARGET_LUFS] (planners' offsets)."""
    return max(MIN_TARGET_LUFS, min(MAX_TARGET_LUFS, value))


def check_number(
    field: str,
    value: object,
    *,
    minimum: float = -math.inf,
    maximum: float = math.inf,
    open_min: bool = False,
) -> float:
    """A finite real number (not a bool) within [minimum, maximum] (or (minimum, maximum])."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{field}={value!r}: must be a finite number", field=field, value=value)
    number = float(value)
    too_small = number <= minimum if open_min else number < minimum
    if too_small or number > maximum:
        bracket = "(" if open_min else "["
        raise InvalidInputError(
            f"{field}={value!r}: must be in {bracket}{minimum:g}, {maximum:g}]", field=field, value=value
        )
    return number


def check_duration_s(value: object, *, maximum: float = MAX_DURATION_S, field: str = "duration_s") -> float:
    """A scene length in seconds: (0, maximum]."""
    return check_number(field, value, minimum=0.0, maximum=maximum, open_min=True)


def check_position_s(value: object, *, field: str = "anchor_s") -> float:
    """A timeline position in seconds: [0, MAX_POSITION_S]."""
    return check_number(field, value, minimum=0.0, maximum=MAX_POSITION_S)


def check_integer(field: str, value: object, *, minimum: int, limit: int) -> int:
    """An int (not a bool, not a float) in [minimum, limit)."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < limit:
        raise InvalidInputError(
            f"{field}={value!r}: must be an integer in [{minimum}, {limit})", field=field, value=value
        )
    return value


def check_seed(value: object, *, field: str = "seed") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise InvalidInputError(
            f"{field}={value!r}: must be an integer in [0, 2**32)", field=field, value=value
        )
    return value


def check_sample_rate(value: object, *, field: str = "sample_rate") -> int:
    """The one sample-rate rule: an integer number of Hz in [8000, 384000]."""
    # numpy integers count as integers (a rate read from a file header may be one).
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or not MIN_SAMPLE_RATE <= int(value) <= MAX_SAMPLE_RATE):
        raise InvalidInputError(
            f"{field}={value!r}: must be an integer in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz",
            field=field,
            value=value,
        )
    return int(value)


def check_text(field: str, value: object, *, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """A prompt or instruction: non-empty text of bounded length, returned stripped."""
    if not isinstance(value, str) or not value.strip():
        shown = value if not isinstance(value, str) else value[:40]
        raise InvalidInputError(f"{field}={shown!r}: must not be empty", field=field, value=value)
    if len(value) > max_chars:
        raise InvalidInputError(
            f"{field}: {len(value)} characters; the limit is {max_chars}", field=field, value=len(value)
        )
    return value.strip()


def check_session_name(name: object) -> str:
    """A session name: 1..MAX_SESSION_NAME_CHARS characters, not blank, no control characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("session: must be a non-empty name", field="session", value=name)
    if len(name) > MAX_SESSION_NAME_CHARS:
        raise InvalidInputError(
            f"session: {len(name)} characters; the limit is {MAX_SESSION_NAME_CHARS}",
            field="session",
            value=name[:40] + "...",
        )
    if _CONTROL.search(name):
        raise InvalidInputError(
            f"session={name!r}: must not contain control characters", field="session", value=name
        )
    return name


def check_audio(
    audio: object, *, field: str = "audio", min_frames: int = 1, finite: bool = True
) -> "np.ndarray":
    """Audio in memory: float32 of shape (channels, frames), 1..MAX_CHANNELS channels, at least
    ``min_frames`` frames and (with ``finite``) no NaN or infinity. A 1-D array is one channel.
    Returns the float32 (channels, frames) array."""
    import numpy as np

    try:
        array = np.asarray(audio, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{field}: not an array of numbers", field=field) from None
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or not 1 <= array.shape[0] <= MAX_CHANNELS or array.shape[1] < min_frames:
        raise InvalidInputError(
            f"{field}: expected (channels, frames) with 1-{MAX_CHANNELS} channels, got shape {array.shape}",
            field=field,
            value=array.shape,
        )
    if finite and not np.all(np.isfinite(array)):
        raise InvalidInputError(f"{field}: contains NaN or infinite samples", field=field)
    return array


def check_video_path(path_text: str, *, max_bytes: int = MAX_VIDEO_BYTES) -> "Path":
    """A video file a client names: it must exist, be a regular readable file of a sane size.
    Returns the resolved path."""
    import os
    import stat
    from pathlib import Path

    path = Path(path_text).expanduser()
    try:
        info = path.stat()
    except (OSError, ValueError):
        raise InvalidInputError(
            f"video_path={path_text!r}: no such file", field="video_path", value=path_text
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError(
            f"video_path={path_text!r}: not a regular file", field="video_path", value=path_text
        )
    if info.st_size == 0 or info.st_size > max_bytes:
        raise InvalidInputError(
            f"video_path={path_text!r}: {info.st_size} bytes; must be 1..{max_bytes}",
            field="video_path",
            value=path_text,
        )
    if not os.access(path, os.R_OK):
        raise InvalidInputError(
            f"video_path={path_text!r}: not readable", field="video_path", value=path_text
        )
    return path.resolve()
