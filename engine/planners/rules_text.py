"""Text analysis for the rule planner: clauses, connectives, explicit times, loudness words.

Pure string functions so the planner logic in rules.py reads as layout, not regex.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.lexicon import SoundEntry
from engine.planners.rules_time import (
    AFTER_TIME,
    SILENCE_LENGTH,
    TIME_PATTERNS,
    TimeSpec,
    extract_count,
    extract_time,
    fade_shares,
    is_onset,
    is_silence,
    is_stop,
    normalise_times,
)

# Connectives that put the next clause after the previous one.
_SEQUENTIAL = r"followed by|and then|after that|afterwards|after which|then|before|after|;"
# Sequential connectives after which a bare verb continues the previous subject ("and then
# idles"); after "followed by" a bare plural is a new source ("followed by footsteps").
_SUBJECT_CARRIERS = frozenset({"then", "and then", "after that", "afterwards", "after which"})
# Connectives that make clauses sound together. ("over" is not one: "flies over the city",
# "walks over gravel" and "is knocked over" are far more common than "talks over music".)
_SIMULTANEOUS = r"along with|together with|accompanied by|while|as|with|amid|and"


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
    r"\b(?:loud(?:ly)?|blaring|booming|deafening|powerful|violent(?:ly)?|"
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
    "again twice once repeatedly shut open closed apart upstairs downstairs overhead".split()
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
class Clause:
    text: str  # cleaned description (count and time words removed)
    raw: str
    time: TimeSpec
    is_bed: bool  # runs under the scene: bed words in the text, or a bed in the lexicon
    is_one_shot: bool  # over in a moment (a one-shot or a run of hits)
    loudness_offset_lu: float  # from loudness words only; the lexicon's level is added later
    entry: SoundEntry | None = None
    count: int | None = None  # "three times": that many separate events
    fade_in_share: float = 0.0  # of the event's length ("approaches")
    fade_out_share: float = 0.0  # ("fades away")
    silence: bool = False  # "then silence": a stretch with no stem
    silence_s: float | None = None  # "two seconds of silence"
    stops: bool = False  # "then stops": ends the continuing sound it names
    repeated: bool = False  # "repeatedly", "on and off": a long run rather than one go
    background: bool = False  # "in the background", "throughout": the whole scene
    onset: bool = False  # "an alarm starts", "rain begins": comes in here and keeps going
    joins: bool = False  # "a man speaks and a dog starts barking": comes in while that goes on


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


_REPEATEDLY = re.compile(r"\b(?:repeatedly|continuously|constantly|on and off|over and over|"
                         r"non-stop|nonstop|keeps? \w+ing)\b", re.I)


def make_clause(raw: str) -> Clause | None:
    """Read one clause: its times, count, source (from the lexicon), dynamics and loudness."""
    from engine.lexicon import load_lexicon

    joins = _JOINS in raw  # set by _split_simultaneous
    raw = raw.replace(_JOINS, "")
    time, rest = extract_time(raw)
    silence_match = SILENCE_LENGTH.search(rest)
    if silence_match or is_silence(clean_description(rest)):
        length_s = float(silence_match.group(1)) if silence_match else time.length_s
        stops = bool(is_silence(rest) and not silence_match)
        # "the crowd goes quiet": the source that falls silent, if the text names one.
        named = load_lexicon().match(rest) if stops else None
        return Clause(text=clean_description(rest) if named else "Silence", raw=raw, time=time,
                      is_bed=False, is_one_shot=False, loudness_offset_lu=0.0, silence=True,
                      silence_s=length_s, stops=stops,
                      entry=named if named is not None and named.name != "silence" else None)
    count, rest = extract_count(rest)
    text = clean_description(rest)
    if not re.search(r"[A-Za-z]", text):
        return None
    entry = load_lexicon().match(text)
    bed_words = bool(_BED.search(raw))
    stops = is_stop(text)
    if stops and entry is not None and not entry.continuous:
        # "the projector clicks off": what stops is the running source, not a click.
        entry = next((m.entry for m in load_lexicon().matches(text) if m.entry.continuous), entry)
    is_bed = (bed_words or (entry is not None and entry.kind == "bed" and count is None)) \
        and not stops
    if entry is not None:
        one_shot = entry.kind in ("one_shot", "hits") and not bed_words
    else:
        one_shot = bool(_ONE_SHOT.search(raw)) and not bed_words
    fade_in, fade_out = fade_shares(raw)
    return Clause(
        text=text,
        raw=raw,
        time=time,
        is_bed=is_bed,
        is_one_shot=one_shot,
        loudness_offset_lu=loudness_offset_lu(raw),
        entry=entry,
        count=count,
        fade_in_share=fade_in,
        fade_out_share=fade_out,
        stops=stops,
        # "a dog starts barking": a run of hits that starts keeps going, like "repeatedly".
        repeated=bool(_REPEATEDLY.search(raw)) or (
            entry is not None and entry.kind == "hits" and count is None and is_onset(text)
            and not stops),
        background=bed_words,
        onset=is_onset(text) and not stops,
        joins=joins,
    )


def run_clause(start: Clause) -> Clause:
    """'The projector whirs on, then clicks off': the running between a machine's start-up and
    its stop, which the text leaves unsaid ("The projector runs")."""
    subject = _subject(_STARTS_WORDS.sub(" ", start.text)).strip() or start.text
    entry = start.entry
    return Clause(text=f"{subject[:1].upper()}{subject[1:]} runs", raw=start.raw, time=TimeSpec(),
                  is_bed=entry is not None and entry.kind == "bed", is_one_shot=False,
                  loudness_offset_lu=start.loudness_offset_lu, entry=entry)


_STARTS_WORDS = re.compile(r"\b(?:starts?|begins?|kicks? in|fires? up|turns? on|switch(?:es)? on|"
                           r"\w+s (?:on|up|to life)|comes? on)\b.*$", re.I)


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
    if first in ("is", "was", "gets", "got") and len(words) > 1 and words[1].endswith("ed"):
        return True  # "... then is switched off": a passive verb, the subject came earlier
    if _ARTICLE_START.match(first) or first in _PLURAL_SOURCES or first in _VERB_FOLLOWERS:
        return False
    if not first.endswith("s") or first.endswith("ss"):
        return False
    if len(words) == 1:
        return not _names_a_source(first)
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
    previous = previous.replace("\x00seq", "").split(",")[-1]
    return bool(_SUBJECT_START.match(previous.strip())) and _verb_led(part)


_PREPOSITIONS = frozenset(
    "on in at of from with by under over near into onto through across along behind and or "
    "for to off away up down out back again twice once".split()
)


def _looks_like_clause(piece: str) -> bool:
    """'a dog barks', 'people talking', 'keys jingle' (a source doing something), not a bare
    noun like 'wind' or 'footsteps on gravel'."""
    words = re.findall(r"[A-Za-z]+", re.sub(r"\S*[\x01\x02]\S*", " ", piece).lower())
    if len(words) >= 2 and any(w.endswith(("s", "ing", "ed")) for w in words[1:]):
        return True
    # A plural subject with a plain verb: "keys jingle", "doors open", "brakes screech".
    return any(w.endswith("s") and not w.endswith("ss") and nxt not in _PREPOSITIONS
               and nxt not in _ARTICLE_WORDS for w, nxt in zip(words, words[1:]))


_ARTICLE_WORDS = frozenset("a an the some his her its their my our your this that".split())


def _names_a_source(word: str) -> bool:
    """'fireworks', 'sirens': a lexicon source named in the plural, not a verb."""
    from engine.lexicon import load_lexicon

    return any(word == entry.name for entry in load_lexicon().entries)


def _verb_led_in_list(piece: str) -> bool:
    """In a comma list after a clause, 'beeps twice' is a verb even though 'beeps' is a noun too."""
    words = _words(piece)
    if not words or words[0] in _VERB_FOLLOWERS or _ARTICLE_START.match(words[0]):
        return False
    if (words[0] in _PLURAL_SOURCES or _names_a_source(words[0])) and (
            _looks_like_clause(piece) or len(words) == 1):
        return False  # "doors open", "footsteps", "fireworks": a new source
    return _verb_led(piece) or (words[0].endswith("s") and not words[0].endswith("ss") and (
        len(words) == 1 or words[1] in _VERB_FOLLOWERS or words[1].endswith("ly")))


def _is_verb(word: str) -> bool:
    word = word.lower()
    return (word.endswith(("ing", "ed")) or (word.endswith("s") and not word.endswith("ss"))) \
        and word not in _PLURAL_SOURCES


def _subject(text: str) -> str:
    """Leading noun phrase of a clause: 'a car engine' from 'a car engine starts'."""
    words = text.replace("\x01", " ").strip().split()
    if not words:
        return ""
    taken = [words[0]]
    rest = words[1:] if _ARTICLE_START.match(words[0]) or words[0].lower() in ("someone", "somebody") else []
    if _ARTICLE_START.match(words[0]):
        for index, word in enumerate(rest[:3]):
            if (_is_verb(word) and not _ing_modifier(word, rest[index + 1:index + 2])) \
                    or word.lower() in _VERB_FOLLOWERS:
                break
            taken.append(word)
    return " ".join(taken)


def _ing_modifier(word: str, following: list[str]) -> bool:
    """'washing' in 'the washing machine starts': an -ing word in front of a noun names the kind
    of thing ('a ceiling fan', 'a sewing machine'), it is not the verb."""
    if not word.lower().endswith("ing") or not following:
        return False
    noun = following[0].lower().strip(",.;:")
    return noun.isalpha() and not _is_verb(noun) and not noun.endswith("ly") \
        and noun not in _VERB_FOLLOWERS and noun not in _PREPOSITIONS


def _source_kind(clause: str) -> str | None:
    """The lexicon kind of a clause's source (one_shot, hits, sustained, bed) or None."""
    from engine.lexicon import load_lexicon

    entry = load_lexicon().match(clause.replace("\x01", " "))
    return entry.kind if entry else None


