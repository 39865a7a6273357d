"""Time words, counts and dynamics words for the rule planner: pure string functions.

``normalise_times`` rewrites the many ways people write a time ("at three seconds", "3 seconds
in", "at 0:03", "0:03 door slam" on a cue sheet) into one form, "at 3 s", before the prompt is
split, so the splitter and ``extract_time`` only ever see that form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
}
# Vague counts read as a designer would lay them out.
VAGUE_COUNTS = {"several": 3, "a few": 3, "a couple of": 2, "a couple": 2, "a pair of": 2}
_WORD = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
_UNIT_WORD = r"(?:seconds?|secs?|s)\b"
NUMBER = r"(\d+(?:\.\d+)?)"
UNIT = r"\s*(?:seconds?|secs?|s)\b"


def _word_number(match: re.Match[str]) -> str:
    return str(NUMBER_WORDS[match.group(1).lower()])


def normalise_times(text: str) -> str:
    """One spelling for every time: digits, 's', and 'at' in front of a point in time."""
    text = re.sub(r"\bhalf\s+(?:a|one)\s+second\b", "0.5 s", text, flags=re.I)
    text = re.sub(r"\b(?:a|one)\s+and\s+a\s+half\s+seconds?\b", "1.5 s", text, flags=re.I)
    text = re.sub(rf"\b({_WORD})(?=\s+{_UNIT_WORD})", _word_number, text, flags=re.I)
    text = re.sub(rf"\b(at|from|to|until|till|and)\s+({_WORD})\b(?!\s+(?:times|of)\b)",
                  lambda m: f"{m.group(1)} {NUMBER_WORDS[m.group(2).lower()]}", text, flags=re.I)
    # Clock times: 0:03, 00:03.5, 1:05 -> seconds.
    text = re.sub(r"\b(\d{1,2}):(\d{2}(?:\.\d+)?)\b",
                  lambda m: f"{int(m.group(1)) * 60 + float(m.group(2)):g} s", text)
    # "3 seconds in" -> "at 3 s"
    text = re.sub(rf"\b{NUMBER}{UNIT}\s+in\b(?!\s+(?:a|an|the)\b)", r"at \1 s", text, flags=re.I)
    # A cue-sheet line that starts with a time ("0:02 car door slam") is "at 2 s car door slam".
    text = re.sub(rf"(^|(?<!\d)[;.,:]\s*|\n\s*)(?<!at )(?<!from )(?<!to ){NUMBER}\s*s\s+(?=[A-Za-z])"
                  rf"(?!and\b|to\b|until\b)",
                  lambda m: f"{m.group(1)}at {m.group(2)} s ", text, flags=re.I)
    # "at 2, sneeze at 5 seconds": a bare number after "at" borrows the unit.
    text = re.sub(r"\bat\s+(\d+(?:\.\d+)?)(?=\s*(?:,|;|$|\band\b))(?!\s*(?:seconds?|secs?|s)\b)",
                  r"at \1 s", text, flags=re.I)
    return text


# ---- explicit times ------------------------------------------------------------------------

_TIME = rf"{NUMBER}(?:{UNIT})?"
_LIST_SEP = r"\s*(?:,\s*(?:and\s+)?|\s+and\s+)(?:again\s+)?(?:at\s+)?"
AT_LIST = re.compile(
    rf"\b(?:at|starting at)\s+(?:the\s+)?{_TIME}(?:{_LIST_SEP}{_TIME})*(?:{UNIT})?(?:\s+mark)?",
    re.I,
)
RANGE_TIME = re.compile(
    rf"\b(?:(?:from|between)\s+\d+(?:\.\d+)?(?:{UNIT})?\s*(?:to|and|until|till|-)|"
    rf"at\s+\d+(?:\.\d+)?(?:{UNIT})?\s*(?:to|until|till|-))\s*\d+(?:\.\d+)?{UNIT}", re.I
)
FOR_TIME = re.compile(rf"\b(?:for|lasting)\s+(?:about\s+|around\s+)?{NUMBER}{UNIT}", re.I)
AFTER_TIME = re.compile(rf"\bafter\s+{NUMBER}{UNIT}", re.I)
UNTIL_TIME = re.compile(rf"\b(?:until|till|up to)\s+{NUMBER}{UNIT}", re.I)
SILENCE_LENGTH = re.compile(rf"{NUMBER}{UNIT}\s+of\s+silence", re.I)
TIME_PATTERNS = (RANGE_TIME, AT_LIST, AFTER_TIME, FOR_TIME, UNTIL_TIME)


@dataclass(frozen=True)
class TimeSpec:
    start_s: float | None = None
    length_s: float | None = None
    end_s: float | None = None
    starts_s: tuple[float, ...] = ()  # "at 1, 4 and 7 seconds": one event per time


def extract_time(text: str) -> tuple[TimeSpec, str]:
    """Pull explicit times out of ``text``; return them and the text without them."""
    start_s = length_s = end_s = None
    starts: tuple[float, ...] = ()
    match = RANGE_TIME.search(text)
    if match:
        # "from 8 to 2 seconds" is read as the range it names, in order.
        low, high = sorted(float(n) for n in re.findall(r"\d+(?:\.\d+)?", match.group(0)))
        start_s, end_s = low, high
        text = text[: match.start()] + " " + text[match.end() :]
    match = AT_LIST.search(text) if start_s is None else None
    if match:
        starts = tuple(float(n) for n in re.findall(r"\d+(?:\.\d+)?", match.group(0)))
        start_s = starts[0]
        starts = starts if len(starts) > 1 else ()
        text = text[: match.start()] + " " + text[match.end() :]
    match = AFTER_TIME.search(text) if start_s is None else None
    if match:
        start_s = float(match.group(1))
        text = text[: match.start()] + " " + text[match.end() :]
    match = FOR_TIME.search(text)
    if match:
        length_s = float(match.group(1))
        text = text[: match.start()] + " " + text[match.end() :]
    match = UNTIL_TIME.search(text)
    if match and end_s is None:
        end_s = float(match.group(1))
        text = text[: match.start()] + " " + text[match.end() :]
    return TimeSpec(start_s, length_s, end_s, starts), re.sub(r"\s+", " ", text).strip()


# ---- counts --------------------------------------------------------------------------------

_COUNT_WORD = rf"\d+|{_WORD}|several|a few|a couple of|a couple|a pair of"
_TIMES = re.compile(rf"\b({_COUNT_WORD})\s+times\b|\b(once|twice|thrice)\b", re.I)
# "four knocks", "three loud bangs", "a few gunshots": a count in front of a plural noun.
_COUNTED_NOUN = re.compile(
    rf"\b({_COUNT_WORD})\s+((?:[a-z]+\s+)?)([a-z]+s)\b(?!\s+(?:of|old)\b)", re.I
)
_NOT_COUNTED = {"seconds", "secs", "times", "minutes", "hours", "years", "days", "ways",
                "is", "was", "has", "does", "this", "its", "plus", "less", "always"}


def _count_value(word: str) -> int:
    word = word.lower()
    if word.isdigit():
        return int(word)
    if word in VAGUE_COUNTS:
        return VAGUE_COUNTS[word]
    return NUMBER_WORDS.get(word, 1)


def extract_count(text: str) -> tuple[int | None, str]:
    """A count of repetitions ("three times", "twice", "four knocks") and the text without it."""
    match = _TIMES.search(text)
    if match:
        word = match.group(1) or match.group(2)
        count = {"once": 1, "twice": 2, "thrice": 3}.get(word.lower()) or _count_value(word)
        text = text[: match.start()] + " " + text[match.end() :]
        return count, re.sub(r"\s+", " ", text).strip(" ,")
    for match in _COUNTED_NOUN.finditer(text):
        noun = match.group(3)
        if noun.lower() in _NOT_COUNTED or noun.lower().endswith("ss"):
            continue
        count = _count_value(match.group(1))
        if count < 2:
            continue
        singular = re.sub(r"(?:(?<=sh)|(?<=ch)|(?<=x))es$|s$", "", noun)
        replacement = f"a {match.group(2)}{singular}"
        text = text[: match.start()] + replacement + text[match.end() :]
        return count, re.sub(r"\s+", " ", text).strip(" ,")
    return None, text


# ---- dynamics ------------------------------------------------------------------------------

_FADE_IN = re.compile(
    r"\b(?:approach\w*|getting (?:closer|louder|nearer)|closer|nearer|"
    r"draws? near\w*|fades? in|fading in|grows? louder|growing louder|"
    r"builds? up|swell\w*|arriv\w+|rises|rising)\b",
    re.I,
)
_FADE_OUT = re.compile(
    r"\b(?:fades?(?: away| out| off)?|fading(?: away| out)?|recede\w*|dies (?:away|down|out)|"
    r"(?:drives?|moves?|flies|fly|walks?|runs?|rides?|pulls?|speeds?|rolls?|trots?|gallops?|"
    r"sails?) (?:away|off)|trails? off|into the distance|getting (?:quieter|softer|further)|"
    r"disappear\w*|goes away|dwindl\w+)\b",
    re.I,
)
_PASS_BY = re.compile(
    r"\b(?:pass(?:es|ing)?(?: by| past| overhead)?|goes by|drives (?:by|past)|"
    r"flies (?:over|overhead|past|by)|whooshes past|zooms (?:by|past)|wails past|rumbles past)\b",
    re.I,
)
FADE_SHARE = 0.6  # an approach or a fade-away takes this much of the event
PASS_SHARE = 0.4  # a pass-by rises and falls over this much at each end


def fade_shares(text: str) -> tuple[float, float]:
    """(fade-in share, fade-out share) of an event's length from its dynamics words."""
    fade_in = FADE_SHARE if _FADE_IN.search(text) else 0.0
    fade_out = FADE_SHARE if _FADE_OUT.search(text) else 0.0
    if _PASS_BY.search(text) and not (fade_in or fade_out):
        return PASS_SHARE, PASS_SHARE
    if fade_in and fade_out:
        return 0.45, 0.45
    return fade_in, fade_out


