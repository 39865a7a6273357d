"""The scene pipeline: a validated Plan in, one stem per event + mix + manifest out.

Order of work (each step is why the next one is cheap):
1. Reuse: an event whose previous stem has the same cache key and length keeps that file;
   only its gain changes (gain_db = new target - the file's measured loudness).
2. Cache: raw generator output is looked up by cache key.
3. Generate: every remaining event goes to the generator in ONE batched call.
4. Render: fit to length, fades, loudness, true-peak ceiling, then an atomic BWF write.
5. Mix (summed at the offsets, mix-bus limiter) and, last, manifest.json.

Stem names are ``<event_id>_<hash12>.wav`` where the hash covers every input to the file's
bytes (the processed samples themselves, format, position, text), so a path never gets
different content: a DAW holding a stem open keeps hearing what it loaded.

A reused stem is not rewritten, so its BWF TimeReference is that of the render that wrote it;
when an event moved, the manifest's start_s (and the stem_ready message) is where it goes now.
``gain_db`` is always target_lufs - measured_lufs of the file: about 0 for a fresh stem, the
loudness change for a reused one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import numpy as np
import soundfile as sf

from engine import malloc, render
from engine.errors import CancelledError, InvalidInputError
from engine.generators import GenerationRequest, GenerationResult, Generator
from engine.limits import check_audio, check_position_s
from engine.manifest import FailedEvent, Manifest, ManifestEvent, write_manifest
from engine.midi import write_cue_markers
from engine.plan import Event, Plan, validate_plan
from engine.progress import CancelToken, ProgressFn, no_progress
from engine.render_settings import DEFAULT_RENDER, RenderSettings, SceneLabels
from engine.stems import write_stem

if TYPE_CHECKING:
    from engine.cache import RenderCache

# Bump when processing changes so new renders never take an old render's file name.
RENDER_VERSION = 1
MANIFEST_NAME = "manifest.json"
MIX_NAME = "mix.wav"
CUES_NAME = "cues.mid"
ALIGNED_DIR = "aligned"
ORIGINATOR = "Audio-Agent"
FADE_IN_MS = 5.0
FADE_OUT_MS = 50.0
CROSSFADE_MS = render.DEFAULT_CROSSFADE_MS
PROCEDURAL_NOTE = (
    "backend 'procedural' renders synthetic sketches for layout and timing, not final sound; "
    "configure a model backend (e.g. --backend auffusion) for production stems"
)


@dataclass
class _Job:
    """One event on its way through the pipeline."""

    event: Event
    target_lufs: float
    frames: int
    request: GenerationRequest
    key: str
    raw: np.ndarray | None = None
    source: Mapping[str, object] | None = None  # the backend's credit for ``raw``, if any


def _key(generator: Generator, request: GenerationRequest, cache: RenderCache | None) -> str:
    if cache is not None:
        return str(cache.key_for(generator, request))
    from engine.cache import cache_key  # the same key with or without a cache object

    return cache_key(generator, request)


def _check_args(plan: Plan | Mapping[str, object], anchor_s: float) -> Plan:
    """The plan to render (settings are checked by RenderSettings.checked)."""
    if not isinstance(plan, Plan):
        plan = validate_plan(plan)
    check_position_s(anchor_s)
    if not plan.events:
        raise InvalidInputError("events: a plan needs at least one event", field="events", value=[])
    return plan


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed and return it absolute; InvalidInputError if unusable."""
    out = Path(out_dir).expanduser().resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInputError(
            f"out_dir={str(out_dir)!r}: cannot create ({error.strerror})",
            field="out_dir",
            value=str(out_dir),
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"out_dir={str(out_dir)!r}: not writable", field="out_dir", value=str(out_dir)
        )
    return out


def _jobs(
    plan: Plan,
    generator: Generator,
    sample_rate: int,
    default_target_lufs: float,
    cache: RenderCache | None,
) -> list[_Job]:
    jobs = []
    for event in plan.events:
        frames = max(1, int(round(event.length_s * sample_rate)))
        # Length in whole frames, so float noise in start/end never changes the cache key.
        request = GenerationRequest(
            description=event.description.strip(),
            length_s=frames / sample_rate,
            seed=event.seed,
            sample_rate=sample_rate,
        )
        target = event.target_lufs if event.target_lufs is not None else default_target_lufs
        jobs.append(_Job(event, target, frames, request, _key(generator, request, cache)))
    return jobs


