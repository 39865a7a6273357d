"""The planner interface: a prompt (or an edit instruction on a plan) in, a valid Plan out.

Two planners implement it: ``rules`` (offline, the embedded default) and ``llm`` (any
OpenAI-compatible endpoint). Both return a PlanResult whose plan already passed validate_plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence

from engine.plan import DEFAULT_LIMITS, Plan, PlanLimits


@dataclass(frozen=True)
class Turn:
    """One message of a session's conversation, as the planner sees it."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class PlanResult:
    plan: Plan
    planner: str  # which planner produced the plan ("rules", "llm")
    fell_back: bool = False  # the requested planner failed and the rule planner answered
    notes: tuple[str, ...] = field(default_factory=tuple)  # human-readable, shown to the user
    reply: str = ""  # what to append to the conversation as the assistant's turn


class Planner(Protocol):
    name: str

    def plan(
        self,
        prompt: str,
        *,
        duration_s: float,
        history: Sequence[Turn] = (),
        limits: PlanLimits = DEFAULT_LIMITS,
    ) -> PlanResult:
        """Plan a new scene of ``duration_s`` seconds from a natural-language prompt."""
        ...

    def edit(
        self,
        plan: Plan,
        instruction: str,
        *,
        history: Sequence[Turn] = (),
        limits: PlanLimits = DEFAULT_LIMITS,
    ) -> PlanResult:
        """Revise ``plan`` by ``instruction``, keeping the ids of events it does not change."""
        ...


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