def _reads_as_sequence(piece: str, previous: str) -> bool:
    """'a match is struck and a fire crackles': a short event first, then the next action.

    Two actions joined by 'and' play in order when the first is over in a moment (a one-shot
    or a run of hits); when the first keeps going (rain, a fan) the second sounds over it.
    """
    if "," in previous or previous.endswith("\x00seq"):
        return False
    if not (_looks_like_clause(previous) and (_looks_like_clause(piece) or _verb_led(piece))):
        return False
    return _source_kind(previous) in ("one_shot", "hits")


def _is_bed_piece(piece: str) -> bool:
    return bool(_BED.search(piece)) or _source_kind(piece) == "bed"


# Screenplay sluglines ("INT. KITCHEN - ", "EXT. STREET NIGHT: ") name a place, not a sound.
_SLUGLINE = re.compile(r"^\s*(?:INT|EXT|INT/EXT)\.?\s+[A-Z][A-Z0-9 .'/]*?(?:\s+-\s+|:\s*)")
# A full stop between sentences separates actions like a semicolon (not "3.5 s", not "Mr.").
_SENTENCE_END = re.compile(r"(?<=[a-z0-9])\.\s+(?=[A-Za-z])")


_REPEAT = re.compile(r"^(?:and\s+)?(?:again|once more|one more time|once again)((?:\s+at[\s\x01]+\S+)?)$",
                     re.I)


