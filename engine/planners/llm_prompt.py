"""What the LLM planner sends: the system prompt (from presets/), the bounded history and the
user message for a new scene or a revision.

The prompt text is data in presets/planner_prompt.md (plain) and
presets/planner_prompt_loudness.md; it is checked on load so a broken edit of a preset fails
loudly with the file named, not as a confused model later.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any, Sequence

from engine.errors import InvalidInputError
from engine.plan import MAX_TARGET_LUFS, MIN_TARGET_LUFS, Plan, PlanLimits
from engine.planners.base import Turn

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"
PROMPT_FILES = {"plain": "planner_prompt.md", "loudness": "planner_prompt_loudness.md"}
_REQUIRED_FIELDS = {"plain": ("start_s", "end_s", "description"), "loudness": ("target_lufs",)}
_ALLOWED_PLACEHOLDERS = {
    "max_overlap",
    "max_events",
    "max_description_chars",
    "min_target_lufs",
    "max_target_lufs",
    "length_priors",
}
_MIN_PROMPT_CHARS = 200

# Added to the system prompt when the endpoint cannot enforce a JSON schema itself.
PLAIN_JSON_NOTE = (
    "Answer with the JSON object only: no code fences, no explanation before or after it."
)


@lru_cache(maxsize=8)
def _load_template(path: Path) -> Template:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInputError(
            f"planner prompt {path}: cannot be read ({error.strerror})", field="prompt_file",
            value=str(path),
        ) from None
    template = Template(text)
    if not template.is_valid():
        raise InvalidInputError(
            f"planner prompt {path}: has a '$' that is not a $name placeholder (write $$)",
            field="prompt_file", value=str(path),
        )
    unknown = set(template.get_identifiers()) - _ALLOWED_PLACEHOLDERS
    if unknown:
        raise InvalidInputError(
            f"planner prompt {path}: unknown placeholders {sorted(unknown)}; allowed are "
            f"{sorted(_ALLOWED_PLACEHOLDERS)}",
            field="prompt_file", value=str(path),
        )
    if len(text.strip()) < _MIN_PROMPT_CHARS or "max_overlap" not in template.get_identifiers():
        raise InvalidInputError(
            f"planner prompt {path}: too short or missing the $max_overlap placeholder",
            field="prompt_file", value=str(path),
        )
    return template


def load_system_prompt(
    variant: str, *, limits: PlanLimits, presets_dir: Path = PRESETS_DIR
) -> str:
    """The system prompt of ``variant`` ("plain" or "loudness") with the limits filled in."""
    if variant not in PROMPT_FILES:
        raise InvalidInputError(
            f"variant={variant!r}: choose one of {sorted(PROMPT_FILES)}", field="variant",
            value=variant,
        )
    path = presets_dir / PROMPT_FILES[variant]
    text = _load_template(path).substitute(
        max_overlap=limits.max_overlap,
        max_events=limits.max_events,
        max_description_chars=limits.max_description_chars,
        min_target_lufs=f"{MIN_TARGET_LUFS:g}",
        max_target_lufs=f"{MAX_TARGET_LUFS:g}",
        length_priors=length_priors(),
    )
    required = _REQUIRED_FIELDS["plain"] + _REQUIRED_FIELDS.get(variant, ())
    missing = [name for name in required if name not in text]
    # The plain variant must not ask for loudness, or the two variants are the same prompt.
    if missing or (variant == "plain" and "target_lufs" in text):
        raise InvalidInputError(
            f"planner prompt {path}: does not fit variant {variant!r} (missing {missing} or "
            "mentions target_lufs in the plain variant)",
            field="prompt_file", value=str(path),
        )
    return text


# Entries of each kind shown to the model: enough to set the scale, few enough to keep the
# system prompt small for local models (about 1.5k characters in all).
PRIORS_PER_KIND = 14
_KIND_LABELS = (
    ("one_shot", "one-shots"),
    ("hits", "one hit of a repeated sound"),
    ("sustained", "sustained sounds"),
)


COMMON_SOURCES = (
    "door slam", "door opens", "gunshot", "explosion", "glass shatter", "scream", "car horn",
    "thud", "crash", "splash", "match strike", "lock turns", "keys jingle", "chime",
    "dog bark", "knocking", "cough", "beep", "click", "camera shutter", "clapping", "church bell",
    "footsteps", "car passing", "thunder", "siren", "alarm", "kettle boiling", "phone ringing",
    "applause", "helicopter", "train", "chainsaw", "laugh", "baby crying", "speech",
    "rain", "wind", "traffic", "fire", "ocean waves", "birdsong", "crowd chatter", "fan",
    "room tone", "crickets", "machinery", "clock ticking",
)


@lru_cache(maxsize=1)
def length_priors() -> str:
    """Natural lengths from the sound lexicon (presets/sounds.toml), one line per kind, so the
    LLM planner and the rule planner agree on what a good layout is."""
    from engine.lexicon import load_lexicon

    lexicon = load_lexicon()
    # The most common sources first, then the rest of the file, so the sample sets the scale.
    common = [lexicon.get(name) for name in COMMON_SOURCES if name in {e.name for e in lexicon.entries}]
    entries = common + [e for e in lexicon.entries if e not in common]
    lines = []
    for kind, label in _KIND_LABELS:
        items = []
        for entry in (e for e in entries if e.kind == kind):
            if kind == "hits":
                items.append(f"{entry.name} {entry.single_hit_s:g}")
            else:
                tail = f" (tail {entry.tail_s:g})" if entry.tail_s else ""
                items.append(f"{entry.name} {entry.length_min_s:g}-{entry.length_max_s:g}{tail}")
            if len(items) == PRIORS_PER_KIND:
                break
        lines.append(f"   - {label}: " + "; ".join(items) + ".")
    beds = [e.name for e in entries if e.kind == "bed"][:PRIORS_PER_KIND]
    lines.append("   - beds (whole scene unless stopped): " + ", ".join(beds) + ".")
    return "\n".join(lines)


def approx_tokens(text: str) -> int:
    """A model-independent token estimate: about four characters per token."""
    return math.ceil(len(text) / 4)


def bound_history(history: Sequence[Turn], *, budget_tokens: int) -> list[Turn]:
    """The newest turns whose estimated size fits the budget (the oldest are dropped first)."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(history):
        cost = approx_tokens(turn.content)
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept


