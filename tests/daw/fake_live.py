"""A fake Live Object Model: just what the Audio-Agent remote script touches.

Arrangement clips behave like Live's: Track.create_audio_clip(file_path, position) makes a clip
whose length follows the file's duration at the song tempo, and a clip placed over others
overwrites them (recorded in ``overwritten`` so a test can assert it never happens). Clip.gain
is a 0..1 value whose dB meaning is only visible through gain_display_string, rounded to
0.1 dB like Live's, on a curve that is deliberately not linear in dB.
"""

from __future__ import annotations

import math
import os
from typing import Any

import soundfile as sf


def gain_to_db(gain: float) -> float:
    return -math.inf if gain <= 0 else 24.0 + 34.0 * math.log10(gain)


class Clip:
    def __init__(self, file_path: str, start_time: float, length_beats: float) -> None:
        self.file_path = file_path
        self.start_time = start_time
        self.end_time = start_time + length_beats
        self.name = ""
        self._gain = 0.4
        self.warping = True
        self.is_audio_clip = True
        self.gain_sets = 0

    @property
    def gain(self) -> float:
        return self._gain

    @gain.setter
    def gain(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"gain {value} out of range")
        self._gain = float(value)
        self.gain_sets += 1

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

    def create_audio_clip(self, file_path: str) -> None:
        if self.clip is not None:
            raise RuntimeError("clip slot is not empty")
        self.clip = Clip(file_path, 0.0, self.track.song.file_beats(file_path))

    def delete_clip(self) -> None:
        self.clip = None


class Track:
    def __init__(self, song: "Song", name: str = "Audio") -> None:
        self.song = song
        self.name = name
        self.arrangement_clips: list[Clip] = []
        self.clip_slots = [ClipSlot(self) for _ in range(8)]
        self.overwritten: list[Clip] = []

    def create_audio_clip(self, file_path: str, position: float) -> Clip:
        if not os.path.isfile(file_path):
            raise RuntimeError(f"file not found: {file_path}")
        clip = Clip(file_path, float(position), self.song.file_beats(file_path))
        for other in list(self.arrangement_clips):
            if other.start_time < clip.end_time and other.end_time > clip.start_time:
                self.overwritten.append(other)
                self.arrangement_clips.remove(other)
        self.arrangement_clips.append(clip)
        self.arrangement_clips.sort(key=lambda c: c.start_time)
        return clip

    def delete_clip(self, clip: Clip) -> None:
        self.arrangement_clips.remove(clip)


class CuePoint:
    def __init__(self, name: str, time: float) -> None:
        self.name = name
        self.time = time


class Song:
    def __init__(self, *, tempo: float = 120.0) -> None:
        self.tempo = tempo
        self.tracks: list[Track] = []
        self.cue_points: list[CuePoint] = []
        self.data: dict[str, Any] = {}

    def create_audio_track(self, index: int = -1) -> Track:
        track = Track(self)
        if index == -1:
            self.tracks.append(track)
        else:
            self.tracks.insert(index, track)
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