def _reusable(job: _Job, previous: ManifestEvent | None, sample_rate: int, subtype: str) -> bool:
    if previous is None or previous.cache_key != job.key:
        return False
    if abs((previous.end_s - previous.start_s) - job.event.length_s) > 0.5 / sample_rate:
        return False
    try:
        info = sf.info(previous.stem_path)
    except (OSError, RuntimeError, sf.LibsndfileError):
        return False  # the file is gone or damaged: render it again
    return info.samplerate == sample_rate and info.subtype == subtype and info.frames == job.frames


def _gain_db(target_lufs: float, measured_lufs: float | None) -> float:
    # The item gain that brings the file to its target; silence gets none.
    return 0.0 if measured_lufs is None else round(target_lufs - measured_lufs, 3) + 0.0


def _file_hash(audio: np.ndarray, params: Mapping[str, object]) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode("utf-8"))
    digest.update(str(audio.shape).encode("ascii"))
    digest.update(memoryview(np.ascontiguousarray(audio, dtype=np.float32)).cast("B"))  # no copy
    return digest.hexdigest()[:12]


def _write_named(
    folder: Path,
    stem_id: str,
    audio: np.ndarray,
    *,
    sample_rate: int,
    subtype: str,
    time_reference_samples: int,
    description: str,
    loudness_lufs: float | None,
    true_peak_dbtp: float | None,
    ucs_name: str | None = None,
) -> Path:
    params = {
        "v": RENDER_VERSION,
        "sample_rate": sample_rate,
        "subtype": subtype,
        "time_reference_samples": time_reference_samples,
        "description": description,
        "originator": ORIGINATOR,
    }
    digest = _file_hash(audio, params)
    # A UCS name (CatID_FXName_CreatorID) takes "<id>-<hash>" as its SourceID, so the name
    # keeps four underscore-separated parts and the content-hash rule.
    name = f"{ucs_name}_{stem_id}-{digest}" if ucs_name else f"{stem_id}_{digest}"
    path = folder / f"{name}.wav"
    # Same name = same samples and header fields (only the bext write date could differ):
    # leaving the existing file alone keeps it stable under a DAW that has it open.
    if not path.is_file():
        write_stem(
            path,
            audio,
            sample_rate=sample_rate,
            subtype=subtype,
            time_reference_samples=time_reference_samples,
            description=description,
            originator=ORIGINATOR,
            loudness_lufs=loudness_lufs,
            true_peak_dbtp=true_peak_dbtp,
        )
    return path


def _as_audio(result: GenerationResult) -> np.ndarray:
    """The result's samples as (channels, frames) float32, or ValueError saying what is wrong
    (the engine's one shape rule, engine.limits.check_audio); the event then fails alone."""
    try:
        return check_audio(result.audio, field="generator result")
    except InvalidInputError as error:
        raise ValueError(error.message) from None


def _generate(
    jobs: Sequence[_Job],
    generator: Generator,
    progress: ProgressFn,
    cancel: CancelToken | None,
) -> dict[str, str]:
    """Fill ``job.raw`` for every job in ONE generator call; return id -> error for failures."""
    if not jobs:
        progress("generate", 1.0)
        return {}
    progress("generate", 0.0)
    # Events with identical content (same cache key) share one request.
    unique: dict[str, GenerationRequest] = {}
    for job in jobs:
        unique.setdefault(job.key, job.request)
    results = _generate_isolating_failures(generator, list(unique.values()), progress, cancel)
    by_key = dict(zip(unique, results))
    errors: dict[str, str] = {}
    for job in jobs:
        result = by_key[job.key]
        if not result.ok:
            errors[job.event.id] = result.error or "generator returned no audio"
            continue
        try:
            job.raw = _as_audio(result)
        except ValueError as error:
            errors[job.event.id] = str(error)
        job.source = getattr(result, "source", None)  # e.g. engine.library.backend.LibraryResult
    progress("generate", 1.0)
    return errors


