"""How a scene is written: one settings object instead of a keyword per knob.

``render_scene`` takes a ``RenderSettings`` (file format, loudness, optional extras) and a
``SceneLabels`` (what the manifest records about who made it); the session manager and the CLI
build them once from EngineSettings and forward them whole, so a new knob is one field here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.errors import InvalidInputError
from engine.limits import (
    DEFAULT_CEILING_DBTP,
    DEFAULT_SAMPLE_RATE,
    DEFAULT_TARGET_LUFS,
    MAX_CEILING_DBTP,
    MAX_TARGET_LUFS,
    MIN_CEILING_DBTP,
    MIN_TARGET_LUFS,
    check_number,
    check_sample_rate,
)

if TYPE_CHECKING:
    from engine.settings import EngineSettings

@dataclass(frozen=True)
class RenderSettings:
    """The format and loudness of a scene's files.

    sample_rate: stems and mix, Hz. subtype: "PCM_24" or "FLOAT". default_target_lufs: events
    without their own target. ceiling_dbtp: true-peak ceiling of stems and mix. aligned: also
    write full-scene-length copies under aligned/. write_mix: mix.wav beside the stems.
    cue_markers_bpm: also write cues.mid (a marker per event) at this tempo.
    """

    sample_rate: int = DEFAULT_SAMPLE_RATE
    subtype: str = "PCM_24"
    default_target_lufs: float = DEFAULT_TARGET_LUFS
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP
    aligned: bool = False
    write_mix: bool = True
    cue_markers_bpm: float | None = None

    def checked(self) -> RenderSettings:
        """Self, or InvalidInputError naming the first bad field."""
        from engine.stems import SUBTYPES

        check_sample_rate(self.sample_rate)
        if self.subtype not in SUBTYPES:
            raise InvalidInputError(
                f"subtype={self.subtype!r}: choose one of {', '.join(SUBTYPES)}",
                field="subtype", value=self.subtype,
            )
        check_number("default_target_lufs", self.default_target_lufs,
                     minimum=MIN_TARGET_LUFS, maximum=MAX_TARGET_LUFS)
        check_number("ceiling_dbtp", self.ceiling_dbtp, minimum=MIN_CEILING_DBTP, maximum=MAX_CEILING_DBTP)
        if self.cue_markers_bpm is not None:
            from engine.midi import check_tempo_bpm

            check_tempo_bpm(self.cue_markers_bpm)
        return self

    @classmethod
    def from_settings(
        cls,
        settings: EngineSettings,
        *,
        subtype: str = "PCM_24",
        aligned: bool = False,
        write_mix: bool = True,
        cue_markers_bpm: float | None = None,
    ) -> RenderSettings:
        """The engine settings' rate, loudness target and ceiling, with the per-render options."""
        return cls(
            sample_rate=settings.sample_rate, subtype=subtype,
            default_target_lufs=settings.target_lufs, ceiling_dbtp=settings.ceiling_dbtp,
            aligned=aligned, write_mix=write_mix, cue_markers_bpm=cue_markers_bpm,
        )


@dataclass(frozen=True)
class SceneLabels:
    """What the manifest records about how the scene was made (no effect on the audio)."""

    backend: str = ""  # "" = the generator's own name
    planner: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


DEFAULT_RENDER = RenderSettings()
