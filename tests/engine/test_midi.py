"""Cue markers in a Standard MIDI File, read back with mido as a DAW would import them."""

from __future__ import annotations

import mido
import pytest

from engine.errors import InvalidInputError
from engine.manifest import ManifestEvent
from engine.midi import write_cue_markers


def _event(event_id: str, description: str, start_s: float) -> ManifestEvent:
    return ManifestEvent(id=event_id, description=description, start_s=start_s, end_s=start_s + 1.0,
                         target_lufs=-23.0, measured_lufs=-23.0, true_peak_dbtp=-3.0,
                         stem_path=f"/x/{event_id}.wav")


def markers_in_seconds(path) -> list[tuple[float, str]]:
    midi = mido.MidiFile(path)
    tempo, now_s, out = mido.bpm2tempo(120), 0.0, []
    for message in midi.tracks[0]:
        now_s += mido.tick2second(message.time, midi.ticks_per_beat, tempo)
        if message.type == "set_tempo":
            tempo = message.tempo
        if message.type == "marker":
            out.append((now_s, message.text))
    return out


@pytest.mark.parametrize("tempo_bpm", [120.0, 93.5])
def test_markers_land_at_anchor_plus_start(tmp_path, tempo_bpm):
    events = [_event("e2", "a door slams", 6.25), _event("e1", "rain on a window", 0.0),
              _event("e3", "café chatter ☕", 3.0)]
    path = write_cue_markers(tmp_path / "cues.mid", events, anchor_s=12.0, tempo_bpm=tempo_bpm)
    markers = markers_in_seconds(path)
    assert [text for _, text in markers] == ["e1: rain on a window", "e3: café chatter ?", "e2: a door slams"]
    for (time_s, _), expected_s in zip(markers, [12.0, 15.0, 18.25]):
        assert time_s == pytest.approx(expected_s, abs=1e-3)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_bad_tempo_names_the_field(tmp_path):
    with pytest.raises(InvalidInputError) as info:
        write_cue_markers(tmp_path / "cues.mid", [], anchor_s=0.0, tempo_bpm=0.0)
    assert info.value.field == "tempo_bpm"
