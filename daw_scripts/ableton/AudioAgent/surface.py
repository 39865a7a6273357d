"""The Audio-Agent control surface: server OSC in, arrangement clips out.

Live calls update_display() about every 100 ms on its main thread; that is the only place the
UDP socket is read (non-blocking), so the Live API is never touched from another thread. Each
datagram is decoded by our own OSC codec and handled inside one try/except: a malformed or
unexpected message is logged and dropped, never raised into Live.

Which clip belongs to which event is kept in the Live Set itself (Song.set_data), and each of
our tracks carries its own id (Track.set_data, where this Live has it; else its name), so edits
made after reopening the set (or renaming a track) still find their clips. Every version the
server finishes is reconciled as a whole: missing clips are placed, clips of deleted events
removed, moved or changed ones replaced, re-gained ones re-gained, so a lost stem message is
recovered by the done message (or, when that came without its events, by asking the server for
the session). Each tick that changes the set is one undo step.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import socket
import time
from typing import Any

from . import osc
from .gain import GainCurve, parse_display_db

STATE_KEY = "audioagent.state"
TRACK_KEY = "audioagent.track"
MIN_LIVE_VERSION = (12, 0, 5)  # Track/ClipSlot.create_audio_clip
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024  # a burst of stem messages must not overflow the socket
PREFIX = "/audioagent/"
DEFAULT_CONFIG = {
    "server_host": "127.0.0.1",
    "server_osc_port": 9000,
    "listen_host": "127.0.0.1",
    "listen_port": 9001,
    "view": "arrangement",  # or "session": one clip slot per event instead of the timeline
    "default_duration_s": 10.0,
    "reroll_variations": 4,  # `aa reroll` without a count
}
MAX_DATAGRAMS_PER_TICK = 64
LOCATOR_SCAN_TICKS = 5  # ~0.5 s
TIME_EPS_BEATS = 1e-3
LOCATOR_GENERATE = re.compile(r"^\s*aa\s*:\s*(?P<text>.+?)\s*$", re.IGNORECASE)
LOCATOR_EDIT = re.compile(r"^\s*aa\s+edit\s*:\s*(?P<text>.+?)\s*$", re.IGNORECASE)
LOCATOR_SYNC = re.compile(r"^\s*aa\s+sync\s*$", re.IGNORECASE)
LOCATOR_SEND = re.compile(r"^\s*aa\s+send\s*$", re.IGNORECASE)
# `aa reroll [N]` over an event's clip: N new seeds of that event in one batched render, each on
# a scratch track beside the event's; `aa keep K` makes variation K of that re-roll the event's.
# A locator is sent once per wording, so any words after them ("aa reroll 3 again") ask again.
LOCATOR_REROLL = re.compile(r"^\s*aa\s+re-?roll(?:\s+(?P<count>\d+))?(?:\s+\D.*)?\s*$", re.IGNORECASE)
LOCATOR_KEEP = re.compile(r"^\s*aa\s+keep\s+(?P<number>\d+)(?:\s+.*)?\s*$", re.IGNORECASE)
MAX_VARIATIONS = 8  # engine.api.MAX_VARIATIONS
DURATION_SUFFIX = re.compile(r"\s*[\(\[]\s*(?P<s>\d+(?:\.\d+)?)\s*s\s*[\)\]]\s*$", re.IGNORECASE)

STEM_ARGS = ("id", "session", "version", "event_id", "stem_path", "start_s", "end_s", "gain_db",
             "target_lufs", "cache_hit", "change", "description")


def _last(vector: Any) -> Any:
    # Live's LOM vectors support len() and indexing; negative indices are not promised.
    return vector[len(vector) - 1]


def live_version() -> tuple[int, int, int] | None:
    """Live's version from its `Live` module, or None outside Live (or if it cannot say)."""
    try:
        import Live  # type: ignore[import-not-found]

        app = Live.Application.get_application()
        return (int(app.get_major_version()), int(app.get_minor_version()), int(app.get_bugfix_version()))
    except Exception:
        return None


class MessageError(ValueError):
    """A well-formed OSC message whose arguments do not match the Audio-Agent contract."""


def load_config(directory: str) -> dict[str, Any]:
    config = dict(DEFAULT_CONFIG)
    try:
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as handle:
            loaded = json.load(handle)
        if isinstance(loaded, dict):
            config.update({k: v for k, v in loaded.items() if k in DEFAULT_CONFIG})
    except (OSError, ValueError):
        pass
    return config


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MessageError(f"{name}={value!r}: expected a finite number")
    return float(value)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise MessageError(f"{name}={value!r}: expected a string")
    return value


