"""What the procedural backend reads from a description: its family and its traits.

The family comes from the sound lexicon (``presets/sounds.toml`` via ``engine.lexicon``): the
entry that best matches the description names the family that sketches it, and its kind and
hit length say whether a short event is one hit of a counted run ("a dog barks three times" is
three events, each rendering exactly one bark). Only descriptions the lexicon does not match
fall back to the keyword table below, so knowledge about sounds lives in the data file.

The fallback ``FAMILY_KEYWORDS`` table: keywords
match whole words with common inflections ("bark" matches "barks", "barking", "barked";
"drive" matches "driving"; a keyword written "=fire" matches only "fire"/"fires", never the
verb "firing"). A family scores the sum of the weights of its keywords found in the text,
where a keyword's weight is its number of words, so "fire alarm" (2) outranks "fire" (1).
The strongest family wins; on a tie the family whose first match comes earliest in the text
wins (the named subject usually comes first: "rain on a car roof" is rain), then table order.
Nothing matched gives "neutral": a soft filtered-noise swell.

Loudness words ("heavy", "distant", "gentle"...) set an intensity and a distance that scale
densities, decays and the output level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from engine.lexicon import SoundEntry, load_lexicon


@dataclass(frozen=True)
class Traits:
    """What a recipe may read from the description besides its family."""

    text: str  # lower-cased description
    intensity: float = 0.6  # 0 (faint) .. 1 (violent); from loudness words
    distant: bool = False
    sound: str = ""  # the lexicon entry's name ("dog howl"), "" when the lexicon had none
    single_hit: bool = False  # render exactly one hit / one occurrence, never a run
    kind: str = ""  # the lexicon entry's kind (one_shot, hits, sustained, bed), "" if none
    steady: bool = False  # a segment of a long event: no swell in or out (applied once)

    def has(self, *stems: str) -> bool:
        """True if any stem starts a word of the text or of the lexicon entry's name
        ("slam" matches "slams", "slammed"; "howl" matches "wolves" read as "dog howl")."""
        return self.in_text(*stems) or bool(self.sound and _starts_a_word(self.sound, stems))

    def in_text(self, *stems: str) -> bool:
        """Like ``has``, but only the description's own words count."""
        return _starts_a_word(self.text, stems)


def _starts_a_word(text: str, stems: tuple[str, ...]) -> bool:
    for stem in stems:
        pattern = r"\b" + r"\s+".join(re.escape(part) for part in stem.split())
        if re.search(pattern, text):
            return True
    return False


class Reading(NamedTuple):
    """A description read once: the family that renders it and the traits its recipe uses."""

    family: str
    traits: Traits




