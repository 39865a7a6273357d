"""What the procedural backend reads from a description: its family and its loudness traits.

``classify_family`` picks one family from a keyword table (``FAMILY_KEYWORDS``). Keywords
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

import numpy as np


@dataclass(frozen=True)
class Traits:
    """What a recipe may read from the description besides its family."""

    text: str  # lower-cased description
    intensity: float = 0.6  # 0 (faint) .. 1 (violent); from loudness words
    distant: bool = False

    def has(self, *stems: str) -> bool:
        """True if any stem starts a word of the text ("slam" matches "slams", "slammed")."""
        for stem in stems:
            pattern = r"\b" + r"\s+".join(re.escape(part) for part in stem.split())
            if re.search(pattern, self.text):
                return True
        return False




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
    ("alarm", ("alarm", "beep", "bleep", "siren", "buzzer", "horn", "honk", "phone",
               "telephone", "ringtone", "notification", "fire alarm", "smoke alarm",
               "alarm clock", "fire truck", "fire engine", "police car", "ambulance", "pip",
               "blip", "microwave", "heart monitor")),
    ("typing", ("typing", "type", "keyboard", "keystroke", "typewriter", "click",
                "mouse click", "tick", "clock", "metronome")),
    ("pad", ("pad", "music", "musical", "drone", "synth", "synthesizer", "chord", "score",
             "soundtrack", "melody", "hum", "strings")),
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
    """The sketch family for a description (see the module docstring for the rule)."""
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


def describe_traits(description: str) -> Traits:
    """Intensity (0.1..1) and distance from loudness words: each loud word +0.3, soft -0.3."""
    text = description.lower()
    words = re.findall(r"[a-z][a-z'-]*", text)
    loud = sum(word in _LOUD_WORDS for word in words)
    soft = sum(word in _SOFT_WORDS for word in words)
    intensity = float(np.clip(0.6 + 0.3 * loud - 0.3 * soft, 0.1, 1.0))
    return Traits(text=text, intensity=intensity, distant=bool(_DISTANT.search(text)))
