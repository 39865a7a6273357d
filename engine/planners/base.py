"""What every planner shares: the Planner protocol, its result and a conversation turn.

A module of its own so the planner implementations (rules.py, llm.py, ...) import these without
importing the package's ``__init__``, which imports them to build planners by name: the import
graph stays free of cycles.
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
