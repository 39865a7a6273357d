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
import soundfile as sf

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "daw_scripts" / "reaper"
_ids = itertools.count(1)

ITEM_VALUES = {"D_POSITION", "D_LENGTH", "D_VOL", "D_FADEINLEN", "D_FADEOUTLEN", "B_MUTE", "D_SNAPOFFSET",
               "I_GROUPID", "I_CUSTOMCOLOR"}
TAKE_VALUES = {"D_STARTOFFS", "D_PLAYRATE", "D_VOL"}
TRACK_VALUES = {"I_FOLDERDEPTH", "D_VOL", "B_MUTE", "I_CUSTOMCOLOR"}


@dataclass(eq=False)
class Source:
    """A PCM source. A SECTION source (what "Item properties: Reverse" or "Loop section of
    source" make) wraps a parent and has no file name of its own: GetMediaSourceFileName gives ""
    and GetMediaSourceParent/PCM_Source_GetSectionInfo lead to the file (REAPER API doc of
    PCM_Source_GetSectionInfo: "If a section/reverse block, retrieves offset/len/reverse")."""

    filename: str
    kind: str = "WAVE"
    destroyed: bool = False
    parent: "Source | None" = None
    section: tuple[float, float, bool] | None = None  # offset_s, length_s, reversed
    peaks_built: bool = False
    peak_stage: int = 0

    def root(self) -> "Source":
        return self.parent.root() if self.parent is not None else self

    def copy(self) -> "Source":
        return Source(self.filename, self.kind, parent=self.parent.copy() if self.parent else None,
                      section=self.section, peaks_built=self.peaks_built)


@dataclass(eq=False)
class Take:
    source: Source | None = None
    name: str = ""
    values: dict[str, float] = field(default_factory=lambda: {"D_STARTOFFS": 0.0, "D_PLAYRATE": 1.0, "D_VOL": 1.0})
    ext: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class Item:
    track: "Track"
    values: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in ITEM_VALUES} | {"D_VOL": 1.0})
    strings: dict[str, str] = field(default_factory=dict)
    takes: list[Take] = field(default_factory=list)
    active: int = 0
    selected: bool = False
    guid: str = field(default_factory=lambda: f"{{item-{next(_ids)}}}")

    @property
    def take(self) -> Take | None:
        return self.takes[self.active] if self.takes else None

    def snapshot(self) -> dict[str, Any]:
        """Everything a user could have set on this item, for before/after comparisons."""
        take = self.take
        return {
            "track": self.track.name,
            "values": dict(self.values),
            "strings": dict(self.strings),
            "take_name": take.name if take else None,
            "take_values": dict(take.values) if take else None,
            "source": take.source.root().filename if take and take.source else None,
        }


@dataclass(eq=False)
class Track:
    name: str = ""
    depth: int = 0
    ext: dict[str, str] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    fx_count: int = 0
    guid: str = field(default_factory=lambda: f"{{track-{next(_ids)}}}")
    color: int = 0


