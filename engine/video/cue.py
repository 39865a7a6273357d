"""Video cue -> plan: visual onsets become short atomic Foley events placed on their frames.

Offline (the default) every detected hit becomes one short event whose description comes from
the user's hint ("footsteps" -> "a single footstep") or is a generic impact; long stretches of
steady motion become quiet beds; cuts are skipped or marked with a short transition sound.

With a vision-capable OpenAI-compatible model (planner="llm", an LLMSettings, or an object with
a ``settings`` attribute) a few keyframes go to the model as image data URLs together with the
detected onset times; it names what sounds at each onset and the answer is snapped back onto
the detected onsets (engine/video/vision.py). If it fails, the offline cue plan answers and the
result says so (fell_back=True).

All times in the returned plan are relative to ``start_s``; duration_s = end_s - start_s.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from engine.edits import stable_seed
from engine.errors import InvalidInputError, PlanValidationError
from engine.plan import Event, Plan, PlanLimits, max_concurrent, validate_plan
from engine.planners import PlanResult
from engine.video.decode import decode_frames
from engine.video.cue_items import CueItem, CueOptions, clip_item, hit_lufs, snap_to_onsets
from engine.video.onsets import OnsetAnalysis, detect_onsets
# CueItem, CueOptions and snap_to_onsets are importable from here too; their home is cue_items,
# which engine.video.vision shares (so vision never imports this module, which imports it).

PLANNER_NAME = "video-onsets"
_PREPOSITIONS = {"on", "of", "against", "in", "at", "with", "into", "onto", "from", "to", "over"}
_IRREGULAR = {"feet": "foot", "teeth": "tooth", "mice": "mouse", "people": "person", "men": "man",
              "women": "woman", "children": "child", "geese": "goose", "hooves": "hoof", "leaves": "leaf",
              "knives": "knife", "wolves": "wolf", "shelves": "shelf", "halves": "half"}


def singular(word: str) -> str:
    """English singular of one lower-case word, good enough for Foley nouns."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def hit_description(hint: str | None) -> str:
    """One hit of what the hint names: "footsteps" -> "a single footstep"."""
    phrase = " ".join((hint or "").strip().lower().rstrip(".!").split())
    if not phrase:
        return "a short sharp impact"
    if phrase.startswith(("a single ", "one ", "a ", "an ")):
        return phrase
    words = phrase.split()
    head = next((i - 1 for i, word in enumerate(words) if word in _PREPOSITIONS and i > 0), len(words) - 1)
    if head > 0 and words[head].endswith("ing"):
        head -= 1  # "keys jingling": the noun before the verb is the one made singular
    words[head] = singular(words[head])
    return "a single " + " ".join(words)


def bed_description(hint: str | None) -> str:
    phrase = " ".join((hint or "").strip().lower().rstrip(".!").split())
    return f"continuous {phrase}, steady movement" if phrase else "soft continuous movement rustle"


def items_from_onsets(
    analysis: OnsetAnalysis, *, offset_s: float, duration_s: float, hint: str | None, options: CueOptions
) -> list[CueItem]:
    """Hits, beds and (optionally) cuts of an analysis, on a timeline starting at offset_s."""
    hits = analysis.hits
    strongest = max((onset.strength for onset in hits), default=0.0)
    items = [
        CueItem("hit", hit_description(hint), onset.time_s - offset_s,
                onset.time_s - offset_s + options.hit_length_s,
                hit_lufs(onset.strength, strongest, options), onset.strength)
        for onset in hits
    ]
    if options.cuts == "mark":
        items += [
            CueItem("cut", "a quick whoosh marking a scene change", cut.time_s - offset_s,
                    cut.time_s - offset_s + options.cut_length_s, options.cut_lufs, cut.strength)
            for cut in analysis.cuts
        ]
    if options.beds:
        items += [
            CueItem("bed", bed_description(hint), span.start_s - offset_s, span.end_s - offset_s,
                    options.bed_lufs, span.energy)
            for span in analysis.spans
        ]
    return [item for item in (clip_item(item, duration_s) for item in items) if item is not None]


def _shorten_hits(items: list[CueItem], options: CueOptions) -> list[CueItem]:
    """A short item rings until the next short item starts (never below min_hit_length_s)."""
    shorts = sorted((i for i in items if i.kind != "bed"), key=lambda i: i.start_s)
    out = [i for i in items if i.kind == "bed"]
    for index, item in enumerate(shorts):
        end_s = item.end_s
        if index + 1 < len(shorts):
            end_s = min(end_s, max(shorts[index + 1].start_s, item.start_s + options.min_hit_length_s))
        out.append(replace(item, end_s=end_s))
    return out


def _within_limits(items: list[CueItem], options: CueOptions) -> list[CueItem]:
    limits = options.limits
    beds = sorted((i for i in items if i.kind == "bed"), key=lambda i: -(i.end_s - i.start_s))
    shorts = sorted((i for i in items if i.kind != "bed"), key=lambda i: -i.strength)
    # Hits are the point of a cue: when the event budget is short, drop beds first, then the
    # weakest hits.
    kept = shorts[: limits.max_events]
    kept += beds[: max(0, limits.max_events - len(kept))]
    kept = _shorten_hits(kept, options)
    while kept and max_concurrent(_as_events(kept))[0] > limits.max_overlap:
        beds_left = [i for i in kept if i.kind == "bed"]
        victim = beds_left[-1] if beds_left else min(kept, key=lambda i: i.strength)
        kept.remove(victim)
    return kept