# family -> keywords. Order matters only to break exact ties (see the module docstring).
FAMILY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("thunder", ("thunder", "thunderclap", "thunderstorm", "thunderbolt", "lightning")),
    ("rain", ("rain", "rainy", "rainfall", "raindrop", "rainstorm", "drizzle", "downpour")),
    ("wind", ("wind", "windy", "breeze", "gust", "gale", "blizzard", "storm", "stormy")),
    ("water", ("water", "stream", "river", "brook", "creek", "waterfall", "ocean", "sea",
               "wave", "surf", "shore", "beach", "tide", "drip", "droplet", "splash", "faucet",
               "sink", "shower", "bubble", "pour", "fountain", "lake", "puddle", "leak",
               "babbling brook", "babbling stream", "tap drip", "dripping tap", "running tap")),
    ("fire", ("=fire", "fireplace", "campfire", "bonfire", "wildfire", "flame", "blaze", "burn",
              "crackle", "embers", "torch")),
    ("engine", ("engine", "car", "vehicle", "motor", "motorbike", "motorcycle", "scooter",
                "moped", "truck", "lorry", "bus", "tractor", "diesel", "traffic", "plane",
                "airplane", "aeroplane", "aircraft", "jet", "helicopter", "propeller", "drive",
                "rev", "idle", "accelerate", "chainsaw", "lawnmower", "boat", "train")),
    ("footsteps", ("footstep", "footfall", "step", "walk", "run", "jog", "stomp", "tiptoe",
                   "stride", "march", "hooves", "hoof", "gallop", "stair")),
    ("door", ("door", "doorway", "car door", "front door", "gate", "hinge", "creak", "creaky",
              "squeak", "squeaky", "slam", "latch", "doorknob", "cupboard")),
    ("impact", ("impact", "hit", "knock", "door knock", "thud", "thump", "bang", "punch",
                "slap", "smash", "crash", "shatter", "glass", "break", "broke", "broken",
                "drop", "fall", "collision", "clang", "clank", "tap", "rap", "whack", "kick",
                "hammer", "car crash")),
    ("gunshot", ("gun", "gunshot", "gunfire", "shot", "shoot", "rifle", "pistol", "shotgun",
                 "revolver", "machine gun", "firearm", "bullet", "sniper", "fired", "firing",
                 "opens fire", "fire a gun", "fires a gun", "fire a shot", "fires a shot")),
    ("explosion", ("explosion", "explode", "blast", "bomb", "detonation", "detonate",
                   "grenade", "firework", "dynamite", "boom", "cannon", "artillery")),
    ("crowd", ("crowd", "people", "chatter", "chat", "talk", "conversation", "babble",
               "murmur", "audience", "applause", "applaud", "clap", "cheer", "party",
               "restaurant", "cafe", "market", "voices", "laughter", "laugh", "stadium",
               "classroom", "walla")),
    ("bird", ("bird", "songbird", "birdsong", "chirp", "tweet", "sparrow", "robin", "crow",
              "raven", "owl", "hoot", "seagull", "gull", "duck", "quack", "pigeon", "dove",
              "coo", "parrot", "cuckoo", "warble", "caw", "forest", "jungle", "dawn chorus")),
    ("dog", ("dog", "bark", "puppy", "hound", "growl", "woof", "yap", "snarl", "whimper")),
    ("cat", ("cat", "kitten", "kitty", "meow", "miaow", "purr")),
    ("animal", ("animal", "cow", "moo", "cattle", "wolf", "wolves", "coyote", "lion", "tiger",
                "bear", "horse", "neigh", "sheep", "lamb", "goat", "bleat", "frog", "toad",
                "croak", "cricket", "insect", "cicada", "grasshopper", "pig", "oink")),
    ("bell", ("bell", "church bell", "doorbell", "chime", "ding", "toll", "gong", "ring",
              "triangle", "wind chime")),
    ("alarm", ("alarm", "buzzer", "phone", "telephone", "ringtone", "fire alarm",
               "smoke alarm", "alarm clock", "car alarm")),
    ("siren", ("siren", "fire truck", "fire engine", "police car", "ambulance", "air raid")),
    ("horn", ("horn", "honk", "klaxon", "hooter", "trumpet", "bugle", "trombone", "tuba",
              "fanfare", "foghorn")),
    ("beep", ("beep", "bleep", "pip", "blip", "heart monitor", "sonar", "laser", "dial tone")),
    ("typing", ("typing", "type", "keyboard", "keystroke", "typewriter")),
    ("click", ("click", "mouse click", "tick", "clock", "metronome", "switch", "shutter",
               "camera", "lock", "button", "snip", "scissors")),
    ("keys", ("key", "keychain", "jingle", "coin", "chain")),
    ("scream", ("scream", "shriek", "yell", "shout", "wail", "baby cry", "cry")),
    ("cough", ("cough", "sneeze", "gasp", "sigh", "breath", "breathe", "pant", "snore",
               "wheeze", "clear throat")),
    ("whistle", ("whistle", "flute", "piccolo", "recorder", "kettle whistle")),
    ("note", ("note", "piano", "guitar", "violin", "cello", "harp", "xylophone", "marimba",
              "glockenspiel", "music box", "melody", "arpeggio", "pluck", "strum")),
    ("heartbeat", ("heartbeat", "heart beat", "heart", "pulse")),
    ("pad", ("pad", "music", "musical", "drone", "synth", "synthesizer", "chord", "score",
             "soundtrack", "hum", "strings")),
)
FAMILIES: tuple[str, ...] = tuple(family for family, _ in FAMILY_KEYWORDS) + ("neutral",)

_LOUD_WORDS = frozenset(
    "loud louder loudly heavy heavier heavily strong violent violently huge massive intense "
    "hard powerful fierce torrential raging big deafening roaring booming aggressive pounding "
    "howling thunderous".split())
