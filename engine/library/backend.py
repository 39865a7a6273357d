"""``--backend library`` and ``--backend hybrid``: render events from the designer's own files.

library: every event gets the best-scoring file; an event with no match at all fails alone
(with its reason), like any backend's failed request.

hybrid: events whose best match scores at least ``threshold`` come from the library; the rest go
to the fallback backend (procedural by default, or a model backend) in one batched call. Each
result says where it came from (``LibraryResult.source``), and ``notes()`` says it in words.

Variety: requests for the same description are ordered by seed and take successive files from
the near-best candidates, starting at a seed-derived position, so repeated hits use different
files, a render is reproducible, and a re-roll (a new seed) moves to another candidate.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from engine.errors import InvalidInputError
from engine.generators import GenerationRequest, GenerationResult, Generator, create_generator
from engine.library.fit import load_source, place_bed, place_one_shot
from engine.library.search import SearchHit, search, understand
from engine.library.settings import LibrarySettings, index_path, load_library_settings
from engine.library.store import LibraryFile, LibraryIndex
from engine.progress import CancelToken, ProgressFn

FIT_VERSION = 1  # bump when placement changes samples: part of the cache identity
SCORE_MARGIN = 0.1  # candidates within this of the best take turns for repeated requests
_LOADED_MAX = 16  # decoded sources kept between events of one render
UCS_CREATOR_ID = "AudioAgent"
UCS_FX_NAME_CHARS = 48


@dataclass(frozen=True)
class LibraryResult(GenerationResult):
    """A result with its provenance: ``source`` holds the library file's credit fields (or the
    fallback backend's name and why it was used)."""

    source: Mapping[str, Any] | None = None


