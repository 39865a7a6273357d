"""A fake `reaper` API table for running the Audio-Agent ReaScripts under lupa (Lua 5.4).

It implements exactly the functions the scripts call, with REAPER's argument order and return
shapes, keeps a small project model (tracks, items, takes, sources, P_EXT, project ext state,
undo blocks) and records every call. Unknown parameter names raise, so a typo in a script
fails the test instead of silently doing nothing; so does a dead track/item pointer, and an undo
block left open at the end of a defer cycle. The defer loop is driven from Python with
``run_deferred()``; ``ExecProcess`` goes to a handler the test supplies (or really runs the
command, split the way REAPER splits it on macOS/Linux: no shell).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import lupa.lua54 as lua54

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "daw_scripts" / "reaper"
_ids = itertools.count(1)

ITEM_VALUES = {"D_POSITION", "D_LENGTH", "D_VOL", "D_FADEINLEN", "D_FADEOUTLEN", "B_MUTE", "D_SNAPOFFSET"}
TAKE_VALUES = {"D_STARTOFFS", "D_PLAYRATE", "D_VOL"}
TRACK_VALUES = {"I_FOLDERDEPTH", "D_VOL", "B_MUTE"}


@dataclass(eq=False)
class Source:
    filename: str
    kind: str = "WAVE"
    destroyed: bool = False


@dataclass(eq=False)
class Take:
    source: Source | None = None
    name: str = ""
    values: dict[str, float] = field(default_factory=lambda: {"D_STARTOFFS": 0.0, "D_PLAYRATE": 1.0, "D_VOL": 1.0})


@dataclass(eq=False)
class Item:
    track: "Track"
    values: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in ITEM_VALUES} | {"D_VOL": 1.0})
    strings: dict[str, str] = field(default_factory=dict)
    takes: list[Take] = field(default_factory=list)
    selected: bool = False
    guid: str = field(default_factory=lambda: f"{{item-{next(_ids)}}}")

    @property
    def take(self) -> Take | None:
        return self.takes[0] if self.takes else None

    def snapshot(self) -> dict[str, Any]:
        """Everything a user could have set on this item, for before/after comparisons."""
        take = self.take
        return {
            "track": self.track.name,
            "values": dict(self.values),
            "strings": dict(self.strings),
            "take_name": take.name if take else None,
            "take_values": dict(take.values) if take else None,
            "source": take.source.filename if take and take.source else None,
        }


@dataclass(eq=False)
class Track:
    name: str = ""
    depth: int = 0
    ext: dict[str, str] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    fx_count: int = 0
    guid: str = field(default_factory=lambda: f"{{track-{next(_ids)}}}")


QUOTES = "'\"`"


def split_exec_line(cmdline: str) -> list[str]:
    """How REAPER's ExecProcess turns a command line into argv on macOS/Linux: no shell; words
    split at spaces; a word that starts with ', " or ` runs to the next same quote (dropped),
    with no escapes. Whatever that leaves ambiguous (a quote inside a word, text glued to a
    closing quote, an unclosed quote) raises, so a script cannot lean on shell-only syntax."""
    argv: list[str] = []
    i, n = 0, len(cmdline)
    while i < n:
        char = cmdline[i]
        if char == " ":
            i += 1
            continue
        if char in QUOTES:
            end = cmdline.find(char, i + 1)
            if end < 0:
                raise ValueError(f"fake ExecProcess: unclosed {char} in {cmdline!r}")
            if end + 1 < n and cmdline[end + 1] != " ":
                raise ValueError(f"fake ExecProcess: text glued to a closing {char} in {cmdline!r}")
            argv.append(cmdline[i + 1:end])
            i = end + 1
            continue
        end = cmdline.find(" ", i)
        word = cmdline[i:] if end < 0 else cmdline[i:end]
        if any(q in word for q in QUOTES):
            raise ValueError(f"fake ExecProcess: a quote inside the word {word!r} is kept literally by REAPER")
        argv.append(word)
        i = n if end < 0 else end
    return argv


class FakeReaper:
    def __init__(self, *, resource_path: Path, os_name: str = "Linux",
                 exec_handler: Callable[[str, int], str | None] | None = None) -> None:
        self.resource_path = Path(resource_path)
        self.os_name = os_name
        self.exec_handler = exec_handler or self.real_exec
        self.tracks: list[Track] = []
        self.proj_ext: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.undo_log: list[tuple[Any, ...]] = []
        self.undo_depth = 0
        self.deferred: list[Any] = []
        self.atexit_fns: list[Any] = []
        self.message_boxes: list[tuple[str, str]] = []
        self.console: list[str] = []
        self.user_inputs: list[tuple[bool, str]] = []
        self.user_input_requests: list[tuple[str, int, str, str]] = []
        self.clock_s = 1000.0
        self.cursor_s = 0.0
        self.time_selection = (0.0, 0.0)
        self.sources: list[Source] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.exec_commands: list[tuple[str, int]] = []
        self.lua = lua54.LuaRuntime(unpack_returned_tuples=True)
        self.lua.globals().reaper = self._make_table()

    # ---- running scripts -----------------------------------------------------------------
    def run_script(self, name: str, scripts_dir: Path = SCRIPTS_DIR) -> None:
        path = Path(scripts_dir) / name
        self.lua.globals().dofile(str(path))
        self._check_undo_closed()

    def _check_undo_closed(self) -> None:
        # REAPER runs other actions (the user's edits) between defer cycles; an undo block
        # still open then would swallow their undo points, so a block must close in its cycle.
        if self.undo_depth:
            raise AssertionError("fake reaper: an undo block was left open at the end of a defer cycle")

    def load_lib(self, scripts_dir: Path = SCRIPTS_DIR) -> Any:
        lib = self.lua.globals().dofile(str(Path(scripts_dir) / "AudioAgent_lib.lua"))
        return lib.init(str(scripts_dir) + "/")

    def run_deferred(self, cycles: int = 1) -> None:
        for _ in range(cycles):
            pending, self.deferred = self.deferred, []
            for fn in pending:
                fn()
                self._check_undo_closed()

    @property
    def running(self) -> bool:
        return bool(self.deferred)

    def exit_script(self) -> None:
        """What REAPER does when the user terminates a deferred script."""
        self.deferred = []
        for fn in self.atexit_fns:
            fn()
        self.atexit_fns = []

    def real_exec(self, cmdline: str, timeout_ms: int) -> str | None:
        """Like REAPER on macOS/Linux: the line is split by ``split_exec_line`` and run with
        no shell in between (a line that only a shell would understand fails here too)."""
        if sys.platform == "win32":  # pragma: no cover - the CI runs POSIX
            raise RuntimeError("real ExecProcess is only wired for POSIX in tests")
        argv = split_exec_line(cmdline)
        try:
            if timeout_ms < 0:
                self.processes.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.DEVNULL))
                return ""
            done = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=(timeout_ms / 1000) if timeout_ms else None)
        except OSError:
            return None  # REAPER: NULL on total failure
        return f"{done.returncode}\n{done.stdout}"

    # ---- queries for tests ---------------------------------------------------------------
    def all_items(self) -> list[Item]:
        return [item for track in self.tracks for item in track.items]

    def items_of_session(self, session: str) -> dict[str, Item]:
        return {i.strings.get("P_EXT:audioagent_event", ""): i for i in self.all_items()
                if i.strings.get("P_EXT:audioagent_session") == session}

    def calls_named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]

    # ---- the API -------------------------------------------------------------------------
    def _make_table(self) -> Any:
        api = {}
        for name in dir(self):
            if name.startswith("api_"):
                api[name[4:]] = self._recorded(name[4:], getattr(self, name))
        return self.lua.table_from(api)

    def _recorded(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls.append((name, args))
            return fn(*args)
        return call

    @staticmethod
    def _check(name: str, allowed: set[str]) -> None:
        if name not in allowed:
            raise ValueError(f"fake reaper: unknown parameter {name!r}")

    # A track or item the user deleted (or undid away) is a dead pointer: REAPER refuses it,
    # and so does the fake, so scripts must check with ValidatePtr2 before touching old ones.
    def _track(self, track: Track) -> Track:
        if not any(t is track for t in self.tracks):
            raise ValueError("fake reaper: MediaTrack* is not in the project")
        return track

    def _item(self, item: Item) -> Item:
        if not any(i is item for i in self.all_items()):
            raise ValueError("fake reaper: MediaItem* is not in the project")
        return item

    def api_ValidatePtr2(self, proj: int, pointer: Any, type_name: str) -> bool:
        if type_name == "MediaTrack*":
            return any(t is pointer for t in self.tracks)
        if type_name == "MediaItem*":
            return any(i is pointer for i in self.all_items())
        if type_name == "MediaItem_Take*":
            return any(t is pointer for i in self.all_items() for t in i.takes)
        raise ValueError(f"fake reaper: ValidatePtr2 type {type_name!r} not modelled")

    def api_GetOS(self) -> str:
        return self.os_name

    def api_GetResourcePath(self) -> str:
        return str(self.resource_path)

    def api_RecursiveCreateDirectory(self, path: str, _ignored: int = 0) -> int:
        Path(path).mkdir(parents=True, exist_ok=True)
        return 1

    def api_file_exists(self, path: str) -> bool:
        return os.path.isfile(path)

    def api_time_precise(self) -> float:
        return self.clock_s

    def api_ShowConsoleMsg(self, text: str) -> None:
        self.console.append(text)

    def api_ShowMessageBox(self, message: str, title: str, kind: int) -> int:
        self.message_boxes.append((title, message))
        return 1

    def api_GetUserInputs(self, title: str, count: int, captions: str, defaults: str) -> tuple[bool, str]:
        # REAPER: captions are always split at commas; "extrawidth=N" and "separator=X" (one
        # character) are option fields, not captions; at most 16 fields; the defaults use X.
        fields = captions.split(",")
        options = [f for f in fields if f.startswith(("extrawidth=", "separator="))]
        labels = [f for f in fields if f not in options]
        if len(labels) != int(count) or not 1 <= int(count) <= 16:
            raise ValueError(f"fake reaper: GetUserInputs wants {count} fields, captions give {labels}")
        separator = ","
        for option in options:
            if option.startswith("separator="):
                separator = option[len("separator="):]
                if len(separator) != 1:
                    raise ValueError(f"fake reaper: separator must be one character, got {separator!r}")
            elif not option[len("extrawidth="):].isdigit():
                raise ValueError(f"fake reaper: bad option {option!r}")
        if len(defaults.split(separator)) > int(count):
            raise ValueError(f"fake reaper: more defaults than fields in {defaults!r}")
        self.user_input_requests.append((title, count, captions, defaults))
        if not self.user_inputs:
            return (False, "")
        return self.user_inputs.pop(0)

    def api_GetSet_LoopTimeRange(self, is_set: bool, is_loop: bool, start: float, end: float,
                                 seek: bool) -> tuple[float, float]:
        if is_set:
            self.time_selection = (start, end)
        return self.time_selection

    def api_GetCursorPosition(self) -> float:
        return self.cursor_s

    def api_ExecProcess(self, cmdline: str, timeout_ms: int) -> str | None:
        self.exec_commands.append((cmdline, int(timeout_ms)))
        return self.exec_handler(cmdline, int(timeout_ms))

    def api_defer(self, fn: Any) -> None:
        self.deferred.append(fn)

    def api_atexit(self, fn: Any) -> None:
        self.atexit_fns.append(fn)

    def api_UpdateArrange(self) -> None:
        pass

    def api_Undo_BeginBlock2(self, proj: int) -> None:
        self.undo_depth += 1
        self.undo_log.append(("begin",))

    def api_Undo_EndBlock2(self, proj: int, description: str, flags: int) -> None:
        if self.undo_depth <= 0:
            raise RuntimeError("Undo_EndBlock2 without Undo_BeginBlock2")
        self.undo_depth -= 1
        self.undo_log.append(("end", description, flags))

    # project ext state
    def api_SetProjExtState(self, proj: int, section: str, key: str, value: str) -> int:
        if value == "":
            self.proj_ext.pop((section, key), None)
        else:
            self.proj_ext[(section, key)] = value
        return 1

    def api_GetProjExtState(self, proj: int, section: str, key: str) -> tuple[int, str]:
        value = self.proj_ext.get((section, key), "")
        return (1 if value else 0, value)

    # tracks
    def api_CountTracks(self, proj: int) -> int:
        return len(self.tracks)

    def api_GetTrack(self, proj: int, index: int) -> Track | None:
        index = int(index)
        return self.tracks[index] if 0 <= index < len(self.tracks) else None

    def api_InsertTrackAtIndex(self, index: int, defaults: bool) -> None:
        self.tracks.insert(int(index), Track())

    def api_DeleteTrack(self, track: Track) -> None:
        self.tracks.remove(self._track(track))

    def api_GetSetMediaTrackInfo_String(self, track: Track, key: str, value: str, set_new: bool) -> tuple[bool, str]:
        self._track(track)
        if key == "P_NAME":
            if set_new:
                track.name = value
            return (True, track.name)
        if not key.startswith("P_EXT:"):
            raise ValueError(f"fake reaper: unknown track string {key!r}")
        if set_new:
            track.ext[key] = value
        return (key in track.ext, track.ext.get(key, ""))

    def api_GetMediaTrackInfo_Value(self, track: Track, key: str) -> float:
        self._track(track)
        if key == "IP_TRACKNUMBER":
            return float(self.tracks.index(track) + 1)
        self._check(key, TRACK_VALUES)
        return float(track.depth) if key == "I_FOLDERDEPTH" else 0.0

    def api_SetMediaTrackInfo_Value(self, track: Track, key: str, value: float) -> bool:
        self._track(track)
        self._check(key, TRACK_VALUES)
        if key == "I_FOLDERDEPTH":
            track.depth = int(value)
        return True

    def api_TrackFX_GetCount(self, track: Track) -> int:
        return self._track(track).fx_count

    def api_CountTrackMediaItems(self, track: Track) -> int:
        return len(self._track(track).items)

    def api_GetTrackMediaItem(self, track: Track, index: int) -> Item:
        return self._track(track).items[int(index)]

    # items
    def api_CountMediaItems(self, proj: int) -> int:
        return len(self.all_items())

    def api_GetMediaItem(self, proj: int, index: int) -> Item:
        return self.all_items()[int(index)]

    def api_GetSelectedMediaItem(self, proj: int, index: int) -> Item | None:
        selected = [i for i in self.all_items() if i.selected]
        return selected[int(index)] if int(index) < len(selected) else None

    def api_AddMediaItemToTrack(self, track: Track) -> Item:
        self._track(track)
        item = Item(track=track)
        track.items.append(item)
        return item

    def api_DeleteTrackMediaItem(self, track: Track, item: Item) -> bool:
        self._track(track)
        if item not in track.items:
            return False
        track.items.remove(item)
        return True

    def api_GetMediaItem_Track(self, item: Item) -> Track:
        return self._item(item).track

    def api_GetMediaItemInfo_Value(self, item: Item, key: str) -> float:
        self._item(item)
        self._check(key, ITEM_VALUES)
        return item.values[key]

    def api_SetMediaItemInfo_Value(self, item: Item, key: str, value: float) -> bool:
        self._item(item)
        self._check(key, ITEM_VALUES)
        item.values[key] = float(value)
        return True

    def api_GetSetMediaItemInfo_String(self, item: Item, key: str, value: str, set_new: bool) -> tuple[bool, str]:
        self._item(item)
        if key == "GUID":
            return (True, item.guid)
        if key != "P_NOTES" and not key.startswith("P_EXT:"):
            raise ValueError(f"fake reaper: unknown item string {key!r}")
        if set_new:
            item.strings[key] = value
        return (key in item.strings, item.strings.get(key, ""))

    # takes and sources
    def api_AddTakeToMediaItem(self, item: Item) -> Take:
        self._item(item)
        take = Take()
        item.takes.append(take)
        return take

    def api_GetActiveTake(self, item: Item) -> Take | None:
        return self._item(item).take

    def api_GetMediaItemTakeInfo_Value(self, take: Take, key: str) -> float:
        self._check(key, TAKE_VALUES)
        return take.values[key]

    def api_SetMediaItemTakeInfo_Value(self, take: Take, key: str, value: float) -> bool:
        self._check(key, TAKE_VALUES)
        take.values[key] = float(value)
        return True

    def api_GetSetMediaItemTakeInfo_String(self, take: Take, key: str, value: str, set_new: bool) -> tuple[bool, str]:
        if key != "P_NAME":
            raise ValueError(f"fake reaper: unknown take string {key!r}")
        if set_new:
            take.name = value
        return (True, take.name)

    def api_PCM_Source_CreateFromFile(self, filename: str) -> Source:
        source = Source(filename=filename, kind="VIDEO" if filename.endswith((".mp4", ".mov")) else "WAVE")
        self.sources.append(source)
        return source

    def api_PCM_Source_Destroy(self, source: Source) -> None:
        source.destroyed = True

    def api_SetMediaItemTake_Source(self, take: Take, source: Source) -> bool:
        take.source = source  # like REAPER: the old source is not destroyed here
        return True

    def api_GetMediaItemTake_Source(self, take: Take) -> Source | None:
        return take.source

    def api_GetMediaSourceFileName(self, source: Source, _buf: str = "") -> str:
        return source.filename

    def api_GetMediaSourceType(self, source: Source, _buf: str = "") -> str:
        return source.kind