_SOFT_WORDS = frozenset(
    "soft softly gentle gently light lightly quiet quietly faint subtle distant low small calm "
    "tiny muffled slight slightly whisper whispering weak delicate far".split())
_DISTANT = re.compile(r"\b(distant|far|faraway|far-off|muffled|in the distance|behind)\b")


def _last_word_forms(word: str) -> str:
    """Regex for a word and its common inflections (plural, -ed, -er, -ing, doubled consonant)."""
    if word.startswith("="):
        return re.escape(word[1:]) + "(?:s|es)?"
    if word.endswith("e"):
        return re.escape(word[:-1]) + "(?:e|es|ed|er|ers|ing)"
    if word.endswith("y"):
        stem = re.escape(word[:-1])
        return f"(?:{re.escape(word)}(?:s|ing)?|{stem}ies|{stem}ied)"
    return re.escape(word) + f"(?:{re.escape(word[-1])}?(?:s|es|ed|er|ers|ing))?"


@lru_cache(maxsize=None)
def _compiled_table() -> tuple[tuple[str, tuple[tuple[re.Pattern[str], int], ...]], ...]:
    table = []
    for family, keywords in FAMILY_KEYWORDS:
        patterns = []
        for phrase in keywords:
            words = phrase.split()
            head = [re.escape(word) for word in words[:-1]]
            body = r"\s+".join(head + [_last_word_forms(words[-1])])
            patterns.append((re.compile(rf"\b{body}\b"), len(words)))
        table.append((family, tuple(patterns)))
    return tuple(table)


def classify_family(description: str) -> str:
    """The sketch family for a description: the lexicon's, else the keyword table's."""
    entry = load_lexicon().match(description)
    return entry.family if entry is not None else keyword_family(description)


def keyword_family(description: str) -> str:
    """The fallback family from ``FAMILY_KEYWORDS`` (see the module docstring for the rule)."""
    text = description.lower()
    best: tuple[int, int, int] | None = None  # (-score, first position, table index)
    best_family = "neutral"
    for index, (family, patterns) in enumerate(_compiled_table()):
        score, first = 0, len(text)
        for pattern, weight in patterns:
            found = pattern.search(text)
            if found:
                score += weight
                first = min(first, found.start())
        if score and (best is None or (-score, first, index) < best):
            best, best_family = (-score, first, index), family
    return best_family


def read_description(description: str, *, length_s: float | None = None) -> Reading:
    """Family and traits in one pass; ``length_s`` (the event's) decides single hits."""
    entry = load_lexicon().match(description)
    family = entry.family if entry is not None else keyword_family(description)
    return Reading(family, describe_traits(description, length_s=length_s, entry=entry))


def describe_traits(description: str, *, length_s: float | None = None,
                    entry: SoundEntry | None = None) -> Traits:
    """Intensity (0.1..1) and distance from loudness words: each loud word +0.3, soft -0.3."""
    text = description.lower()
    words = re.findall(r"[a-z][a-z'-]*", text)
    loud = sum(word in _LOUD_WORDS for word in words)
    soft = sum(word in _SOFT_WORDS for word in words)
    intensity = float(np.clip(0.6 + 0.3 * loud - 0.3 * soft, 0.1, 1.0))
    return Traits(text=text, intensity=intensity, distant=bool(_DISTANT.search(text)),
                  sound=entry.name if entry is not None else "",
                  single_hit=_is_single_hit(text, length_s, entry),
                  kind=entry.kind if entry is not None else "")


_ONCE = re.compile(r"\b(once|a single|one single|just one|single)\b")


def _is_single_hit(text: str, length_s: float | None, entry: SoundEntry | None) -> bool:
    """One hit, not a run: said so ("once", "a single"), a one-shot sound, or an event of a
    repeated-hit sound no longer than about one hit (the planner splits counted runs into one
    event per hit, each about ``single_hit_s`` long)."""
    if _ONCE.search(text):
        return True
    if entry is None or length_s is None:
        return False
    if entry.kind == "one_shot":
        return True
    if entry.kind == "hits":
        return length_s <= 1.5 * entry.single_hit_s or length_s < entry.length_min_s
    return False