def _call_generator(
    generator: Generator,
    requests: Sequence[GenerationRequest],
    progress: ProgressFn,
    cancel: CancelToken | None,
) -> list[GenerationResult] | str:
    """One generator call: its results, or why the whole call broke (a crash, a wrong count)."""
    try:
        results = list(generator.generate(requests, progress=progress, cancel=cancel))
    except CancelledError:
        raise
    except Exception as error:  # a backend crash costs these events, not the whole scene
        return f"{type(error).__name__}: {error}"
    if len(results) != len(requests):
        return f"generator returned {len(results)} results for {len(requests)} requests"
    return results


def _generate_isolating_failures(
    generator: Generator,
    requests: Sequence[GenerationRequest],
    progress: ProgressFn,
    cancel: CancelToken | None,
) -> list[GenerationResult]:
    """All requests in one batched call; if that call breaks as a whole, each request again
    alone, so the event that breaks the backend fails alone and the others still get stems.
    (Per-request errors a backend reports itself are final: it already isolated them.)"""
    results = _call_generator(generator, requests, progress, cancel)
    if not isinstance(results, str):
        return results
    if len(requests) == 1:
        return [GenerationResult(error=results)]
    total = len(requests)
    retried: list[GenerationResult] = []
    for index, request in enumerate(requests):
        def report(stage: str, fraction: float, index: int = index) -> None:
            progress(stage, (index + min(max(fraction, 0.0), 1.0)) / total)

        single = _call_generator(generator, [request], report, cancel)
        retried.append(GenerationResult(error=single) if isinstance(single, str) else single[0])
    return retried


@dataclass(frozen=True)
class _Rendered:
    entry: ManifestEvent
    # The stem's samples while they are still in memory (a fresh stem on its way to the mix);
    # None when they are read back from the stem file instead (reused stems).
    audio: np.ndarray | None

    def samples(self) -> np.ndarray:
        """The stem's samples (channels, frames): held ones, or read from its file. A file read
        gives the same float32 values that were written (24-bit or float, no clipping under
        the ceiling), so a mix is the same either way."""
        if self.audio is not None:
            return self.audio
        audio, _ = sf.read(self.entry.stem_path, dtype="float32", always_2d=True)
        return np.ascontiguousarray(audio.T)

    def channels(self) -> int:
        if self.audio is not None:
            return int(self.audio.shape[0])
        return int(sf.info(self.entry.stem_path).channels)

    def without_audio(self) -> _Rendered:
        return _Rendered(self.entry, None)


class _MixFeed:
    """The scene mix, summed while the stems are rendered: each stem goes onto the bus as soon
    as every stem before it in plan order is there, while its samples are still in memory.

    The bus adds in plan order whatever order stems arrive in, so the sum is bit-identical to
    adding them all at the end (engine.render.MixBus), and no stem is kept or read back from
    its file for the mix (only a reused stem is read, once). The bus is a zeroed allocation
    whose pages the OS maps as stems first touch them, so a long scene's mix grows in memory
    as its stems' raw takes are let go.
    """

    def __init__(self, order: Sequence[str], channels: int, out: _Output) -> None:
        self.order = list(order)
        self.bus = render.MixBus(duration_s=out.duration_s, sample_rate=out.sample_rate,
                                 channels=channels)
        self.waiting: dict[str, _Rendered] = {}
        self.next = 0

    def offer(self, event_id: str, rendered: _Rendered) -> None:
        self.waiting[event_id] = rendered
        while self.next < len(self.order) and self.order[self.next] in self.waiting:
            ready = self.waiting.pop(self.order[self.next])
            self.bus.add(ready.samples(), start_s=ready.entry.start_s,
                         gain_db=ready.entry.gain_db)
            self.next += 1

    def complete(self) -> bool:
        return self.next == len(self.order)


@dataclass(frozen=True)
class _Output:
    """Where and how this render writes its files."""

    folder: Path
    duration_s: float
    anchor_s: float
    sample_rate: int
    subtype: str
    ceiling_dbtp: float

    def position(self, start_s: float) -> int:
        """BWF TimeReference in samples for a scene time."""
        return int(round((self.anchor_s + start_s) * self.sample_rate))


@dataclass(frozen=True)
class _Processed:
    """A stem's final samples and measurements, before its file is written."""

    audio: np.ndarray
    loudness_lufs: float | None
    true_peak_dbtp: float | None


