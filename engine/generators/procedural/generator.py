"""The embedded default backend: procedural *sketch* drafts of common Foley, no model, no GPU.

This is a sketch tool, not a stand-in for the diffusion backends. It exists so the whole
pipeline (plan -> stems -> DAW) runs offline in milliseconds, and so a sound designer hears a
recognisable placeholder of the right length, family and loudness shape at the right time
while the real backend is busy or absent. It will never sound like a recording.

How a description becomes audio:

1. ``classify_family`` picks one family from a keyword table (``FAMILY_KEYWORDS``). Keywords
   match whole words with common inflections ("bark" matches "barks", "barking", "barked";
   "drive" matches "driving"; a keyword written "=fire" matches only "fire"/"fires", never the
   verb "firing"). A family scores the sum of the weights of its keywords found in the text,
   where a keyword's weight is its number of words, so "fire alarm" (2) outranks "fire" (1).
   The strongest family wins; on a tie the family whose first match comes earliest in the
   text wins (the named subject usually comes first: "rain on a car roof" is rain), then
   table order. Nothing matched gives "neutral": a soft filtered-noise swell.
2. Loudness words ("heavy", "distant", "gentle"...) set an intensity and a distance that scale
   densities, decays and the output level; the event length scales one-shot decays so a door
   slam in a 0.3 s event still ends inside it, and beds fill whatever length they get.
3. The family's recipe in ``procedural_dsp`` renders at a working rate no higher than the
   family needs, then the result is resampled to the requested rate and cut to exactly
   round(length_s * sample_rate) frames. Beds (rain, wind, water, fire, crowd, pad) are stereo
   with slightly decorrelated channels; everything else is mono. Beds longer than BED_TILE_S
   are one BED_TILE_S render looped with a long equal-power crossfade, to bound memory.

Samples depend only on (description, seed, length, rate): the random generator is seeded from
a hash of (seed, description), so one request always renders the same audio.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import soxr

from engine.generators import GenerationRequest, GenerationResult
from engine.generators.procedural.primitives import lowpass
from engine.generators.procedural.recipes import recipe_for
from engine.generators.procedural.recipes.beds import sketch_neutral
from engine.generators.procedural.text import Traits, read_description
from engine.progress import CancelToken, ProgressFn
from engine.render import fit_to_length

# Bump whenever a recipe, the keyword table or the level rule changes samples: it is part of
# every cache key made for this backend.
DSP_VERSION = 3

# Beds longer than this are rendered once at this length and looped with a long crossfade:
# a 600 s rain bed rendered whole peaks near 4 GB, tiled it stays near 0.4 GB, and a
# stationary texture does not reveal a one-minute loop.
BED_FAMILIES = frozenset({"rain", "wind", "water", "fire", "crowd", "pad"})
BED_TILE_S = 60.0
BED_TILE_CROSSFADE_MS = 2000.0

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000

# Highest working rate each family needs (None: the requested rate). Rendering a low rumble at
# 16 kHz and resampling is both faster and identical to the ear.
_WORK_RATE: dict[str, int | None] = {
    "thunder": 16000, "crowd": 16000, "pad": 16000, "neutral": 16000, "wind": 24000,
    "engine": 24000, "dog": 24000, "cat": 24000, "animal": 24000, "alarm": 24000,
    "water": 24000, "explosion": 32000, "siren": 24000, "horn": 24000, "beep": 24000,
    "scream": 24000, "cough": 24000, "heartbeat": 16000, "whistle": 32000, "note": 32000,
}

def _rng_for(seed: int, description: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{int(seed)}\x00{description}".encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


@dataclass(frozen=True)
class _Checked:
    frames: int
    sample_rate: int


def _check(request: GenerationRequest, max_length_s: float) -> _Checked | str:
    """The frame count and rate for a valid request, or an error naming the bad field."""
    length_s, rate = request.length_s, request.sample_rate
    if not isinstance(request.description, str):
        return f"description={request.description!r}: must be a string"
    if not isinstance(length_s, (int, float)) or not math.isfinite(length_s) or length_s <= 0:
        return f"length_s={length_s!r}: must be a finite number of seconds > 0"
    if length_s > max_length_s:
        return f"length_s={length_s!r}: longer than this backend's limit of {max_length_s} s"
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not (
            MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        return (f"sample_rate={rate!r}: must be an integer from {MIN_SAMPLE_RATE} "
                f"to {MAX_SAMPLE_RATE} Hz")
    frames = int(round(length_s * rate))
    if frames < 1:
        return f"length_s={length_s!r}: shorter than one sample at {rate} Hz"
    return _Checked(frames=frames, sample_rate=int(rate))


def render_sketch(description: str, *, length_s: float, sample_rate: int = 48000,
                  seed: int = 0) -> np.ndarray:
    """Render one description to float32 (channels, round(length_s * sample_rate)), peak <= 1.

    Raises ValueError on a bad length or rate; ``ProceduralGenerator.generate`` reports those
    as per-request errors instead.
    """
    checked = _check(GenerationRequest(description, length_s, seed, sample_rate), math.inf)
    if isinstance(checked, str):
        raise ValueError(checked)
    family, traits = read_description(description, length_s=length_s)
    if family in BED_FAMILIES and length_s > BED_TILE_S:
        tile = render_sketch(description, length_s=BED_TILE_S, sample_rate=sample_rate, seed=seed)
        return fit_to_length(tile, frames=checked.frames, sample_rate=checked.sample_rate,
                             crossfade_ms=BED_TILE_CROSSFADE_MS)
    rng = _rng_for(seed, description)
    cap = _WORK_RATE.get(family)
    work_rate = min(checked.sample_rate, cap) if cap else checked.sample_rate
    work_frames = math.ceil(checked.frames * work_rate / checked.sample_rate) + 1
    audio = np.atleast_2d(recipe_for(family)(rng, work_frames, work_rate, traits))
    if not np.any(np.abs(audio) > 1e-9):  # e.g. a one-shot that could not fit: never silent
        audio = sketch_neutral(rng, work_frames, work_rate, traits)
    if traits.distant:  # air and walls eat the top end first
        audio = lowpass(audio, 1500.0, work_rate)
    if work_rate != checked.sample_rate:
        audio = soxr.resample(audio.T, work_rate, checked.sample_rate).T
    if audio.shape[-1] < checked.frames:  # resampler rounding; normally we rendered extra
        audio = np.pad(audio, ((0, 0), (0, checked.frames - audio.shape[-1])))
    return _set_level(audio[:, : checked.frames], traits)


def _set_level(audio: np.ndarray, traits: Traits) -> np.ndarray:
    """Peak-normalise to a level that follows the loudness words (render sets final LUFS)."""
    level = 10 ** (-1.0 / 20.0) * (0.3 + 0.7 * traits.intensity) * (0.6 if traits.distant else 1.0)
    audio = np.nan_to_num(audio.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0.0:
        audio *= np.float32(level / peak)
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0, out=audio))


class ProceduralGenerator:
    """Offline sketch backend: keyword-chosen Foley recipes made of filtered noise and tones.

    A sketch tool, not a stand-in for the diffusion backends: it gives the right family,
    timing, length and loudness contour instantly and deterministically, on any CPU, so plans
    can be auditioned and the pipeline tested without weights.
    """

    name = "procedural"

    def __init__(self, *, max_length_s: float = 600.0) -> None:
        self.max_length_s = max_length_s

    def identity(self) -> Mapping[str, Any]:
        return {"backend": self.name, "version": DSP_VERSION}

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[GenerationResult]:
        results: list[GenerationResult] = []
        total = len(requests)
        for index, request in enumerate(requests):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if progress is not None:
                progress("generate", index / total)
            results.append(self._one(request))
        if progress is not None and total:
            progress("generate", 1.0)
        return results

    def _one(self, request: GenerationRequest) -> GenerationResult:
        checked = _check(request, self.max_length_s)
        if isinstance(checked, str):
            return GenerationResult(error=checked)
        try:
            audio = render_sketch(request.description, length_s=request.length_s,
                                  sample_rate=checked.sample_rate, seed=request.seed)
        except (ValueError, MemoryError) as error:  # one bad event must not sink the batch
            return GenerationResult(error=f"description={request.description!r}: {error}")
        return GenerationResult(audio=audio)
