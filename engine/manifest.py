"""The manifest: the one description of a render that the CLI, the server and the DAW scripts share.

Written as manifest.json beside the stems. Paths are absolute so a DAW script can insert them
without knowing where the engine ran.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from engine.atomic import atomic_file


class ManifestEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    description: str
    start_s: float  # relative to the scene start; the DAW places it at anchor_s + start_s
    end_s: float
    target_lufs: float  # the effective target (the event's own, or the scene default)
    measured_lufs: float | None  # of the stem file; None when it is too short/quiet to measure
    true_peak_dbtp: float | None  # of the stem file; None for digital silence
    gain_db: float = 0.0  # item gain the DAW applies on top of the stem file (see docs)
    stem_path: str
    aligned_path: str | None = None  # full-scene-length copy starting at 0 (--aligned)
    cache_hit: bool = False  # no generator call was made for this stem
    cache_key: str = ""
    # Shaped fades from the plan ("approaches", "fades away"), baked into the stem; the DAW
    # scripts mirror them as item fades. None: only the renderer's short anti-click fades.
    fade_in_s: float | None = None
    fade_out_s: float | None = None
    # Where the audio came from, when the backend says: a library file's credit (path, UCS
    # CatID, FX name, creator, library, licence, score) or hybrid's fallback backend and why.
    source: dict[str, str | float | None] | None = None


class FailedEvent(BaseModel):
    """An event whose stem could not be produced; the other events still have theirs."""

    model_config = ConfigDict(extra="forbid")

    id: str
    description: str
    error: str


class Variation(BaseModel):
    """One of the N seeds a re-roll rendered for an event in one batch (a DAW adds each as a
    take); the event's own entry plays the one whose seed the plan gives it."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    number: int  # 1..N, in the order the seeds were asked for
    seed: int
    stem_path: str
    cache_key: str = ""
    cache_hit: bool = False  # no generator call was made for this variation
    measured_lufs: float | None = None
    gain_db: float = 0.0


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: float
    sample_rate: int
    anchor_s: float = 0.0
    events: list[ManifestEvent]
    failed: list[FailedEvent] = []
    mix_path: str | None = None
    mix_true_peak_dbtp: float | None = None
    cues_path: str | None = None  # cues.mid: a marker per event (render --cue-markers)
    backend: str = ""
    planner: str = ""
    notes: list[str] = []
    variations: list[Variation] = []  # a re-roll's N seeds of an event (EditRequest set_seed)

    def event(self, event_id: str) -> ManifestEvent:
        for event in self.events:
            if event.id == event_id:
                return event
        raise KeyError(event_id)


def write_manifest(manifest: Manifest, path: Path) -> None:
    """Atomically write ``manifest`` as JSON (temp file in the same folder, then os.replace)."""
    text = json.dumps(manifest.model_dump(mode="json"), indent=2)
    with atomic_file(path) as handle:
        handle.write(text.encode("utf-8"))


def read_manifest(path: Path) -> Manifest:
    return Manifest.model_validate_json(Path(path).read_text(encoding="utf-8"))