def parse_stem(args: list[Any]) -> dict[str, Any]:
    if len(args) != len(STEM_ARGS):
        raise MessageError(f"stem_ready has {len(args)} arguments; expected {len(STEM_ARGS)}")
    stem = dict(zip(STEM_ARGS, args))
    for name in ("session", "event_id", "stem_path", "change", "description"):
        _text(stem[name], name)
    for name in ("start_s", "end_s", "gain_db", "target_lufs"):
        stem[name] = _number(stem[name], name)
    if stem["end_s"] <= stem["start_s"]:
        raise MessageError(f"end_s={stem['end_s']}: must be after start_s={stem['start_s']}")
    return stem


def normalise_path(path: str) -> str | None:
    """Forward slashes, no '.' parts; None when the path has a '..' part or is not absolute."""
    text = path.replace("\\", "/")
    if ".." in text.split("/"):
        return None
    if not (text.startswith("/") or re.match(r"^[A-Za-z]:/", text)):
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    lead = "/" if text.startswith("/") else ""
    return lead + "/".join(parts)


def path_is_under(path: str, root: str) -> bool:
    p, r = normalise_path(path), normalise_path(root)
    if not p or not r:
        return False
    if os.name == "nt":
        p, r = p.lower(), r.lower()
    return p.startswith(r.rstrip("/") + "/")


