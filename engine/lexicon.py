"""The sound lexicon: what the engine knows about common sound sources, read from data.

``presets/sounds.toml`` lists sources with their kind (one-shot, repeated hits, sustained, bed),
natural length, typical loudness relative to a scene, the procedural family that sketches them
and a Universal Category System CatID where one fits. The rule planner, the procedural generator,
the library search and the LLM prompt all read it through ``load_lexicon`` so they agree.

Matching is by word stems: "slamming", "slams" and "slam" all hit the keyword "slam". The
longest matching keyword phrase wins (most words, then most characters), then the earliest
entry in the file, so ``match`` is deterministic.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

from engine.errors import InvalidInputError

LEXICON_PATH = Path(__file__).resolve().parents[1] / "presets" / "sounds.toml"

Kind = Literal["one_shot", "hits", "sustained", "bed"]
KINDS: tuple[str, ...] = ("one_shot", "hits", "sustained", "bed")
# The procedural sketch families (engine/generators/procedural*); a lexicon entry must name one.
FAMILIES: frozenset[str] = frozenset(
    "thunder rain wind water fire engine footsteps door impact gunshot explosion crowd bird dog "
    "cat animal bell alarm typing pad neutral siren horn scream cough whistle note heartbeat "
    "keys beep click".split()
)
# UCS CatIDs are a category prefix in capitals followed by a subcategory ("DOORWood").
_UCS_PATTERN = re.compile(r"^[A-Z]{2,8}[A-Za-z]{1,12}$")
_FIELDS = {"name", "keywords", "kind", "length_s", "hit_s", "tail_s", "loudness_db", "family", "ucs",
           "machine"}
_REQUIRED = {"name", "keywords", "kind", "length_s", "loudness_db", "family"}


@dataclass(frozen=True)
class SoundEntry:
    """One sound source of the lexicon. Lengths in seconds, loudness in dB re the scene level."""

    name: str
    keywords: tuple[str, ...]
    kind: Kind
    length_min_s: float
    length_max_s: float
    tail_s: float
    loudness_db: float
    family: str
    ucs: str | None
    hit_s: float | None = None  # kind "hits": one hit of a counted run
    # A machine: switching it on and off are sounds of their own (a start-up, a stop), so
    # "the generator kicks in, hums, then stops" is three events even though it is a bed.
    machine: bool = False

    @property
    def typical_length_s(self) -> float:
        """A natural single occurrence: the geometric middle of the range, at most four times
        its minimum (a drip run of 3-600 s is about 12 s unless the scene asks for more);
        beds: the minimum."""
        if self.kind == "bed":
            return self.length_min_s
        return min(math.sqrt(self.length_min_s * self.length_max_s), 4.0 * self.length_min_s)

    @property
    def single_hit_s(self) -> float:
        """Length of one hit of a counted run ("barks three times" is three of these)."""
        if self.hit_s is not None:
            return self.hit_s
        return self.length_min_s

    @property
    def continuous(self) -> bool:
        """Beds and sustained sounds keep going until the text stops them."""
        return self.kind in ("bed", "sustained")


def stem(word: str) -> str:
    """A crude English stem so inflections meet: slams/slamming/slammed -> slam."""
    word = word.lower()
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                break
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("é", "e"))


def stems(text: str) -> tuple[str, ...]:
    """The stems of the words of ``text`` in order (hyphens and apostrophes split words)."""
    return tuple(stem(w) for w in _words(text))


@dataclass(frozen=True)
class Match:
    """Where an entry matched a description: the entry, the keyword and its word position."""

    entry: SoundEntry
    keyword: str
    position: int  # word index of the keyword in the description's stems
    words: int  # how many words the keyword has
    exact: int = 0  # how many of them are spelled exactly as in the text (not only stemmed)
    modifier: bool = False  # an -ing form ("a roaring fireplace"): describes, rarely the source

    def rank(self) -> tuple[int, int, bool, int, int]:
        """Sort key, best first: more words, more exact words, a noun before an -ing
        modifier, named earlier (the source usually comes first: "wind howls"), longer."""
        return (-self.words, -self.exact, self.modifier, self.position, -len(self.keyword))


class Lexicon:
    """All entries, with deterministic lookup by free text, family and UCS CatID."""

    def __init__(self, entries: Iterable[SoundEntry]) -> None:
        self.entries: tuple[SoundEntry, ...] = tuple(entries)
        # (stems, keyword, entry index), longest phrases first so the best match is found first.
        keyed: list[tuple[tuple[str, ...], str, int]] = []
        for index, entry in enumerate(self.entries):
            for keyword in (entry.name, *entry.keywords):
                keyed.append((stems(keyword), keyword, index))
        keyed.sort(key=lambda item: (-len(item[0]), -len(item[1]), item[2]))
        self._keyed = tuple(k for k in keyed if k[0])
        # Keywords by their first stem, so a lookup only tries keywords that can start there.
        self._by_first: dict[str, list[tuple[tuple[str, ...], str, int]]] = {}
        for key in self._keyed:
            self._by_first.setdefault(key[0][0], []).append(key)
        self._by_name = {entry.name: entry for entry in self.entries}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: str) -> SoundEntry:
        """The entry called ``name``; KeyError if there is none."""
        return self._by_name[name]

    def matches(self, description: str) -> list[Match]:
        """Every entry whose keyword occurs in ``description``, best first, one per entry."""
        raw = _words(description)
        words = tuple(stem(w) for w in raw)
        found: dict[int, Match] = {}
        for position, word in enumerate(words):
            for key, keyword, index in self._by_first.get(word, ()):
                if words[position : position + len(key)] != key:
                    continue
                spelled = _words(keyword)
                exact = sum(1 for a, b in zip(spelled, raw[position:]) if a == b)
                candidate = Match(self.entries[index], keyword, position, len(key), exact,
                                  modifier=spelled[-1].endswith("ing"))
                best = found.get(index)
                if best is None or candidate.rank() < best.rank():
                    found[index] = candidate
        return sorted(found.values(), key=lambda m: (*m.rank(), self.entries.index(m.entry)))

    def match(self, description: str) -> SoundEntry | None:
        """The best entry for a free-text description, or None (see Match.rank)."""
        found = self.matches(description)
        return found[0].entry if found else None

    def by_family(self, family: str) -> tuple[SoundEntry, ...]:
        return tuple(entry for entry in self.entries if entry.family == family)

    def by_ucs(self, cat_id: str) -> tuple[SoundEntry, ...]:
        return tuple(entry for entry in self.entries if entry.ucs == cat_id)


def _bad(path: Path, index: int, name: object, message: str) -> InvalidInputError:
    label = f"{path.name}: sound[{index}]" + (f" ({name!r})" if name else "")
    return InvalidInputError(f"{label}: {message}", field=f"sound[{index}]", value=name)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_entry(raw: Any, *, index: int, path: Path = LEXICON_PATH) -> SoundEntry:
    """One validated SoundEntry from a TOML table, or InvalidInputError naming the entry."""
    if not isinstance(raw, dict):
        raise _bad(path, index, None, "must be a table")
    name = raw.get("name")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise _bad(path, index, name, f"unknown field(s) {sorted(unknown)}")
    missing = _REQUIRED - set(raw)
    if missing:
        raise _bad(path, index, name, f"missing field(s) {sorted(missing)}")
    if not isinstance(name, str) or not name.strip():
        raise _bad(path, index, name, "name must be a non-empty string")
    keywords = raw["keywords"]
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
        raise _bad(path, index, name, "keywords must be a list of non-empty strings")
    if raw["kind"] not in KINDS:
        raise _bad(path, index, name, f"kind={raw['kind']!r}; must be one of {', '.join(KINDS)}")
    length = raw["length_s"]
    if not (isinstance(length, list) and len(length) == 2 and all(_number(v) for v in length)
            and 0 < length[0] <= length[1]):
        raise _bad(path, index, name, f"length_s={length!r}; must be [min, max] with 0 < min <= max")
    tail_s = raw.get("tail_s", 0.0)
    if not _number(tail_s) or not 0 <= tail_s <= length[1]:
        raise _bad(path, index, name, f"tail_s={tail_s!r}; must be a number in [0, length max]")
    hit_s = raw.get("hit_s")
    if hit_s is not None and (raw["kind"] != "hits" or not _number(hit_s) or hit_s <= 0):
        raise _bad(path, index, name, f"hit_s={hit_s!r}; only for kind 'hits', a number > 0")
    loudness = raw["loudness_db"]
    if not _number(loudness) or not -70 <= loudness <= 30:
        raise _bad(path, index, name, f"loudness_db={loudness!r}; must be a number in [-70, 30]")
    if raw["family"] not in FAMILIES:
        raise _bad(path, index, name, f"family={raw['family']!r} is not a procedural family")
    ucs = raw.get("ucs")
    if ucs is not None and (not isinstance(ucs, str) or not _UCS_PATTERN.match(ucs)):
        raise _bad(path, index, name, f"ucs={ucs!r}; must be a UCS CatID such as 'DOORWood'")
    machine = raw.get("machine", False)
    if not isinstance(machine, bool):
        raise _bad(path, index, name, f"machine={machine!r}; must be true or false")
    return SoundEntry(
        name=name.strip(),
        keywords=tuple(k.strip().lower() for k in keywords),
        kind=raw["kind"],
        length_min_s=float(length[0]),
        length_max_s=float(length[1]),
        tail_s=float(tail_s),
        loudness_db=float(loudness),
        family=raw["family"],
        ucs=ucs,
        hit_s=None if hit_s is None else float(hit_s),
        machine=machine,
    )


def parse_lexicon(data: Any, *, path: Path = LEXICON_PATH) -> Lexicon:
    """A Lexicon from parsed TOML (``{"sound": [...]}``); errors name the bad entry."""
    sounds = data.get("sound") if isinstance(data, dict) else None
    if not isinstance(sounds, list) or not sounds:
        raise InvalidInputError(f"{path.name}: needs a non-empty 'sound' list", field="sound")
    entries = [parse_entry(raw, index=i, path=path) for i, raw in enumerate(sounds)]
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.name in seen:
            raise _bad(path, index, entry.name, "duplicate name")
        seen.add(entry.name)
    return Lexicon(entries)


def read_lexicon(path: Path) -> Lexicon:
    """Read and validate a lexicon file (uncached; tests and tools use it for other files)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InvalidInputError(f"{Path(path).name}: not valid TOML ({error})", field="lexicon") from None
    return parse_lexicon(data, path=Path(path))


@functools.lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """The project's lexicon (presets/sounds.toml), read once per process."""
    return read_lexicon(LEXICON_PATH)