# ---- silence and stops ---------------------------------------------------------------------

_SILENCE = re.compile(r"^(?:(?:a|an|the|then|and|some|brief|short|long|total|complete|dead|"
                      r"moment of|moment|pause|of|\s)+)?(?:silence|quiet|nothing|pause|stillness)$",
                      re.I)
_FALLS_SILENT = re.compile(r"\b(?:falls?|goes|went|fell)\s+(?:silent|quiet|still)\b", re.I)
# "waits", "a moment passes": time passes with nothing to hear.
_WAITS = re.compile(r"^(?:\w+\s+){0,2}(?:waits?|waiting|pauses?|hesitates?)(?:\s+(?:a moment|briefly|"
                    r"for a moment|a beat|a second))?$|^(?:a|one)\s+(?:moment|beat)(?:\s+(?:later|passes))?$",
                    re.I)
# A machine's own ways of stopping count too ("the engine dies", "the projector clicks off"); a
# gradual "dies away/down" is a fade-out (FADE_OUT), not a stop.
_STOPS = re.compile(
    r"\b(?:stops?|stopping|stopped|ends|cuts? (?:out|off)|ceases?|halts?|"
    r"dies(?!\s+(?:away|down|out))|died(?!\s+(?:away|down|out))|shuts? (?:off|down)|"
    r"switch(?:es)? off|turns? off|clicks? off|powers? (?:down|off)|winds? down|"
    r"sputters? out|splutters? out|goes dead|(?:switched|turned|powered|shut) (?:off|down))\b",
    re.I)


