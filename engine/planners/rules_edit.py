"""The offline edit grammar: plain-language changes to a plan, read without an LLM.

One instruction becomes one or more structured EventEdits (engine.edits), applied in order, so
the events it does not name keep their ids, times and loudness. Targets are found by words and
by the sound lexicon; a target that fits two different events is an error that lists them,
never a guess. An instruction that cannot be read gets one line naming what was not understood
and the forms that work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from engine.edits import EventEdit, apply_edit, stable_seed
from engine.errors import InvalidInputError, NotFoundError
from engine.lexicon import load_lexicon, stems
from engine.limits import clamp_target_lufs
from engine.plan import MIN_TARGET_LUFS, Event, Plan, PlanLimits, validate_plan
from engine.planners.rules_layout import (
    clause_offset_lu,
    hit_length_s,
    hit_spacing_s,
    natural_length_s,
)
from engine.planners.rules_text import make_clause
from engine.planners.rules_time import normalise_times

if TYPE_CHECKING:
    from engine.planners.rules import RulePlanner

FORMS = (
    "'remove X', 'replace X with Y', 'make X louder/quieter', 'lower X by 3 dB', "
    "'move X to 4 s', 'move X 2 s later', 'make X shorter/longer', 'X should last 2 s', "
    "'end X at 9 s', 'swap X and Y', 'X after Y', 'add a Y at 5 s', "
    "'shift everything 1 s later', 'everything louder by 2 dB', 'fade X out'"
)
SHORTER_FACTOR = 0.6
LONGER_FACTOR = 1.5
SLIGHT_FACTOR = 0.8  # "a bit shorter" (and 1 / 0.8 for "a bit longer")
STEP_LU = 6.0
SLIGHT_STEP_LU = 3.0
BIG_STEP_LU = 10.0
# Edits may pass through crowded intermediate states; only the result must meet the limits.
_LOOSE = PlanLimits(max_overlap=10_000, max_events=10_000, max_duration_s=1e9,
                    max_description_chars=10_000)

_T = r"(\d+(?:\.\d+)?)\s*(?:seconds?|secs?|s)?"
_DB = r"(\d+(?:\.\d+)?)\s*(?:db|decibels?|lu)\b"
_DB_PLAIN = r"\d+(?:\.\d+)?\s*(?:db|decibels?|lu)\b"  # the same, capturing nothing


@dataclass
class Context:
    planner: "RulePlanner"
    plan: Plan

    def current_lufs(self, event: Event) -> float:
        return event.target_lufs if event.target_lufs is not None else self.planner.base_lufs


# ---- cleaning ------------------------------------------------------------------------------

_POLITE = re.compile(
    r"^(?:(?:hey|ok|okay|so|now|hmm|um|well|also|and|but|actually|just|maybe|perhaps)[,!]?\s+|"
    r"(?:can|could|would|will) you(?: please)?\s+|please\s+|i think\s+|i feel(?: like)?\s+|"
    r"i(?:'d| would) like (?:you )?to\s+|i want (?:you )?to\s+|let'?s\s+|try to\s+|"
    r"go ahead and\s+|kindly\s+)+",
    re.I,
)
_TRAILING = re.compile(
    r"(?:[,\s]+(?:please|thanks|thank you|for me|if you can|if possible|a little more|"
    r"ok|okay))+$",
    re.I,
)


def clean_instruction(text: str) -> str:
    text = re.sub(r"\s+", " ", text.strip()).strip(" .!?")
    previous = None
    while previous != text:
        previous = text
        text = _POLITE.sub("", text).strip()
        text = _TRAILING.sub("", text).strip(" .!?,")
    text = normalise_times(text)
    text = re.sub(r"\b(?:by|back|forward|earlier|later)\s+a\s+second\b",
                  lambda m: m.group(0).replace("a second", "1 s"), text, flags=re.I)
    return re.sub(r"\b(a|one) second (later|earlier)\b", r"1 s \2", text, flags=re.I)


# ---- targets -------------------------------------------------------------------------------

_FILLER = {"the", "a", "an", "that", "this", "those", "these", "sound", "sounds", "noise",
           "noises", "of", "one", "event", "effect", "sfx", "bit", "part", "please", "all", "it"}


def _ref_stems(reference: str) -> list[str]:
    return [w for w in stems(reference) if w not in {*(stems(" ".join(_FILLER)))}]


def _score(event: Event, wanted: list[str]) -> int:
    words = stems(event.description)
    return sum(1 for w in wanted if any(word.startswith(w) or w.startswith(word)
                                        for word in words if len(word) >= 3 and len(w) >= 3))


def find_targets(plan: Plan, reference: str, *, allow_group: bool) -> list[Event]:
    """The events ``reference`` names. Several only for identical descriptions (a counted
    run) when ``allow_group``; otherwise two different best matches are an error."""
    ref = reference.strip().strip(",.").lower()
    ref = re.sub(r"^(?:the|a|an|that|those|these)\s+", "", ref)
    for event in plan.events:
        if event.id.lower() == ref:
            return [event]
    wanted = _ref_stems(ref)
    if not wanted:
        raise NotFoundError(f"{reference!r}: says no sound to change; events are "
                            + _listing(plan.events), field="instruction", value=reference)
    scored = [(_score(e, wanted), e) for e in plan.events]
    best = max(score for score, _ in scored)
    if best == 0:
        # No shared word: the same source in other words ("the blast" for "An explosion").
        entry = load_lexicon().match(ref)
        scored = [(1 if entry is not None and load_lexicon().match(e.description) is entry else 0, e)
                  for e in plan.events]
        best = max(score for score, _ in scored)
    if best == 0:
        raise NotFoundError(
            f"{reference!r}: no event matches; events are " + _listing(plan.events),
            field="instruction", value=reference)
    found = [e for score, e in scored if score == best]
    descriptions = {e.description.strip().lower() for e in found}
    if len(found) > 1 and (len(descriptions) > 1 or not allow_group):
        raise InvalidInputError(
            f"{reference!r} could mean {len(found)} events: " + _listing(found)
            + "; name one by its id or more of its words", field="instruction", value=reference)
    return found


def _listing(events: tuple[Event, ...] | list[Event]) -> str:
    return "; ".join(f"{e.id}: {e.description} ({e.start_s:g}-{e.end_s:g} s)" for e in events)


def _one(ctx: Context, reference: str) -> Event:
    return find_targets(ctx.plan, reference, allow_group=False)[0]


def _some(ctx: Context, reference: str) -> list[Event]:
    return find_targets(ctx.plan, reference, allow_group=True)


# ---- amounts -------------------------------------------------------------------------------


def _step_lu(text: str) -> float:
    explicit = re.search(_DB, text, re.I)
    if explicit:
        return float(explicit.group(1))
    if re.search(r"\b(?:much|a lot|way|far|lots)\b", text, re.I):
        return BIG_STEP_LU
    if re.search(r"\b(?:a bit|slightly|a little|a touch|a tad|bit)\b", text, re.I):
        return SLIGHT_STEP_LU
    return STEP_LU


def _factor(text: str, longer: bool) -> float:
    slight = re.search(r"\b(?:a bit|slightly|a little|a touch|a tad)\b", text, re.I)
    if longer:
        return 1.0 / SLIGHT_FACTOR if slight else LONGER_FACTOR
    return SLIGHT_FACTOR if slight else SHORTER_FACTOR


_AMOUNT_WORDS = r"(?:\s+(?:much|a bit|slightly|a little|a touch|a tad|way|far|a lot))?"
_DB_TAIL = rf"(?:\s+(?:by\s+)?{_DB})?"
_LOUD = r"louder|up|higher|stronger"
_QUIET = r"quieter|softer|down|lower|weaker|less loud"


# ---- the forms -----------------------------------------------------------------------------

Edits = list[EventEdit]


def _loudness(ctx: Context, targets: list[Event], louder: bool, text: str) -> Edits:
    step = _step_lu(text) * (1 if louder else -1)

    return [EventEdit(op="set_loudness", event_id=e.id,
                      target_lufs=clamp_target_lufs(ctx.current_lufs(e) + step)) for e in targets]


def parse_loudness(ctx: Context, text: str) -> Edits | None:
    patterns: list[tuple[str, Callable[[re.Match[str]], tuple[str, bool]]]] = [
        (rf"^(?:make|turn|set|have|get)\s+(.+?)(?:\s+(?:by\s+)?{_DB_PLAIN})?{_AMOUNT_WORDS}\s+({_LOUD}|{_QUIET})\b"
         rf"{_AMOUNT_WORDS}{_DB_TAIL}$",
         lambda m: (m.group(1), m.group(2).lower() in _LOUD.split("|"))),
        (rf"^(?:turn|bring|pull|push)\s+(up|down)\s+(.+?){_AMOUNT_WORDS}{_DB_TAIL}$",
         lambda m: (m.group(2), m.group(1).lower() == "up")),
        (rf"^(louder|quieter|softer)\s+(.+?){_DB_TAIL}$",
         lambda m: (m.group(2), m.group(1).lower() == "louder")),
        (rf"^(.+?)\s+(?:is|are|sounds?|feels?|seems?)\s+(?:way |far |much |a bit |a little |slightly )?"
         rf"too\s+(loud|quiet|soft|strong|weak|faint)\b.*$",
         lambda m: (m.group(1), m.group(2).lower() in ("quiet", "soft", "weak", "faint"))),
        (rf"^(.+?)\s+(?:needs? to be|should be|could be|must be)\s+{_AMOUNT_WORDS.strip('?')}?\s*"
         rf"({_LOUD}|{_QUIET})\b.*$",
         lambda m: (m.group(1), m.group(2).lower() in _LOUD.split("|"))),
        (rf"^(lower|reduce|cut|drop|decrease|attenuate|duck|raise|boost|increase|lift)\s+(.+?)"
         rf"\s+(?:by\s+)?{_DB}.*$",
         lambda m: (m.group(2), m.group(1).lower() in ("raise", "boost", "increase", "lift"))),
        (rf"^(lower|reduce|duck|soften|raise|boost|increase)\s+(?:the\s+(?:level|volume)\s+of\s+)?(.+?)"
         rf"{_AMOUNT_WORDS}$",
         lambda m: (m.group(2), m.group(1).lower() in ("raise", "boost", "increase"))),
        (rf"^(.+?){_AMOUNT_WORDS}\s+({_LOUD}|{_QUIET}){_AMOUNT_WORDS}{_DB_TAIL}$",
         lambda m: (m.group(1), m.group(2).lower() in _LOUD.split("|"))),
    ]
    for pattern, read in patterns:
        match = re.match(pattern, text, re.I)
        if match:
            reference, louder = read(match)
            if _EVERYTHING.match(reference.strip()):
                return _loudness(ctx, list(ctx.plan.events), louder, text)
            return _loudness(ctx, _some(ctx, reference), louder, text)
    return None


def parse_mute(ctx: Context, text: str) -> Edits | None:
    match = re.match(r"^(?:mute|silence)\s+(.+)$", text, re.I)
    if not match:
        return None
    return [EventEdit(op="set_loudness", event_id=e.id, target_lufs=MIN_TARGET_LUFS)
            for e in _some(ctx, match.group(1))]


def parse_remove(ctx: Context, text: str) -> Edits | None:
    if re.search(r"\bat\s+\d", text):
        return None  # "drop a gunshot at 6 s" adds
    patterns = [
        r"^(?:remove|delete|cut|get rid of|lose|kill|eliminate|scrap|ditch|drop|take out|take away)"
        r"\s+(.+?)(?:\s+(?:out|entirely|completely|altogether|from the scene))?$",
        r"^take\s+(.+?)\s+out$",
        r"^i (?:don'?t|do not) (?:like|want|need) (.+?)(?:[,;]\s*|\s+so\s+|\s+)"
        r"(?:take it out|remove it|get rid of it|lose it|cut it|drop it|delete it|kill it)$",
        r"^(?:no|without)\s+(.+?)$",
        r"^(.+?)\s+(?:has to|must|should|needs to) go$",
    ]
    for pattern in patterns:
        match = re.match(pattern, text, re.I)
        if match:
            return [EventEdit(op="delete", event_id=e.id) for e in _some(ctx, match.group(1))]
    return None


_EVERYTHING = re.compile(r"^(?:everything|all(?: the)?(?: events| sounds)?|the whole (?:scene|thing|mix)|"
                         r"the (?:mix|scene)|every(?: event| sound))$", re.I)


def parse_everything(ctx: Context, text: str) -> Edits | None:
    everything = (r"(?:everything|all(?: the)?(?: events| sounds)?|the whole (?:scene|thing|mix)|"
                  r"the (?:mix|scene)|every(?: event| sound))")
    match = re.match(rf"^(?:shift|move|push|nudge|delay|slide)\s+{everything}\s+(?:by\s+)?{_T}"
                     rf"(?:\s+(later|earlier|forward|back|backwards?))?$", text, re.I) or \
        re.match(rf"^(?:shift|move|push|nudge|slide)\s+{everything}\s+(later|earlier|forward|back)"
                 rf"\s+by\s+{_T}$", text, re.I)
    if not match:
        match = re.match(rf"^{everything}\s+{_T}\s+(later|earlier)$", text, re.I)
    if not match:
        return None
    groups = [g for g in match.groups() if g]
    number = next(g for g in groups if re.match(r"^\d", g))
    word = next((g for g in groups if not re.match(r"^\d", g)), "later")
    delay = text.lower().startswith("delay")
    sign = -1.0 if word.lower() in ("earlier", "forward") and not delay else 1.0
    delta = sign * float(number)
    edits = []
    for event in ctx.plan.events:
        start_s = max(0.0, event.start_s + delta)
        if start_s >= ctx.plan.duration_s:
            raise InvalidInputError(
                f"shifting everything {delta:+g} s pushes '{event.description}' past the scene end "
                f"({ctx.plan.duration_s:g} s)", field="instruction", value=text)
        end_s = min(start_s + event.length_s, ctx.plan.duration_s)
        edits.append(EventEdit(op="move", event_id=event.id, start_s=start_s, end_s=end_s))
    return edits


def _move_to(ctx: Context, event: Event, start_s: float) -> EventEdit:
    if not 0 <= start_s < ctx.plan.duration_s:
        raise InvalidInputError(
            f"'{event.description}' would start at {start_s:g} s, outside the scene "
            f"(0-{ctx.plan.duration_s:g} s)", field="instruction", value=start_s)
    end_s = min(start_s + event.length_s, ctx.plan.duration_s)
    return EventEdit(op="move", event_id=event.id, start_s=start_s, end_s=end_s)


def parse_order(ctx: Context, text: str) -> Edits | None:
    match = re.match(r"^(?:swap|switch|exchange|reverse|flip)\s+(?:the\s+order\s+of\s+|round\s+)?"
                     r"(.+?)\s+(?:and|with)\s+(.+?)(?:\s+around|\s+round)?$", text, re.I)
    if match and not re.search(r"\bwith\b", text, re.I) or (
            match and re.search(r"order|around|round", text, re.I)):
        a, b = _one(ctx, match.group(1)), _one(ctx, match.group(2))
        if a.id == b.id:
            raise InvalidInputError(f"{text!r}: both names point at {a.id}",
                                    field="instruction", value=text)
        return [_move_to(ctx, a, b.start_s), _move_to(ctx, b, a.start_s)]
    if re.match(r"^(?:add|insert|include|drop|throw|stick|layer|i want|i need|give me)\b", text, re.I):
        return None  # "add a bark after the door" adds; see parse_add
    match = re.match(r"^(?:(?:put|place|move|have|play)\s+)?(.+?)\s+(?:should\s+)?(?:come\s+|go\s+|"
                     r"play\s+|be\s+|happen\s+|comes\s+|goes\s+|plays\s+|happens\s+)?"
                     r"(right\s+|just\s+)?(after|before)\s+(.+)$", text, re.I)
    if not match or re.search(rf"\b{_T}\b.*\b(after|before)\b", match.group(1), re.I):
        return None
    if re.match(r"^(?:put|place)\b", text, re.I) and _names_new_sound(ctx, match.group(1)):
        return None  # "put a cat meow after the dog": a new sound
    mover, other = _one(ctx, match.group(1)), _one(ctx, match.group(4))
    if match.group(3).lower() == "after":
        return [_move_to(ctx, mover, other.end_s if other.end_s < ctx.plan.duration_s
                         else other.start_s + min(other.length_s, 1.0))]
    start_s = max(0.0, other.start_s - mover.length_s)
    edits = [_move_to(ctx, mover, start_s)]
    if start_s + 1e-9 >= other.start_s or start_s + mover.length_s > other.start_s + 1e-9:
        edits.append(_move_to(ctx, other, min(start_s + mover.length_s, ctx.plan.duration_s - 0.1)))
    return edits


def _length_edit(ctx: Context, event: Event, length_s: float) -> EventEdit:
    end_s = min(event.start_s + max(length_s, 0.05), ctx.plan.duration_s)
    return EventEdit(op="move", event_id=event.id, start_s=event.start_s, end_s=end_s)


def parse_length(ctx: Context, text: str) -> Edits | None:
    match = re.match(rf"^(?:make\s+)?(.+?)\s+(?:should\s+)?(?:be\s+)?{_AMOUNT_WORDS.strip('?')}?\s*"
                     r"(shorter|longer)$", text, re.I) or \
        re.match(r"^(shorten|lengthen|extend|trim|stretch)\s+(.+?)(?:\s+(?:a bit|slightly|a little))?$",
                 text, re.I)
    if match:
        if match.group(1).lower() in ("shorten", "lengthen", "extend", "trim", "stretch"):
            reference, longer = match.group(2), match.group(1).lower() in ("lengthen", "extend", "stretch")
        else:
            reference, longer = match.group(1), match.group(2).lower() == "longer"
            reference = re.sub(rf"{_AMOUNT_WORDS}$", "", reference)
        edits = []
        for event in _some(ctx, reference):
            edits.append(_length_edit(ctx, event, event.length_s * _factor(text, longer)))
        return edits
    match = re.match(rf"^(?:make\s+)?(.+?)\s+(?:should\s+)?(?:last|run|play|go on)(?:\s+for)?\s+{_T}$",
                     text, re.I) or \
        re.match(rf"^(?:make|set)\s+(.+?)\s+{_T}\s+long$", text, re.I) or \
        re.match(rf"^(?:make|set)\s+(?:the\s+)?(?:length|duration)\s+of\s+(.+?)\s+(?:to\s+)?{_T}$",
                 text, re.I) or \
        re.match(rf"^(.+?)\s+should\s+be\s+{_T}\s+long$", text, re.I)
    if match:
        return [_length_edit(ctx, e, float(match.group(2))) for e in _some(ctx, match.group(1))]
    match = re.match(rf"^(?:end|stop|finish|cut off|cut)\s+(.+?)\s+(?:at|by)\s+{_T}$", text, re.I) or \
        re.match(rf"^(.+?)\s+should\s+(?:end|stop|finish)\s+(?:at|by)\s+{_T}$", text, re.I) or \
        re.match(rf"^(?:make|let|have)\s+(.+?)\s+(?:last|run|play|go on)\s+(?:only\s+)?(?:until|till|up to)\s+{_T}$",
                 text, re.I) or \
        re.match(rf"^(.+?)\s+(?:should\s+)?(?:last|run|play|go on)s?\s+(?:only\s+)?(?:until|till|up to)\s+{_T}$",
                 text, re.I)
    if match:
        event = _one(ctx, match.group(1))
        end_s = float(match.group(2))
        if end_s <= event.start_s:
            raise InvalidInputError(
                f"'{event.description}' starts at {event.start_s:g} s; it cannot end at "
                f"{end_s:g} s", field="instruction", value=end_s)
        return [EventEdit(op="move", event_id=event.id, start_s=event.start_s,
                          end_s=min(end_s, ctx.plan.duration_s))]
    return None


_MOVE_VERB = r"(?:move|shift|push|nudge|slide|bring|put|place|set|start|have)"


def parse_move(ctx: Context, text: str) -> Edits | None:
    relative = [
        rf"^{_MOVE_VERB}\s+(.+?)\s+(?:by\s+)?{_T}\s+(later|earlier|forward|back|sooner)$",
        rf"^{_MOVE_VERB}\s+(.+?)\s+(?:to\s+)?{_T}\s+(later|earlier|sooner)$",
        rf"^{_MOVE_VERB}\s+(.+?)\s+(later|earlier|forward|back|backwards|sooner)\s+(?:by\s+)?{_T}$",
        rf"^(delay)\s+(.+?)\s+by\s+{_T}$",
        rf"^(.+?)\s+(?:should\s+(?:be|come|start|happen|play)\s+|needs to be\s+)?{_T}\s+(later|earlier|sooner)$",
    ]
    for pattern in relative:
        match = re.match(pattern, text, re.I)
        if not match:
            continue
        groups = list(match.groups())
        if groups[0].lower() == "delay":
            reference, number, word = groups[1], groups[2], "later"
        elif re.match(r"^\d", groups[1] or ""):
            reference, number, word = groups[0], groups[1], groups[2]
        else:
            reference, word, number = groups[0], groups[1], groups[2]
        sign = -1.0 if word.lower() in ("earlier", "forward", "sooner") else 1.0
        event = _one(ctx, reference)
        return [_move_to(ctx, event, max(0.0, event.start_s + sign * float(number)))]
    absolute = [
        rf"^{_MOVE_VERB}\s+(.+?)\s+(?:in\s+)?(?:to|at)\s+(?:start\s+at\s+)?{_T}$",
        rf"^(.+?)\s+(?:should\s+)?(?:start|come in|begin|happen|play|enter)s?\s+(?:at|from)\s+{_T}$",
        rf"^(?:start|begin)\s+(.+?)\s+(?:at|from)\s+{_T}$",
    ]
    for pattern in absolute:
        match = re.match(pattern, text, re.I)
        if match:
            reference = match.group(1)
            if re.match(r"^(?:put|place|drop|set|have)\b", text, re.I) and _names_new_sound(ctx, reference):
                return None  # "put a car horn at 7 s": a new sound, added below
            return _move_run(ctx, _some(ctx, reference), float(match.group(2)))
    match = re.match(rf"^{_MOVE_VERB}\s+(.+?)\s+(?:to|at)\s+the\s+(start|beginning|end)"
                     r"(?:\s+of the (?:scene|clip))?$", text, re.I)
    if match:
        events = _some(ctx, match.group(1))
        if match.group(2).lower() == "end":
            span_s = max(e.end_s for e in events) - min(e.start_s for e in events)
            return _move_run(ctx, events, max(0.0, ctx.plan.duration_s - span_s))
        return _move_run(ctx, events, 0.0)
    return None


def _move_run(ctx: Context, events: list[Event], start_s: float) -> Edits:
    """Move one event, or a counted run of identical events together, to start at start_s."""
    delta = start_s - min(e.start_s for e in events)
    return [_move_to(ctx, e, e.start_s + delta) for e in events]


def _names_new_sound(ctx: Context, reference: str) -> bool:
    """'a car horn' when the plan has a car but no horn: the user asks for a new sound."""
    ref = reference.strip().lower()
    if re.match(r"^(?:the|that|this|those|these)\b", ref):
        return False
    entry = load_lexicon().match(ref)
    if entry is None:
        try:
            find_targets(ctx.plan, ref, allow_group=True)
            return False
        except (NotFoundError, InvalidInputError):
            return True
    return not any(load_lexicon().match(e.description) is entry for e in ctx.plan.events) or \
        bool(re.match(r"^(?:a|an|another|one more|some)\b", ref))


def parse_add(ctx: Context, text: str) -> Edits | None:
    match = re.match(r"^(?:add|insert|include|put|drop|place|throw|stick|layer|i want|i need|give me)"
                     r"\s+(?:in\s+)?(.+)$", text, re.I)
    if not match:
        return None
    wanted = match.group(1)
    # "add a dog bark after the door": placed against an event of the plan.
    relative = re.match(r"^(.+?)\s+(?:right\s+|just\s+)?(after|before)\s+(.+)$", wanted, re.I)
    anchor: list[Event] = []
    if relative:
        try:
            anchor = find_targets(ctx.plan, relative.group(3), allow_group=True)
            wanted = relative.group(1)
        except (NotFoundError, InvalidInputError):
            anchor = []
    clause = make_clause(wanted)
    if clause is None or clause.silence:
        return None
    duration_s = ctx.plan.duration_s
    start_s = clause.time.start_s if clause.time.start_s is not None else 0.0
    end_cap_s = duration_s
    if anchor and relative:
        if relative.group(2).lower() == "after":
            start_s = min(max(e.end_s for e in anchor), duration_s - 0.05)
        else:
            end_cap_s = min(e.start_s for e in anchor)  # ends where the other begins
            start_s = max(0.0, end_cap_s - natural_length_s(clause))
        start_s = round(start_s, 3)
    if start_s >= duration_s:
        raise InvalidInputError(
            f"'{clause.text}' at {start_s:g} s is past the scene end ({duration_s:g} s)",
            field="instruction", value=start_s)

    lufs = clamp_target_lufs(ctx.planner.base_lufs + clause_offset_lu(clause))
    starts = list(clause.time.starts_s) or [start_s]
    if clause.count and len(starts) == 1:
        starts = [start_s + i * hit_spacing_s(clause) for i in range(clause.count)]
    if clause.time.end_s is not None:
        length_s = clause.time.end_s - start_s
    elif clause.is_bed and clause.time.length_s is None and not clause.count:
        length_s = duration_s - start_s
    else:
        length_s = hit_length_s(clause) if clause.count else natural_length_s(clause)
    edits = []
    for at_s in starts:
        if at_s >= duration_s:
            continue
        end_s = min(at_s + max(length_s, 0.05), end_cap_s if end_cap_s > at_s else duration_s)
        edits.append(EventEdit(op="add", description=clause.text, start_s=at_s,
                               end_s=end_s, target_lufs=lufs))
    return edits


def parse_replace(ctx: Context, text: str) -> Edits | None:
    match = re.match(r"^(?:replace|swap|change|substitute|turn|switch|make)\s+(.+?)\s+"
                     r"(?:with|for|to|into|by|for a|to be)\s+(.+)$", text, re.I)
    if not match or re.fullmatch(rf"{_T}|(?:louder|quieter|shorter|longer).*", match.group(2), re.I):
        return None
    new_text = match.group(2).strip().strip(".")
    description = new_text[:1].upper() + new_text[1:]
    return [EventEdit(op="replace_text", event_id=e.id, description=description)
            for e in _some(ctx, match.group(1))]


_INTENSITY = {
    "heavier": ("heavy", 3.0), "stronger": ("strong", 3.0), "bigger": ("big", 3.0),
    "more intense": ("intense", 3.0), "harder": ("hard", 3.0),
    "lighter": ("light", -3.0), "weaker": ("weak", -3.0), "smaller": ("small", -3.0),
    "gentler": ("gentle", -3.0), "softer and lighter": ("light", -3.0),
}
_INTENSITY_WORDS = re.compile(r"\b(?:heavy|light|strong|weak|big|small|intense|hard|gentle|soft)\s+",
                              re.I)


def parse_intensity(ctx: Context, text: str) -> Edits | None:
    """'make the rain heavier': a content change (new adjective) plus a small loudness shift."""
    words = "|".join(re.escape(k) for k in _INTENSITY)
    match = re.match(rf"^make\s+(.+?)\s+(?:much\s+|a bit\s+|slightly\s+)?({words})$", text, re.I)
    if not match:
        return None

    edits = []
    for event in _some(ctx, match.group(1)):
        adjective, shift_lu = _INTENSITY[match.group(2).lower()]
        base = _INTENSITY_WORDS.sub("", event.description, count=1)
        description = f"{adjective} {base[:1].lower()}{base[1:]}"
        edits.append(EventEdit(op="replace_text", event_id=event.id,
                               description=description[:1].upper() + description[1:],
                               target_lufs=clamp_target_lufs(ctx.current_lufs(event) + shift_lu)))
    return edits


FADE_SHARE = 0.5  # "fade the car out": half the event, the way a designer would draw it


def parse_fade(ctx: Context, text: str) -> Edits | None:
    """'fade the car out', 'the car should fade in over 2 s', 'no fade on the rain'."""
    match = re.match(rf"^fade\s+(.+?)\s+(in|out)(?:\s+over\s+{_T})?$", text, re.I) or \
        re.match(rf"^(?:make\s+|let\s+|have\s+)?(.+?)\s+(?:should\s+)?fades?\s+(in|out|away)"
                 rf"(?:\s+over\s+{_T})?$", text, re.I) or \
        re.match(rf"^(?:add|put|give)\s+(?:a\s+)?fade[- ]?(in|out)\s+(?:to|on)\s+(.+?)(?:\s+over\s+{_T})?$",
                 text, re.I)
    if not match:
        return None
    groups = match.groups()
    if groups[0].lower() in ("in", "out"):
        direction, reference, seconds = groups[0], groups[1], groups[2]
    else:
        reference, direction, seconds = groups
    edits = []
    for event in _some(ctx, reference):
        length_s = min(float(seconds), event.length_s) if seconds else FADE_SHARE * event.length_s
        if direction.lower() == "in":
            other = min(event.fade_out_s or 0.0, event.length_s - length_s)
            edits.append(EventEdit(op="set_fades", event_id=event.id, fade_in_s=length_s,
                                   fade_out_s=other))
        else:
            other = min(event.fade_in_s or 0.0, event.length_s - length_s)
            edits.append(EventEdit(op="set_fades", event_id=event.id, fade_out_s=length_s,
                                   fade_in_s=other))
    return edits


PARSERS = (parse_everything, parse_fade, parse_order, parse_mute, parse_intensity, parse_length,
           parse_loudness, parse_move, parse_remove, parse_add, parse_replace)


def read_instruction(ctx: Context, instruction: str) -> Edits:
    """The structured edits an instruction asks for; InvalidInputError when it reads as none."""
    text = clean_instruction(instruction)
    # "the fan is too loud, bring it down 6 dB": a follow-on clause about "it" adds the amount.
    head = re.split(r"[,;]\s*(?:and\s+)?(?:bring|turn|take|make|pull|push)\s+it\b", text)[0]
    for candidate in dict.fromkeys((text, head)):
        for parser in PARSERS:
            edits = parser(ctx, candidate if candidate == text else candidate + " " + _amount(text))
            if edits:
                return edits
    raise InvalidInputError(
        f"instruction={instruction!r}: not understood offline (could not read "
        f"'{text or instruction}'). Forms that work: {FORMS}; "
        "or configure an LLM planner for free-form edits",
        field="instruction", value=instruction)


def _amount(text: str) -> str:
    match = re.search(_DB, text, re.I)
    return f"by {match.group(1)} dB" if match else ""


def apply_instruction(planner: "RulePlanner", plan: Plan, instruction: str, *,
                      limits: PlanLimits) -> tuple[Plan, str]:
    ctx = Context(planner, plan)
    edits = read_instruction(ctx, instruction)
    new_plan = plan
    for edit in edits:
        new_plan = apply_edit(new_plan, edit, limits=_LOOSE)
        if edit.op in ("add", "replace_text") and edit.description and planner.seed:
            new_plan = _reseed(new_plan, edit.description, planner.seed)
    new_plan = validate_plan(new_plan, limits=limits)
    return new_plan, describe(edits, plan)


def _reseed(plan: Plan, description: str, salt: int) -> Plan:
    """Seeds follow the planner's salt so --seed changes every render, edits included."""
    events = tuple(
        e.model_copy(update={"seed": stable_seed(e.description, salt=salt)})
        if e.description == description.strip() else e
        for e in plan.events
    )
    return plan.model_copy(update={"events": events})


def describe(edits: Edits, plan: Plan) -> str:
    lines = []
    for edit in edits:
        if edit.op == "add":
            lines.append(f"Added '{edit.description}' at {edit.start_s:g} s.")
            continue
        name = plan.event(str(edit.event_id)).description
        if edit.op == "delete":
            lines.append(f"Removed '{name}'.")
        elif edit.op == "move":
            lines.append(f"Moved '{name}' to {edit.start_s:g}-{edit.end_s:g} s.")
        elif edit.op == "set_loudness":
            lines.append(f"Set '{name}' to {edit.target_lufs:g} LUFS.")
        elif edit.op == "set_fades":
            lines.append(f"Set the fades of '{name}' to {edit.fade_in_s or 0:g} s in, "
                         f"{edit.fade_out_s or 0:g} s out.")
        else:
            lines.append(f"Replaced '{name}' with '{edit.description}'.")
    return " ".join(lines)