def split_scene(prompt: str) -> list[list[str]]:
    """Split a prompt into sequential groups of simultaneous clause texts (in time order)."""
    text = _SLUGLINE.sub("", re.sub(r"\s+", " ", prompt.strip()))
    text = normalise_times(_SENTENCE_END.sub("; ", text))
    # "runs for a while": a vague length, not the connective "while".
    text = re.sub(r"\bfor\s+a\s+(?:little\s+)?while\b",
                  lambda m: m.group(0).replace(" ", "\x01"), text, flags=re.I)
    # "closer and closer", "over and over": one phrase, not two clauses.
    text = re.sub(r"\b(\w+) and \1\b", r"\1", text, flags=re.I)
    # "an explosion with debris falling after it": the second sound follows the first.
    text = re.sub(r"\s+(?:with|and)\s+([^,;]+?)\s+after\s+(?:it|that|this)\b", r" then \1", text,
                  flags=re.I)
    # Cue notation "thunder at 1 s over steady rain": the part after "over" is a layer.
    text = re.sub(r"(\bat\s+\d+(?:\.\d+)?\s*(?:seconds?|secs?|s)\b[^;]*?)\s+over\s+", r"\1 with ",
                  text, flags=re.I)
    # A leading "After X, Y" / "Before X, Y" is rewritten into plain order first.
    lead = re.match(r"^(after|before)\s+([^,]+),\s*(.+)$", text, re.I)
    if lead and not AFTER_TIME.match(text):
        first, second = lead.group(2), lead.group(3)
        text = f"{first} then {second}" if lead.group(1).lower() == "after" else f"{second} then {first}"
    groups: list[list[str]] = []
    for connective, part in _split_keep(_SEQUENTIAL, _protect_times(text)):
        earlier = [c for g in groups for c in g if c.strip()]
        repeat = _REPEAT.match(part.strip(" ,."))
        if repeat and earlier:
            # "barks once, then again (at 6 s)": the same sound once more, at its own time.
            _, base = extract_time(_restore_times(earlier[-1].replace("\x00seq", "").split(",")[-1]))
            part = f"{base} {repeat.group(1) or ''}".strip()
        elif connective in _SUBJECT_CARRIERS:
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
    return _resolve_pronouns(
        [[_restore_times(clause) for clause in group] for group in result if group])


