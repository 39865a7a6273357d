"""Reading a model's answer: find the JSON in it, shape it into plan data, assign ids and seeds.

Everything here treats the answer as untrusted text. It is only ever parsed as JSON (never
evaluated), unknown keys are dropped, and what comes out still has to pass validate_plan.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.edits import stable_seed
from engine.plan import DEFAULT_LIMITS, Plan, PlanLimits


class ReplyFormatError(ValueError):
    """The answer holds no usable plan JSON; the message is fit to show the model."""


_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.S)
_REFUSAL = re.compile(
    r"\b(?:I(?:'|’)?m sorry|I am sorry|sorry, (?:but )?I|I can(?:'|’)?t|I cannot|I can not|"
    r"I(?:'|’)?m (?:not )?(?:un)?able|I am (?:not )?(?:un)?able|I won(?:'|’)?t|I will not|"
    r"I must decline)\b",
    re.I,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Keys models commonly use instead of ours (the paper-style start_time/end_time among them).
_ALIASES = {
    "start": "start_s",
    "start_time": "start_s",
    "start_sec": "start_s",
    "start_seconds": "start_s",
    "end": "end_s",
    "end_time": "end_s",
    "end_sec": "end_s",
    "end_seconds": "end_s",
    "text": "description",
    "caption": "description",
    "prompt": "description",
    "sound": "description",
    "lufs": "target_lufs",
    "loudness": "target_lufs",
    "loudness_lufs": "target_lufs",
    "volume": "target_lufs",
    "volume_lufs": "target_lufs",
    "event_id": "id",
    "fade_in": "fade_in_s",
    "fadein": "fade_in_s",
    "fade_in_sec": "fade_in_s",
    "fade_in_seconds": "fade_in_s",
    "fade_in_time": "fade_in_s",
    "fade_out": "fade_out_s",
    "fadeout": "fade_out_s",
    "fade_out_sec": "fade_out_s",
    "fade_out_seconds": "fade_out_s",
    "fade_out_time": "fade_out_s",
}
_FADE_KEYS = ("fade_in_s", "fade_out_s")
_EVENT_KEYS = {"id", "description", "start_s", "end_s", "target_lufs", *_FADE_KEYS}
_NUMBER_KEYS = ("start_s", "end_s", "target_lufs", *_FADE_KEYS)
# "2.5", "2.5s", "-20 LUFS": numbers a model wrote as text with their unit.
_NUMBER_TEXT = re.compile(
    r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?|lufs|lu|db)?\s*$", re.I
)


def looks_like_refusal(text: str) -> bool:
    """A reply with no JSON at all that opens like an apology or a refusal."""
    return "{" not in text and bool(_REFUSAL.search(text[:300]))


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text`` (whole text, fenced block, or embedded)."""
    stripped = text.strip()
    if not stripped:
        raise ReplyFormatError("the answer was empty")
    candidates = [stripped] + [block.strip() for block in _FENCE.findall(stripped)]
    # strict=False lets raw control characters (a newline, a tab) stand inside strings:
    # llama-cpp-python's JSON grammar lets a model write them, and the object is still whole.
    decoder = json.JSONDecoder(strict=False)
    for candidate in candidates:
        try:
            return decoder.decode(candidate)
        except ValueError:
            pass
    for match in re.finditer(r"[{\[]", stripped):
        try:
            value, _ = decoder.raw_decode(stripped, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) or (isinstance(value, list) and value):
            return value
    raise ReplyFormatError("the answer contains no JSON object")


def extract_whole_json(text: str) -> Any:
    """The answer as one JSON value: the whole text or its first fenced block, nothing
    embedded (a cut-off answer may hold complete inner objects that are not the plan)."""
    stripped = text.strip()
    decoder = json.JSONDecoder(strict=False)
    for candidate in [stripped] + [block.strip() for block in _FENCE.findall(stripped)][:1]:
        try:
            return decoder.decode(candidate)
        except ValueError:
            pass
    raise ReplyFormatError("the answer is not one complete JSON value")


def _unwrap(data: Any) -> dict[str, Any]:
    """Accept {"events": [...]} with or without duration_s, a bare list, or {"plan": {...}}."""
    if isinstance(data, list):
        return {"events": data}
    if not isinstance(data, dict):
        raise ReplyFormatError("the JSON must be an object with an 'events' list")
    for key in ("plan", "scene", "result"):
        inner = data.get(key)
        if "events" not in data and isinstance(inner, (dict, list)):
            return _unwrap(inner)
    if not isinstance(data.get("events"), list):
        raise ReplyFormatError("the JSON object has no 'events' list")
    return data


