"""The planner interface: a prompt (or an edit instruction on a plan) in, a valid Plan out.

Two planners implement it: ``rules`` (offline, the embedded default) and ``llm`` (any
OpenAI-compatible endpoint). Both return a PlanResult whose plan already passed validate_plan.
"""

from __future__ import annotations

from engine.planners.base import Planner, PlanResult, Turn

__all__ = ["PlanResult", "Planner", "Turn", "create_planner"]


def create_planner(name: str, **options: object) -> Planner:
    """``rules`` or ``llm``; options go to the planner's constructor."""
    from engine.errors import InvalidInputError

    if name == "rules":
        from engine.planners.rules import RulePlanner

        return RulePlanner(**options)  # type: ignore[arg-type]
    if name == "llm":
        from engine.planners.llm import LLMPlanner

        return LLMPlanner(**options)  # type: ignore[arg-type]
    raise InvalidInputError(
        f"planner={name!r}: unknown planner; choose 'rules' or 'llm'", field="planner", value=name
    )
