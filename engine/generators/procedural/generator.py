"""The embedded default backend: procedural *sketch* drafts of common Foley, no model, no GPU.

This is a sketch tool, not a stand-in for the diffusion backends. It exists so the whole
pipeline (plan -> stems -> DAW) runs offline in milliseconds, and so a sound designer hears a
recognisable placeholder of the right length, family and loudness shape at the right time
while the real backend is busy or absent. It will never sound like a recording.

How a description becomes audio:

1. ``text.read_description`` finds the sound in the lexicon (``presets/sounds.toml``): its
   family picks the recipe, its kind and hit length decide whether a short event is exactly
   one hit; descriptions the lexicon does not know fall back to a keyword table. Loudness
   words ("heavy", "distant", "gentle"...) set an intensity and a distance that scale
   densities, decays and the output level; the event length scales one-shot decays so a
   door slam in a 0.3 s event still ends inside it, and beds fill whatever length they get.
2. The family's recipe (``recipes/``) renders at a working rate no higher than the family
   needs, then the result is resampled to the requested rate and cut to exactly
   round(length_s * sample_rate) frames. Beds (rain, wind, water, fire, crowd, pad) are stereo
   with slightly decorrelated channels; everything else is mono.
3. Events longer than ``LONG_EVENT_S`` are built segment by segment into one float32 output
   (``long_events``), so memory stays bounded: continuing sounds from a shuffled pool of
   crossfaded segments, one-shots as their first minute followed by silence.

Samples depend only on (description, seed, length, rate): the random generator is seeded from
a hash of (seed, description) (and, for long events, the segment index), so one request
always renders the same audio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import soxr

from engine.errors import InvalidInputError
from engine.generators import GenerationRequest, GenerationResult
from engine.generators.procedural.long_events import (
    LONG_EVENT_S,
    render_continuing,
    render_head,
)
from engine.generators.procedural.primitives import lowpass
from engine.generators.procedural.recipes import recipe_for
from engine.generators.procedural.recipes.beds import sketch_neutral
from engine.generators.procedural.text import Traits, read_description
from engine.limits import check_sample_rate
from engine.progress import CancelToken, ProgressFn
from engine.malloc import return_freed_memory

# Bump whenever a recipe, the keyword table or the level rule changes samples: it is part of
# every cache key made for this backend.
DSP_VERSION = 6

# Stereo, slightly decorrelated families; everything else is mono.
BED_FAMILIES = frozenset({"rain", "wind", "water", "fire", "crowd", "pad"})
# Without a lexicon entry to say so, these ring out once in a long event instead of continuing.
ONE_SHOT_FAMILIES = frozenset({"thunder", "door", "impact", "gunshot", "explosion", "scream",
                               "horn", "whistle"})
_LEVEL_BLOCK_FRAMES = 1 << 16
# Requests rendered at a time on worker threads. The recipes spend most of their time in numpy
# and scipy calls that let go of the interpreter lock, so a second thread on a second core
# takes a 600 s scene's 16 long beds from ~4.6 s to ~3.4 s of wall time (same samples).
GENERATE_WORKERS = 2
# ... while the batch's results so far take less than this: past it, one request at a time, so
# a second request's working set (up to ~75 MB for a long bed) never sits on top of a large
# batch. (A 600 s scene's 16 beds hold 271 MB: its last few render one at a time, and its
# peak memory stays ~30 MB lower, away from the 500 MB the benchmark allows.)
PARALLEL_RESULTS_BYTES = 192 * 1024 * 1024
# A long event's freed temporaries are handed back to the OS after it (engine.render's
# return_freed_memory) only once the batch's results pass this: below it, a worker thread's
# next long event reuses those pages instead of faulting them in again (a page fault costs
# ~10 us on the reference machine: ~0.2 s per long bed), and the batch is far from its peak.
# A batch that rendered a long event hands everything back at its end.
RETAIN_FREED_BELOW_BYTES = 128 * 1024 * 1024


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
    try:
        check_sample_rate(rate)  # the engine's one rule (engine.limits)
    except InvalidInputError as error:
        return error.message
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
    if length_s > LONG_EVENT_S:
        raw = _render_long(description, family, traits, checked, seed)
    else:
        raw = _render_raw(family, traits, _rng_for(seed, description), checked.frames,
                          checked.sample_rate)
    return _set_level(raw, traits)


def _work_rate(family: str, sample_rate: int) -> int:
    cap = _WORK_RATE.get(family)
    return min(sample_rate, cap) if cap else sample_rate


def _render_raw(family: str, traits: Traits, rng: np.random.Generator, frames: int,
                sample_rate: int) -> np.ndarray:
    """The family's recipe at its working rate, resampled and cut to exactly ``frames``."""
    work_rate = _work_rate(family, sample_rate)
    work_frames = math.ceil(frames * work_rate / sample_rate) + 1
    audio = np.atleast_2d(recipe_for(family)(rng, work_frames, work_rate, traits))
    if _silent(audio):  # e.g. a one-shot that could not fit: never silent
        audio = sketch_neutral(rng, work_frames, work_rate, traits)
    if traits.distant:  # air and walls eat the top end first (the recipe's array is ours)
        audio = lowpass(audio, 1500.0, work_rate, in_place=True)
    if work_rate != sample_rate:
        # soxr's HQ setting filters in single precision whatever the input: float32 in and
        # out gives the very samples float64 in and float32 out did, with half the memory.
        audio = soxr.resample(audio.astype(np.float32).T, work_rate, sample_rate).T
    if audio.shape[-1] < frames:  # resampler rounding; normally we rendered extra
        audio = np.pad(audio, ((0, 0), (0, frames - audio.shape[-1])))
    return audio[:, :frames]


