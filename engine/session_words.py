"""The words of a session: user phrases routed to history commands, and the assistant's replies
stored as conversation turns. Kept apart from SessionManager so wording changes touch no logic.
"""

from __future__ import annotations

import re
from typing import Literal

from engine.edits import EventEdit

# Plain history commands are handled by the session, never sent to a planner: an LLM asked to
# "undo" would have to reconstruct the old plan, while the store already holds it exactly.
_UNDO = re.compile(
    r"^\s*(?:please\s+)?(?:undo(?:\s+(?:that|it|this|the\s+last(?:\s+(?:change|edit))?))?"
    r"|go\s+back|revert(?:\s+(?:that|it))?)\s*(?:,?\s*please)?[\s.!]*$",
    re.IGNORECASE,
)
_REDO = re.compile(
    r"^\s*(?:please\s+)?(?:redo(?:\s+(?:that|it|this))?)\s*(?:,?\s*please)?[\s.!]*$",
    re.IGNORECASE,
)


def route_instruction(instruction: str) -> Literal["undo", "redo"] | None:
    """'undo' / 'undo that' / 'go back' -> 'undo'; 'redo' -> 'redo'; anything else None."""
    if _UNDO.match(instruction):
        return "undo"
    if _REDO.match(instruction):
        return "redo"
    return None


def describe_change(change: EventEdit) -> str:
    """A structured edit as the user's turn, e.g. ``move(event_id='e2', start_s=3.0)``."""
    fields = change.model_dump(exclude_none=True, exclude={"op"})
    details = ", ".join(f"{key}={value!r}" for key, value in fields.items())
    return f"{change.op}({details})"


def applied_reply(words: str) -> str:
    return f"Applied {words}."


def restored_reply(version: int) -> str:
    return f"Restored version {version}."


def planned_reply(event_count: int) -> str:
    return f"Planned {event_count} event(s)."