_PRONOUN = re.compile(r"^(?:it|they|its)\b\s*", re.I)


def _resolve_pronouns(groups: list[list[str]]) -> list[list[str]]:
    """'a clock ticks; at 10 s it chimes': 'it' is the clock, so the event says so."""
    previous = ""
    out: list[list[str]] = []
    for group in groups:
        resolved = []
        for clause in group:
            _, bare = extract_time(clause)
            if _PRONOUN.match(bare) and previous:
                subject = _subject(previous)
                if _ARTICLE_START.match(subject) and subject.split()[0].lower() in ("a", "an"):
                    subject = "the " + " ".join(subject.split()[1:])
                clause = _PRONOUN.sub(f"{subject} " if not bare.lower().startswith("its")
                                      else f"{subject}'s ", clause.strip(), count=1) \
                    if _PRONOUN.match(clause.strip()) else \
                    re.sub(r"\b(?:it|they)\b", subject, clause, count=1, flags=re.I)
            elif bare:
                previous = bare
            resolved.append(clause)
        out.append(resolved)
    return out


def _split_simultaneous(part: str) -> list[str]:
    clauses: list[str] = []
    for connective, piece in _split_keep(_SIMULTANEOUS, part):
        previous = clauses[-1] if clauses else ""
        if connective == "and" and previous and "," in previous and not previous.endswith("\x00seq"):
            # "keys jingle, a lock turns, and a door opens": the last item of a comma list
            # takes the list's reading (sequence or layers), decided in _split_commas.
            clauses[-1] = f"{previous}, {piece.strip()}"
        elif connective == "and" and previous and _ECHO.match(piece.strip()) \
                and not previous.endswith("\x00seq"):
            # "slams shut and echoes down a corridor": the echo is the slam's own tail.
            clauses[-1] = f"{previous.strip()} and {piece.strip()}"
        elif connective == "and" and previous and _is_verb_continuation(piece, previous):
            clauses.append(f"{_subject(_last_subject_piece(previous))} {piece.strip()}\x00seq")
        elif connective == "and" and previous and _STARTS_VERB.match(piece.strip()) \
                and _SUBJECT_START.match(previous.strip()) and not previous.endswith("\x00seq"):
            # "a man walks in and starts talking": the same subject's next action.
            clauses.append(f"{_subject(_last_subject_piece(previous))} {piece.strip()}\x00seq")
        elif connective == "and" and previous and _starts_after(piece, previous):
            # "debris falls and a car alarm starts": the alarm comes in when the debris lands
            # (plain "rain and thunder" stays two layers). After a sound that goes on by
            # nature ("a man speaks and a dog starts barking") it comes in while that goes on.
            joins = _JOINS if _goes_on(previous) else ""
            clauses.append(f"{piece.strip()}{joins}\x00seq")
        elif connective == "and" and previous and _new_action_of_a_short_sound(piece, previous):
            # "an arrow whooshes and hits a target": two sounds of one source, in order.
            clauses.append(f"{_subject(_last_subject_piece(previous))} {piece.strip()}\x00seq")
        elif connective == "and" and previous and _continues_texture(piece, previous):
            # "Fire crackles and pops", "a man answering and talking": one source, one event.
            clauses[-1] = f"{previous.strip()} and {piece.strip()}"
        elif connective == "and" and previous and _reads_as_sequence(piece, previous):
            clauses.append(f"{piece.strip()}\x00seq")
        else:
            clauses.append(piece)
    return clauses