class AudioAgentSurface:
    def __init__(self, c_instance: Any, *, config: dict[str, Any] | None = None) -> None:
        self._c = c_instance
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        self.gain_curve = GainCurve()
        self.requests: dict[str, dict[str, Any]] = {}  # our own request id -> session, anchor_s
        self.pending: dict[str, list[dict[str, Any]]] = {}  # stems waiting for their scene's anchor
        self.awaiting_variations: set[str] = set()  # sessions whose re-roll comes by get_session
        self.stem_root: str | None = None
        self.ticks = 0
        self.log_lines: list[str] = []
        self.state = self._load_state()
        self.sock: socket.socket | None = None
        self.listen_port = 0
        self.receive_buffer_bytes = 0
        self._step_open = False
        self.version = live_version()
        self.unsupported = self.version is not None and self.version < MIN_LIVE_VERSION
        if self.unsupported:
            self.show("needs Live %d.%d.%d or newer to place clips (this is Live %d.%d.%d); nothing will be placed"
                      % (MIN_LIVE_VERSION + self.version))
        self._open_socket()
        if self.sock is not None:
            self.send("/audioagent/ping", [self._new_id(), self.listen_port])

    # ---- Live's ControlSurface interface ------------------------------------------------
    def song(self) -> Any:
        return self._c.song()

    def disconnect(self) -> None:
        self._save_state()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def update_display(self) -> None:
        self.ticks += 1
        try:
            self.poll()
            if self.ticks % LOCATOR_SCAN_TICKS == 0:
                self.scan_locators()
        except Exception as error:  # never let anything escape into Live's main loop
            self.log(f"tick failed: {error!r}")
        finally:
            self._end_step()

    # One undo step per tick that changes the set: Live would otherwise make an undo entry of
    # every single call (clip, name, gain), and Ctrl+Z would take a scene apart piece by piece.
    def _begin_step(self) -> None:
        if not self._step_open:
            try:
                self.song().begin_undo_step()
                self._step_open = True
            except Exception as error:
                self.log(f"no undo step: {error!r}")

    def _end_step(self) -> None:
        if self._step_open:
            self._step_open = False
            try:
                self.song().end_undo_step()
            except Exception as error:
                self.log(f"could not close the undo step: {error!r}")

    def refresh_state(self) -> None:
        pass

    def build_midi_map(self, midi_map_handle: Any) -> None:
        pass

    def receive_midi(self, midi_bytes: Any) -> None:
        pass

    def connect_script_instances(self, instanciated_scripts: Any) -> None:
        pass

    def port_settings_changed(self) -> None:
        pass

    def can_lock_to_devices(self) -> bool:
        return False

    def suggest_input_port(self) -> str:
        return ""

    def suggest_output_port(self) -> str:
        return ""

    def suggest_map_mode(self, cc_no: int, channel: int) -> int:
        return -1

    # The rest of what Live may call on a control surface; this one maps no MIDI or devices.
    def suggest_needs_takeover(self, cc_no: int, channel: int) -> bool:
        return False

    def supports_pad_translation(self) -> bool:
        return False

    def is_extension(self) -> bool:
        return False

    def lock_to_device(self, device: Any) -> None:
        pass

    def unlock_from_device(self, device: Any) -> None:
        pass

    def set_appointed_device(self, device: Any) -> None:
        pass

    def toggle_lock(self) -> None:
        pass

    def restore_bank(self, bank: Any) -> None:
        pass

    def handle_sysex(self, midi_bytes: Any) -> None:
        pass

    # ---- logging and state --------------------------------------------------------------
    def log(self, text: str) -> None:
        self.log_lines.append(text)
        try:
            self._c.log_message("AudioAgent: " + text)
        except Exception:
            pass

    def show(self, text: str) -> None:
        self.log(text)
        try:
            self._c.show_message("AudioAgent: " + text)
        except Exception:
            pass

    def _load_state(self) -> dict[str, Any]:
        try:
            raw = self.song().get_data(STATE_KEY, "")
            state = json.loads(raw) if raw else {}
        except Exception:
            state = {}
        if not isinstance(state, dict):
            state = {}
        state.setdefault("sessions", {})
        state.setdefault("sent_locators", [])
        state.setdefault("last_session", "")
        return state

    def _save_state(self) -> None:
        try:
            self.song().set_data(STATE_KEY, json.dumps(self.state))
        except Exception as error:
            self.log(f"could not store state in the set: {error!r}")

    def _session(self, name: str) -> dict[str, Any]:
        return self.state["sessions"].setdefault(name, {"anchor_s": None, "tracks": [], "events": {}})

    # ---- the socket ---------------------------------------------------------------------
    def _open_socket(self) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:  # the OS may cap it (Linux: net.core.rmem_max); what it granted is kept
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            except OSError as error:
                self.log(f"could not enlarge the receive buffer: {error}")
            sock.bind((self.config["listen_host"], int(self.config["listen_port"])))
        except OSError as error:
            self.show(f"cannot listen on UDP port {self.config['listen_port']}: {error}")
            return
        self.sock = sock
        self.listen_port = sock.getsockname()[1]
        self.receive_buffer_bytes = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def send(self, address: str, args: list[Any]) -> None:
        if self.sock is None:
            return
        target = (self.config["server_host"], int(self.config["server_osc_port"]))
        try:
            self.sock.sendto(osc.encode_message(address, args), target)
        except OSError as error:
            self.show(f"cannot reach the server at {target[0]}:{target[1]}: {error}")

    def _new_id(self) -> str:
        return f"live-{int(time.time() * 1000) % 10**9}-{random.randint(0, 9999):04d}"

    def poll(self) -> None:
        if self.sock is None:
            return
        for _ in range(MAX_DATAGRAMS_PER_TICK):
            try:
                data, _addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. ICMP port unreachable surfacing on Windows
                self.log(f"receive failed: {error}")
                return
            self.handle_datagram(data)

    def handle_datagram(self, data: bytes) -> None:
        try:
            messages = osc.decode_packet(data)
        except osc.OSCError as error:
            self.log(f"dropped a malformed datagram: {error}")
            return
        for address, args in messages:
            try:
                self.handle_message(address, args)
            except Exception as error:  # one bad message must not stop the others
                self.log(f"dropped {address}: {error}")

    # ---- server messages ----------------------------------------------------------------
    def handle_message(self, address: str, args: list[Any]) -> None:
        if not address.startswith(PREFIX):
            raise MessageError("not an Audio-Agent address")
        kind = address[len(PREFIX):]
        handler = getattr(self, "on_" + kind, None)
        if handler is None:
            raise MessageError(f"unknown message type {kind!r}")
        handler(list(args))

    def on_accepted(self, args: list[Any]) -> None:
        pass

    def on_progress(self, args: list[Any]) -> None:
        if len(args) >= 4:
            self.show(f"{_text(args[2], 'stage')} {int(_number(args[3], 'fraction') * 100)}%")

    def on_pong(self, args: list[Any]) -> None:
        pong = json.loads(_text(args[1], "json"))
        root = pong.get("stem_root") if isinstance(pong, dict) else None
        if isinstance(root, str) and root:
            self.stem_root = root

    def on_error(self, args: list[Any]) -> None:
        message = _text(args[2], "message") if len(args) > 2 else "unknown error"
        field = args[3] if len(args) > 3 and args[3] else ""
        self.show(f"error: {message}" + (f" (field: {field})" if field else ""))
        request = self.requests.pop(str(args[0]), None) if args else None
        if request and len(args) > 1 and args[1] == "conflict":
            # The scene moved on elsewhere: show the server's version; the designer asks again.
            self.request_sync(request["session"])

    def on_plan(self, args: list[Any]) -> None:
        if len(args) != 4:
            raise MessageError(f"plan has {len(args)} arguments; expected 4")
        plan = json.loads(_text(args[3], "plan_json"))
        session = _text(args[1], "session")
        if self.stem_root is None:  # the server may have started after Live: ask again
            self.send("/audioagent/ping", [self._new_id(), self.listen_port])
        anchor = plan.get("anchor_s") if isinstance(plan, dict) else None
        if isinstance(anchor, (int, float)) and self._session(session)["anchor_s"] is None:
            self._session(session)["anchor_s"] = float(anchor)
        self._bind_request(_text(args[0], "id"), session)

    def _bind_request(self, request_id: str, session: str) -> None:
        request = self.requests.get(request_id)
        if request and self._session(session)["anchor_s"] is None:
            self._session(session)["anchor_s"] = request["anchor_s"]

    def on_stem_ready(self, args: list[Any]) -> None:
        stem = parse_stem(args)
        self._check_path(stem["stem_path"])
        session = stem["session"]
        self._bind_request(str(stem["id"]), session)
        if self._session(session)["anchor_s"] is None:
            # A request started elsewhere (`audio-agent client ... --daw ableton`): its anchor
            # arrives with the done manifest.
            self.pending.setdefault(session, []).append(stem)
            return
        self.apply_stem(stem)

    def on_done(self, args: list[Any]) -> None:
        if len(args) != 4:
            raise MessageError(f"done has {len(args)} arguments; expected 4")
        session = _text(args[1], "session")
        manifest = json.loads(_text(args[3], "manifest_json"))
        if not isinstance(manifest, dict):
            raise MessageError("done manifest is not an object")
        info = self._session(session)
        if info["anchor_s"] is None:
            anchor = manifest.get("anchor_s", 0.0)
            info["anchor_s"] = float(anchor) if isinstance(anchor, (int, float)) else 0.0
        self.pending.pop(session, None)  # the manifest below says it all
        request = self.requests.get(_text(args[0], "id")) or {}
        if request.get("kind") == "changes":
            self.absorb_hand_changes(session)
        events = manifest.get("events")
        if not isinstance(events, list) or (manifest.get("truncated") and not events
                                            and manifest.get("event_count")):
            # Too big for one datagram, sent without its events: ask for the session instead.
            if request.get("reroll"):
                self.awaiting_variations.add(session)
            self.request_sync(session)
            return
        self.reconcile(session, events, manifest.get("failed") or [], version=args[2])
        if request.get("reroll"):
            self.place_variations(session, manifest.get("variations") or [])
        then = request.get("then")
        if then:  # the instruction that waited for the designer's own changes to land first
            self.send_request({"type": "edit", "session": session, "instruction": then}, session)

    def on_session(self, args: list[Any]) -> None:
        message = json.loads(_text(args[1], "json"))
        session = _text(message.get("session"), "session")
        info = message.get("info") or {}
        manifest = info.get("manifest") or {"events": []}
        if self._session(session)["anchor_s"] is None:
            anchor = info.get("anchor_s", manifest.get("anchor_s", 0.0))
            self._session(session)["anchor_s"] = float(anchor) if isinstance(anchor, (int, float)) else 0.0
        self.reconcile(session, manifest.get("events") or [], manifest.get("failed") or [],
                       version=info.get("current_version"))
        if session in self.awaiting_variations:  # a re-roll's done came without its events
            self.awaiting_variations.discard(session)
            self.place_variations(session, manifest.get("variations") or [])

    def request_sync(self, session: str) -> str:
        request_id = self._new_id()
        self.send("/audioagent/get_session", [request_id, session, self.listen_port])
        return request_id

    def reconcile(self, session: str, events: list[Any], failed: list[Any], *, version: Any) -> None:
        """Make the set match one version of the session: every event's clip placed where and
        how loud the server says; clips of events the version no longer has removed."""
        wanted: set[str] = set()
        for event in events:
            if not isinstance(event, dict) or not isinstance(event.get("id"), str):
                raise MessageError(f"manifest event {event!r} has no id")
            stem = {"session": session, "event_id": event["id"], "stem_path": _text(event.get("stem_path"), "stem_path"),
                    "start_s": _number(event.get("start_s"), "start_s"), "end_s": _number(event.get("end_s"), "end_s"),
                    "gain_db": float(event.get("gain_db", 0.0)), "target_lufs": event.get("target_lufs"),
                    "description": str(event.get("description", event["id"]))}
            self._check_path(stem["stem_path"])
            wanted.add(stem["event_id"])
            self.apply_stem(stem)
        keep = {str(f.get("id")) for f in failed if isinstance(f, dict)}
        for event_id in list(self._session(session)["events"]):
            if event_id not in wanted and event_id not in keep:
                self.remove_event(session, event_id)
        self.state["last_session"] = session
        self._session(session)["version"] = version
        self._save_state()
        failed_text = f"; {len(failed)} event(s) failed" if failed else ""
        self.show(f"scene {session} v{version} placed{failed_text}")

    def _check_path(self, path: str) -> None:
        if normalise_path(path) is None:
            raise MessageError(f"stem_path={path!r}: not absolute or contains '..'")
        if self.stem_root and not path_is_under(path, self.stem_root):
            raise MessageError(f"stem_path={path!r}: outside the server's stem root {self.stem_root}")

    # ---- placing clips ------------------------------------------------------------------
    def beats(self, seconds: float) -> float:
        return seconds * float(self.song().tempo) / 60.0

    def apply_stem(self, stem: dict[str, Any]) -> None:
        """Bring one event's clip to `stem`: nothing when it already matches, its gain when only
        that changed (shifted by the change, so the user's own trim stays), else a new clip."""
        if self.unsupported:
            return
        session, event_id = stem["session"], stem["event_id"]
        info = self._session(session)
        record = info["events"].get(event_id)
        found = self.find_clip(session, event_id)
        start_beats = self.beats(float(info["anchor_s"] or 0.0) + stem["start_s"])
        if found and record and record.get("path") == stem["stem_path"] and (
                self.config["view"] == "session" or abs(found[1].start_time - start_beats) < TIME_EPS_BEATS):
            before_db = record.get("gain_db")
            if isinstance(before_db, (int, float)) and abs(before_db - stem["gain_db"]) < 1e-6:
                return
            track, clip = found
            gain_db = stem["gain_db"]
            shown = parse_display_db(getattr(clip, "gain_display_string", None))
            if shown is not None and math.isfinite(shown) and isinstance(before_db, (int, float)):
                gain_db = shown + gain_db - before_db  # shift by the change: the user's trim stays
            self._begin_step()
            self.gain_curve.apply(clip, gain_db)
            record["gain_db"] = stem["gain_db"]
            return
        self._begin_step()
        reuse = None
        if found:  # changed or moved: an arrangement clip cannot be moved, so it is replaced
            track, clip = found
            if self.config["view"] == "session":
                track.clip_slots[0].delete_clip()
                reuse = track
            else:
                track.delete_clip(clip)
        self.place(stem, slot_track=reuse)

    # Our tracks carry an id of their own (Track.set_data) where this Live has per-track data,
    # so a renamed track is still ours; on a Live without it the name is the id.
    def _track_id(self, track: Any) -> str:
        get = getattr(track, "get_data", None)
        if callable(get):
            try:
                value = get(TRACK_KEY, "")
                if value:
                    return str(value)
            except Exception:
                pass
        return str(track.name)

    def _mark_track(self, track: Any, track_id: str) -> None:
        track.name = track_id
        setter = getattr(track, "set_data", None)
        if callable(setter):
            try:
                setter(TRACK_KEY, track_id)
            except Exception as error:
                self.log(f"could not store the track id (the name stays the id): {error!r}")

    def _tracks_by_name(self) -> dict[str, Any]:
        """Our tracks by id (see _track_id); other tracks by name."""
        return {self._track_id(track): track for track in self.song().tracks}

    def _free_track(self, session: str, start_beats: float, end_beats: float) -> Any:
        """The first of the session's tracks with nothing in [start, end): an arrangement clip
        would overwrite whatever it overlaps, so overlapping events need separate tracks."""
        info = self._session(session)
        tracks = self._tracks_by_name()
        for name in info["tracks"]:
            track = tracks.get(name)
            if track is None:
                continue
            if all(clip.end_time <= start_beats + TIME_EPS_BEATS or clip.start_time >= end_beats - TIME_EPS_BEATS
                   for clip in track.arrangement_clips):
                return track
        song = self.song()
        song.create_audio_track(-1)
        track = _last(song.tracks)
        self._mark_track(track, f"AA {session} {len(info['tracks']) + 1}")
        info["tracks"].append(self._track_id(track))
        return track

    def place(self, stem: dict[str, Any], *, slot_track: Any = None) -> None:
        session, event_id = stem["session"], stem["event_id"]
        info = self._session(session)
        start_s = float(info["anchor_s"] or 0.0) + stem["start_s"]
        start_beats = self.beats(start_s)
        end_beats = self.beats(start_s + stem["end_s"] - stem["start_s"])
        if self.config["view"] == "session":
            track, clip = self._place_in_slot(stem, slot_track)
        else:
            track = self._free_track(session, start_beats, end_beats)
            clip = track.create_audio_clip(stem["stem_path"], start_beats)
            if clip is None:  # older builds return nothing; find what was just made
                clip = next(c for c in track.arrangement_clips if abs(c.start_time - start_beats) < TIME_EPS_BEATS)
        clip.name = stem["description"]
        try:
            clip.warping = False  # play the stem at its own speed, whatever the tempo
        except Exception:
            pass
        self.gain_curve.apply(clip, stem["gain_db"])
        info["events"][event_id] = {"track": self._track_id(track), "start_beats": start_beats, "path": stem["stem_path"],
                                    "gain_db": stem["gain_db"], "description": stem["description"],
                                    "start_s": stem["start_s"], "length_s": stem["end_s"] - stem["start_s"],
                                    "target_lufs": stem.get("target_lufs")}

    def _place_in_slot(self, stem: dict[str, Any], track: Any = None) -> tuple[Any, Any]:
        """Session view has no timeline: one track per event, its clip in the first slot."""
        if track is None:
            song = self.song()
            song.create_audio_track(-1)
            track = _last(song.tracks)
            self._mark_track(track, f"AA {stem['session']} {stem['event_id']}")
            self._session(stem["session"])["tracks"].append(self._track_id(track))
        slot = track.clip_slots[0]
        clip = slot.create_audio_clip(stem["stem_path"])  # Live 12.0.5+ returns the clip
        return track, clip if clip is not None else slot.clip

    def find_clip(self, session: str, event_id: str) -> tuple[Any, Any] | None:
        record = self._session(session)["events"].get(event_id)
        if not record:
            return None
        track = self._tracks_by_name().get(record["track"])
        if track is None:
            if self.config["view"] == "session":
                return None
            # A track renamed on a Live without per-track data: our clip still plays our file.
            for candidate in self.song().tracks:
                for clip in candidate.arrangement_clips:
                    if getattr(clip, "file_path", None) == record["path"]:
                        return candidate, clip
            return None
        if self.config["view"] == "session":
            slot = track.clip_slots[0]
            return (track, slot.clip) if slot.has_clip else None
        candidates = list(track.arrangement_clips)
        for clip in candidates:
            if abs(clip.start_time - record["start_beats"]) < TIME_EPS_BEATS:
                return track, clip
        for clip in candidates:  # the user moved it: still ours if it plays our file
            if getattr(clip, "file_path", None) == record["path"]:
                return track, clip
        return None

    def remove_event(self, session: str, event_id: str) -> None:
        found = self.find_clip(session, event_id)
        if found:
            self._begin_step()
            track, clip = found
            if self.config["view"] == "session":
                track.clip_slots[0].delete_clip()
            else:
                track.delete_clip(clip)
        self._session(session)["events"].pop(event_id, None)

    # ---- requests from inside Live ------------------------------------------------------
    def scan_locators(self) -> None:
        song = self.song()
        cues = sorted(song.cue_points, key=lambda cue: cue.time)
        sent = self.state["sent_locators"]
        sent_before = len(sent)
        for index, cue in enumerate(cues):
            # Keyed by its words, not its time: moving a locator that was sent already must not
            # ask for the scene again (renaming it is how to ask for another one).
            key = " ".join(str(cue.name).split()).lower()
            if key in sent or any(str(old).split("|", 1)[-1] == cue.name for old in sent):
                continue
            if LOCATOR_SEND.match(cue.name):
                sent.append(key)
                self.request_edit(None)
                continue
            reroll, keep = LOCATOR_REROLL.match(cue.name), LOCATOR_KEEP.match(cue.name)
            if reroll or keep:
                sent.append(key)
                if reroll:
                    count = int(reroll.group("count") or self.config["reroll_variations"])
                    self.request_reroll(float(cue.time), count)
                else:
                    self.request_keep(int(keep.group("number")))
                continue
            if LOCATOR_SYNC.match(cue.name):
                sent.append(key)
                if self.state.get("last_session"):
                    self.request_sync(self.state["last_session"])
                continue
            edit = LOCATOR_EDIT.match(cue.name)
            generate = LOCATOR_GENERATE.match(cue.name)
            if not (edit or generate):
                continue
            sent.append(key)
            if edit:
                self.request_edit(edit.group("text"))
            else:
                next_time = cues[index + 1].time if index + 1 < len(cues) else None
                self.request_generate(generate.group("text"), cue.time, next_time)
        if len(sent) != sent_before:  # writing set data marks the set as changed: only when it did
            self._save_state()

    def request_generate(self, text: str, time_beats: float, next_beats: float | None) -> str:
        tempo = float(self.song().tempo)
        duration_s = float(self.config["default_duration_s"])
        match = DURATION_SUFFIX.search(text)
        if match:
            duration_s = float(match.group("s"))
            text = text[:match.start()].strip()
        elif next_beats is not None and next_beats > time_beats:
            duration_s = (next_beats - time_beats) * 60.0 / tempo
        anchor_s = time_beats * 60.0 / tempo
        session = f"live-{time.strftime('%Y%m%d-%H%M%S')}-{random.randint(0, 9999):04d}"
        request_id = self._new_id()
        self.requests[request_id] = {"session": session, "anchor_s": anchor_s}
        self._session(session)["anchor_s"] = anchor_s
        self.send("/audioagent/generate", [request_id, session, text, float(duration_s), float(anchor_s),
                                           self.listen_port])
        self.show(f"asked for '{text}' ({duration_s:g} s at {anchor_s:g} s)")
        return request_id

    def request_edit(self, instruction: str | None) -> str | None:
        """An instruction for the last scene; the designer's own changes go first, as one version.
        With no instruction: only the changes (the `aa send` locator)."""
        session = self.state.get("last_session") or ""
        if not session:
            self.show("no scene to edit yet: generate one first")
            return None
        changes = self.hand_changes(session)
        if changes:
            return self.send_request({"type": "edit", "session": session, "changes": changes}, session,
                                     kind="changes", then=instruction)
        if instruction is None:
            self.show("no changes of yours to send")
            return None
        return self.send_request({"type": "edit", "session": session, "instruction": instruction}, session)

    def events_at(self, session: str, time_beats: float) -> list[str]:
        """The session's events whose clips (as we placed them) span ``time_beats``."""
        found = []
        for event_id, record in sorted(self._session(session)["events"].items()):
            start = float(record.get("start_beats", 0.0))
            end = start + self.beats(float(record.get("length_s") or 0.0))
            if start - TIME_EPS_BEATS <= time_beats < end:
                found.append(event_id)
        return found

    def request_reroll(self, time_beats: float, count: int) -> str | None:
        """N variations of the last scene's events under the locator: one request (after the
        designer's own changes, in the same version) whose set_seed changes name N new seeds
        each; the server renders them in one batched generator call. The last seed is active."""
        session = self.state.get("last_session") or ""
        if not session:
            self.show("no scene to re-roll yet: generate one first")
            return None
        if not 2 <= count <= MAX_VARIATIONS:
            self.show(f"aa reroll {count}: give 2 to {MAX_VARIATIONS} variations")
            return None
        event_ids = self.events_at(session, time_beats)
        if not event_ids:
            self.show("aa reroll: put the locator over a clip of the scene")
            return None
        hand = self.hand_changes(session)
        changes = list(hand)
        for event_id in event_ids:
            seeds = random.sample(range(2**31 - 1), count)
            changes.append({"op": "set_seed", "event_id": event_id, "seed": seeds[-1], "variations": seeds})
        request_id = self.send_request({"type": "edit", "session": session, "changes": changes}, session,
                                       kind="changes" if hand else "")
        self.requests[request_id]["reroll"] = True
        self.show(f"re-rolling {len(event_ids)} event(s) into {count} variations")
        return request_id

    def request_keep(self, number: int) -> str | None:
        """Variation ``number`` of the last re-roll becomes its event's sound (a set_seed)."""
        session = self.state.get("last_session") or ""
        rolled = (self._session(session).get("variations") or {}) if session else {}
        chosen = []
        for event_id, variations in sorted(rolled.items()):
            seed = next((v["seed"] for v in variations if v["number"] == number), None)
            if seed is not None:
                chosen.append({"op": "set_seed", "event_id": event_id, "seed": seed})
        if not chosen:
            self.show(f"aa keep {number}: no variation {number} of a re-roll in this scene")
            return None
        hand = self.hand_changes(session)
        return self.send_request({"type": "edit", "session": session, "changes": hand + chosen}, session,
                                 kind="changes" if hand else "")

    def _scratch_track(self, session: str, event_id: str, number: int, description: str) -> Any:
        """The scratch track of variation ``number`` (made beside the event's track, or the
        previous variation's, if missing; emptied if there). Never one of the session's event
        tracks, so no event clip is placed on it."""
        scratch_id = f"AA {session} {event_id} v{number}"
        song = self.song()
        tracks = list(song.tracks)
        ids = [self._track_id(track) for track in tracks]
        name = f"{description} v{number}"
        if scratch_id in ids:
            track = tracks[ids.index(scratch_id)]
            for clip in list(track.arrangement_clips):
                track.delete_clip(clip)
            if track.clip_slots and track.clip_slots[0].has_clip:
                track.clip_slots[0].delete_clip()
        else:
            record = self._session(session)["events"].get(event_id) or {}
            before = f"AA {session} {event_id} v{number - 1}" if number > 1 else record.get("track")
            index = ids.index(before) + 1 if before in ids else -1
            # Song.create_audio_track(index) inserts at index, 0..len(tracks), -1 appending (Live
            # Object Model, docs.cycling74.com/max8/vignettes/live_object_model, Song); the fake does so.
            song.create_audio_track(index)
            track = list(song.tracks)[index] if index != -1 else _last(song.tracks)
            self._mark_track(track, scratch_id)
        get = getattr(track, "get_data", None)
        if callable(get) and get(TRACK_KEY, "") == scratch_id and track.name != name:
            track.name = name  # the id lives in the track's data: the name is for the designer
        return track

    def place_variations(self, session: str, variations: list[Any]) -> None:
        """A re-roll's variations, each on its scratch track beside the event's track at the
        event's time (session view: in the first slot), named "<event> v<number>"."""
        if self.unsupported:
            return
        info = self._session(session)
        placed: dict[str, list[dict[str, Any]]] = {}
        for v in variations:
            if not isinstance(v, dict) or not isinstance(v.get("event_id"), str):
                raise MessageError(f"variation {v!r} has no event_id")
            event_id, number = v["event_id"], int(_number(v.get("number"), "number"))
            record = info["events"].get(event_id)
            path = _text(v.get("stem_path"), "stem_path")
            self._check_path(path)
            if record is None:
                continue  # the event's own clip could not be placed: nothing to sit beside
            self._begin_step()
            description = str(record.get("description") or event_id)
            track = self._scratch_track(session, event_id, number, description)
            if self.config["view"] == "session":
                clip = track.clip_slots[0].create_audio_clip(path) or track.clip_slots[0].clip
            else:
                start_beats = float(record["start_beats"])
                clip = track.create_audio_clip(path, start_beats)
                if clip is None:
                    clip = next(c for c in track.arrangement_clips if abs(c.start_time - start_beats) < TIME_EPS_BEATS)
            clip.name = f"{description} v{number}"
            try:
                clip.warping = False
            except Exception:
                pass
            self.gain_curve.apply(clip, float(v.get("gain_db", 0.0)))
            placed.setdefault(event_id, []).append({"number": number, "seed": int(_number(v.get("seed"), "seed")),
                                                    "path": path, "track": self._track_id(track)})
        if placed:
            info["variations"] = placed
            self._save_state()
            self.show(f"{sum(len(v) for v in placed.values())} variation(s) placed; 'aa keep N' to choose one")

    def send_request(self, request: dict[str, Any], session: str, *, kind: str = "", then: str | None = None) -> str:
        """A request as JSON over /audioagent/request, naming the version this set shows
        (base_version), so the server refuses it if the scene has moved on (conflict)."""
        request_id = self._new_id()
        version = self._session(session).get("version")
        body = {"v": 1, "id": request_id, **request}
        if isinstance(version, int) and not isinstance(version, bool):
            body["base_version"] = version
        self.requests[request_id] = {"session": session, "anchor_s": self._session(session)["anchor_s"],
                                     "kind": kind, "then": then}
        self.send("/audioagent/request", [json.dumps(body), self.listen_port])
        return request_id

    # ---- the designer's own changes -----------------------------------------------------
    def hand_changes(self, session: str) -> list[dict[str, Any]]:
        """Moves, trims, clip gain changes and deletions of the session's clips since we placed
        them, as the server's structured changes."""
        info = self._session(session)
        anchor_s = float(info["anchor_s"] or 0.0)
        tempo = float(self.song().tempo)
        changes: list[dict[str, Any]] = []
        for event_id, record in sorted(info["events"].items()):
            found = self.find_clip(session, event_id)
            if not found:
                changes.append({"op": "delete", "event_id": event_id})
                continue
            _track, clip = found
            if self.config["view"] != "session" and isinstance(record.get("start_s"), (int, float)):
                start_s = float(clip.start_time) * 60.0 / tempo - anchor_s
                length_s = (float(clip.end_time) - float(clip.start_time)) * 60.0 / tempo
                if abs(start_s - record["start_s"]) > 1e-3 or abs(length_s - record["length_s"]) > 1e-3:
                    changes.append({"op": "move", "event_id": event_id, "start_s": max(0.0, start_s),
                                    "end_s": max(0.0, start_s) + length_s})
            shown = parse_display_db(getattr(clip, "gain_display_string", None))
            target = record.get("target_lufs")
            # Live shows clip gain to 0.1 dB: anything closer is what we set.
            if shown is not None and math.isfinite(shown) and isinstance(target, (int, float)) \
                    and abs(shown - record["gain_db"]) > 0.15:
                changes.append({"op": "set_loudness", "event_id": event_id,
                                "target_lufs": target + shown - record["gain_db"]})
        return changes

    def absorb_hand_changes(self, session: str) -> None:
        """Once the server took the designer's changes, the records say what the clips now show
        (so the reconcile that follows leaves them where the designer put them)."""
        info = self._session(session)
        anchor_s = float(info["anchor_s"] or 0.0)
        tempo = float(self.song().tempo)
        for event_id, record in list(info["events"].items()):
            found = self.find_clip(session, event_id)
            if not found:
                continue
            _track, clip = found
            record["start_beats"] = float(clip.start_time)
            record["start_s"] = float(clip.start_time) * 60.0 / tempo - anchor_s
            shown = parse_display_db(getattr(clip, "gain_display_string", None))
            if shown is not None and math.isfinite(shown) and abs(shown - record["gain_db"]) > 0.15:
                if isinstance(record.get("target_lufs"), (int, float)):
                    record["target_lufs"] += shown - record["gain_db"]
                record["gain_db"] = shown
