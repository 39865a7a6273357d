"""Text analysis for the rule planner: clauses, connectives, explicit times, loudness words.

Pure string functions so the planner logic in rules.py reads as layout, not regex.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Connectives that put the next clause after the previous one.
_SEQUENTIAL = r"followed by|and then|after that|afterwards|after which|then|before|after|;"
# Sequential connectives after which a bare verb continues the previous subject ("and then
# idles"); after "followed by" a bare plural is a new source ("followed by footsteps").
_SUBJECT_CARRIERS = frozenset({"then", "and then", "after that", "afterwards", "after which"})
# Connectives that make clauses sound together. ("over" is not one: "flies over the city",
# "walks over gravel" and "is knocked over" are far more common than "talks over music".)
_SIMULTANEOUS = r"along with|together with|accompanied by|while|as|with|amid|and"

_NUMBER = r"(\d+(?:\.\d+)?)"
_UNIT = r"\s*(?:seconds?|secs?|s)\b"
_AT_TIME = re.compile(rf"\b(?:at|starting at|from)\s+(?:the\s+)?{_NUMBER}{_UNIT}(?:\s+mark)?", re.I)
_FOR_TIME = re.compile(rf"\bfor\s+(?:about\s+)?{_NUMBER}{_UNIT}", re.I)
_RANGE_TIME = re.compile(
    rf"\b(?:from|between)\s+{_NUMBER}(?:{_UNIT})?\s+(?:to|and|until)\s+{_NUMBER}{_UNIT}", re.I
)
_AFTER_TIME = re.compile(rf"\bafter\s+{_NUMBER}{_UNIT}", re.I)

_BED = re.compile(
    r"\b(?:in the background|throughout|continuous(?:ly)?|constant(?:ly)?|all along|"
    r"the whole time|ambien(?:ce|t)|steady|persistent)\b",
    re.I,
)
# Words removed from descriptions because they are layout, not sound.
_LAYOUT_WORDS = re.compile(r"\b(?:in the background|throughout|the whole time|all along)\b", re.I)

# Loudness words: (pattern, LU offset). The first matching group wins per clause.
_QUIETER = re.compile(
    r"\b(?:faint(?:ly)?|distant|in the distance|far away|far-off|quiet(?:ly)?|soft(?:ly)?|"
    r"muffled|gentle|gently|subtle|barely audible|low)\b",
    re.I,
)
_LOUDER = re.compile(
    r"\b(?:loud(?:ly)?|blaring|booming|deafening|powerful|heavy|heavily|violent(?:ly)?|"
    r"thunderous|intense|roaring|screaming|shouting)\b",
    re.I,
)
_VERY = re.compile(r"\b(?:very|extremely|really|incredibly)\b", re.I)

# Sounds that are over in a moment: they get a short span in a sequence.
_ONE_SHOT = re.compile(
    r"\b(?:slam\w*|bang\w*|knock\w*|shot|gunshot|gunfire|explo\w+|crash\w*|thud\w*|click\w*|"
    r"beep\w*|bark\w*|clap\w*|pop\w*|snap\w*|hit|hits|punch\w*|kick\w*|ding\w*|chime\w*|"
    r"smash\w*|break\w*|drop\w*|slap\w*|whoosh\w*|impact\w*)\b",
    re.I,
)

_SUBJECT_START = re.compile(r"^(?:a|an|the|someone|somebody|he|she|they|people|man|woman)\b", re.I)
_ARTICLE_START = re.compile(
    r"^(?:a|an|the|some|several|many|two|three|his|her|their|its|this|these|those|my|our|your)\b",
    re.I,
)
# Words that can follow a verb with no subject of its own ("... and drives away", "... and
# closes the door"); a part whose second word is anything else reads as "<noun> <verb>"
# ("... and leaves rustle", "... and its hatch opens").
_VERB_FOLLOWERS = frozenset(
    "a an the some his her its their my our your it them him me us this that "
    "away off down up out in into inside outside back on onto around by past over through "
    "across along toward towards to at with from for under behind forward home nearby "
    "again twice once repeatedly shut open closed apart upstairs downstairs".split()
)
# Plural nouns common in scene prompts that also end in -s: never read as a subjectless verb
# ("a door opens then footsteps" is two sources, not "a door footsteps").
_PLURAL_SOURCES = frozenset(
    "footsteps steps screams cheers whispers voices shots gunshots explosions sirens bells "
    "drums waves birds dogs cats cars horns claps knocks clicks beeps chimes sparks crickets "
    "insects leaves drops drips raindrops bubbles thuds bangs hooves wings gulls frogs "
    "engines trucks trains keys coins dishes glasses plates doors windows guns kids children".split()
)


@dataclass(frozen=True)
class TimeSpec:
    start_s: float | None = None
    length_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True)
class Clause:
    text: str  # cleaned description
    raw: str
    time: TimeSpec
    is_bed: bool
    is_one_shot: bool
    loudness_offset_lu: float


def extract_time(text: str) -> tuple[TimeSpec, str]:
    """Pull explicit times out of ``text``; return them and the text without them."""
    start_s = length_s = end_s = None
    match = _RANGE_TIME.search(text)
    if match:
        # "from 8 to 2 seconds" is read as the range it names, in order.
        start_s, end_s = sorted((float(match.group(1)), float(match.group(2))))
        text = text[: match.start()] + text[match.end() :]
    match = _AT_TIME.search(text) or _AFTER_TIME.search(text)
    if match and start_s is None:
        start_s = float(match.group(1))
        text = text[: match.start()] + text[match.end() :]
    match = _FOR_TIME.search(text)
    if match:
        length_s = float(match.group(1))
        text = text[: match.start()] + text[match.end() :]
    return TimeSpec(start_s, length_s, end_s), text


# "in a quiet room", "into a quiet campsite": the word describes the place, not the sound.
_QUIET_SETTING = re.compile(
    r"\b(?:in|into|at|inside|through|across|near|on|over)\s+(?:a|an|the)\s+(?:very\s+)?quiet\b",
    re.I,
)


def loudness_offset_lu(text: str) -> float:
    """LU offset from loudness words: quieter -8, louder +6, doubled-ish by 'very'."""
    text = _QUIET_SETTING.sub(" ", text)
    scale = 1.5 if _VERY.search(text) else 1.0
    if _QUIETER.search(text):
        return -8.0 * scale
    if _LOUDER.search(text):
        return 6.0 * scale
    return 0.0


def clean_description(text: str) -> str:
    text = _LAYOUT_WORDS.sub(" ", text)
    text = re.sub(r"\s+", " ", text)
    text = text.strip(" ,.;:!?-\t\n")
    text = re.sub(r"^(?:and|then|also|with|as|while)\s+", "", text, flags=re.I)
    return text[:1].upper() + text[1:] if text else text


def make_clause(raw: str) -> Clause | None:
    time, rest = extract_time(raw)
    text = clean_description(rest)
    if not re.search(r"[A-Za-z]", text):
        return None
    return Clause(
        text=text,
        raw=raw,
        time=time,
        is_bed=bool(_BED.search(raw)),
        is_one_shot=bool(_ONE_SHOT.search(raw)) and not _BED.search(raw),
        loudness_offset_lu=loudness_offset_lu(raw),
    )


def _split_keep(pattern: str, text: str) -> list[tuple[str, str]]:
    """Split on connectives; return (connective before the part, part) pairs."""
    # \x01 joins the words of a protected time expression ("between\x012\x01and\x015 s"), so it
    # counts as part of a word here: connectives inside a time are not split on.
    regex = re.compile(rf"\s*(?:,\s*)?(?<![\w\x01])({pattern})(?![\w\x01])\s*|\s*(;)\s*", re.I)
    parts: list[tuple[str, str]] = []
    last_end, connective = 0, ""
    for match in regex.finditer(text):
        parts.append((connective, text[last_end : match.start()]))
        connective = (match.group(1) or match.group(2) or "").lower()
        last_end = match.end()
    parts.append((connective, text[last_end:]))
    return [(c, p) for c, p in parts if p.strip()]


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s\x01]+", text.strip().lower().strip(" ,.;:!?")) if w]


def _verb_led(part: str) -> bool:
    """'drives away', 'closes the door', 'sneezes': a verb whose subject came earlier."""
    words = _words(part)
    if not words:
        return False
    first = words[0]
    if _ARTICLE_START.match(first) or first in _PLURAL_SOURCES or first in _VERB_FOLLOWERS:
        return False
    if not first.endswith("s") or first.endswith("ss"):
        return False
    if len(words) == 1:
        return True
    second = words[1]
    return second in _VERB_FOLLOWERS or second.endswith("ly")


def _gerund_led(part: str) -> bool:
    """'talking', 'laughing loudly': an -ing verb whose subject came earlier."""
    words = _words(part)
    return bool(words) and words[0].endswith("ing") and (
        len(words) == 1 or words[1] in _VERB_FOLLOWERS or words[1].endswith("ly")
    )


def _is_verb_continuation(part: str, previous: str) -> bool:
    """'A man enters his car and drives away': the part after 'and' continues the same subject."""
    return bool(_SUBJECT_START.match(previous.strip())) and _verb_led(part)


def _looks_like_clause(piece: str) -> bool:
    """'a dog barks' or 'people talking' (a source doing something), not a bare noun like 'wind'."""
    words = re.findall(r"[A-Za-z]+", piece.lower())
    return len(words) >= 2 and any(w.endswith(("s", "ing", "ed")) for w in words[1:])


def _subject(text: str) -> str:
    """Leading noun phrase of a clause: 'a man' from 'a man enters his car'."""
    words = text.strip().split()
    return " ".join(words[:2]) if words and _ARTICLE_START.match(words[0]) else words[0] if words else ""


def split_scene(prompt: str) -> list[list[str]]:
    """Split a prompt into sequential groups of simultaneous clause texts (in time order)."""
    text = re.sub(r"\s+", " ", prompt.strip())
    # A leading "After X, Y" / "Before X, Y" is rewritten into plain order first.
    lead = re.match(r"^(after|before)\s+([^,]+),\s*(.+)$", text, re.I)
    if lead and not _AFTER_TIME.match(text):
        first, second = lead.group(2), lead.group(3)
        text = f"{first} then {second}" if lead.group(1).lower() == "after" else f"{second} then {first}"
    groups: list[list[str]] = []
    for connective, part in _split_keep(_SEQUENTIAL, _protect_times(text)):
        if connective in _SUBJECT_CARRIERS:
            part = _carry_subject(part, groups)
        group = _split_simultaneous(part)
        if connective == "after" and groups:
            # "A after B": B happens first.
            groups.insert(len(groups) - 1, group)
        else:
            groups.append(group)
    # Commas between whole clauses read as a sequence in captions ("a dog barks, a car passes").
    result: list[list[str]] = []
    for group in groups:
        result.extend(_split_commas(group))
    return [[_restore_times(clause) for clause in group] for group in result if group]


def _split_simultaneous(part: str) -> list[str]:
    clauses: list[str] = []
    for connective, piece in _split_keep(_SIMULTANEOUS, part):
        previous = clauses[-1] if clauses else ""
        if connective == "and" and previous and _is_verb_continuation(piece, previous):
            clauses.append(f"{_subject(previous)} {piece.strip()}\x00seq")
        elif connective == "and" and previous and _continues_texture(piece, previous):
            # "Fire crackles and pops", "a man answering and talking": one source, one event.
            clauses[-1] = f"{previous.strip()} and {piece.strip()}"
        else:
            clauses.append(piece)
    return clauses


def _continues_texture(piece: str, previous: str) -> bool:
    if previous.endswith("\x00seq") or "," in previous:
        return False
    if _gerund_led(piece):
        return any(w.endswith("ing") for w in _words(previous)[1:])
    return _verb_led(piece) and _looks_like_clause(previous)


def _carry_subject(part: str, groups: list[list[str]]) -> str:
    """'An engine revs and then idles': the part after 'then' gets the earlier subject."""
    earlier = [clause for group in groups for clause in group if clause.strip()]
    if not earlier or not _verb_led(part):
        return part
    previous = earlier[-1].replace("\x00seq", "").split(",")[-1].strip()
    if not previous or not (_SUBJECT_START.match(previous) or _looks_like_clause(previous)):
        return part
    return f"{_subject(previous)} {part.strip()}"


def _split_commas(group: list[str]) -> list[list[str]]:
    """Within a group, a comma-separated run of clauses becomes consecutive groups."""
    out: list[list[str]] = [[]]
    for clause in group:
        pieces = _attach_modifiers([p for p in re.split(r"\s*,\s*", clause) if p.strip()])
        if not pieces:
            continue
        if not all(_looks_like_clause(p) for p in pieces):
            # "rain, wind, fire": a list of sources sounding together, not a sequence.
            out[-1].extend(pieces)
            continue
        out[-1].append(pieces[0])
        for piece in pieces[1:]:
            out.append([piece])
    # Verb continuations ("... and drives away") start their own sequential group.
    final: list[list[str]] = []
    for group_items in out:
        current: list[str] = []
        for item in group_items:
            if item.endswith("\x00seq"):
                if current:
                    final.append(current)
                current = [item[: -len("\x00seq")]]
            else:
                current.append(item)
        if current:
            final.append(current)
    return final


def _attach_modifiers(pieces: list[str]) -> list[str]:
    """'water drips, continuous': a piece of only bed or loudness words qualifies its neighbour."""
    out: list[str] = []
    for piece in pieces:
        bare = _VERY.sub(" ", _LOUDER.sub(" ", _QUIETER.sub(" ", _BED.sub(" ", piece))))
        if out and not re.search(r"[A-Za-z]", re.sub(r"\b(?:and|but)\b", " ", bare, flags=re.I)):
            out[-1] = f"{out[-1]}, {piece.strip()}"
        else:
            out.append(piece)
    return out


# Time expressions contain words like "after"/"and" that must not be read as connectives.
_TIME_PATTERNS = (_RANGE_TIME, _AT_TIME, _AFTER_TIME, _FOR_TIME)


def _protect_times(text: str) -> str:
    for pattern in _TIME_PATTERNS:
        text = pattern.sub(lambda m: m.group(0).replace(" ", "\x01"), text)
    return text


def _restore_times(text: str) -> str:
    return text.replace("\x01", " ")
