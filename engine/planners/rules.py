"""The offline rule planner: the embedded default when no LLM is configured.

Layout: the prompt becomes sequential groups of simultaneous clauses (rules_text.split_scene).
Sequential groups get consecutive spans that fill the scene (one-shots get half the weight of
continuous sounds); clauses in a group share their group's span; beds ("in the background",
"throughout", ...) span the whole scene; explicit times are honoured as given. Anything that
would break the overlap limit is merged into a combined event, so the output always validates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Sequence

from engine.edits import EventEdit, apply_edit, stable_seed
from engine.errors import InvalidInputError, NotFoundError
from engine.plan import (
    DEFAULT_LIMITS,
    MAX_TARGET_LUFS,
    MIN_TARGET_LUFS,
    Event,
    Plan,
    PlanLimits,
    check_text,
    max_concurrent,
    validate_plan,
)
from engine.planners import PlanResult, Turn
from engine.planners.rules_text import Clause, make_clause, split_scene

BED_OFFSET_LU = -6.0  # beds sit under foreground events so overlaps don't pile up
ONE_SHOT_WEIGHT = 0.5
ONE_SHOT_DEFAULT_S = 2.0  # length of a one-shot placed at an explicit time without a length


@dataclass
class _Placed:
    clause: Clause
    start_s: float
    end_s: float


def _clamp_lufs(value: float) -> float:
    return max(MIN_TARGET_LUFS, min(MAX_TARGET_LUFS, value))


class RulePlanner:
    """Deterministic prompt -> plan decomposition and a small edit grammar."""

    name = "rules"

    def __init__(self, *, base_lufs: float = -23.0, seed: int = 0) -> None:
        self.base_lufs = base_lufs
        self.seed = seed

    # ---- planning -------------------------------------------------------------------------

    def plan(
        self,
        prompt: str,
        *,
        duration_s: float,
        history: Sequence[Turn] = (),
        limits: PlanLimits = DEFAULT_LIMITS,
    ) -> PlanResult:
        text = check_text("prompt", prompt)
        groups = [
            [c for c in (make_clause(raw) for raw in group) if c is not None]
            for group in split_scene(text)
        ]
        groups = [g for g in groups if g]
        if not groups:
            raise InvalidInputError(f"prompt={prompt!r}: no sound described", field="prompt")
        placed, notes = self._layout(groups, duration_s)
        events = [
            self._event(p, limits) for p in sorted(placed, key=lambda p: (p.start_s, p.end_s))
        ]
        events = _renumber(events)
        plan = Plan(duration_s=duration_s, events=tuple(events))
        plan, merge_notes = _repair_overlap(plan, limits)
        plan = validate_plan(plan, limits=limits)
        return PlanResult(
            plan=plan,
            planner=self.name,
            notes=tuple(notes + merge_notes),
            reply=f"Planned {len(plan.events)} event(s) over {duration_s:g} s.",
        )

    def _layout(self, groups: list[list[Clause]], duration_s: float) -> tuple[list[_Placed], list[str]]:
        notes: list[str] = []
        beds = [c for g in groups for c in g if c.is_bed and c.time.start_s is None]
        timed = [c for g in groups for c in g if c.time.start_s is not None and not c.is_bed]
        sequence = [[c for c in g if c not in beds and c not in timed] for g in groups]
        sequence = [g for g in sequence if g]
        placed = [_Placed(c, 0.0, duration_s) for c in beds]
        weights = [ONE_SHOT_WEIGHT if all(c.is_one_shot for c in g) else 1.0 for g in sequence]
        total = sum(weights)
        cursor = 0.0
        for index, (group, weight) in enumerate(zip(sequence, weights)):
            end_s = duration_s if index == len(sequence) - 1 else cursor + duration_s * weight / total
            for clause in group:
                span_end = _explicit_end(clause, cursor, end_s, duration_s)
                placed.append(_Placed(clause, cursor, span_end))
            cursor = end_s
        for clause in timed:
            start_s = float(clause.time.start_s)  # type: ignore[arg-type]
            if start_s >= duration_s:
                notes.append(f"'{clause.text}' asked for {start_s:g} s, past the scene end; moved inside")
                start_s = max(0.0, duration_s - ONE_SHOT_DEFAULT_S)
            default_end = start_s + ONE_SHOT_DEFAULT_S if clause.is_one_shot else duration_s
            end_s = _explicit_end(clause, start_s, min(default_end, duration_s), duration_s)
            placed.append(_Placed(clause, start_s, end_s))
        return placed, notes

    def _event(self, placed: _Placed, limits: PlanLimits) -> Event:
        clause = placed.clause
        offset = clause.loudness_offset_lu + (BED_OFFSET_LU if clause.is_bed else 0.0)
        return Event(
            id="tmp",
            description=_truncate(clause.text, limits.max_description_chars),
            start_s=round(placed.start_s, 6),
            end_s=round(placed.end_s, 6),
            target_lufs=_clamp_lufs(self.base_lufs + offset),
            seed=stable_seed(clause.text, salt=self.seed),
        )

    # ---- editing --------------------------------------------------------------------------

    def edit(
        self,
        plan: Plan,
        instruction: str,
        *,
        history: Sequence[Turn] = (),
        limits: PlanLimits = DEFAULT_LIMITS,
    ) -> PlanResult:
        text = check_text("instruction", instruction)
        edit = self.parse_edit(plan, text)
        new_plan = apply_edit(plan, edit, limits=limits)
        if edit.op in ("add", "replace_text") and edit.description:
            new_plan = _reseed(new_plan, edit, self.seed)
        return PlanResult(plan=new_plan, planner=self.name, reply=_describe(edit, plan))

    def parse_edit(self, plan: Plan, instruction: str) -> EventEdit:
        """Map one instruction of the offline edit grammar onto a structured EventEdit."""
        text = instruction.strip().rstrip(".!")
        for parser in (_parse_replace, _parse_remove, _parse_loudness, _parse_intensity,
                       _parse_move, _parse_add):
            edit = parser(plan, text, self)
            if edit is not None:
                return edit
        raise InvalidInputError(
            f"instruction={instruction!r}: not understood offline. Try 'replace A with B', "
            "'remove A', 'make A louder/quieter', 'move A to N s', 'add B at N s' "
            "(or configure an LLM planner for free-form edits)",
            field="instruction",
            value=instruction,
        )


# ---- helpers --------------------------------------------------------------------------------


def _explicit_end(clause: Clause, start_s: float, default_end_s: float, duration_s: float) -> float:
    if clause.time.end_s is not None:
        end_s = clause.time.end_s
    elif clause.time.length_s is not None:
        end_s = start_s + clause.time.length_s
    else:
        end_s = default_end_s
    end_s = min(end_s, duration_s)
    return end_s if end_s > start_s else min(duration_s, start_s + ONE_SHOT_DEFAULT_S)


def _renumber(events: list[Event]) -> list[Event]:
    return [e.model_copy(update={"id": f"e{i}"}) for i, e in enumerate(events, start=1)]


def _repair_overlap(plan: Plan, limits: PlanLimits) -> tuple[Plan, list[str]]:
    """Merge events while more than max_overlap sound at once (always terminates: fewer events)."""
    notes: list[str] = []
    events = list(plan.events)
    while max_concurrent(events)[0] > limits.max_overlap:
        _, at_s = max_concurrent(events)
        sounding = [e for e in events if e.start_s <= at_s < e.end_s]
        # Merge the two quietest/latest-starting events into one combined description.
        a, b = sorted(sounding, key=lambda e: (e.target_lufs or 0.0, -e.start_s))[:2]
        combined = f"{a.description} and {b.description[:1].lower()}{b.description[1:]}"
        merged = Event(
            id=a.id,
            description=_truncate(combined, limits.max_description_chars),
            start_s=min(a.start_s, b.start_s),
            end_s=max(a.end_s, b.end_s),
            target_lufs=max(a.target_lufs or -70.0, b.target_lufs or -70.0),
            seed=a.seed,
        )
        notes.append(f"merged '{a.description}' and '{b.description}' to stay within "
                     f"{limits.max_overlap} simultaneous events")
        events = [merged if e is a else e for e in events if e is not b]
    if notes:
        events = _renumber(sorted(events, key=lambda e: (e.start_s, e.end_s)))
    return plan.model_copy(update={"events": tuple(events)}), notes


_STOP = {"the", "a", "an", "of", "in", "on", "at", "to", "and", "sound", "sounds", "noise", "some"}


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _tokens(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


def match_event(plan: Plan, reference: str) -> Event:
    """The event whose description best matches ``reference`` (or whose id it names)."""
    ref = reference.strip().lower()
    for event in plan.events:
        if event.id.lower() == ref:
            return event
    wanted = _tokens(ref)
    scored = [(len(wanted & _tokens(e.description)), -i, e) for i, e in enumerate(plan.events)]
    best_score, _, best = max(scored, key=lambda item: (item[0], item[1]))
    if best_score == 0:
        raise NotFoundError(
            f"{reference!r}: no event matches; events are "
            + "; ".join(f"{e.id}: {e.description}" for e in plan.events),
            field="instruction",
            value=reference,
        )
    return best


_SECONDS = r"(-?\d+(?:\.\d+)?)\s*(?:seconds?|secs?|s)?"


def _parse_replace(plan: Plan, text: str, planner: RulePlanner) -> EventEdit | None:
    match = re.match(
        r"^(?:replace|swap|change|substitute|turn)\s+(.+?)\s+(?:with|for|to|into|by)\s+(.+)$", text, re.I
    )
    if not match:
        return None
    event = match_event(plan, match.group(1))
    return EventEdit(op="replace_text", event_id=event.id, description=_capital(match.group(2)))


def _parse_remove(plan: Plan, text: str, planner: RulePlanner) -> EventEdit | None:
    match = re.match(r"^(?:remove|delete|drop|mute|cut|get rid of|lose)\s+(.+)$", text, re.I)
    if not match:
        return None
    return EventEdit(op="delete", event_id=match_event(plan, match.group(1)).id)


def _step_lu(text: str) -> float:
    explicit = re.search(r"by\s+(\d+(?:\.\d+)?)\s*(?:db|lu)\b", text, re.I)
    if explicit:
        return float(explicit.group(1))
    if re.search(r"\b(?:much|a lot|way|far)\b", text, re.I):
        return 10.0
    if re.search(r"\b(?:a bit|slightly|a little|a touch)\b", text, re.I):
        return 3.0
    return 6.0


def _parse_loudness(plan: Plan, text: str, planner: RulePlanner) -> EventEdit | None:
    match = re.match(
        r"^(?:make|turn|set)\s+(.+?)\s+(?:(?:much|a bit|slightly|a little|a touch|way|far|a lot)\s+)?"
        r"(louder|quieter|softer|up|down)\b(.*)$",
        text,
        re.I,
    )
    # "turn down the rain", "bring up the thunder a bit": the particle comes first.
    particle_first = re.match(
        r"^(?:turn|bring)\s+(up|down)\s+(.+?)"
        r"(?:\s+(?:much|a bit|slightly|a little|a touch|way|far|a lot|by\s+\d+(?:\.\d+)?\s*(?:db|lu)))?$",
        text,
        re.I,
    )
    if match:
        reference, direction = match.group(1), match.group(2)
    elif particle_first:
        reference, direction = particle_first.group(2), particle_first.group(1)
    else:
        return None
    event = match_event(plan, reference)
    sign = 1.0 if direction.lower() in ("louder", "up") else -1.0
    current = event.target_lufs if event.target_lufs is not None else planner.base_lufs
    target = _clamp_lufs(current + sign * _step_lu(text))
    return EventEdit(op="set_loudness", event_id=event.id, target_lufs=target)


_INTENSITY = {
    "heavier": ("heavy", 3.0), "stronger": ("strong", 3.0), "bigger": ("big", 3.0),
    "more intense": ("intense", 3.0), "harder": ("hard", 3.0),
    "lighter": ("light", -3.0), "weaker": ("weak", -3.0), "smaller": ("small", -3.0),
    "gentler": ("gentle", -3.0), "softer and lighter": ("light", -3.0),
}
_INTENSITY_WORDS = re.compile(
    r"\b(?:heavy|light|strong|weak|big|small|intense|hard|gentle|soft)\s+", re.I
)


def _parse_intensity(plan: Plan, text: str, planner: RulePlanner) -> EventEdit | None:
    """'make the rain heavier': a content change (new adjective) plus a small loudness shift."""
    words = "|".join(re.escape(k) for k in _INTENSITY)
    match = re.match(rf"^make\s+(.+?)\s+(?:much\s+|a bit\s+|slightly\s+)?({words})$", text, re.I)
    if not match:
        return None
    event = match_event(plan, match.group(1))
    adjective, shift_lu = _INTENSITY[match.group(2).lower()]
    base = _INTENSITY_WORDS.sub("", event.description, count=1)
    description = _capital(f"{adjective} {base[:1].lower()}{base[1:]}")
    current = event.target_lufs if event.target_lufs is not None else planner.base_lufs
    return EventEdit(op="replace_text", event_id=event.id, description=description,
                     target_lufs=_clamp_lufs(current + shift_lu))


def _parse_move(plan: Plan, text: str, planner: RulePlanner) -> EventEdit | None:
    match = re.match(
        rf"^(?:move|shift|put|place|start)\s+(.+?)\s+(?:to|at)\s+(?:start\s+at\s+)?{_SECONDS}$", text, re.I
    )
    if match:
        event = match_event(plan, match.group(1))
        return EventEdit(op="move", event_id=event.id, start_s=float(match.group(2)))
    match = re.match(
        rf"^(?:move|shift)\s+(.+?)\s+(later|earlier)\s+by\s+{_SECONDS}$", text, re.I
    )
    if match:
        event = match_event(plan, match.group(1))
        delta = float(match.group(3)) * (1 if match.group(2).lower() == "later" else -1)
        return EventEdit(op="move", event_id=event.id, start_s=max(0.0, event.start_s + delta))
    return None


def _parse_add(plan: Plan, text: str, planner: RulePlanner) -> EventEdit | None:
    match = re.match(r"^(?:add|insert|include|put in)\s+(.+)$", text, re.I)
    if not match:
        return None
    clause = make_clause(match.group(1))
    if clause is None:
        return None
    start_s = clause.time.start_s if clause.time.start_s is not None else 0.0
    start_s = min(start_s, max(0.0, plan.duration_s - 0.5))
    if clause.time.end_s is not None:
        end_s = clause.time.end_s
    elif clause.time.length_s is not None:
        end_s = start_s + clause.time.length_s
    elif clause.is_one_shot:
        end_s = start_s + ONE_SHOT_DEFAULT_S
    else:
        end_s = plan.duration_s
    offset = clause.loudness_offset_lu + (BED_OFFSET_LU if clause.is_bed else 0.0)
    return EventEdit(
        op="add",
        description=clause.text,
        start_s=start_s,
        end_s=min(end_s, plan.duration_s),
        target_lufs=_clamp_lufs(planner.base_lufs + offset),
    )


def _truncate(text: str, max_chars: int) -> str:
    """Cut at a word boundary so a long clause still makes a valid description."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0].rstrip(" ,;")


def _capital(text: str) -> str:
    text = text.strip().strip(".")
    return text[:1].upper() + text[1:]


def _reseed(plan: Plan, edit: EventEdit, salt: int) -> Plan:
    """Seeds follow the planner's salt so --seed changes every render, edits included."""
    if salt == 0:
        return plan
    events = tuple(
        e.model_copy(update={"seed": stable_seed(e.description, salt=salt)})
        if e.description == edit.description else e
        for e in plan.events
    )
    return plan.model_copy(update={"events": events})


def _describe(edit: EventEdit, plan: Plan) -> str:
    if edit.op == "add":
        return f"Added '{edit.description}' at {edit.start_s:g} s."
    name = plan.event(str(edit.event_id)).description
    if edit.op == "delete":
        return f"Removed '{name}'."
    if edit.op == "move":
        return f"Moved '{name}' to {edit.start_s:g} s."
    if edit.op == "set_loudness":
        return f"Set '{name}' to {edit.target_lufs:g} LUFS."
    return f"Replaced '{name}' with '{edit.description}'."