@dataclass(frozen=True)
class _Prepared:
    """A stem fitted and faded (its own array), with the loudness measurement of it."""

    audio: np.ndarray
    measured: render.Measured


def _prepare_one(job: _Job, out: _Output) -> _Prepared:
    """Fit, fades and the loudness of the result: the first half of a stem's processing,
    mostly in calls that let go of the interpreter lock (the K-weighting filter)."""
    assert job.raw is not None  # only jobs with raw audio reach rendering
    rate = out.sample_rate
    raw = job.raw
    audio = render.fit_to_length(raw, frames=job.frames, sample_rate=rate,
                                 crossfade_ms=CROSSFADE_MS)
    fitted_is_new = audio is not raw and not np.shares_memory(audio, raw)
    # The raw take is not needed past this point; letting it go now keeps a long scene's peak
    # memory down while another stem is processed beside this one. (The cache has its own.)
    job.raw = raw = None
    # A plan's shaped fades ("approaches", "fades away") replace the short anti-click ones.
    audio = render.apply_fades(
        audio, sample_rate=rate,
        fade_in_ms=max(FADE_IN_MS, 1000.0 * (job.event.fade_in_s or 0.0)),
        fade_out_ms=max(FADE_OUT_MS, 1000.0 * (job.event.fade_out_s or 0.0)),
        in_place=fitted_is_new)  # never into the raw take: events with equal content share it
    return _Prepared(audio, render.measure(audio, rate))


def _finish_one(job: _Job, prepared: _Prepared, out: _Output) -> render.Normalised:
    """Loudness, true peak and limiter on a prepared stem, in place (it is the stem's own
    array)."""
    return render.normalise_stem(
        prepared.audio, sample_rate=out.sample_rate, target_lufs=job.target_lufs,
        ceiling_dbtp=out.ceiling_dbtp, measured=prepared.measured, in_place=True,
    )


def _as_written(normalised: render.Normalised, out: _Output) -> _Processed:
    """What the file will hold, with its loudness and true peak."""
    audio = normalised.audio
    if out.subtype == "PCM_24":
        # Scaling by 2**23 and back is exact in float32. In place: ``audio`` is this stem's
        # own array, and the same float32 operations give the same values as on a copy.
        audio *= np.float32(8388608.0)
        np.round(audio, out=audio)
        audio /= np.float32(8388608.0)
    # Loudness and true peak the normaliser already knows are reused rather than measured
    # again: 24-bit rounding moves them by about 1e-6 LU / dB, far under the 0.01 the bext
    # fields hold and the 0.001 dB of gain_db.
    measured = normalised.loudness_lufs
    if measured is None:
        measured = render.measure_lufs(audio, out.sample_rate)
    peak = normalised.true_peak_dbtp
    if peak is None:
        peak = render.true_peak_dbtp(audio, out.sample_rate)
    return _Processed(audio, measured, peak)


def _process_one(job: _Job, out: _Output) -> _Processed:
    """A stem's whole processing: the work that may run on a worker thread (it reads only
    ``job`` and ``out``, and writes nothing)."""
    return _as_written(_finish_one(job, _prepare_one(job, out), out), out)


def _write_one(job: _Job, processed: _Processed, out: _Output, *, cache_hit: bool) -> _Rendered:
    """The stem file and its manifest entry (one file at a time, in plan order)."""
    audio, measured, peak = processed.audio, processed.loudness_lufs, processed.true_peak_dbtp
    rate = out.sample_rate
    event = job.event
    path = _write_named(
        out.folder, event.id, audio, sample_rate=rate, subtype=out.subtype,
        time_reference_samples=out.position(event.start_s),
        description=_bext_description(event.description, job.source),
        loudness_lufs=measured, true_peak_dbtp=peak,
        ucs_name=str((job.source or {}).get("ucs_name") or "") or None,
    )
    entry = ManifestEvent(
        id=event.id,
        description=event.description,
        start_s=event.start_s,
        end_s=event.end_s,
        target_lufs=job.target_lufs,
        measured_lufs=measured,
        true_peak_dbtp=peak,
        gain_db=_gain_db(job.target_lufs, measured),
        stem_path=str(path),
        cache_hit=cache_hit,
        cache_key=job.key,
        fade_in_s=event.fade_in_s,
        fade_out_s=event.fade_out_s,
        source=_jsonable_source(job.source),
    )
    return _Rendered(entry, audio)


