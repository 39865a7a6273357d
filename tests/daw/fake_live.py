"""A fake Live Object Model: just what the Audio-Agent remote script touches.

Behaviours modelled because the script must cope with them (references beside each):
- Track.create_audio_clip(file_path, start_time) makes an arrangement clip whose length follows
  the file's duration at the song tempo (LOM, Track / TakeLane.create_audio_clip:
  https://docs.cycling74.com/apiref/lom/takelane). A clip placed over others does what Live's
  arrangement does with overlapping material: the covered part of each older clip is cut away,
  the parts outside it stay (shortened, or split in two), and a clip covered whole is gone.
  Every such cut is recorded in ``Track.overwritten`` so a test can assert it never happens.
- ClipSlot.create_audio_clip(file_path) returns the new clip (Live 12.0.5+; the LOM ClipSlot
  page, https://docs.cycling74.com/apiref/lom/clipslot, and tools built on it
  "require Live 12.0.5 or newer"); a slot that holds a clip refuses.
- Song.begin_undo_step / end_undo_step group changes into one undo step (Live's own Push script
  brackets its edits with them, pushbase/undo_step_handler.py in Live's MIDI Remote Scripts);
  a change made outside a step is an undo entry of its own (``Song.loose_changes``).
- Track.get_data / set_data keep a script's data with the track (like Song.get_data), so an id
  survives a rename; ``Track(..., has_data=False)`` models a Live build without them.
- Clip.gain is a 0..1 value whose dB meaning is only visible through gain_display_string,
  rounded to 0.1 dB like Live's, on a curve that is deliberately not linear in dB
  (LOM Clip: "gain ... range is 0.0 to 1.0", "gain_display_string").
- Application versions (``Live.Application.get_application().get_major_version()`` ...) come
  from ``fake_live_module``, installed as the ``Live`` module by the tests.
"""

from __future__ import annotations

import math
import os
import types
from typing import Any

import soundfile as sf


def gain_to_db(gain: float) -> float:
    return -math.inf if gain <= 0 else 24.0 + 34.0 * math.log10(gain)


class Clip:
    def __init__(self, song: "Song", file_path: str, start_time: float, length_beats: float) -> None:
        self.song = song
        self.file_path = file_path
        self.start_time = start_time
        self.end_time = start_time + length_beats
        self._name = ""
        self._gain = 0.4
        self.warping = True
        self.is_audio_clip = True
        self.gain_sets = 0

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)
        self.song.note_change("clip name")

    @property
    def gain(self) -> float:
        return self._gain

    @gain.setter
    def gain(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"gain {value} out of range")
        self._gain = float(value)
        self.gain_sets += 1
        self.song.note_change("clip gain")

    @property
    def gain_display_string(self) -> str:
        db = gain_to_db(self._gain)
        return "-inf dB" if db == -math.inf else f"{db:.1f} dB"

    @property
    def gain_db(self) -> float:
        return gain_to_db(self._gain)


class ClipSlot:
    def __init__(self, track: "Track") -> None:
        self.track = track
        self.clip: Clip | None = None

    @property
    def has_clip(self) -> bool:
        return self.clip is not None

    def create_audio_clip(self, file_path: str) -> Clip:
        if self.clip is not None:
            raise RuntimeError("clip slot is not empty")
        if not os.path.isfile(file_path):
            raise RuntimeError(f"file not found: {file_path}")
        self.clip = Clip(self.track.song, file_path, 0.0, self.track.song.file_beats(file_path))
        self.track.song.note_change("create clip")
        return self.clip

    def delete_clip(self) -> None:
        self.clip = None
        self.track.song.note_change("delete clip")


