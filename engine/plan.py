"""Plan model: a scene as atomic sound events on a timeline, its validation, and plan diffs.

A Plan is what every planner produces and what the renderer consumes. ``validate_plan`` is the
one gate: anything built from outside data (a planner, a client message, a stored row) goes
through it and either comes out valid or raises a PlanValidationError naming the field.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import PlanValidationError

# The numbers live in engine.limits (one home for every limit); re-exported here because
# planners and clients read them next to the Plan they constrain.
from engine.limits import (
    DEFAULT_MAX_OVERLAP,
    MAX_DESCRIPTION_CHARS,
    MAX_DURATION_S,
    MAX_EVENTS,
    MAX_PROMPT_CHARS,
    MAX_TARGET_LUFS,
    MIN_TARGET_LUFS,
    SEED_LIMIT,
    check_text,
)

EVENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Two times closer than this are the same time (float noise from planners and JSON round trips).
TIME_EPS_S = 1e-6


class Event(BaseModel):
    """One atomic sound event: rendered as one stem placed at [start_s, end_s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    description: str
    start_s: float
    end_s: float
    target_lufs: float | None = None
    seed: int = 0
    # Shaped fades the text asks for ("approaches", "fades away"), in seconds; None means the
    # renderer's short anti-click fades only. Carried to the manifest and the DAW item fades.
    fade_in_s: float | None = None
    fade_out_s: float | None = None

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


class Plan(BaseModel):
    """A scene: its total duration and its events (order is presentation order only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_s: float
    events: tuple[Event, ...] = ()
    # What the planner wants the user to know (a time past the scene end, merged layers).
    notes: tuple[str, ...] = ()

    def event(self, event_id: str) -> Event:
        for event in self.events:
            if event.id == event_id:
                return event
        raise KeyError(event_id)

    @property
    def event_ids(self) -> list[str]:
        return [event.id for event in self.events]


@dataclass(frozen=True)
class PlanLimits:
    """Rules a plan must satisfy; the server and CLI may tighten or loosen them by settings."""

    max_overlap: int = DEFAULT_MAX_OVERLAP
    max_duration_s: float = MAX_DURATION_S
    max_events: int = MAX_EVENTS
    max_description_chars: int = MAX_DESCRIPTION_CHARS


DEFAULT_LIMITS = PlanLimits()


def _fail(field_name: str, value: Any, message: str) -> PlanValidationError:
    return PlanValidationError(f"{field_name}={value!r}: {message}", field=field_name, value=value)


def _pydantic_error(error: ValidationError) -> PlanValidationError:
    first = error.errors()[0]
    field_name = ".".join(
        f"[{part}]" if isinstance(part, int) else str(part) for part in first["loc"]
    ).replace(".[", "[")
    value = first.get("input")
    return _fail(field_name or "plan", value, first["msg"])


def _check_finite(field_name: str, value: float) -> None:
    if not math.isfinite(value):
        raise _fail(field_name, value, "must be a finite number")


def _check_event(index: int, event: Event, duration_s: float, limits: PlanLimits) -> None:
    prefix = f"events[{index}]"
    if not EVENT_ID_PATTERN.match(event.id):
        raise _fail(f"{prefix}.id", event.id, "must be 1-64 letters, digits, '_', '-' or '.'")
    text = event.description.strip()
    if not text:
        raise _fail(f"{prefix}.description", event.description, "must not be empty")
    if len(text) > limits.max_description_chars:
        raise _fail(
            f"{prefix}.description",
            text[:40] + "...",
            f"is {len(text)} characters; the limit is {limits.max_description_chars}",
        )
    _check_finite(f"{prefix}.start_s", event.start_s)
    _check_finite(f"{prefix}.end_s", event.end_s)
    if event.start_s < 0:
        raise _fail(f"{prefix}.start_s", event.start_s, "must be >= 0")
    if event.end_s <= event.start_s:
        raise _fail(f"{prefix}.end_s", event.end_s, f"must be > start_s ({event.start_s})")
    if event.end_s > duration_s + TIME_EPS_S:
        raise _fail(f"{prefix}.end_s", event.end_s, f"must be <= duration_s ({duration_s})")
    if event.target_lufs is not None:
        _check_finite(f"{prefix}.target_lufs", event.target_lufs)
        if not MIN_TARGET_LUFS <= event.target_lufs <= MAX_TARGET_LUFS:
            raise _fail(
                f"{prefix}.target_lufs",
                event.target_lufs,
                f"must be within [{MIN_TARGET_LUFS}, {MAX_TARGET_LUFS}] LUFS",
            )
    if not 0 <= event.seed < SEED_LIMIT:
        raise _fail(f"{prefix}.seed", event.seed, "must be in [0, 2**32)")
    fades = 0.0
    for name in ("fade_in_s", "fade_out_s"):
        value = getattr(event, name)
        if value is None:
            continue
        _check_finite(f"{prefix}.{name}", value)
        if value < 0:
            raise _fail(f"{prefix}.{name}", value, "must be >= 0")
        fades += value
    if fades > event.length_s + TIME_EPS_S:
        raise _fail(f"{prefix}.fade_in_s", event.fade_in_s,
                    f"fade_in_s + fade_out_s must fit in the event's {event.length_s:g} s")


def max_concurrent(events: Iterable[Event]) -> tuple[int, float]:
    """Largest number of events sounding at once, and the first time it happens.

    Intervals are half-open [start, end): an event ending exactly where another starts does
    not overlap it, so back-to-back sequences never count as concurrent.
    """
    points: list[tuple[float, int]] = []
    for event in events:
        points.append((event.start_s, 1))
        points.append((event.end_s - TIME_EPS_S, -1))
    # Ends sort before starts at the same instant (-1 < 1).
    points.sort()
    count, peak, peak_at = 0, 0, 0.0
    for time_s, delta in points:
        count += delta
        if count > peak:
            peak, peak_at = count, time_s
    return peak, peak_at


def validate_plan(
    data: Plan | Mapping[str, Any], *, limits: PlanLimits = DEFAULT_LIMITS
) -> Plan:
    """Return a valid Plan built from ``data`` or raise PlanValidationError naming the field."""
    if isinstance(data, Plan):
        plan = data
    else:
        try:
            plan = Plan.model_validate(data)
        except ValidationError as error:
            raise _pydantic_error(error) from None
    _check_finite("duration_s", plan.duration_s)
    if not 0 < plan.duration_s <= limits.max_duration_s:
        raise _fail("duration_s", plan.duration_s, f"must be in (0, {limits.max_duration_s}] s")
    if not plan.events:
        raise _fail("events", [], "a plan needs at least one event")
    if len(plan.events) > limits.max_events:
        raise _fail("events", len(plan.events), f"at most {limits.max_events} events per plan")
    seen: set[str] = set()
    for index, event in enumerate(plan.events):
        _check_event(index, event, plan.duration_s, limits)
        if event.id in seen:
            raise _fail(f"events[{index}].id", event.id, "duplicate event id")
        seen.add(event.id)
    peak, peak_at = max_concurrent(plan.events)
    if peak > limits.max_overlap:
        raise _fail(
            "events",
            f"{peak} at {peak_at:.3f} s",
            f"at most {limits.max_overlap} events may sound at once",
        )
    return plan


class ChangeKind(str, enum.Enum):
    """How one event differs between two plan versions (decides what must be re-rendered)."""

    UNCHANGED = "unchanged"
    MOVED = "moved"  # start moved, same length and content: reuse the stem, move the item
    REGAINED = "regained"  # only target_lufs changed: reuse the render, change the gain
    CHANGED = "changed"  # content or length changed: needs a new generator call
    ADDED = "added"
    REMOVED = "removed"


@dataclass(frozen=True)
class EventChange:
    event_id: str
    kind: ChangeKind
    loudness_changed: bool = False  # a MOVED event whose loudness changed as well


@dataclass(frozen=True)
class PlanDiff:
    changes: tuple[EventChange, ...] = field(default_factory=tuple)

    def ids(self, *kinds: ChangeKind) -> list[str]:
        return [change.event_id for change in self.changes if change.kind in kinds]

    @property
    def needs_render(self) -> list[str]:
        """Events a generator must be called for (new content)."""
        return self.ids(ChangeKind.CHANGED, ChangeKind.ADDED)

    def kind_of(self, event_id: str) -> ChangeKind:
        for change in self.changes:
            if change.event_id == event_id:
                return change.kind
        raise KeyError(event_id)


def _same_time(a: float, b: float) -> bool:
    return abs(a - b) <= TIME_EPS_S


def _classify(old: Event, new: Event) -> EventChange:
    content_same = (
        old.description.strip() == new.description.strip()
        and old.seed == new.seed
        and _same_time(old.length_s, new.length_s)
        # A new fade shape changes the stem file (fades are applied when it is written).
        and old.fade_in_s == new.fade_in_s
        and old.fade_out_s == new.fade_out_s
    )
    if not content_same:
        return EventChange(new.id, ChangeKind.CHANGED)
    moved = not _same_time(old.start_s, new.start_s)
    regained = old.target_lufs != new.target_lufs
    if moved:
        return EventChange(new.id, ChangeKind.MOVED, loudness_changed=regained)
    if regained:
        return EventChange(new.id, ChangeKind.REGAINED, loudness_changed=True)
    return EventChange(new.id, ChangeKind.UNCHANGED)


def diff_plans(old: Plan | None, new: Plan) -> PlanDiff:
    """Classify every event of ``new`` (and every event dropped from ``old``) by event id."""
    old_events = {event.id: event for event in (old.events if old else ())}
    changes: list[EventChange] = []
    for event in new.events:
        previous = old_events.get(event.id)
        if previous is None:
            changes.append(EventChange(event.id, ChangeKind.ADDED))
        else:
            changes.append(_classify(previous, event))
    new_ids = {event.id for event in new.events}
    changes.extend(
        EventChange(event_id, ChangeKind.REMOVED) for event_id in old_events if event_id not in new_ids
    )
    return PlanDiff(tuple(changes))


def next_event_id(plan: Plan | None, *, prefix: str = "e") -> str:
    """An id not used in ``plan``: e1, e2, ... (ids are never reused within a plan)."""
    used = set(plan.event_ids) if plan else set()
    number = 1
    while f"{prefix}{number}" in used:
        number += 1
    return f"{prefix}{number}"
