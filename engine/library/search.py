"""Find library files for an event description.

A description is read twice: by the sound lexicon (what kind of sound it is, its UCS category,
its natural length) and as words for FTS5 (BM25 over FX name, category, description and tags).
Candidates from both are scored on one 0..1 scale so the hybrid backend can apply one
threshold:

    score = w_text * text + w_category * category + w_shape * shape (+ w_semantic * semantic)

* text: how many of the description's content words the file's text has (word stems), plus a
  little of its BM25 rank among the candidates;
* category: 1 when the file's CatID is the lexicon entry's, 0.6 for the same UCS category;
* shape: whether the file behaves like the kind of sound asked for: one-shots need an attack
  and a length near the natural range, beds need to loop cleanly and hold a steady level;
* semantic: CLAP text-to-audio cosine similarity, only when vectors were computed.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from engine.errors import InvalidInputError
from engine.library.store import LibraryFile, LibraryIndex, ScoringRow
from engine.library.ucs import cat_id_words, split_cat_id

if TYPE_CHECKING:
    from engine.lexicon import Lexicon, SoundEntry
    from engine.library.semantic import SemanticIndex

CANDIDATES = 60  # per source (FTS, category); scoring is per candidate, so this bounds latency
_STOP = frozenset(
    "a an the of in on at to and or with from into onto by for is are be its it this that "
    "sound sounds noise some very".split()
)


@dataclass(frozen=True)
class Query:
    description: str
    words: tuple[str, ...]  # content words, lower case, in order
    word_stems: frozenset[str]
    entry: "SoundEntry | None"
    length_s: float | None

    @property
    def kind(self) -> str | None:
        return self.entry.kind if self.entry is not None else None


@dataclass(frozen=True)
class SearchHit:
    file: LibraryFile
    score: float
    text: float
    category: float
    shape: float
    semantic: float | None = None

    def explain(self) -> str:
        parts = [f"text {self.text:.2f}", f"category {self.category:.2f}",
                 f"shape {self.shape:.2f}"]
        if self.semantic is not None:
            parts.append(f"clap {self.semantic:.2f}")
        return ", ".join(parts)


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    from engine.lexicon import stem

    return stem(word)


def text_stems(text: str) -> list[str]:
    """The lexicon's stems of the content words of ``text`` (the planner's notion of a word)."""
    return [_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP]


_stems = text_stems


_split_cat_id = functools.lru_cache(maxsize=4096)(split_cat_id)


@functools.lru_cache(maxsize=4096)
def _category_stems(cat_id: str) -> frozenset[str]:
    return frozenset(text_stems(cat_id_words(cat_id)))


def understand(description: str, *, length_s: float | None = None,
               lexicon: "Lexicon | None" = None) -> Query:
    """What a description asks for, through the lexicon the planner uses."""
    if not description or not description.strip():
        raise InvalidInputError(
            "description='': nothing to search for", field="description", value=description
        )
    if lexicon is None:
        from engine.lexicon import load_lexicon

        lexicon = load_lexicon()
    words = tuple(w for w in re.findall(r"[a-z0-9]+", description.lower()) if w not in _STOP)
    return Query(
        description=description,
        words=words,
        word_stems=frozenset(_stems(description)),
        entry=lexicon.match(description),
        length_s=length_s,
    )


def fts_expression(query: Query) -> str:
    """An FTS5 MATCH string: every content word (and the entry's category words), OR-ed.
    Each term is quoted, so no user text is read as FTS syntax."""
    terms = list(query.words)
    entry = query.entry
    if entry is not None:
        terms += re.findall(r"[a-z0-9]+", entry.name.lower())
        if entry.ucs:
            terms += cat_id_words(entry.ucs).split()
    unique = [t for t in dict.fromkeys(terms) if t not in _STOP and len(t) > 1]
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in unique)


def _category_score(query: Query, file: "LibraryFile | ScoringRow") -> float:
    entry = query.entry
    if entry is None or not file.cat_id:
        return 0.0
    if entry.ucs:
        if file.cat_id.lower() == entry.ucs.lower():
            return 1.0
        split = _split_cat_id(entry.ucs)
        if split is not None and file.category == split[0]:
            return 0.6
        return 0.0
    # No CatID in the lexicon: the entry's name words among the file's category words.
    return 0.6 if _category_stems(file.cat_id) & set(_stems(entry.name)) else 0.0


def _range_fit(value: float, low: float, high: float) -> float:
    """1 inside [low, high], falling off by the log-ratio outside (halved at a factor of 2)."""
    if low <= value <= high:
        return 1.0
    ratio = low / max(value, 1e-6) if value < low else value / high
    return 1.0 / ratio


def _shape_score(query: Query, file: "LibraryFile | ScoringRow") -> float:
    entry = query.entry
    if entry is None:
        return 0.5
    if entry.kind in ("one_shot", "hits"):
        low = entry.single_hit_s * 0.5 if entry.kind == "hits" else entry.length_min_s * 0.5
        high = (entry.length_max_s + entry.tail_s) * 2.0
        attack = 1.0 if file.transient_s is not None and file.steadiness_db > 3.0 else 0.4
        return round(0.5 * _range_fit(file.length_s, low, high) + 0.5 * attack, 4)
    steady = 1.0 if file.steadiness_db <= 4.0 else math.exp(-(file.steadiness_db - 4.0) / 4.0)
    if entry.kind == "bed":
        long_enough = min(1.0, file.length_s / min(10.0, entry.length_min_s))
        return round(0.4 * file.loop_score + 0.3 * steady + 0.3 * long_enough, 4)
    wanted = query.length_s or entry.typical_length_s
    return round(0.6 * min(1.0, file.length_s / max(wanted, 1e-3)) + 0.4 * steady, 4)


def _weights(query: Query, semantic: bool) -> tuple[float, float, float, float]:
    if query.entry is None:
        text, category, shape = 0.85, 0.0, 0.15
    elif query.entry.ucs:
        text, category, shape = 0.55, 0.25, 0.2
    else:
        text, category, shape = 0.65, 0.15, 0.2
    if not semantic:
        return text, category, shape, 0.0
    # CLAP takes a third of the weight from the text match, which it overlaps most.
    return text * 0.6, category, shape, text * 0.4


def search(
    index: LibraryIndex,
    description: str,
    *,
    length_s: float | None = None,
    limit: int = 10,
    lexicon: "Lexicon | None" = None,
    semantic: "SemanticIndex | None" = None,
) -> list[SearchHit]:
    """Ranked matches for ``description``, best first (ties broken by file id)."""
    if limit < 1:
        raise InvalidInputError(f"limit={limit}: must be >= 1", field="limit", value=limit)
    query = understand(description, length_s=length_s, lexicon=lexicon)
    bm25: dict[int, float] = {}
    expression = fts_expression(query)
    if expression:
        bm25 = dict(index.text_search(expression, limit=CANDIDATES))
    candidates = list(bm25)
    if query.entry is not None and query.entry.ucs:
        split = split_cat_id(query.entry.ucs)
        category = split[0] if split else query.entry.ucs
        same_category = index.by_cat_id(query.entry.ucs, category, limit=CANDIDATES)
        candidates += [i for i in same_category if i not in bm25]
    similarity: dict[int, float] = {}
    if semantic is not None:
        similarity = semantic.similar(description, limit=CANDIDATES)
        candidates += [i for i in similarity if i not in bm25 and i not in set(candidates)]
    if not candidates:
        return []
    # Score on the few columns scoring needs; build full records only for what is returned.
    rows = index.scoring_rows(candidates)
    best_bm25 = min(bm25.values()) if bm25 else 0.0
    weights = _weights(query, bool(similarity))
    scored = []
    for file_id in dict.fromkeys(candidates):
        row = rows.get(file_id)
        if row is None:
            continue
        found = query.word_stems.intersection(row.stems.split())
        coverage = len(found) / max(1, len(query.word_stems))
        rank = bm25[file_id] / best_bm25 if file_id in bm25 and best_bm25 < 0 else 0.0
        text = 0.75 * coverage + 0.25 * rank
        category = _category_score(query, row)
        shape = _shape_score(query, row)
        sem = similarity.get(file_id)
        score = (weights[0] * text + weights[1] * category + weights[2] * shape
                 + weights[3] * (sem if sem is not None else 0.0))
        scored.append((round(score, 4), file_id, round(text, 4), category, shape, sem))
    scored.sort(key=lambda item: (-item[0], item[1]))
    top = scored[:limit]
    files = index.files([item[1] for item in top])
    return [
        SearchHit(files[file_id], score, text, category, shape,
                  None if sem is None else round(sem, 4))
        for score, file_id, text, category, shape, sem in top
        if file_id in files
    ]