class Track:
    def __init__(self, song: "Song", name: str = "Audio", *, has_data: bool = True) -> None:
        self.song = song
        self._name = name
        self.arrangement_clips: list[Clip] = []
        self.clip_slots = [ClipSlot(self) for _ in range(8)]
        self.overwritten: list[Clip] = []
        self._data: dict[str, Any] = {}
        if not has_data:  # an older Live: no per-track data
            self.get_data = None  # type: ignore[assignment]
            self.set_data = None  # type: ignore[assignment]

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)
        self.song.note_change("track name")

    def get_data(self, key: str, default: Any) -> Any:  # noqa: F811 - replaced per instance above
        return self._data.get(key, default)

    def set_data(self, key: str, value: Any) -> None:  # noqa: F811
        self._data[key] = value
        self.song.note_change("track data")

    def create_audio_clip(self, file_path: str, position: float) -> Clip:
        if not os.path.isfile(file_path):
            raise RuntimeError(f"file not found: {file_path}")
        if not 0.0 <= float(position) <= 1576800.0:
            raise RuntimeError(f"start_time {position} outside [0, 1576800]")
        clip = Clip(self.song, file_path, float(position), self.song.file_beats(file_path))
        for other in list(self.arrangement_clips):
            if other.start_time < clip.end_time and other.end_time > clip.start_time:
                self.overwritten.append(other)
                self.arrangement_clips.remove(other)
                if other.start_time < clip.start_time:  # the head stays, shortened
                    head = Clip(self.song, other.file_path, other.start_time, clip.start_time - other.start_time)
                    head._name, head._gain = other.name, other.gain
                    self.arrangement_clips.append(head)
                if other.end_time > clip.end_time:  # and so does the tail
                    tail = Clip(self.song, other.file_path, clip.end_time, other.end_time - clip.end_time)
                    tail._name, tail._gain = other.name, other.gain
                    self.arrangement_clips.append(tail)
        self.arrangement_clips.append(clip)
        self.arrangement_clips.sort(key=lambda c: c.start_time)
        self.song.note_change("create clip")
        return clip

    def delete_clip(self, clip: Clip) -> None:
        self.arrangement_clips.remove(clip)
        self.song.note_change("delete clip")


class CuePoint:
    def __init__(self, name: str, time: float) -> None:
        self.name = name
        self.time = time


class Song:
    def __init__(self, *, tempo: float = 120.0, track_data: bool = True) -> None:
        self.tempo = tempo
        self.tracks: list[Track] = []
        self.cue_points: list[CuePoint] = []
        self.data: dict[str, Any] = {}
        self.track_data = track_data
        self.undo_steps: list[list[str]] = []  # closed steps, each the changes it holds
        self.loose_changes: list[str] = []  # changes made outside any step: one undo entry each
        self._open: list[str] | None = None

    def begin_undo_step(self) -> None:
        if self._open is not None:
            raise RuntimeError("fake Live: begin_undo_step while a step is open")
        self._open = []

    def end_undo_step(self) -> None:
        if self._open is None:
            raise RuntimeError("fake Live: end_undo_step without begin_undo_step")
        if self._open:
            self.undo_steps.append(self._open)
        self._open = None

    @property
    def step_open(self) -> bool:
        return self._open is not None

    def note_change(self, what: str) -> None:
        if self._open is not None:
            self._open.append(what)
        else:
            self.loose_changes.append(what)

    def create_audio_track(self, index: int = -1) -> Track:
        track = Track(self, has_data=self.track_data)
        if index == -1:
            self.tracks.append(track)
        else:
            self.tracks.insert(index, track)
        self.note_change("create track")
        return track

    def get_data(self, key: str, default: Any) -> Any:
        return self.data.get(key, default)

    def set_data(self, key: str, value: Any) -> None:
        self.data[key] = value

    def file_beats(self, file_path: str) -> float:
        return sf.info(file_path).duration * self.tempo / 60.0

    def clips(self) -> list[tuple[Track, Clip]]:
        return [(t, c) for t in self.tracks for c in t.arrangement_clips]


class CInstance:
    """The c_instance Live hands to create_instance."""

    def __init__(self, song: Song) -> None:
        self._song = song
        self.messages: list[str] = []
        self.logged: list[str] = []

    def song(self) -> Song:
        return self._song

    def show_message(self, text: str) -> None:
        self.messages.append(text)

    def log_message(self, text: str) -> None:
        self.logged.append(text)


def fake_live_module(version: tuple[int, int, int] = (12, 1, 0)) -> types.ModuleType:
    """A stand-in for Live's `Live` module: only Application's version getters."""

    class Application:
        def get_major_version(self) -> int:
            return version[0]

        def get_minor_version(self) -> int:
            return version[1]

        def get_bugfix_version(self) -> int:
            return version[2]

    app = Application()
    module = types.ModuleType("Live")
    module.Application = types.SimpleNamespace(get_application=lambda: app)  # type: ignore[attr-defined]
    return module