def _silent(audio: np.ndarray) -> bool:
    """``not np.any(np.abs(audio) > 1e-9)`` without two audio-sized temporaries: fmax and
    fmin skip NaNs as the comparison does."""
    if audio.size == 0:
        return True
    return not (float(np.fmax.reduce(audio, axis=None)) > 1e-9
                or float(np.fmin.reduce(audio, axis=None)) < -1e-9)


def _continues(family: str, traits: Traits) -> bool:
    """Does the sound keep going for a long event (a bed, a run of barks), or ring out once?"""
    if traits.kind:
        return traits.kind in ("bed", "sustained") or (
            traits.kind == "hits" and not traits.single_hit)
    return family not in ONE_SHOT_FAMILIES


def _render_long(description: str, family: str, traits: Traits, checked: _Checked,
                 seed: int) -> np.ndarray:
    """A long event in bounded memory (see ``long_events``)."""

    def render_segment(index: int, frames: int, steady: bool) -> np.ndarray:
        rng = _rng_for(seed, f"{description}\x00segment {index}")
        return _render_raw(family, dataclasses.replace(traits, steady=steady), rng, frames,
                           checked.sample_rate)

    if not _continues(family, traits):
        return render_head(render_segment, frames=checked.frames,
                           sample_rate=checked.sample_rate)
    return render_continuing(
        render_segment, family=family, frames=checked.frames,
        channels=2 if family in BED_FAMILIES else 1,
        work_rate=_work_rate(family, checked.sample_rate), sample_rate=checked.sample_rate,
        order_rng=_rng_for(seed, f"{description}\x00order"))


def _held_bytes(results: Sequence[GenerationResult]) -> int:
    return sum(result.audio.nbytes for result in results if result.audio is not None)


def _set_level(audio: np.ndarray, traits: Traits) -> np.ndarray:
    """Peak-normalise to a level that follows the loudness words (render sets final LUFS).

    Works in place on float32 input, a block at a time, so a ten-minute stem is never copied.
    """
    level = 10 ** (-1.0 / 20.0) * (0.3 + 0.7 * traits.intensity) * (0.6 if traits.distant else 1.0)
    audio = audio.astype(np.float32, copy=False)
    peak = 0.0
    for start in range(0, audio.shape[-1], _LEVEL_BLOCK_FRAMES):
        piece = audio[:, start:start + _LEVEL_BLOCK_FRAMES]
        if not piece.size:
            continue
        high, low = float(np.max(piece)), float(np.min(piece))
        if not (math.isfinite(high) and math.isfinite(low)):  # NaN or inf: zeroed first
            np.nan_to_num(piece, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            high, low = float(np.max(piece)), float(np.min(piece))
        peak = max(peak, high, -low)
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
        """Results in request order. Up to ``GENERATE_WORKERS`` requests render at a time on
        worker threads; each depends only on its own request, so the samples are the same as
        one at a time. ``cancel`` is checked before each request starts: a cancel lets the
        ones already running finish and starts no more."""
        total = len(requests)
        workers = min(GENERATE_WORKERS, total)
        results: list[GenerationResult] = []
        memory = _BatchMemory()

        def report(done: int) -> None:
            if progress is not None:
                progress("generate", done / total)

        try:
            if workers <= 1:
                for index, request in enumerate(requests):
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    report(index)
                    results.append(self._tracked(request, memory))
            else:
                report(0)
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="procedural") as pool:
                    running: deque[Future[GenerationResult]] = deque()
                    try:
                        for request in requests:
                            # Wait for the oldest (results stay in request order) when every
                            # worker is busy, or when the results held leave no room for a
                            # second request's working set.
                            while running and (len(running) == workers
                                               or _held_bytes(results) > PARALLEL_RESULTS_BYTES):
                                results.append(running.popleft().result())
                                report(len(results))
                            if cancel is not None:
                                cancel.raise_if_cancelled()
                            running.append(pool.submit(self._tracked, request, memory))
                        while running:
                            results.append(running.popleft().result())
                            report(len(results))
                    finally:
                        for future in running:
                            future.cancel()  # queued ones never start; a running one finishes
        finally:  # after the pool has shut down: no request still running
            memory.finish()
        if progress is not None and total:
            progress("generate", 1.0)
        return results

    def _tracked(self, request: GenerationRequest, memory: _BatchMemory) -> GenerationResult:
        result = self._one(request)
        length_s = request.length_s
        memory.rendered(result.audio.nbytes if result.audio is not None else 0,
                        long_event=isinstance(length_s, (int, float)) and length_s > LONG_EVENT_S)
        return result

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


class _BatchMemory:
    """When a batch hands freed memory back to the OS: after a long event once the batch's
    results pass ``RETAIN_FREED_BELOW_BYTES`` (a long event's segment temporaries, freed,
    would otherwise stay resident in its thread's heap beside every result the batch holds),
    and at the end of a batch that rendered one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._result_bytes = 0
        self._long_events = 0

    def rendered(self, result_bytes: int, *, long_event: bool) -> None:
        with self._lock:
            self._result_bytes += result_bytes
            self._long_events += long_event
            trim = long_event and self._result_bytes > RETAIN_FREED_BELOW_BYTES
        if trim:
            return_freed_memory()

    def finish(self) -> None:
        if self._long_events:
            return_freed_memory()
