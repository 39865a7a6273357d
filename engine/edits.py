"""Structured edits of one event: the operations both the edit grammar and clients use.

Every edit keeps the ids of the events it does not touch, so diff_plans between the old and the
new plan names exactly what changed and only that gets re-rendered.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.errors import InvalidInputError, NotFoundError, PlanValidationError
from engine.plan import DEFAULT_LIMITS, Event, Plan, PlanLimits, next_event_id, validate_plan

EditOp = Literal["move", "set_loudness", "replace_text", "delete", "add", "set_fades", "set_seed"]


class EventEdit(BaseModel):
    """One structured change. Fields not needed by ``op`` are ignored.

    move: event_id, start_s (end_s optional; the length is kept otherwise).
    set_loudness: event_id, target_lufs.  replace_text: event_id, description (target_lufs optional).
    delete: event_id.  add: description, start_s/end_s (default: the whole scene), target_lufs.
    set_fades: event_id, fade_in_s and/or fade_out_s (seconds of shaped fade; 0 removes one).
    set_seed: event_id, seed (another variation of the same sound: a DAW's re-roll, or the take
    the designer chose; the seed is kept as given).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: EditOp
    event_id: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    target_lufs: float | None = None
    description: str | None = None
    fade_in_s: float | None = None
    fade_out_s: float | None = None
    seed: int | None = None


def stable_seed(description: str, *, salt: int = 0) -> int:
    """A seed derived from the text, so identical events in any session share a cached render."""
    digest = hashlib.sha256(f"{salt}:{description.strip().lower()}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _require(value: object, field_name: str, op: str) -> None:
    if value is None:
        raise InvalidInputError(f"{field_name}: required for op {op!r}", field=field_name)


def _target(plan: Plan, edit: EventEdit) -> Event:
    _require(edit.event_id, "event_id", edit.op)
    try:
        return plan.event(str(edit.event_id))
    except KeyError:
        raise NotFoundError(
            f"event_id={edit.event_id!r}: no such event (have {', '.join(plan.event_ids)})",
            field="event_id",
            value=edit.event_id,
        ) from None


def _replace(plan: Plan, event_id: str, new: Event | None) -> Plan:
    events = [new if event.id == event_id else event for event in plan.events]
    return plan.model_copy(update={"events": tuple(e for e in events if e is not None)})


def _moved(event: Event, edit: EventEdit, duration_s: float) -> Event:
    _require(edit.start_s, "start_s", "move")
    start_s = float(edit.start_s)  # type: ignore[arg-type]
    if edit.end_s is None and not 0 <= start_s < duration_s:
        # Said in the user's terms: validation would only complain about a zero-length event.
        raise PlanValidationError(
            f"start_s={start_s:g}: an event must start inside the scene, in [0, {duration_s:g}) s",
            field="start_s",
            value=start_s,
        )
    if edit.end_s is not None:
        return event.model_copy(update={"start_s": start_s, "end_s": float(edit.end_s)})
    # Keep the length (so the stem is reused) unless it would run past the scene end.
    length_s = min(event.length_s, max(duration_s - start_s, 0.0))
    return event.model_copy(update={"start_s": start_s, "end_s": start_s + length_s})


def apply_edit(plan: Plan, edit: EventEdit, *, limits: PlanLimits = DEFAULT_LIMITS) -> Plan:
    """Return the edited plan, validated; raises InvalidInputError / NotFoundError on bad edits.

    The planner's notes belong to the version they were made for, so the edited plan has none.
    """
    if plan.notes:
        plan = plan.model_copy(update={"notes": ()})
    if edit.op == "add":
        _require(edit.description, "description", "add")
        start_s = 0.0 if edit.start_s is None else float(edit.start_s)
        end_s = plan.duration_s if edit.end_s is None else float(edit.end_s)
        description = str(edit.description).strip()
        event = Event(
            id=edit.event_id or next_event_id(plan),
            description=description,
            start_s=start_s,
            end_s=end_s,
            target_lufs=edit.target_lufs,
            seed=stable_seed(description),
        )
        new_plan = plan.model_copy(update={"events": (*plan.events, event)})
        return validate_plan(new_plan, limits=limits)
    event = _target(plan, edit)
    if edit.op == "delete":
        return validate_plan(_replace(plan, event.id, None), limits=limits)
    if edit.op == "move":
        new_event = _moved(event, edit, plan.duration_s)
    elif edit.op == "set_fades":
        if edit.fade_in_s is None and edit.fade_out_s is None:
            raise InvalidInputError("fade_in_s: set_fades needs fade_in_s or fade_out_s",
                                    field="fade_in_s")
        update_fades: dict[str, object] = {}
        for name in ("fade_in_s", "fade_out_s"):
            value = getattr(edit, name)
            if value is not None:
                update_fades[name] = float(value) or None  # 0 removes the shaped fade
        new_event = event.model_copy(update=update_fades)
    elif edit.op == "set_seed":
        _require(edit.seed, "seed", "set_seed")
        new_event = event.model_copy(update={"seed": int(edit.seed)})  # type: ignore[arg-type]
    elif edit.op == "set_loudness":
        _require(edit.target_lufs, "target_lufs", "set_loudness")
        new_event = event.model_copy(update={"target_lufs": float(edit.target_lufs)})  # type: ignore[arg-type]
    else:  # replace_text
        _require(edit.description, "description", "replace_text")
        description = str(edit.description).strip()
        update: dict[str, object] = {"description": description, "seed": stable_seed(description)}
        if edit.target_lufs is not None:  # e.g. "heavier rain" is new text and a little louder
            update["target_lufs"] = float(edit.target_lufs)
        new_event = event.model_copy(update=update)
    return validate_plan(_replace(plan, event.id, new_event), limits=limits)