def _jsonable_source(
    source: Mapping[str, object] | None,
) -> dict[str, str | float | None] | None:
    if not source:
        return None
    return {str(k): v if isinstance(v, (str, float, int)) or v is None else str(v)
            for k, v in source.items()}


def _bext_description(description: str, source: Mapping[str, object] | None) -> str:
    """The event, and for a library file where it came from, so the designer can find the
    original from the stem alone (the bext description holds 256 ASCII characters)."""
    if not source or not source.get("path"):
        return description
    fields = ("cat_id", "library", "creator", "licence")
    credit = ", ".join(str(source[k]) for k in fields if source.get(k))
    name = Path(str(source["path"])).name
    return f"{description} | source: {name}" + (f" ({credit})" if credit else "")


def _reuse_one(job: _Job, previous: ManifestEvent) -> _Rendered:
    entry = previous.model_copy(
        update={
            "description": job.event.description,
            "start_s": job.event.start_s,
            "end_s": job.event.end_s,
            "target_lufs": job.target_lufs,
            "gain_db": _gain_db(job.target_lufs, previous.measured_lufs),
            "aligned_path": None,
            "cache_hit": True,
        }
    )
    return _Rendered(entry, None)  # samples are read from the file if the mix needs them


def _aligned_copy(rendered: _Rendered, out: _Output) -> ManifestEvent:
    entry = rendered.entry
    frames = int(round(out.duration_s * out.sample_rate))
    offset = int(round(entry.start_s * out.sample_rate))
    audio = rendered.samples()
    full = np.zeros((audio.shape[0], frames), dtype=np.float32)
    piece = audio[:, : max(0, frames - offset)]
    full[:, offset : offset + piece.shape[1]] = piece
    path = _write_named(
        out.folder / ALIGNED_DIR, entry.id, full, sample_rate=out.sample_rate,
        subtype=out.subtype, time_reference_samples=out.position(0.0),
        description=entry.description, loudness_lufs=entry.measured_lufs,
        true_peak_dbtp=entry.true_peak_dbtp,
    )
    return entry.model_copy(update={"aligned_path": str(path)})


def _write_mix(feed: _MixFeed, out: _Output) -> tuple[str, float | None]:
    assert feed.complete()  # every stem of the manifest is on the bus
    audio, peak, lufs = feed.bus.finish_measured(ceiling_dbtp=out.ceiling_dbtp)
    path = write_stem(
        out.folder / MIX_NAME, audio, sample_rate=out.sample_rate, subtype=out.subtype,
        time_reference_samples=out.position(0.0), description="Audio-Agent scene mix",
        originator=ORIGINATOR, loudness_lufs=lufs, true_peak_dbtp=peak,
    )
    return str(path), peak


# Stems can be processed (fit, fades, loudness, true peak, limiter) this many at a time on
# worker threads. Files are still written one at a time in plan order on the scene's thread,
# with cancel checked before each, so the result is the same files, manifest and mix as one at
# a time (tests/engine/test_scene_workers.py) and at most this many stems are in flight.
# One (the default) instead splits each stem's work: the scene's thread runs the limiter
# rounds, which hold the interpreter lock through many small numpy calls, while one helper
# thread prepares the next stem and writes the previous file, which mostly do not
# (_render_pipelined). Two whole-stem workers measured no faster on this 2-core machine for a
# 600 s scene (render stage 4.2 s wall with one, 4.7-5.4 s with two, ~50 MB more memory).
RENDER_WORKERS = 1
# ... for scenes with at least this many seconds of stems to render. Shorter ones are done one
# step after another on the scene's thread: the two threads' hand-offs and shared caches cost
# a 60 s, 16-event scene ~0.3 s more CPU (1.6 s against 1.3 s, both busy-machine figures) for
# stems that are back in a second or two anyway, while a 600 s scene gains seconds of wall.
PIPELINE_MIN_S = 240.0
# Freed stem memory goes back to the OS after every stem (malloc.return_freed_memory) only in
# scenes with at least this many seconds of stems, where it keeps peak memory down (the 600 s
# benchmark scene ~100 MB). In a short scene each trim made the next stem's arrays fault
# their pages in afresh: ~10k page faults, 0.1 s of kernel time for a 60 s scene whose stems
# fit in memory many times over. Short scenes trim once, at the end.
TRIM_EACH_STEM_MIN_S = 240.0