def is_silence(text: str) -> bool:
    """'silence', 'then silence', 'the room falls silent': a stretch with no sound."""
    bare = text.strip(" .,;:!").lower()
    return bool(_SILENCE.match(bare) or _FALLS_SILENT.search(bare) or _WAITS.match(bare))


_STARTS = re.compile(
    r"\b(?:starts?|starting|started|begins?|kicks? in|fires? up|turns? on|switch(?:es)? on|"
    r"(?:roars?|sputters?|springs?|whirs?|hums?|comes?|buzz(?:es)?) to life|comes? on|"
    r"(?:whirs?|hums?|buzz(?:es)?|whines?|clicks?|flickers?) on|powers? (?:on|up)|"
    r"starts? up|spins? up|revs? up|whirs? up|(?:switched|turned|powered) (?:on|up))\b"
    r"(?!\s+(?:to|again))", re.I)
# A source coming in at this point of the story and going on from there: "an alarm starts
# ringing", "rain begins to fall", "a siren goes off" (wider than a machine's start-up sound).
_ONSET = re.compile(r"\b(?:starts?|started|begins?|began|sets? in|goes off|went off)\b", re.I)


def is_start(text: str) -> bool:
    """'the chainsaw starts', 'the generator kicks in': the sound of a machine starting."""
    return bool(_STARTS.search(text))


def is_onset(text: str) -> bool:
    """'the alarm starts ringing', 'rain begins': the sound comes in here and keeps going."""
    return is_start(text) or bool(_ONSET.search(text))


def is_stop(text: str) -> bool:
    """'stops', 'the music stops': the text ends a continuing sound."""
    return bool(_STOPS.search(text))