_STARTS_VERB = re.compile(r"^(?:starts?|begins?)\s+(?:to\s+)?\w+", re.I)
# Marks a clause that comes in while the open-ended sound before it goes on (Clause.joins).
_JOINS = "\x04"
# A sustained source that can run this long goes on by nature (speech, an idling engine or
# truck, a siren, a baby crying, a piano playing); a shorter one is an action with a length
# ("debris falls" lands within 5 s, a thunder roll within 8 s, a phone's ringing within 10 s).
OPEN_ENDED_MIN_S = 12.0


def _goes_on(previous: str) -> bool:
    """Whether the clause names an open-ended sustained source (beds have their own lead)."""
    from engine.lexicon import load_lexicon

    time, bare = extract_time(previous.replace("\x01", " "))
    if time.length_s is not None or time.end_s is not None:
        return False  # "speaks for five seconds": it ends where the text says
    bare = clean_description(bare)
    entry = load_lexicon().match(bare) if bare else None
    return (entry is not None and entry.kind == "sustained" and not is_stop(bare)
            and entry.length_max_s >= OPEN_ENDED_MIN_S)


def _starts_after(piece: str, previous: str) -> bool:
    """A new source that starts, begins or kicks in after an action: it follows the action."""
    if previous.endswith("\x00seq") or "," in previous or _verb_led(piece) or _gerund_led(piece):
        return False
    bare = extract_time(piece.replace("\x01", " "))[1]
    return bool(bare) and is_onset(bare) and not is_stop(bare) and _looks_like_clause(bare)


_ECHO = re.compile(r"^(?:echoes|reverberates|resonates|rings out|lingers|decays|fades)\b", re.I)


def _new_action_of_a_short_sound(piece: str, previous: str) -> bool:
    """A verb after a one-shot that names a different sound ("whooshes and hits")."""
    if previous.endswith("\x00seq") or "," in previous or not _verb_led(piece):
        return False
    if _ECHO.match(piece.strip()):
        return False  # "slams and echoes": the echo is the slam's own tail
    if not _looks_like_clause(previous) or _source_kind(previous) not in ("one_shot", "hits"):
        return False
    from engine.lexicon import load_lexicon

    lexicon = load_lexicon()
    first, second = lexicon.match(previous.replace("\x01", " ")), lexicon.match(piece)
    return second is not None and first is not None and second.name != first.name


def _continues_texture(piece: str, previous: str) -> bool:
    if previous.endswith("\x00seq") or "," in previous:
        return False
    if _gerund_led(piece):
        return any(w.endswith("ing") for w in _words(previous)[1:])
    return _verb_led(piece) and _looks_like_clause(previous)


def _last_subject_piece(text: str) -> str:
    """The latest comma piece that names its own subject (not 'hovers overhead')."""
    pieces = [p for p in text.replace("\x00seq", "").split(",") if p.strip()]
    for piece in reversed(pieces):
        if not _verb_led_in_list(piece):
            return piece.strip()
    return pieces[0].strip() if pieces else ""


def _carry_subject(part: str, groups: list[list[str]]) -> str:
    """'An engine revs and then idles': the part after 'then' gets the earlier subject."""
    earlier = [clause for group in groups for clause in group if clause.strip()]
    if not earlier or not (_verb_led(part) or _verb_led_in_list(part) or _gerund_led(part)):
        return part
    previous = _last_subject_piece(earlier[-1])
    if not previous or not (_SUBJECT_START.match(previous) or _looks_like_clause(previous)):
        return part
    return f"{_subject(previous)} {part.strip()}"