def _render_all(
    jobs: Sequence[_Job], out: _Output, generated_ids: set[str], cancel: CancelToken | None,
    *, feed: _MixFeed | None = None, keep_samples: bool = False,
) -> Iterable[tuple[_Job, _Rendered]]:
    """Each job with its rendered stem, in order; ``cancel`` is checked before each stem.

    Each stem goes onto the mix ``feed`` as soon as its file is written (files are written
    one at a time in plan order), and its samples are let go then unless ``keep_samples``.
    """

    total_frames = sum(job.frames for job in jobs)
    trim_each = total_frames >= TRIM_EACH_STEM_MIN_S * out.sample_rate

    def write(job: _Job, processed: _Processed) -> _Rendered:
        # A render from the cache counts as a hit: no generator call was made for it.
        rendered = _write_one(job, processed, out, cache_hit=job.event.id not in generated_ids)
        job.raw = None  # the raw take is not needed any more
        if feed is not None:
            feed.offer(job.event.id, rendered)
        if not keep_samples:
            rendered = rendered.without_audio()  # on the mix bus now: not held for anything
        if trim_each:
            malloc.return_freed_memory()
        return rendered

    if RENDER_WORKERS == 1 or len(jobs) < 2:
        if total_frames >= PIPELINE_MIN_S * out.sample_rate:
            yield from _render_pipelined(jobs, out, write, cancel)
            return
        for job in jobs:
            if cancel is not None:
                cancel.raise_if_cancelled()
            yield job, write(job, _process_one(job, out))
        return
    pending: deque[tuple[_Job, Future[_Processed]]] = deque()
    upcoming = iter(jobs)
    pool = ThreadPoolExecutor(max_workers=RENDER_WORKERS, thread_name_prefix="stem")
    try:
        while True:
            while len(pending) < RENDER_WORKERS:  # bounded: memory for this many stems
                job = next(upcoming, None)
                if job is None:
                    break
                pending.append((job, pool.submit(_process_one, job, out)))
            if not pending:
                return
            job, future = pending.popleft()
            if cancel is not None:
                cancel.raise_if_cancelled()
            processed = future.result()
            yield job, write(job, processed)
    finally:
        for _, future in pending:
            future.cancel()  # not started: never starts; running: finishes, its result dropped
        pool.shutdown(wait=True)


def _write_normalised(write: Callable[[_Job, _Processed], _Rendered], job: _Job,
                      normalised: render.Normalised, out: _Output) -> _Rendered:
    return write(job, _as_written(normalised, out))


def _handed_on(writing: tuple[_Job, Future[_Rendered]]) -> tuple[_Job, _Rendered]:
    return writing[0], writing[1].result()


def _render_pipelined(
    jobs: Sequence[_Job], out: _Output, write: Callable[[_Job, _Processed], _Rendered],
    cancel: CancelToken | None,
) -> Iterable[tuple[_Job, _Rendered]]:
    """Stems one at a time on this thread, with one helper thread beside it that prepares the
    next stem (fit, fades, loudness) and writes the previous one's file (24-bit rounding,
    hash, encoding, fsync): work that mostly lets go of the interpreter lock, so a second
    core takes it.

    The results are those of doing it all in turn: each stem's steps run in the same order
    on the same arrays. Files are still written in plan order, and a stem is handed on once
    its file is complete; ``cancel`` is checked before each stem is processed and before
    each file is started, so after a cancel no further file is begun (the helper finishes
    what it holds before this returns or raises).
    """
    if not jobs:
        return
    helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stem-io")
    writing: tuple[_Job, Future[_Rendered]] | None = None  # the previous stem's file
    try:
        next_prepared = helper.submit(_prepare_one, jobs[0], out)
        for index, job in enumerate(jobs):
            try:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                prepared = next_prepared.result()
                if index + 1 < len(jobs):
                    next_prepared = helper.submit(_prepare_one, jobs[index + 1], out)
                normalised = _finish_one(job, prepared, out)
                del prepared
            except Exception:
                # A cancel, or this stem failing: the stem before it is complete and was
                # already on its way to its file, as it would be one at a time.
                if writing is not None:
                    yield _handed_on(writing)
                    writing = None
                raise
            if writing is not None:
                yield _handed_on(writing)
                writing = None  # the stem's samples are the mix's now, not held here too
            if cancel is not None:
                cancel.raise_if_cancelled()
            writing = (job, helper.submit(_write_normalised, write, job, normalised, out))
            del normalised
        if writing is not None:
            yield _handed_on(writing)
            writing = None
    finally:
        helper.shutdown(wait=True, cancel_futures=True)


