"""Cue markers as a Standard MIDI File: one marker per event at its timeline position.

Any DAW imports a MIDI file's markers (REAPER, Live, Pro Tools, Logic, Nuendo), so a designer
gets the scene's event layout on the timeline even where no Audio-Agent script is installed.
Positions are written in ticks at a fixed tempo; the tempo meta event goes first so a DAW
reading the file converts ticks back to the same seconds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import mido

from engine.atomic import atomic_file
from engine.errors import InvalidInputError
from engine.manifest import ManifestEvent

TICKS_PER_BEAT = 960
MARKER_TEXT_CHARS = 120  # DAWs show markers in a narrow lane; long text only gets cut there


def check_tempo_bpm(tempo_bpm: float) -> float:
    if not math.isfinite(tempo_bpm) or not 20.0 <= tempo_bpm <= 400.0:
        raise InvalidInputError(
            f"tempo_bpm={tempo_bpm!r}: must be within [20, 400] BPM", field="tempo_bpm", value=tempo_bpm
        )
    return tempo_bpm


def seconds_to_ticks(time_s: float, *, tempo_bpm: float, ticks_per_beat: int = TICKS_PER_BEAT) -> int:
    return int(round(time_s * tempo_bpm / 60.0 * ticks_per_beat))


def cue_markers_midi(
    events: Iterable[ManifestEvent], *, anchor_s: float, tempo_bpm: float = 120.0
) -> mido.MidiFile:
    """A type-0 file: tempo, then a marker '<id>: <description>' at anchor_s + start_s of each event."""
    check_tempo_bpm(tempo_bpm)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="Audio-Agent cues", time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    placed = sorted(
        (seconds_to_ticks(anchor_s + event.start_s, tempo_bpm=tempo_bpm), event) for event in events
    )
    previous_tick = 0
    for tick, event in sorted(placed, key=lambda pair: (pair[0], pair[1].id)):
        # SMF text is 8-bit; characters outside Latin-1 become '?' rather than failing the file.
        text = f"{event.id}: {event.description}"[:MARKER_TEXT_CHARS]
        text = text.encode("latin-1", "replace").decode("latin-1")
        track.append(mido.MetaMessage("marker", text=text, time=tick - previous_tick))
        previous_tick = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def write_cue_markers(
    path: Path, events: Iterable[ManifestEvent], *, anchor_s: float, tempo_bpm: float = 120.0
) -> Path:
    """Write the markers file atomically (temp file in the same folder, then os.replace)."""
    midi = cue_markers_midi(events, anchor_s=anchor_s, tempo_bpm=tempo_bpm)
    with atomic_file(path) as handle:
        midi.save(file=handle)
    return path