def plan_for_model(plan: Plan, *, with_loudness: bool) -> dict[str, Any]:
    """The plan as the model sees it: ids, text, times, fades (and loudness); seeds are ours."""
    events = []
    for event in plan.events:
        item: dict[str, Any] = {
            "id": event.id,
            "description": event.description,
            "start_s": round(event.start_s, 3),
            "end_s": round(event.end_s, 3),
        }
        # Fades the plan has are shown, so a revision keeps them (or changes them on purpose).
        for name in ("fade_in_s", "fade_out_s"):
            value = getattr(event, name)
            if value is not None:
                item[name] = round(value, 3)
        if with_loudness and event.target_lufs is not None:
            item["target_lufs"] = round(event.target_lufs, 1)
        events.append(item)
    return {"duration_s": plan.duration_s, "events": events}


def plan_json(plan: Plan, *, with_loudness: bool) -> str:
    return json.dumps(plan_for_model(plan, with_loudness=with_loudness), separators=(", ", ": "))


def new_scene_message(prompt: str, *, duration_s: float) -> str:
    return (
        f"Scene length: {duration_s:g} seconds (duration_s = {duration_s:g}).\n"
        f"Scene request: {prompt.strip()}\n"
        "Return the plan."
    )


def edit_message(plan: Plan, instruction: str, *, with_loudness: bool) -> str:
    return (
        "Current plan (authoritative; keep the ids of events you do not change):\n"
        f"{plan_json(plan, with_loudness=with_loudness)}\n"
        f"Revision request: {instruction.strip()}\n"
        "Return the complete revised plan."
    )


def repair_message(error: str) -> str:
    return (
        f"That plan was rejected: {error}\n"
        "Fix this problem and send the complete corrected plan as the JSON object only."
    )