def _split_reuse(
    jobs: Sequence[_Job],
    reuse: Mapping[str, ManifestEvent],
    cache: RenderCache | None,
    out: _Output,
) -> tuple[dict[str, _Rendered], list[_Job]]:
    """Reused stems by event id, and the jobs with neither a reusable stem nor a cached render."""
    reused: dict[str, _Rendered] = {}
    misses: list[_Job] = []
    for job in jobs:
        previous = reuse.get(job.event.id)
        if previous is not None and _reusable(job, previous, out.sample_rate, out.subtype):
            reused[job.event.id] = _reuse_one(job, previous)
            continue
        job.raw = cache.get(job.key) if cache is not None else None
        if job.raw is None:
            misses.append(job)
        elif hasattr(cache, "source_of"):
            job.source = cache.source_of(job.key)
    return reused, misses


def _generate_misses(
    jobs: Sequence[_Job], misses: list[_Job], generator: Generator, cache: RenderCache | None,
    report: ProgressFn, cancel: CancelToken | None, sample_rate: int,
) -> dict[str, str]:
    """One batched generator call for ``misses``, stored in the cache; id -> error."""
    pinned = [job.key for job in jobs]
    if cache is not None and hasattr(cache, "pin"):
        cache.pin(pinned)  # keep this scene's raw renders through its own eviction passes
    try:
        errors = _generate(misses, generator, report, cancel)
        stored: set[str] = set()
        for job in misses:
            if job.raw is not None and cache is not None and job.key not in stored:
                credit = {"source": job.source} if job.source else {}  # kept beside the audio
                cache.put(job.key, job.raw, sample_rate, **credit)
                stored.add(job.key)
    finally:
        if cache is not None and hasattr(cache, "unpin"):
            cache.unpin(pinned)
    return errors


def _manifest(
    plan: Plan, jobs: Sequence[_Job], done: Mapping[str, _Rendered], errors: Mapping[str, str],
    out: _Output, mix: tuple[str | None, float | None], backend: str, planner: str,
    notes: Sequence[str],
) -> Manifest:
    all_notes = list(notes)
    if backend == "procedural" and PROCEDURAL_NOTE not in all_notes:
        all_notes.append(PROCEDURAL_NOTE)
    return Manifest(
        duration_s=plan.duration_s,
        sample_rate=out.sample_rate,
        anchor_s=out.anchor_s,
        events=[done[job.event.id].entry for job in jobs if job.event.id in done],
        failed=[
            FailedEvent(id=j.event.id, description=j.event.description, error=errors[j.event.id])
            for j in jobs
            if j.event.id in errors
        ],
        mix_path=mix[0],
        mix_true_peak_dbtp=mix[1],
        backend=backend,
        planner=planner,
        notes=all_notes,
    )


def _mix_feed(jobs: Sequence[_Job], done: Mapping[str, _Rendered],
              to_render: Sequence[_Job], out: _Output) -> _MixFeed:
    """A feed for every stem this scene will have (reused ones, already done, and those about
    to be rendered), in plan order, with the bus as wide as the widest of them."""
    rendering = {job.event.id: job for job in to_render}
    order = [job.event.id for job in jobs if job.event.id in done or job.event.id in rendering]
    widths = [done[i].channels() if i in done else _raw_channels(rendering[i]) for i in order]
    feed = _MixFeed(order, max(widths, default=1), out)
    for event_id in order:
        if event_id in done:
            feed.offer(event_id, done[event_id])
    return feed


