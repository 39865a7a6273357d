"""The offline rule planner: the embedded default when no LLM is configured.

Reading: the prompt becomes sequential groups of simultaneous clauses (rules_text.split_scene);
each clause is read for its source (the sound lexicon, presets/sounds.toml), explicit times,
counts, dynamics and loudness words. Layout (rules_layout) gives every sound its natural length,
counts as separate hits, beds running under the scene, and explicit times as given. Anything
that would break the overlap limit is merged into a combined event with a note, so the output
always validates. Edits are read by rules_edit.
"""

from __future__ import annotations

from typing import Sequence

from engine.edits import stable_seed
from engine.errors import InvalidInputError
from engine.limits import clamp_target_lufs
from engine.plan import (
    DEFAULT_LIMITS,
    Event,
    Plan,
    PlanLimits,
    check_text,
    max_concurrent,
    validate_plan,
)
from engine.planners.base import PlanResult, Turn
from engine.planners.rules_layout import Placed, clause_offset_lu, fades_s, layout_scene
from engine.planners.rules_text import make_clause, setting_beds, split_scene


# The rule planner's name for engine.limits.clamp_target_lufs (rules_edit.py uses it too).
clamp_lufs = clamp_target_lufs


class RulePlanner:
    """Deterministic prompt -> plan decomposition and a plain-language edit grammar."""

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
        groups[0] = groups[0] + setting_beds([c for g in groups for c in g])
        layout = layout_scene(groups, duration_s)
        if not layout.placed:
            raise InvalidInputError(
                f"prompt={prompt!r}: only silence described; a plan needs a sound",
                field="prompt", value=prompt)
        placed = sorted(layout.placed, key=lambda p: (p.start_s, p.end_s))
        events = _renumber([self._event(p, limits) for p in placed])
        if len(events) == 1:
            # One sound has nothing to be louder or quieter than: it sits at the scene's
            # reference level, moved only by loudness words ("faint", "loud").
            lone_lufs = clamp_lufs(self.base_lufs + layout.placed[0].clause.loudness_offset_lu)
            events = [events[0].model_copy(update={"target_lufs": lone_lufs})]
        plan = Plan(duration_s=duration_s, events=tuple(events))
        plan, merge_notes = _repair_overlap(plan, limits)
        notes = tuple(layout.notes + merge_notes)
        plan = validate_plan(plan.model_copy(update={"notes": notes}), limits=limits)
        return PlanResult(
            plan=plan,
            planner=self.name,
            notes=notes,
            reply=f"Planned {len(plan.events)} event(s) over {duration_s:g} s.",
        )

    def _event(self, placed: Placed, limits: PlanLimits) -> Event:
        clause = placed.clause
        start_s, end_s = round(placed.start_s, 6), round(placed.end_s, 6)
        fade_in_s, fade_out_s = fades_s(clause, end_s - start_s)
        # Repeated hits get their own seeds so a counted run is not one sample copied.
        seed_text = clause.text if placed.repeat == 0 else f"{clause.text}#{placed.repeat}"
        return Event(
            id="tmp",
            description=truncate(clause.text, limits.max_description_chars),
            start_s=start_s,
            end_s=end_s,
            target_lufs=clamp_lufs(self.base_lufs + clause_offset_lu(clause)),
            seed=stable_seed(seed_text, salt=self.seed),
            fade_in_s=fade_in_s,
            fade_out_s=fade_out_s,
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
        from engine.planners.rules_edit import apply_instruction

        text = check_text("instruction", instruction)
        new_plan, reply = apply_instruction(self, plan, text, limits=limits)
        return PlanResult(plan=new_plan, planner=self.name, reply=reply)


# ---- helpers --------------------------------------------------------------------------------


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
            description=truncate(combined, limits.max_description_chars),
            start_s=min(a.start_s, b.start_s),
            end_s=max(a.end_s, b.end_s),
            target_lufs=max(a.target_lufs or -70.0, b.target_lufs or -70.0),
            seed=a.seed,
        )
        notes.append(f"merged '{a.description}' and '{b.description}' into one event: more than "
                     f"{limits.max_overlap} would sound at once at {at_s:.2f} s (setting "
                     f"max_overlap)")
        events = [merged if e is a else e for e in events if e is not b]
    if notes:
        events = _renumber(sorted(events, key=lambda e: (e.start_s, e.end_s)))
    return plan.model_copy(update={"events": tuple(events)}), notes


def truncate(text: str, max_chars: int) -> str:
    """Cut at a word boundary so a long clause still makes a valid description."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0].rstrip(" ,;")
