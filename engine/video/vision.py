"""Ask a vision-capable OpenAI-compatible model what sounds at each detected visual onset.

The model sees a few keyframes (JPEG data URLs, each labelled with its time in the cue) and the
list of detected onsets; it answers JSON naming the sound of each onset it hears and any
continuous beds. Its hits are then placed on the detected onsets (by index, or by time snapped
to the nearest onset), so timing always comes from the pixels and only wording from the model.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

from engine.video.cue_items import CueItem, clip_item, hit_lufs, snap_to_onsets
from engine.video.decode import decode_keyframes
from engine.video.onsets import OnsetAnalysis

MAX_KEYFRAMES = 6

_SYSTEM = (
    "You are a Foley editor spotting a short video clip. You get keyframes with their times "
    "and a numbered list of instants where something visibly hits, appears or stops. For each "
    "instant that should make a sound, write a short concrete description of one single sound "
    "(what touches what, material, size), as a sound-effects library would label it. Add a "
    "continuous bed only for sound that lasts (engine, wind, crowd, footsteps on gravel are NOT "
    "beds: each step is a hit). Answer with JSON only, shaped like "
    '{"hits": [{"onset": 0, "description": "..."}], '
    '"beds": [{"start_s": 0.0, "end_s": 2.0, "description": "..."}]}. '
    "Times are seconds from the start of the clip. Leave out instants that make no sound."
)


class VisionPlanError(Exception):
    """The vision model could not be reached or gave no usable answer."""


def _keyframe_times(analysis: OnsetAnalysis, duration_s: float, start_s: float) -> list[float]:
    # The strongest hits first (what the model must name), then even coverage of the range.
    strongest = sorted(analysis.hits, key=lambda onset: -onset.strength)[: MAX_KEYFRAMES - 2]
    times = [onset.time_s for onset in strongest]
    spare = MAX_KEYFRAMES - len(times)
    times += [start_s + duration_s * (k + 0.5) / spare for k in range(spare)]
    return sorted(times)


def build_messages(
    path: str | Path, analysis: OnsetAnalysis, *, start_s: float, duration_s: float, hint: str | None
) -> list[dict[str, Any]]:
    keyframes = decode_keyframes(path, _keyframe_times(analysis, duration_s, start_s))
    onset_lines = [
        f"{index}: t={onset.time_s - start_s:.2f} s ({onset.kind}, strength {onset.strength:.3f})"
        for index, onset in enumerate(analysis.onsets)
    ]
    text = (
        f"Clip length: {duration_s:.2f} s.\n"
        + (f"The editor's hint: {hint}\n" if hint else "")
        + "Detected instants:\n"
        + ("\n".join(onset_lines) if onset_lines else "(none)")
    )
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for time_s, jpeg in keyframes:
        content.append({"type": "text", "text": f"Keyframe at t={time_s - start_s:.2f} s:"})
        data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        content.append({"type": "image_url", "image_url": {"url": data_url}})
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": content}]


def ask_model(settings: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    from engine.planners.llm_config import create_openai_client
    from engine.planners.llm_parse import ReplyFormatError, extract_json

    try:
        client = create_openai_client(settings)
        reply = client.chat.completions.create(
            model=settings.model, messages=messages, temperature=getattr(settings, "temperature", 0.2)
        )
        text = reply.choices[0].message.content or ""
    except Exception as error:  # any transport or API failure: fall back to the onset planner
        raise VisionPlanError(f"{type(error).__name__}: {error}") from None
    try:
        data = extract_json(text)
    except (ReplyFormatError, json.JSONDecodeError) as error:
        raise VisionPlanError(f"no JSON in the answer ({error})") from None
    if not isinstance(data, dict):
        raise VisionPlanError("the answer is not a JSON object")
    return data


def vision_items(
    path: str | Path,
    analysis: OnsetAnalysis,
    *,
    settings: Any,
    start_s: float,
    duration_s: float,
    hint: str | None,
    options: Any,
) -> list:
    """CueItems from the model's answer, each hit sitting on a detected onset where one is near."""

    messages = build_messages(path, analysis, start_s=start_s, duration_s=duration_s, hint=hint)
    data = ask_model(settings, messages)
    onsets = list(analysis.onsets)
    strongest = max((onset.strength for onset in analysis.hits), default=0.0)
    items: list = []
    max_chars = options.limits.max_description_chars
    for hit in _dicts(data.get("hits")):
        text = _text(hit.get("description"), max_chars)
        time_s, strength = _hit_time(hit, onsets, start_s, options.snap_window_s)
        if not text or time_s is None:
            continue
        lufs = hit_lufs(strength, strongest, options) if strength else options.quietest_hit_lufs
        items.append(CueItem("hit", text, time_s - start_s, time_s - start_s + options.hit_length_s,
                             lufs, strength))
    for bed in _dicts(data.get("beds")):
        text = _text(bed.get("description"), max_chars)
        try:
            bed_start_s, bed_end_s = float(bed["start_s"]), float(bed["end_s"])
        except (KeyError, TypeError, ValueError):
            continue
        if text and math.isfinite(bed_start_s) and math.isfinite(bed_end_s):
            items.append(CueItem("bed", text, bed_start_s, bed_end_s, options.bed_lufs))
    items = [item for item in (clip_item(item, duration_s) for item in items) if item and item.description]
    if not items:
        raise VisionPlanError("the answer named no usable event")
    return items


def _dicts(value: Any) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: Any, max_chars: int) -> str:
    """One line of the model's words, cut at a word boundary to fit the plan's limit."""
    text = " ".join(str(value or "").split())
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0]
    return text


def _hit_time(hit: dict, onsets: list, start_s: float, window_s: float) -> tuple[float | None, float]:
    """Absolute time of a hit named by onset index or by time (snapped), and its onset strength."""
    index = hit.get("onset")
    if isinstance(index, int) and 0 <= index < len(onsets):
        return onsets[index].time_s, onsets[index].strength
    try:
        wanted = start_s + float(hit.get("time_s", hit.get("start_s")))
    except (TypeError, ValueError):
        return None, 0.0
    if not math.isfinite(wanted):
        return None, 0.0
    snapped = snap_to_onsets(wanted, onsets, window_s=window_s)
    strength = next((o.strength for o in onsets if o.time_s == snapped), 0.0)
    return snapped, strength