def _split_commas(group: list[str]) -> list[list[str]]:
    """Within a group, a comma-separated run of clauses becomes consecutive groups."""
    out: list[list[str]] = [[]]
    for clause in group:
        sequential_tail = clause.endswith("\x00seq")
        body = clause[: -len("\x00seq")] if sequential_tail else clause
        pieces = _attach_modifiers([p for p in re.split(r"\s*,\s*", body) if p.strip()])
        if not pieces:
            continue
        if len(pieces) > 1 and _looks_like_clause(pieces[0]) and all(
                _looks_like_clause(p) or _verb_led_in_list(p) for p in pieces[1:]):
            pass  # a run of actions: a sequence
        elif len(pieces) > 1 and not any(_is_bed_piece(p) for p in pieces):
            pass  # "whoosh, impact, grunt": a task list of short sounds plays in order
        elif not all(_looks_like_clause(p) or _verb_led(p) for p in pieces):
            # "rain, wind, fire": a list of sources sounding together, not a sequence.
            if sequential_tail:
                out.append(list(pieces))
            else:
                out[-1].extend(pieces)
            continue
        # A verb-led piece ("hovers overhead") continues the subject of the piece before it.
        named = [pieces[0]]
        for piece in pieces[1:]:
            named.append(f"{_subject(_last_subject_piece(', '.join(named)))} {piece.strip()}"
                         if _verb_led_in_list(piece) else piece)
        if sequential_tail:
            out.append([named[0]])
        else:
            out[-1].append(named[0])
        first = out[-1]
        continued = [_verb_led_in_list(piece) for piece in pieces[1:]]
        for piece, same_subject in zip(named[1:], continued):
            # "a tap drips, a fridge hums": a bed in a list of actions is a layer under them
            # (but "the fridge starts, runs, cuts out" is one source's actions in turn).
            if _is_bed_piece(piece) and not same_subject:
                first.append(piece)
            else:
                out.append([piece])
    return [g for g in out if g]


_COUNT_ONLY = re.compile(r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|several|"
                         r"a few|a couple of|many)\s+times\b|\b(?:once|twice|thrice|again|repeatedly)\b",
                         re.I)


def _attach_modifiers(pieces: list[str]) -> list[str]:
    """'water drips, continuous': a piece of only bed or loudness words qualifies its neighbour."""
    out: list[str] = []
    for piece in pieces:
        bare = _VERY.sub(" ", _LOUDER.sub(" ", _QUIETER.sub(" ", _BED.sub(" ", piece))))
        bare = _COUNT_ONLY.sub(" ", bare)
        if out and not re.search(r"[A-Za-z]", re.sub(r"\b(?:and|but)\b", " ", bare, flags=re.I)):
            out[-1] = f"{out[-1]}, {piece.strip()}"
        else:
            out.append(piece)
    return out


# Time expressions contain words like "after"/"and" that must not be read as connectives.
_TIME_PATTERNS = TIME_PATTERNS


def _protect_times(text: str) -> str:
    # Spaces and commas inside a time ("at 1 s, 4 s and 7 s") must not split clauses.
    for pattern in _TIME_PATTERNS:
        text = pattern.sub(lambda m: m.group(0).replace(" ", "\x01").replace(",", "\x02"), text)
    return text


def _restore_times(text: str) -> str:
    return text.replace("\x01", " ").replace("\x02", ",")


# "on a windy hillside", "on rolling waves", "by the sea": a setting that is itself a bed.
_SETTING = re.compile(
    r"\b(?:on|in|at|by|near|beside|along|across|through|under)\s+(?:(?:a|an|the)\s+)?"
    r"((?:windy|rainy|stormy|snowy|busy|crowded|noisy|bustling|rolling|choppy|rough)\s+[a-z]+|"
    r"(?:the\s+)?(?:sea|ocean|beach|shore|river|stream|waterfall))\b",
    re.I,
)


def setting_beds(clauses: list[Clause]) -> list[Clause]:
    """Beds implied by where a sound happens, when no clause names that bed already."""
    from engine.lexicon import load_lexicon

    have = {c.entry.name for c in clauses if c.entry is not None}
    beds: list[Clause] = []
    for clause in clauses:
        for match in _SETTING.finditer(clause.raw):
            phrase = match.group(1)
            entry = load_lexicon().match(phrase)
            if entry is None or entry.kind != "bed" or entry.name in have:
                continue
            bed = make_clause(phrase)
            if bed is not None:
                beds.append(bed)
                have.add(entry.name)
    return beds