def _raw_channels(job: _Job) -> int:
    assert job.raw is not None  # only jobs with raw audio are rendered
    return int(job.raw.shape[0])  # fitting, fades and loudness keep the channel count


def render_scene(
    plan: Plan,
    *,
    generator: Generator,
    out_dir: str | os.PathLike[str],
    settings: RenderSettings = DEFAULT_RENDER,
    anchor_s: float = 0.0,
    cache: RenderCache | None = None,
    reuse: Mapping[str, ManifestEvent] | None = None,
    labels: SceneLabels = SceneLabels(),
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    on_stem: Callable[[ManifestEvent], None] | None = None,
) -> Manifest:
    """Render ``plan`` into ``out_dir`` and return the manifest written there (see module doc).

    ``settings`` (engine.render_settings.RenderSettings) is the file format, loudness and extras
    (with ``cue_markers_bpm`` a cues.mid beside the manifest holds a marker per event, for DAWs
    that should show the layout without an Audio-Agent script); ``labels`` is what the manifest
    records about who made the scene. ``anchor_s`` is the scene start on the DAW timeline.

    ``cache`` is an engine.cache.RenderCache (or None); ``reuse`` maps event id to that event's
    entry in a previous manifest. Stages reported to ``progress``: "generate", "render", "mix".
    ``on_stem`` gets each event's ManifestEvent as its stem lands (reused ones first).
    ``cancel`` is checked before generating, between events and before the mix; a cancelled
    render leaves the stems already written but no manifest.
    """
    settings = settings.checked()
    sample_rate, subtype = settings.sample_rate, settings.subtype
    default_target_lufs, ceiling_dbtp = settings.default_target_lufs, settings.ceiling_dbtp
    aligned, write_mix, cue_markers_bpm = settings.aligned, settings.write_mix, settings.cue_markers_bpm
    backend_name, planner_name, notes = labels.backend, labels.planner, labels.notes
    plan = _check_args(plan, anchor_s)
    report: ProgressFn = progress or no_progress
    out = _Output(prepare_out_dir(out_dir), plan.duration_s, anchor_s, sample_rate, subtype,
                  ceiling_dbtp)
    jobs = _jobs(plan, generator, sample_rate, default_target_lufs, cache)
    done: dict[str, _Rendered] = {}
    feed: _MixFeed | None = None

    def finish(event_id: str, rendered: _Rendered) -> None:
        if aligned:
            rendered = _Rendered(_aligned_copy(rendered, out), rendered.audio)
        done[event_id] = rendered.without_audio()
        if on_stem is not None:
            on_stem(rendered.entry)

    reused, misses = _split_reuse(jobs, reuse or {}, cache, out)
    for event_id, rendered in reused.items():
        finish(event_id, rendered)
    if cancel is not None:
        cancel.raise_if_cancelled()
    errors = _generate_misses(jobs, misses, generator, cache, report, cancel, sample_rate)
    generated_ids = {job.event.id for job in misses}
    to_render = [job for job in jobs if job.event.id not in done and job.raw is not None]
    if write_mix:
        feed = _mix_feed(jobs, done, to_render, out)
    report("render", 0.0)
    for index, (job, rendered) in enumerate(
            _render_all(to_render, out, generated_ids, cancel, feed=feed, keep_samples=aligned)):
        finish(job.event.id, rendered)
        del rendered  # (held samples, for aligned copies: not kept while the next stem renders)
        report("render", (index + 1) / len(to_render))
    if not to_render:
        report("render", 1.0)
    mix: tuple[str | None, float | None] = (None, None)
    if feed is not None:
        if cancel is not None:
            cancel.raise_if_cancelled()
        report("mix", 0.0)
        mix = _write_mix(feed, out)
        report("mix", 1.0)
    backend = backend_name or getattr(generator, "name", "")
    manifest = _manifest(plan, jobs, done, errors, out, mix, backend, planner_name, notes)
    if cue_markers_bpm is not None:
        cues = write_cue_markers(out.folder / CUES_NAME, manifest.events, anchor_s=anchor_s,
                                 tempo_bpm=cue_markers_bpm)
        manifest = manifest.model_copy(update={"cues_path": str(cues)})
    write_manifest(manifest, out.folder / MANIFEST_NAME)
    malloc.return_freed_memory()  # a server's next scene may be hours away
    return manifest
