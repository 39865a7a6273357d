"""The seed rule: the one way a request's seed reaches the events it renders.

Every front door (the CLI, the WebSocket/OSC server, front doors to come) goes through
``seed_plan``, so the same prompt + seed + settings give the same event seeds, and so the same
stems, wherever the request came from.

The rule:

1. A planner gives each event a seed of its own (the rule and LLM planners derive it from the
   event's text with ``engine.edits.stable_seed``; the video cue planner cycles takes of a
   repeated hit). Planners are always built unsalted, so that seed depends on the plan alone.
2. The request seed (default 0) is mixed into every event seed: ``mix_seed(event_seed, seed)``,
   a hash of both. Seed 0 leaves event seeds as the planner made them, so requests without a
   seed render exactly what they rendered before seeds were mixed in.
3. On an edit, an event the edit kept (same id, text and seed as in the current version) keeps
   its seed, so it keeps its stem; every other event is mixed with the session's seed (the seed
   of the request that made the session's current scene).
4. A seed a client sets on one event (a ``set_seed`` change: a re-roll, or the take a designer
   chose) is that event's seed as given, unmixed, so picking a take again brings back exactly
   that variation (applied in SessionManager.prepare_edit after rule 3).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from engine.limits import SEED_LIMIT, check_seed
from engine.plan import DEFAULT_LIMITS, Event, Plan, PlanLimits, validate_plan
from engine.planners import Planner, PlanResult, Turn

DEFAULT_SEED = 0


def mix_seed(event_seed: int, seed: int) -> int:
    """An event's seed under request seed ``seed`` (identity for seed 0)."""
    if seed == DEFAULT_SEED:
        return event_seed
    digest = hashlib.sha256(f"{event_seed}:{seed}".encode("ascii")).digest()
    return int.from_bytes(digest[:4], "little") % SEED_LIMIT


def _kept(event: Event, previous: dict[str, Event]) -> bool:
    before = previous.get(event.id)
    return (
        before is not None
        and before.seed == event.seed
        and before.description.strip() == event.description.strip()
    )


def seed_plan(plan: Plan, seed: int | None, *, previous: Plan | None = None) -> Plan:
    """``plan`` with the request seed applied by the rule above (``None`` means the default).

    ``previous``: the version an edit was planned against; its unchanged events keep their seed.
    """
    seed = DEFAULT_SEED if seed is None else check_seed(seed)
    if seed == DEFAULT_SEED:
        return plan
    before = {event.id: event for event in previous.events} if previous else {}
    events = tuple(
        event if _kept(event, before) else event.model_copy(update={"seed": mix_seed(event.seed, seed)})
        for event in plan.events
    )
    return plan.model_copy(update={"events": events})


def plan_prompt(
    planner: Planner,
    prompt: str,
    *,
    duration_s: float,
    seed: int | None,
    limits: PlanLimits = DEFAULT_LIMITS,
    history: Sequence[Turn] = (),
) -> PlanResult:
    """Plan a new scene the way every front door does: planner, the plan gate, the seed rule."""
    result = planner.plan(prompt, duration_s=duration_s, history=history, limits=limits)
    plan = seed_plan(validate_plan(result.plan, limits=limits), seed)
    return PlanResult(plan, result.planner, result.fell_back, result.notes, result.reply)