@dataclass(eq=False)
class Project:
    """One project tab. Undo is a list of whole-project snapshots, as in REAPER: an undo point
    stores the project's state (tracks, items, project ext state) at the moment it is made, so
    anything changed outside an undo block is swept into the next point, whoever makes it, and
    Ctrl+Z restores the previous snapshot. (REAPER KB, ReaScript "Undo":
    https://reaper-kb.hausofgroves.com/section/reascript_prose/reascript-howto-undo — flags 1/4/8
    = track configurations, track items, project states.) Restored objects are new objects: a
    pointer a script held from before the undo no longer validates."""

    name: str = "untitled"
    tracks: list[Track] = field(default_factory=list)
    ext: dict[tuple[str, str], str] = field(default_factory=dict)
    time_offset_s: float = 0.0
    media_path: str = ""
    markers: list[dict[str, Any]] = field(default_factory=list)  # regions too (is_region)
    history: list[tuple[str, Any]] = field(default_factory=list)
    position: int = 0

    def __post_init__(self) -> None:
        self.history = [("<open>", self.state())]

    def all_items(self) -> list[Item]:
        return [item for track in self.tracks for item in track.items]

    def state(self) -> Any:
        def take_state(take: Take) -> Any:
            return (take.name, dict(take.values), dict(take.ext), take.source.copy() if take.source else None)

        tracks = []
        for track in self.tracks:
            items = [(dict(i.values), dict(i.strings), [take_state(t) for t in i.takes], i.active, i.guid)
                     for i in track.items]
            tracks.append((track.name, track.depth, dict(track.ext), track.fx_count, track.guid, items,
                           track.color))
        return (tracks, dict(self.ext), [dict(m) for m in self.markers])

    @staticmethod
    def comparable(state: Any) -> Any:
        tracks, ext, markers = state
        def src(s: Source | None) -> Any:
            return None if s is None else (s.filename, s.kind, s.section, src(s.parent))
        return ([(n, d, e, fx, g, c, [(v, st, [(tn, tv, te, src(ts)) for tn, tv, te, ts in takes], a, ig)
                                       for v, st, takes, a, ig in items])
                 for n, d, e, fx, g, items, c in tracks], ext, markers)

    def restore(self, state: Any) -> None:
        tracks, ext, markers = state
        self.tracks = []
        self.markers = [dict(m) for m in markers]
        for name, depth, track_ext, fx, guid, items, color in tracks:
            track = Track(name=name, depth=depth, ext=dict(track_ext), fx_count=fx, guid=guid, color=color)
            for values, strings, takes, active, item_guid in items:
                item = Item(track=track, values=dict(values), strings=dict(strings), active=active, guid=item_guid)
                item.takes = [Take(source=s.copy() if s else None, name=n, values=dict(v), ext=dict(e))
                              for n, v, e, s in takes]
                track.items.append(item)
            self.tracks.append(track)
        self.ext = dict(ext)

    def add_undo_point(self, description: str) -> None:
        del self.history[self.position + 1:]  # a new point drops the redo states
        self.history.append((description, self.state()))
        self.position = len(self.history) - 1

    def undo(self) -> str | None:
        """Ctrl+Z: back to the snapshot before the current point."""
        if self.position == 0:
            return None
        description = self.history[self.position][0]
        self.position -= 1
        self.restore(self.history[self.position][1])
        return description

    def redo(self) -> str | None:
        if self.position + 1 >= len(self.history):
            return None
        self.position += 1
        self.restore(self.history[self.position][1])
        return self.history[self.position][0]

    def undo_points(self) -> list[str]:
        return [description for description, _ in self.history[1:self.position + 1]]

    def empty_undo_points(self) -> list[str]:
        """Points that changed nothing against the point before them (REAPER still lists them)."""
        out = []
        for (_, before), (description, after) in zip(self.history, self.history[1:]):
            if self.comparable(before) == self.comparable(after):
                out.append(description)
        return out


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
                 exec_handler: Callable[[str, int], str | None] | None = None, sws: bool = False) -> None:
        self.sws = sws
        self.resource_path = Path(resource_path)
        self.os_name = os_name
        self.exec_handler = exec_handler or self.real_exec
        self.projects: list[Project] = [Project(name="project 1")]
        self.active = self.projects[0]
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.undo_log: list[tuple[Any, ...]] = []
        self.undo_depth = 0
        self._undo_project: Project | None = None
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
        self.ext_state: dict[tuple[str, str], str] = {}
        self.toggle_states: dict[tuple[int, int], int] = {}
        self.toolbar_refreshes: list[tuple[int, int]] = []
        self.script_path = ""
        self.command_id = 0
        self.answers: list[int] = []
        self.previews: list[tuple[str, str, bool]] = []
        self.stopped_previews: list[str] = []
        self._block_closed = False
        self.lua = lua54.LuaRuntime(unpack_returned_tuples=True)
        self.lua.globals().reaper = self._make_table()

    # ---- projects (tabs) -------------------------------------------------------------------
    @property
    def tracks(self) -> list[Track]:
        return self.active.tracks

    @property
    def proj_ext(self) -> dict[tuple[str, str], str]:
        return self.active.ext

    def new_project(self, name: str = "") -> Project:
        """File > New project tab: the new tab becomes the active one."""
        project = Project(name=name or f"project {len(self.projects) + 1}")
        self.projects.append(project)
        self.active = project
        return project

    def switch_to(self, project: Project) -> None:
        self.active = project

    def _proj(self, proj: Any) -> Project:
        # REAPER: 0 (or NULL) means the active project; otherwise a ReaProject* from EnumProjects.
        if proj is None or (isinstance(proj, (int, float)) and proj == 0):
            return self.active
        if isinstance(proj, Project) and any(p is proj for p in self.projects):
            return proj
        raise ValueError(f"fake reaper: {proj!r} is not a ReaProject*")

    def _owner(self, track: Track) -> Project:
        for project in self.projects:
            if any(t is track for t in project.tracks):
                return project
        raise ValueError("fake reaper: MediaTrack* is not in any open project")

    # ---- user actions (tests play the designer) ------------------------------------------
    def user_action(self, description: str, project: Project | None = None) -> None:
        """What REAPER does after the user's own edit: one undo point with the whole project."""
        (project or self.active).add_undo_point(description)

    def ctrl_z(self, project: Project | None = None) -> str | None:
        return (project or self.active).undo()

    def reverse_item(self, item: Item) -> Source:
        """Item properties > Reverse: the take's source becomes a reversed SECTION of the file."""
        take = item.take
        assert take is not None and take.source is not None
        length = float(sf.info(take.source.root().filename).duration) if take.source.root().filename else 0.0
        take.source = Source("", "SECTION", parent=take.source, section=(0.0, length, True))
        return take.source

    # ---- running scripts -----------------------------------------------------------------
    def run_script(self, name: str, scripts_dir: Path = SCRIPTS_DIR) -> None:
        """Run an action. REAPER adds an automatic undo point ("ReaScript: Run") for a script
        that neither calls defer() nor makes its own undo block (REAPER KB, ReaScript "Undo":
        "Undo points are created for ReaScripts by default. To prevent the automatic addition
        of an undo point, a script can call defer()")."""
        path = Path(scripts_dir) / name
        self.script_path = str(path)
        self.command_id = 50000 + sum(path.name.encode()) % 1000  # a stable id per action file
        deferred_before = len(self.deferred)
        self._block_closed = False
        self.lua.globals().dofile(str(path))
        self._check_undo_closed()
        if len(self.deferred) == deferred_before and not self._block_closed:
            self.active.add_undo_point("ReaScript: Run")

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
        self._check_undo_closed()

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
    def all_items(self, project: Project | None = None) -> list[Item]:
        return (project or self.active).all_items()

    def items_of_session(self, session: str, project: Project | None = None) -> dict[str, Item]:
        return {i.strings.get("P_EXT:audioagent_event", ""): i for i in self.all_items(project)
                if i.strings.get("P_EXT:audioagent_session") == session}

    def calls_named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]

    # ---- the API -------------------------------------------------------------------------
    def _make_table(self) -> Any:
        api = {}
        for name in dir(self):
            if name.startswith("api_") or (name.startswith("_sws_") and self.sws):
                short = name[4:] if name.startswith("api_") else name[5:]
                api[short] = self._recorded(short, getattr(self, name))
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
        self._owner(track)
        return track

    def _item(self, item: Item) -> Item:
        if not any(i is item for p in self.projects for i in p.all_items()):
            raise ValueError("fake reaper: MediaItem* is not in any open project")
        return item

    def _take(self, take: Take) -> Take:
        if not any(t is take for p in self.projects for i in p.all_items() for t in i.takes):
            raise ValueError("fake reaper: MediaItem_Take* is not in any open project")
        return take

    def api_ValidatePtr2(self, proj: Any, pointer: Any, type_name: str) -> bool:
        project = self._proj(proj)
        if type_name == "MediaTrack*":
            return any(t is pointer for t in project.tracks)
        if type_name == "MediaItem*":
            return any(i is pointer for i in project.all_items())
        if type_name == "MediaItem_Take*":
            return any(t is pointer for i in project.all_items() for t in i.takes)
        raise ValueError(f"fake reaper: ValidatePtr2 type {type_name!r} not modelled")

    def api_EnumProjects(self, index: int, _buf: str = "") -> tuple[Any, str]:
        # REAPER: idx -1 is the current (active) project; else the tab at idx, or NULL.
        index = int(index)
        if index == -1:
            return (self.active, self.active.name + ".RPP")
        if 0 <= index < len(self.projects):
            return (self.projects[index], self.projects[index].name + ".RPP")
        return (None, "")

    def api_GetProjectTimeOffset(self, proj: Any, rndframe: bool) -> float:
        # Project settings > "Project start time": positions in the API stay raw timeline
        # seconds; what the ruler shows (and timecode) is position + this offset.
        return self._proj(proj).time_offset_s

    def api_GetProjectPathEx(self, proj: Any, _buf: str = "") -> str:
        # The project's media folder (Project settings > Media > Path to save media files).
        project = self._proj(proj)
        return project.media_path or str(self.resource_path / "projects" / project.name / "Media")

    def api_ColorToNative(self, r: int, g: int, b: int) -> int:
        # Windows byte order (0x00bbggrr); REAPER's native order differs on macOS, so scripts
        # must always go through ColorToNative.
        return int(r) | (int(g) << 8) | (int(b) << 16)

    # markers and regions
    def api_AddProjectMarker2(self, proj: Any, is_region: bool, pos: float, region_end: float, name: str,
                              want_index: int, color: int) -> int:
        project = self._proj(proj)
        used = {m["number"] for m in project.markers if m["is_region"] == bool(is_region)}
        number = int(want_index) if int(want_index) >= 0 and int(want_index) not in used else \
            next(n for n in itertools.count(1) if n not in used)
        project.markers.append({"is_region": bool(is_region), "pos": float(pos), "end": float(region_end),
                                "name": name, "number": number, "color": int(color)})
        project.markers.sort(key=lambda m: m["pos"])
        return number

    def api_CountProjectMarkers(self, proj: Any) -> tuple[int, int, int]:
        markers = self._proj(proj).markers
        regions = sum(1 for m in markers if m["is_region"])
        return (len(markers), len(markers) - regions, regions)

    def api_EnumProjectMarkers3(self, proj: Any, index: int) -> tuple[int, bool, float, float, str, int, int]:
        markers = self._proj(proj).markers
        index = int(index)
        if not 0 <= index < len(markers):
            return (0, False, 0.0, 0.0, "", 0, 0)
        m = markers[index]
        return (index + 1, m["is_region"], m["pos"], m["end"], m["name"], m["number"], m["color"])

    def api_SetProjectMarker3(self, proj: Any, number: int, is_region: bool, pos: float, region_end: float,
                              name: str, color: int) -> bool:
        for m in self._proj(proj).markers:
            if m["number"] == int(number) and m["is_region"] == bool(is_region):
                m.update(pos=float(pos), end=float(region_end), name=name, color=int(color))
                return True
        return False

    # global ext state (REAPER's ExtState: not saved with any project; persist=True keeps it
    # in reaper-extstate.ini across restarts)
    def api_SetExtState(self, section: str, key: str, value: str, persist: bool) -> None:
        self.ext_state[(section, key)] = value

    def api_GetExtState(self, section: str, key: str) -> str:
        return self.ext_state.get((section, key), "")

    def api_DeleteExtState(self, section: str, key: str, persist: bool) -> None:
        self.ext_state.pop((section, key), None)

    # toolbar state of the running action
    def api_get_action_context(self) -> tuple[bool, str, int, int, int, int, int, str]:
        # is_new_value, filename, section id, command id, mode, resolution, value, contextstr
        return (False, self.script_path, 0, self.command_id, -1, -1, -1, "")

    def api_SetToggleCommandState(self, section: int, command_id: int, state: int) -> bool:
        self.toggle_states[(int(section), int(command_id))] = int(state)
        return True

    def api_RefreshToolbar2(self, section: int, command_id: int) -> None:
        self.toolbar_refreshes.append((int(section), int(command_id)))

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
        # REAPER: type 4 = Yes/No, answered 6 (yes) or 7 (no); the test queues answers.
        self.message_boxes.append((title, message))
        if int(kind) == 4:
            return self.answers.pop(0) if self.answers else 6
        return 1

    # previews: REAPER's Media Explorer (OpenMediaExplorer(file, play)), and the SWS extension's
    # CF_CreatePreview / CF_Preview_Play / CF_Preview_Stop where SWS is installed (``sws=True``)
    def api_OpenMediaExplorer(self, path: str, play: bool) -> Any:
        self.previews.append(("explorer", path, bool(play)))
        return None

    def _sws_CF_CreatePreview(self, source: Source) -> dict[str, Any]:
        preview = {"source": source, "playing": False}
        self.previews.append(("sws", source.filename, False))
        return preview

    def _sws_CF_Preview_Play(self, preview: dict[str, Any]) -> bool:
        preview["playing"] = True
        self.previews[-1] = ("sws", preview["source"].filename, True)
        return True

    def _sws_CF_Preview_Stop(self, preview: dict[str, Any]) -> bool:
        preview["playing"] = False
        self.stopped_previews.append(preview["source"].filename)
        return True

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

    def api_Undo_BeginBlock2(self, proj: Any) -> None:
        project = self._proj(proj)
        if self.undo_depth and project is not self._undo_project:
            raise RuntimeError("fake reaper: nested undo blocks on two projects")
        self._undo_project = project
        self.undo_depth += 1
        self.undo_log.append(("begin",))

    def api_Undo_EndBlock2(self, proj: Any, description: str, flags: int) -> None:
        project = self._proj(proj)
        if self.undo_depth <= 0:
            raise RuntimeError("Undo_EndBlock2 without Undo_BeginBlock2")
        if project is not self._undo_project:
            raise RuntimeError("fake reaper: Undo_EndBlock2 on another project than its begin")
        self.undo_depth -= 1
        self.undo_log.append(("end", description, flags))
        if self.undo_depth == 0:
            # The point is a snapshot of the whole project, taken now.
            project.add_undo_point(description)
            self._block_closed = True

    # project ext state
    def api_SetProjExtState(self, proj: Any, section: str, key: str, value: str) -> int:
        ext = self._proj(proj).ext
        if value == "":
            ext.pop((section, key), None)
        else:
            ext[(section, key)] = value
        return 1

    def api_GetProjExtState(self, proj: Any, section: str, key: str) -> tuple[int, str]:
        value = self._proj(proj).ext.get((section, key), "")
        return (1 if value else 0, value)

    # tracks
    def api_CountTracks(self, proj: Any) -> int:
        return len(self._proj(proj).tracks)

    def api_GetTrack(self, proj: Any, index: int) -> Track | None:
        tracks = self._proj(proj).tracks
        index = int(index)
        return tracks[index] if 0 <= index < len(tracks) else None

    def api_InsertTrackAtIndex(self, index: int, defaults: bool) -> None:
        # REAPER's InsertTrackAtIndex takes no project: it always inserts into the active tab.
        self.active.tracks.insert(int(index), Track())

    def api_DeleteTrack(self, track: Track) -> None:
        self._owner(track).tracks.remove(track)

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
            return float(self._owner(track).tracks.index(track) + 1)
        self._check(key, TRACK_VALUES)
        if key == "I_CUSTOMCOLOR":
            return float(track.color)
        return float(track.depth) if key == "I_FOLDERDEPTH" else 0.0

    def api_SetMediaTrackInfo_Value(self, track: Track, key: str, value: float) -> bool:
        self._track(track)
        self._check(key, TRACK_VALUES)
        if key == "I_FOLDERDEPTH":
            track.depth = int(value)
        if key == "I_CUSTOMCOLOR":
            track.color = int(value)
        return True

    def api_TrackFX_GetCount(self, track: Track) -> int:
        return self._track(track).fx_count

    def api_CountTrackMediaItems(self, track: Track) -> int:
        return len(self._track(track).items)

    def api_GetTrackMediaItem(self, track: Track, index: int) -> Item:
        return self._track(track).items[int(index)]

    # items
    def api_CountMediaItems(self, proj: Any) -> int:
        return len(self._proj(proj).all_items())

    def api_GetMediaItem(self, proj: Any, index: int) -> Item:
        return self._proj(proj).all_items()[int(index)]

    def api_GetSelectedMediaItem(self, proj: Any, index: int) -> Item | None:
        selected = [i for i in self._proj(proj).all_items() if i.selected]
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

    # item state chunks: only the shape the scripts rely on (each take's nested SOURCE blocks
    # with a FILE line at the leaf, as in an .RPP: <SOURCE SECTION ... <SOURCE WAVE FILE "...">>).
    def _source_chunk(self, source: Source, indent: str) -> list[str]:
        lines = [f"{indent}<SOURCE {source.kind}"]
        if source.parent is not None:
            offset_s, length_s, reverse = source.section or (0.0, 0.0, False)
            lines += [f"{indent}  LENGTH {length_s:.14g}", f"{indent}  STARTPOS {offset_s:.14g}",
                      f"{indent}  MODE {2 if reverse else 0}"]
            lines += self._source_chunk(source.parent, indent + "  ")
        else:
            lines.append(f'{indent}  FILE "{source.filename}"')
        lines.append(f"{indent}>")
        return lines

    def _item_chunk(self, item: Item) -> str:
        lines = ["<ITEM", f"POSITION {item.values['D_POSITION']:.14g}", f"LENGTH {item.values['D_LENGTH']:.14g}",
                 f"IGUID {item.guid}"]
        for index, take in enumerate(item.takes):
            if index:
                lines.append("TAKE SEL" if index == item.active else "TAKE")
            lines.append(f'NAME "{take.name}"')
            if take.source is not None:
                lines += self._source_chunk(take.source, "")
        lines.append(">")
        return "\n".join(lines) + "\n"

    def api_GetItemStateChunk(self, item: Item, _buf: str, is_undo: bool) -> tuple[bool, str]:
        return (True, self._item_chunk(self._item(item)))

    def api_SetItemStateChunk(self, item: Item, chunk: str, is_undo: bool) -> bool:
        """REAPER re-reads the item from the chunk. The fake accepts only a chunk that differs
        from the current one in FILE lines (all the scripts change) and re-points those sources."""
        self._item(item)
        current = self._item_chunk(item).splitlines()
        wanted = chunk.rstrip("\n").splitlines()
        if len(current) != len(wanted):
            raise ValueError("fake reaper: SetItemStateChunk with a different structure")
        files = []
        for old, new in zip(current, wanted):
            if old.strip().startswith("FILE ") and new.strip().startswith("FILE "):
                files.append(new.strip()[len("FILE "):].strip('"'))
            elif old != new:
                raise ValueError(f"fake reaper: SetItemStateChunk changed {old!r} to {new!r}")
        leaves = [take.source.root() for take in item.takes if take.source is not None]
        for take, filename in zip([t for t in item.takes if t.source is not None], files):
            old_root = take.source.root()
            if old_root.filename == filename:
                continue
            new_root = Source(filename, "WAVE")
            self.sources.append(new_root)
            if take.source is old_root:
                take.source = new_root
            else:  # re-wrap the same section around the new file
                node = take.source
                while node.parent is not old_root:
                    node = node.parent
                node.parent = new_root
        del leaves
        return True

    # takes and sources
    def api_AddTakeToMediaItem(self, item: Item) -> Take:
        self._item(item)
        take = Take()
        item.takes.append(take)
        return take

    def api_GetActiveTake(self, item: Item) -> Take | None:
        return self._item(item).take

    def api_SetActiveTake(self, take: Take) -> None:
        for item in self.all_items_everywhere():
            for index, t in enumerate(item.takes):
                if t is take:
                    item.active = index
                    return
        raise ValueError("fake reaper: MediaItem_Take* is not in any open project")

    def all_items_everywhere(self) -> list[Item]:
        return [i for p in self.projects for i in p.all_items()]

    def api_CountTakes(self, item: Item) -> int:
        return len(self._item(item).takes)

    def api_GetTake(self, item: Item, index: int) -> Take | None:
        takes = self._item(item).takes
        return takes[int(index)] if 0 <= int(index) < len(takes) else None

    def api_GetMediaItemTake_Item(self, take: Take) -> Item:
        for item in self.all_items_everywhere():
            if any(t is take for t in item.takes):
                return item
        raise ValueError("fake reaper: MediaItem_Take* is not in any open project")

    def api_GetMediaItemTakeInfo_Value(self, take: Take, key: str) -> float:
        self._check(key, TAKE_VALUES)
        return self._take(take).values[key]

    def api_SetMediaItemTakeInfo_Value(self, take: Take, key: str, value: float) -> bool:
        self._check(key, TAKE_VALUES)
        self._take(take).values[key] = float(value)
        return True

    def api_GetSetMediaItemTakeInfo_String(self, take: Take, key: str, value: str, set_new: bool) -> tuple[bool, str]:
        self._take(take)
        if key.startswith("P_EXT:"):
            if set_new:
                take.ext[key] = value
            return (key in take.ext, take.ext.get(key, ""))
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

    def api_PCM_Source_BuildPeaks(self, source: Source, mode: int) -> int:
        """REAPER's protocol: mode 0 begins and returns nonzero when peaks need building, then
        mode 1 is called until it returns 0 (the percentage left), then mode 2 finishes. A
        source placed by the API gets no peaks otherwise, so its waveform stays blank."""
        mode = int(mode)
        if mode == 0:
            if source.peaks_built:
                return 0
            source.peak_stage = 2
            return 1
        if mode == 1:
            source.peak_stage = max(0, source.peak_stage - 1)
            return 50 * source.peak_stage
        if mode == 2:
            if source.peak_stage == 0:
                source.peaks_built = True
            return 0
        raise ValueError(f"fake reaper: PCM_Source_BuildPeaks mode {mode}")

    def api_SetMediaItemTake_Source(self, take: Take, source: Source) -> bool:
        self._take(take).source = source  # like REAPER: the old source is not destroyed here
        return True

    def api_GetMediaItemTake_Source(self, take: Take) -> Source | None:
        return self._take(take).source

    def api_GetMediaSourceFileName(self, source: Source, _buf: str = "") -> str:
        return "" if source.kind == "SECTION" else source.filename

    def api_GetMediaSourceType(self, source: Source, _buf: str = "") -> str:
        return source.kind

    def api_GetMediaSourceParent(self, source: Source) -> Source | None:
        return source.parent

    def api_PCM_Source_GetSectionInfo(self, source: Source) -> tuple[bool, float, float, bool]:
        if source.section is None:
            return (False, 0.0, 0.0, False)
        offset_s, length_s, reverse = source.section
        return (True, offset_s, length_s, reverse)