def _as_events(items: Sequence[CueItem], *, variations: int = 8) -> list[Event]:
    """Events in time order, e1, e2, ...

    Repeated hits cycle through ``variations`` seeds per description (round-robin, as a Foley
    editor cycles takes): neighbours differ, and the seeds do not depend on the times, so a
    re-spotted or shifted range reuses renders from the cache.
    """
    ordered = sorted(items, key=lambda i: (i.start_s, i.kind))
    seen: dict[str, int] = {}
    events = []
    for n, item in enumerate(ordered, start=1):
        take = seen.get(item.description, 0)
        seen[item.description] = take + 1
        events.append(Event(id=f"e{n}", description=item.description, start_s=round(item.start_s, 6),
                            end_s=round(item.end_s, 6), target_lufs=round(item.target_lufs, 2),
                            seed=stable_seed(item.description, salt=take % variations)))
    return events


def plan_from_items(items: list[CueItem], *, duration_s: float, options: CueOptions) -> Plan:
    kept = _within_limits(items, options)
    if not kept:
        # Nothing moved: a quiet bed keeps the cue renderable and tells the user so in the DAW.
        kept = [CueItem("bed", "quiet room tone", 0.0, duration_s, options.bed_lufs)]
    return validate_plan(Plan(duration_s=duration_s, events=tuple(_as_events(kept))), limits=options.limits)


def _check_range(start_s: float, end_s: float, limits: PlanLimits) -> None:
    if not math.isfinite(start_s) or start_s < 0:
        raise InvalidInputError(f"start_s={start_s!r}: must be a number >= 0", field="start_s", value=start_s)
    if not math.isfinite(end_s) or not end_s > start_s:
        raise InvalidInputError(f"end_s={end_s!r}: must be > start_s ({start_s})", field="end_s", value=end_s)
    if end_s - start_s > limits.max_duration_s:
        # Checked before decoding: a long range costs memory and time only to be refused later.
        raise InvalidInputError(
            f"end_s={end_s!r}: the range is {end_s - start_s:g} s; "
            f"a cue may last at most {limits.max_duration_s:g} s",
            field="end_s", value=end_s)


def analyse_cue(
    path: str | Path, *, start_s: float, end_s: float, options: CueOptions = CueOptions()
) -> OnsetAnalysis:
    _check_range(start_s, end_s, options.limits)
    return detect_onsets(decode_frames(path, start_s=start_s, end_s=end_s), options=options.onsets)


def cue_plan(
    path: str | Path,
    *,
    start_s: float,
    end_s: float,
    hint: str | None = None,
    planner: object | None = None,
    options: CueOptions = CueOptions(),
) -> PlanResult:
    """plan_from_video with explicit CueOptions (the CLI and the benchmark use this)."""
    analysis = analyse_cue(path, start_s=start_s, end_s=end_s, options=options)
    duration_s = end_s - start_s
    counts = (len(analysis.hits), len(analysis.cuts), len(analysis.spans))
    notes = ["{} visual hits, {} cuts, {} motion spans".format(*counts)]
    settings = _vision_settings(planner)
    if settings is None:
        return _onset_result(analysis, start_s=start_s, duration_s=duration_s, hint=hint, options=options,
                             notes=notes)
    from engine.video.vision import VisionPlanError, vision_items

    try:
        if not _reachable(settings):
            raise VisionPlanError("no endpoint or key configured")
        items = vision_items(path, analysis, settings=settings, start_s=start_s, duration_s=duration_s,
                             hint=hint, options=options)
        plan = plan_from_items(items, duration_s=duration_s, options=options)
    except (VisionPlanError, PlanValidationError) as error:
        notes.append(f"vision model failed ({error}); used the onset planner")
        return _onset_result(analysis, start_s=start_s, duration_s=duration_s, hint=hint, options=options,
                             notes=notes, fell_back=True)
    return PlanResult(plan=plan, planner="video-llm", notes=tuple(notes))


def _onset_result(analysis: OnsetAnalysis, *, start_s: float, duration_s: float, hint: str | None,
                  options: CueOptions, notes: list[str], fell_back: bool = False) -> PlanResult:
    items = items_from_onsets(analysis, offset_s=start_s, duration_s=duration_s, hint=hint, options=options)
    plan = plan_from_items(items, duration_s=duration_s, options=options)
    return PlanResult(plan=plan, planner=PLANNER_NAME, fell_back=fell_back, notes=tuple(notes))


def _vision_settings(planner: object | None):
    """None for the offline planner; LLM settings for "llm", a settings object or an LLMPlanner."""
    if planner is None or planner in ("rules", "onsets", PLANNER_NAME):
        return None
    if planner == "llm":
        from engine.planners.llm_config import LLMSettings

        return LLMSettings()
    if isinstance(planner, str):
        raise InvalidInputError(
            f"planner={planner!r}: a video cue is planned by 'onsets' (offline) or 'llm' (vision model)",
            field="planner", value=planner,
        )
    if getattr(planner, "name", None) == "rules":
        return None  # the session's offline planner: the offline cue planner matches it
    settings = getattr(planner, "settings", planner)
    if not hasattr(settings, "model"):
        raise InvalidInputError(
            f"planner={type(planner).__name__}: expected 'llm', LLM settings or an LLM planner",
            field="planner", value=repr(planner),
        )
    return settings


def _reachable(settings: object) -> bool:
    """An endpoint or a key is set; without either the openai client would dial a public API."""
    from engine.planners.llm_config import llm_configured

    try:
        return llm_configured(settings)  # type: ignore[arg-type]
    except AttributeError:
        return bool(getattr(settings, "base_url", None))


def plan_from_video(
    path: str | Path,
    *,
    start_s: float,
    end_s: float,
    hint: str | None = None,
    planner: object | None = None,
) -> PlanResult:
    """Plan Foley events for the video range [start_s, end_s); plan times relative to start_s."""
    return cue_plan(path, start_s=start_s, end_s=end_s, hint=hint, planner=planner)