def _unit(seed: int, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class Choice(NamedTuple):
    """What one request gets: the chosen hit (None: nothing matched) and the lexicon's kind."""

    hit: SearchHit | None
    kind: str | None
    cat_id: str | None = None  # the lexicon's UCS CatID for the description, if any


def _placement_kind(hit: SearchHit, kind: str | None) -> str:
    if kind is not None:
        return kind
    file = hit.file
    return "bed" if file.steadiness_db <= 4.0 and file.loop_score >= 0.3 else "one_shot"


class LibraryGenerator:
    """Fills events from the indexed library (read-only: rendering never changes the index)."""

    name = "library"

    def __init__(
        self,
        *,
        index: str | Path | None = None,
        threshold: float | None = None,
        candidates: int | None = None,
        clap_model: str | None = None,
        settings: LibrarySettings | None = None,
    ) -> None:
        self.settings = settings or load_library_settings()
        self.clap_model = clap_model or self.settings.clap_model
        self.index_path = (
            Path(index).expanduser() if index is not None else index_path(self.settings)
        )
        self.threshold = self.settings.threshold if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise InvalidInputError(
                f"threshold={threshold!r}: must be within 0..1", field="threshold", value=threshold
            )
        self.candidates = candidates or self.settings.candidates
        self.index = LibraryIndex(self.index_path, readonly=True)
        if self.index.count() == 0:
            raise InvalidInputError(
                f"{self.index_path}: the sound library is empty; run 'audio-agent library add DIR'",
                field="library", value=str(self.index_path),
            )
        self._loaded: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.semantic = None
        if self.clap_model:  # CLAP similarity joins the score (vectors from `library embed`)
            from engine.library.semantic import ClapEmbedder, SemanticIndex

            self.semantic = SemanticIndex(self.index, ClapEmbedder(self.clap_model))

    def identity(self) -> Mapping[str, Any]:
        # The generation changes with every add/rescan/remove: cached renders follow the index.
        return {
            "backend": self.name, "index": str(self.index_path),
            "generation": self.index.generation(), "fit": FIT_VERSION,
            "candidates": self.candidates, "clap_model": self.clap_model,
        }

    # --- choosing ---------------------------------------------------------------------------

    def choose(self, requests: Sequence[GenerationRequest]) -> list[Choice]:
        """One Choice per request. Requests with one description share one search and take
        turns over its near-best hits (see the module docstring)."""
        by_description: dict[str, list[int]] = defaultdict(list)
        for position, request in enumerate(requests):
            by_description[request.description].append(position)
        chosen = [Choice(None, None)] * len(requests)
        for description, positions in by_description.items():
            length_s = requests[positions[0]].length_s
            hits = search(self.index, description, length_s=length_s,
                          limit=max(self.candidates, 10), semantic=self.semantic)
            entry = understand(description, length_s=length_s).entry
            kind = entry.kind if entry is not None else None
            cat_id = entry.ucs if entry is not None else None
            if not hits:
                for position in positions:
                    chosen[position] = Choice(None, kind, cat_id)
                continue
            pool = [h for h in hits if h.score >= hits[0].score - SCORE_MARGIN][: self.candidates]
            ordered = sorted(positions, key=lambda p: (requests[p].seed, p))
            start = int(_unit(requests[ordered[0]].seed, description) * len(pool))
            for turn, position in enumerate(ordered):
                chosen[position] = Choice(pool[(start + turn) % len(pool)], kind, cat_id)
        return chosen

    # --- rendering --------------------------------------------------------------------------

    def _source(self, file: LibraryFile, sample_rate: int) -> np.ndarray:
        key = (file.id, sample_rate)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        audio = load_source(file.path, sample_rate)
        self._loaded[key] = audio
        if len(self._loaded) > _LOADED_MAX:
            self._loaded.popitem(last=False)
        return audio

    def render_hit(self, request: GenerationRequest, choice: Choice) -> LibraryResult:
        assert choice.hit is not None
        hit, rate = choice.hit, request.sample_rate
        frames = int(round(request.length_s * rate))
        if frames < 1:
            return LibraryResult(error=f"length_s={request.length_s!r}: too short to render")
        file = hit.file
        try:
            audio = self._source(file, rate)
        except Exception as error:  # noqa: BLE001 - a file changed or vanished since indexing
            return LibraryResult(error=f"library file {file.display}: {error}")
        placement = _placement_kind(hit, choice.kind)
        if placement in ("one_shot", "hits"):
            out = place_one_shot(audio, transient_s=file.transient_s, frames=frames,
                                 sample_rate=rate)
            offset_s = max(0.0, (file.transient_s or 0.0))
        else:
            fraction = 0.0 if placement == "sustained" else _unit(request.seed, "offset")
            out = place_bed(audio, frames=frames, sample_rate=rate, offset_fraction=fraction)
            offset_s = fraction * max(0.0, file.length_s - request.length_s)
        source = dict(file.credit())
        source.update({"backend": "library", "score": hit.score, "placement": placement,
                       "source_offset_s": round(offset_s, 4)})
        self._name(source, request, file.cat_id or choice.cat_id)
        return LibraryResult(audio=out, source=source)

    def _name(self, source: dict[str, Any], request: GenerationRequest, cat_id: str | None) -> None:
        """Ask the scene for a UCS stem name (engine.scene) when the event has a category."""
        # A CatID read from a tag is only used when it is letters and digits, as UCS defines.
        if self.settings.stem_names == "ucs" and cat_id and re.fullmatch(r"[A-Za-z0-9]+", cat_id):
            source["ucs_name"] = ucs_stem_prefix(cat_id, request.description)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[GenerationResult]:
        results: list[GenerationResult] = []
        for position, (request, choice) in enumerate(zip(requests, self.choose(requests))):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if choice.hit is None:
                error = f"no library file matches {request.description!r}"
                results.append(LibraryResult(error=error))
            else:
                results.append(self.render_hit(request, choice))
            if progress is not None:
                progress("library", (position + 1) / len(requests))
        return results


class HybridGenerator(LibraryGenerator):
    """The library where a match scores at least ``threshold``, the fallback backend elsewhere."""

    name = "hybrid"

    def __init__(
        self,
        *,
        index: str | Path | None = None,
        threshold: float | None = None,
        candidates: int | None = None,
        clap_model: str | None = None,
        fallback: str | None = None,
        model: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        settings: LibrarySettings | None = None,
    ) -> None:
        super().__init__(index=index, threshold=threshold, candidates=candidates,
                         clap_model=clap_model, settings=settings)
        self.fallback_name = fallback or self.settings.fallback
        if self.fallback_name in ("library", "hybrid"):
            raise InvalidInputError(
                f"fallback={self.fallback_name!r}: must be a model or the procedural backend",
                field="fallback", value=self.fallback_name,
            )
        given = {"model": model, "steps": steps, "guidance": guidance}
        self._fallback_options = {k: v for k, v in given.items() if v is not None}
        self._fallback: Generator | None = None
        if self._fallback_options:  # a bad model option fails now, before planning
            self._fallback = create_generator(self.fallback_name, **self._fallback_options)

    @property
    def fallback(self) -> Generator:
        if self._fallback is None:  # built on first need: a scene the library covers loads no model
            self._fallback = create_generator(self.fallback_name, **self._fallback_options)
        return self._fallback

    def identity(self) -> Mapping[str, Any]:
        identity = dict(super().identity())
        identity.update({
            "backend": self.name, "threshold": self.threshold,
            "fallback": self.fallback_name, "fallback_options": self._fallback_options,
        })
        return identity

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        fallback: list[tuple[int, str]] = []
        choices = self.choose(requests)
        for position, (request, choice) in enumerate(zip(requests, choices)):
            if cancel is not None:
                cancel.raise_if_cancelled()
            hit = choice.hit
            if hit is None or hit.score < self.threshold:
                reason = ("no match" if hit is None
                          else f"best match {hit.score:.2f} < {self.threshold:.2f}")
                fallback.append((position, reason))
                continue
            results[position] = self.render_hit(request, choice)
        if fallback:
            generated = self.fallback.generate(
                [requests[p] for p, _ in fallback], progress=progress, cancel=cancel
            )
            for (position, reason), result in zip(fallback, generated):
                source = {"backend": self.fallback_name, "reason": reason}
                self._name(source, requests[position], choices[position].cat_id)
                results[position] = LibraryResult(audio=result.audio, error=result.error,
                                                  source=source)
        if progress is not None:
            progress("library", 1.0)
        return [r if r is not None else LibraryResult(error="not rendered") for r in results]


def ucs_stem_prefix(cat_id: str, description: str) -> str:
    """``CatID_FXName_AudioAgent`` for a stem: the description as FX name, kept to characters
    every file system and DAW accepts, without the underscores that separate UCS parts."""
    words = re.sub(r"[^A-Za-z0-9,.'&()\- ]+", " ", description).split()
    fx_name = " ".join(words)[:UCS_FX_NAME_CHARS].strip(" .") or "Sound"
    return f"{cat_id}_{fx_name[:1].upper()}{fx_name[1:]}_{UCS_CREATOR_ID}"


def describe_sources(
    requests: Sequence[GenerationRequest], results: Sequence[GenerationResult]
) -> list[str]:
    """One line per request saying where its audio came from (for notes and logs)."""
    lines = []
    for request, result in zip(requests, results):
        source = getattr(result, "source", None) or {}
        what = repr(request.description)
        if source.get("backend") == "library":
            lines.append(f"{what}: library {source.get('path')} (score {source.get('score')})")
        elif source:
            lines.append(f"{what}: {source.get('backend')} ({source.get('reason')})")
    return lines