def _event_fields(raw: Any, index: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ReplyFormatError(f"events[{index}] must be an object, got {type(raw).__name__}")
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(str(key).strip().lower(), str(key).strip().lower())
        if name in _EVENT_KEYS and name not in fields:
            fields[name] = value
    event_id = fields.get("id")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        fields["id"] = f"e{event_id}"  # models like to number events 1, 2, 3
    elif event_id is not None and not isinstance(event_id, str):
        fields["id"] = json.dumps(event_id)  # never valid: validation names it for the model
    for name in _NUMBER_KEYS:
        match = _NUMBER_TEXT.match(fields[name]) if isinstance(fields.get(name), str) else None
        if match:
            fields[name] = float(match.group(1))
    for name in _FADE_KEYS:
        # A fade of 0 s is no shaped fade: the same plan as null, so a stem is not redone.
        value = fields.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            fields[name] = None
    if isinstance(fields.get("description"), str):
        # Control characters a grammar let through become spaces, then runs of space one.
        fields["description"] = " ".join(_CONTROL.sub(" ", fields["description"]).split())
    return fields


def _recover_ids(events: list[dict[str, Any]], previous: Plan | None) -> None:
    """Give unknown ids back to old events with the same text (models sometimes renumber)."""
    if previous is None:
        return
    old_ids = set(previous.event_ids)
    used = {event.get("id") for event in events}
    by_text = {e.description.strip().lower(): e.id for e in previous.events}
    for event in events:
        text = str(event.get("description", "")).strip().lower()
        old_id = by_text.get(text)
        if event.get("id") not in old_ids and old_id is not None and old_id not in used:
            used.discard(event.get("id"))
            event["id"] = old_id
            used.add(old_id)


def _assign_ids(events: list[dict[str, Any]], previous: Plan | None) -> None:
    """Number events the model left without an id, never reusing an old or a new id."""
    taken = {str(e["id"]) for e in events if e.get("id") not in (None, "")}
    taken |= set(previous.event_ids) if previous else set()
    number = 1
    for event in events:
        if event.get("id") not in (None, ""):
            continue
        while f"e{number}" in taken:
            number += 1
        event["id"] = f"e{number}"
        taken.add(event["id"])


def _assign_seeds(events: list[dict[str, Any]], previous: Plan | None) -> None:
    """Kept events keep their seed; new text gets a seed derived from the text itself."""
    old = {e.id: e for e in previous.events} if previous else {}
    for event in events:
        text = event.get("description")
        if not isinstance(text, str):
            continue
        kept = old.get(event.get("id"))  # type: ignore[arg-type]
        if kept is not None and kept.description.strip() == text.strip():
            event["seed"] = kept.seed
            if "target_lufs" not in event:
                # A model asked without loudness leaves it out: that is not a loudness edit.
                event["target_lufs"] = kept.target_lufs
            for name in _FADE_KEYS:
                if name not in event:  # left out (not null): the fade is kept, as loudness is
                    event[name] = getattr(kept, name)
        else:
            event["seed"] = stable_seed(text)


def plan_data(data: Any, *, duration_s: float, previous: Plan | None = None) -> dict[str, Any]:
    """Plan data for validate_plan from the model's JSON; ``duration_s`` is authoritative."""
    unwrapped = _unwrap(data)
    events = [_event_fields(raw, index) for index, raw in enumerate(unwrapped["events"])]
    _recover_ids(events, previous)
    _assign_ids(events, previous)
    _assign_seeds(events, previous)
    return {"duration_s": duration_s, "events": events}


# Characters of one event as JSON beyond its description ({"id": "e12", "description": "",
# "start_s": 12.345, "end_s": 12.345, "fade_in_s": 12.345, "fade_out_s": 12.345,
# "target_lufs": -23.5}, ), with room for a model's spaces.
_EVENT_JSON_CHARS = 150
# JSON (digits, quotes, short keys) runs at about three characters per token.
_JSON_CHARS_PER_TOKEN = 3
MAX_ID_CHARS = 32


def plan_schema(*, with_loudness: bool, limits: PlanLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The JSON schema of a plan answer, tight enough for small models under a grammar: at
    least one event (an empty list is the likeliest valid-but-useless answer), at most
    ``limits.max_events``, descriptions within ``limits.max_description_chars``. These
    keywords are in OpenAI's strict subset since May 2025 (see pydantic/pydantic-ai PR #4490)
    and llama.cpp's grammar converter honours them; converters do not all honour number
    bounds, so validate_plan still checks the numbers."""
    properties: dict[str, Any] = {
        "id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
        "description": {
            "type": "string", "minLength": 1, "maxLength": limits.max_description_chars,
        },
        "start_s": {"type": "number"},
        "end_s": {"type": "number"},
        # Shaped fades are optional: null when the request asks for none. Strict mode wants
        # every key required, so "optional" is a nullable number; validate_plan checks that
        # they are >= 0 and fit in the event together.
        "fade_in_s": {"type": ["number", "null"]},
        "fade_out_s": {"type": ["number", "null"]},
    }
    if with_loudness:
        properties["target_lufs"] = {"type": "number"}
    event_schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "duration_s": {"type": "number"},
            "events": {
                "type": "array", "items": event_schema, "minItems": 1,
                "maxItems": limits.max_events,
            },
        },
        "required": ["duration_s", "events"],
        "additionalProperties": False,
    }


def response_format(
    rung: str, *, with_loudness: bool, limits: PlanLimits = DEFAULT_LIMITS
) -> dict[str, Any] | None:
    """The ``response_format`` of one rung of the structured-output ladder (llm_endpoint):
    None for "plain", which sends none."""
    schema = plan_schema(with_loudness=with_loudness, limits=limits)
    if rung == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "scene_plan", "strict": True, "schema": schema},
        }
    if rung == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if rung == "json_object":
        return {"type": "json_object"}
    if rung == "plain":
        return None
    raise ValueError(f"rung={rung!r}: unknown structured-output rung")


def schema_note(*, with_loudness: bool, limits: PlanLimits = DEFAULT_LIMITS) -> str:
    """Added to the system prompt when the server does not enforce the schema itself."""
    schema = json.dumps(plan_schema(with_loudness=with_loudness, limits=limits),
                        separators=(",", ":"))
    return (
        "Answer with the JSON object only: no code fences, no explanation before or after it. "
        f"It must match this JSON schema: {schema}"
    )


def plan_max_tokens(*, with_loudness: bool, limits: PlanLimits = DEFAULT_LIMITS) -> int:
    """Output tokens for the longest plan the limits allow, so a long answer is never cut
    short by a server default (llama-cpp-python's completions default to 16 tokens)."""
    per_event = _EVENT_JSON_CHARS + limits.max_description_chars - (0 if with_loudness else 22)
    chars = 40 + limits.max_events * per_event
    return -(-chars // _JSON_CHARS_PER_TOKEN) + 16
