"""Timeline layout for the rule planner: clauses in, placed events and plan notes out.

The rules, in a designer's terms:
- each sound gets its natural length from the lexicon (a door slam about a second, an
  explosion with its tail); the rest of its slot in a sequence is silence, not a stretched sound;
- counts ("three times", "four knocks") become that many short events at a natural spacing;
- beds ("rain", "traffic", anything "in the background") start where the text puts them and
  run to the scene end, through later "then" clauses, unless the text stops them;
- sequential groups share the time between fixed points (the scene start, explicit times, the
  scene end) in proportion to their natural lengths; an explicit length ("for 4 seconds, then")
  is kept exactly, so what follows starts when it ends;
- silence takes its slot and makes no event; times past the scene end give a note;
- a machine (lexicon ``machine``) that starts, runs and stops is a short start-up, a run up to
  the stop, and a short stop sound, bed or not; a source that starts after an action ("... and
  an alarm starts") comes in when the action ends and runs on until the end or its stop;
  after a sound that goes on by nature ("a man speaks and a dog starts barking") it comes in
  a beat after that sound starts, as after a bed, unless "then" or a length says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from engine.lexicon import SoundEntry
from engine.planners.rules_text import Clause, run_clause
from engine.planners.rules_time import is_start

DEFAULT_ONE_SHOT_S = 1.5  # a one-shot the lexicon does not know
DEFAULT_SUSTAINED_S = 4.0  # a sound the lexicon does not know and that is not a one-shot
BED_LEAD_S = 2.0  # a bed named before a sequence plays alone this long first
SILENCE_S = 2.0  # "then silence" with no length
STOP_EVENT_S = 1.0  # "the chainsaw stops": the sound of it stopping
START_EVENT_S = 1.5  # "the chainsaw starts, runs ...": the start-up before it runs
HIT_GAP_SHARE = 0.6  # gap between counted hits, as a share of one hit (at least MIN_HIT_GAP_S)
MIN_HIT_GAP_S = 0.25
MIN_SCALE = 0.25  # a crowded sequence is squeezed no further than this (then runs over)


@dataclass
class Placed:
    """One event on the timeline, before ids and loudness are assigned."""

    clause: Clause
    start_s: float
    end_s: float
    repeat: int = 0  # index within a counted run (seeds differ so hits are not clones)
    open_ended: bool = False  # a bed that runs until stopped


@dataclass
class Layout:
    placed: list[Placed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---- natural lengths ---------------------------------------------------------------------------


def _entry_length_s(entry: SoundEntry | None, clause: Clause) -> float:
    if entry is None:
        return DEFAULT_ONE_SHOT_S if clause.is_one_shot else DEFAULT_SUSTAINED_S
    return entry.typical_length_s


def hit_length_s(clause: Clause) -> float:
    """One hit of a counted run: a bark, a knock, a toll."""
    entry = clause.entry
    if entry is None:
        return 0.5 if clause.is_one_shot else 1.0
    if entry.kind == "hits":
        return entry.single_hit_s
    return min(entry.typical_length_s, max(entry.length_min_s, 1.0))


def hit_spacing_s(clause: Clause) -> float:
    hit_s = hit_length_s(clause)
    return hit_s + max(MIN_HIT_GAP_S, HIT_GAP_SHARE * hit_s)


def natural_length_s(clause: Clause) -> float:
    """How long this clause naturally takes in a sequence (beds: nothing, they run under)."""
    if clause.silence:
        return clause.silence_s if clause.silence_s is not None else SILENCE_S
    if clause.time.length_s is not None:
        return clause.time.length_s
    if clause.time.start_s is not None and clause.time.end_s is not None:
        return max(clause.time.end_s - clause.time.start_s, 0.0)
    if clause.time.starts_s:
        return max(clause.time.starts_s) - min(clause.time.starts_s) + hit_length_s(clause)
    if clause.count:
        return (clause.count - 1) * hit_spacing_s(clause) + hit_length_s(clause)
    if clause.stops:
        return STOP_EVENT_S
    if clause.is_bed or _runs_on(clause):
        return 0.0
    return _entry_length_s(clause.entry, clause)


def _rigid(group: list[Clause]) -> bool:
    """A group whose length the text fixes ("for 4 seconds", "two seconds of silence")."""
    timed = [c for c in group if not c.is_bed or c.time.length_s is not None]
    return bool(timed) and all(
        c.time.length_s is not None or (c.silence and c.silence_s is not None) for c in timed
    )


def _group_length_s(group: list[Clause], *, lead_for_beds: bool) -> float:
    # A sustained sound layered with a bed runs with it and takes no slot of its own either.
    lengths = [0.0 if _layers_with_bed(c, group) else natural_length_s(c) for c in group]
    longest = max(lengths, default=0.0)
    # "rain in the background" runs from the start under everything: it needs no slot.
    if longest <= 0.0 and lead_for_beds and not all(c.background for c in group):
        return BED_LEAD_S
    return longest


def _anchor_s(group: list[Clause]) -> float | None:
    starts = [c.time.start_s for c in group if c.time.start_s is not None]
    return min(starts) if starts else None


# ---- placing one group ---------------------------------------------------------------------


def _sustained_length_s(clause: Clause, slot_s: float) -> float:
    entry = clause.entry
    if entry is None:
        return slot_s if not clause.is_one_shot else DEFAULT_ONE_SHOT_S
    if clause.repeated or entry.kind == "sustained":
        return min(max(slot_s, entry.length_min_s), entry.length_max_s) if not clause.repeated \
            else max(slot_s, entry.typical_length_s)
    return entry.typical_length_s


def _place_clause(clause: Clause, start_s: float, slot_s: float, duration_s: float,
                  layout: Layout, running: list[Placed]) -> None:
    if clause.silence:
        if clause.stops:  # "the room falls silent": everything still running ends here
            stopped = _stop(running, clause.entry, start_s) or _stop(running, None, start_s)
            entry = clause.entry
            if not stopped and entry is not None and entry.continuous and entry.name != "room tone":
                # "the crowd goes quiet" with no crowd before: it was audible until now.
                layout.placed.append(Placed(clause, 0.0, max(start_s, BED_LEAD_S)))
        return
    time = clause.time
    if clause.stops:
        stopped = _stop(running, clause.entry, start_s)
        if stopped and clause.entry is not None and clause.entry.machine:
            # "the generator hums, then stops": the run ends here and the machine's stop is heard.
            layout.placed.append(Placed(clause, start_s, start_s + STOP_EVENT_S))
            return
        if not stopped and _ran_until(layout, clause.entry, start_s):
            # "..., runs for 5 seconds, then stops": the run just ended; this is its stop sound.
            layout.placed.append(Placed(clause, start_s, start_s + STOP_EVENT_S))
            return
        if not stopped and clause.entry is not None and clause.entry.continuous:
            # "the music stops" with no music before: it was playing until now.
            layout.placed.append(Placed(clause, 0.0, max(start_s, BED_LEAD_S)))
            return
        if clause.entry is None or clause.entry.kind == "bed":
            return  # "the music stops": nothing more to hear
        layout.placed.append(Placed(clause, start_s, start_s + STOP_EVENT_S))
        return
    if clause.entry is not None and clause.entry.machine and is_start(clause.raw):
        # "the generator sputters, then kicks in": what it did before starting ends here.
        _stop(running, clause.entry, start_s)
    if time.starts_s:  # "at 1, 4 and 7 seconds": one event at each time
        starts = sorted(time.starts_s)
        for index, at_s in enumerate(starts):
            gap_s = (starts[index + 1] - at_s) if index + 1 < len(starts) else math.inf
            length_s = min(hit_length_s(clause) if clause.entry and clause.entry.kind == "hits"
                           else _entry_length_s(clause.entry, clause), gap_s)
            layout.placed.append(Placed(clause, at_s, at_s + length_s, repeat=index))
        return
    if clause.count:
        spacing_s = hit_spacing_s(clause)
        room_s = max(duration_s - start_s, 0.0)
        natural_s = (clause.count - 1) * spacing_s + hit_length_s(clause)
        if 0.0 < slot_s < natural_s and time.start_s is None:
            room_s = min(room_s, slot_s)  # a crowded sequence squeezes the run, not the next sound
        if clause.count > 1 and (clause.count - 1) * spacing_s + hit_length_s(clause) > room_s:
            spacing_s = max(room_s / clause.count, 0.05)  # squeeze the run into the scene
        length_s = min(hit_length_s(clause), spacing_s * 0.9 if clause.count > 1 else math.inf)
        for index in range(clause.count):
            at_s = start_s + index * spacing_s
            layout.placed.append(Placed(clause, at_s, at_s + length_s, repeat=index))
        return
    if time.end_s is not None:
        layout.placed.append(Placed(clause, start_s, time.end_s))
        return
    if time.length_s is not None:
        layout.placed.append(Placed(clause, start_s, start_s + time.length_s))
        return
    if clause.is_bed:
        placed = Placed(clause, start_s, duration_s, open_ended=True)
        layout.placed.append(placed)
        running.append(placed)
        return
    entry = clause.entry
    if _runs_on(clause):
        # "and an alarm starts": it comes in here and goes on until the end or a stop.
        placed = Placed(clause, start_s, duration_s, open_ended=True)
        layout.placed.append(placed)
        running.append(placed)
        return
    if entry is not None and entry.kind in ("one_shot", "hits") and not clause.repeated:
        length_s = entry.typical_length_s
    elif entry is None and clause.is_one_shot:
        length_s = DEFAULT_ONE_SHOT_S
    else:
        length_s = _sustained_length_s(clause, slot_s)
    layout.placed.append(Placed(clause, start_s, start_s + length_s))


def _ran_until(layout: Layout, entry: SoundEntry | None, at_s: float) -> bool:
    """Whether a sound of ``entry``'s source was placed and plays up to about ``at_s``."""
    return any(_same_source(placed.clause.entry, entry) and abs(placed.end_s - at_s) <= 0.5
               for placed in layout.placed)


def _short_starts(groups: list[list[Clause]]) -> list[list[Clause]]:
    """A machine that starts and then runs, idles or stops in a later clause: its start is the
    start-up sound (START_EVENT_S), and the running is the later clause's, not both at once.
    When the text goes straight from the start to the stop ("whirs on, then clicks off"), the
    running in between is a clause of its own, so the shape is always start-up, run, stop."""
    result: list[list[Clause]] = []
    for index, group in enumerate(groups):
        fixed, runs = [], []
        for clause in group:
            entry = clause.entry
            later = [c for g in groups[index + 1:] for c in g if _same_source(c.entry, entry)]
            # Only a machine's start with nothing but its stop after it has a start-up sound
            # then a run: "an alarm starts, ..., the alarm stops" is one sound until its stop.
            straight_to_stop = bool(later) and later[0].stops
            if (entry is not None and entry.continuous and (entry.kind != "bed" or entry.machine)
                    and not clause.stops and clause.time.length_s is None
                    and clause.time.end_s is None and is_start(clause.raw) and later
                    and (entry.machine or not straight_to_stop)):
                # The start-up is a short sound of its own, not the bed it leads into.
                clause = replace(clause, time=replace(clause.time, length_s=START_EVENT_S),
                                 is_bed=False, onset=False)
                if later[0].stops and later[0].time.start_s is None:
                    runs.append(replace(run_clause(clause), onset=True))
            elif (entry is not None and entry.continuous and _untimed(clause) and later
                  and later[0].stops):
                # "the vacuum runs, a doorbell rings, the vacuum stops": it runs until its stop.
                clause = replace(clause, onset=True)
            fixed.append(clause)
        result.append(fixed)
        if runs:
            result.append(runs)
    return result


def _same_source(a: SoundEntry | None, b: SoundEntry | None) -> bool:
    return a is not None and b is not None and (a.name == b.name or a.family == b.family)


def _stop(running: list[Placed], entry: SoundEntry | None, at_s: float) -> bool:
    """End the running beds the stop names (all of them when it names none); any ended?"""
    stopped = False
    for placed in list(running):
        if entry is None or _same_source(placed.clause.entry, entry):
            if at_s > placed.start_s:
                placed.end_s = at_s
            running.remove(placed)
            stopped = True
    return stopped


# ---- the whole scene -----------------------------------------------------------------------


def layout_scene(groups: list[list[Clause]], duration_s: float) -> Layout:
    """Place every clause of the sequential ``groups`` on a ``duration_s`` timeline."""
    layout = Layout()
    running: list[Placed] = []
    groups = _short_starts(groups)
    anchors = [_anchor_s(g) for g in groups]
    # A bed named in a sequence gets a slot of its own so it starts where the text puts it.
    lengths = [_group_length_s(g, lead_for_beds=len(groups) > 1) for g in groups]
    cursor_s = 0.0
    index = 0
    while index < len(groups):
        if anchors[index] is not None:
            at_s = float(anchors[index])  # type: ignore[arg-type]
            _place_group(groups[index], at_s, lengths[index], duration_s, layout, running,
                         bed_start_s=cursor_s)
            cursor_s = max(cursor_s, at_s + lengths[index])
            index += 1
            continue
        # A run of groups without times shares the time up to the next fixed point.
        run_end = index
        while run_end < len(groups) and anchors[run_end] is None:
            run_end += 1
        limit_s = anchors[run_end] if run_end < len(groups) else duration_s
        limit_s = max(float(limit_s), cursor_s)  # type: ignore[arg-type]
        run = range(index, run_end)
        # A group that another source starts after keeps its natural length: "debris falls and
        # an alarm starts" has the alarm come in when the debris lands, not half a scene later.
        # A stop is a moment too: the run before it takes the time, not a silence after it.
        held = {i for i in run if _rigid(groups[i]) or all(c.stops for c in groups[i])
                or (i + 1 < len(groups) and _starts_after(groups[i + 1]))}
        # A source that comes in while the one before goes on ("a man speaks and a dog starts
        # barking") starts a beat in, as after a bed; the one before keeps its own length.
        advance = {i: min(lengths[i], BED_LEAD_S) for i in held
                   if i + 1 < len(groups) and any(c.joins for c in groups[i + 1])}
        rigid_s = sum(advance.get(i, lengths[i]) for i in run if i in held)
        flexible_s = sum(lengths[i] for i in run if i not in held)
        scale = (limit_s - cursor_s - rigid_s) / flexible_s if flexible_s > 0 else 1.0
        scale = max(scale, MIN_SCALE)
        for i in run:
            slot_s = lengths[i] if i in held else lengths[i] * scale
            _place_group(groups[i], cursor_s, slot_s, duration_s, layout, running)
            cursor_s += advance.get(i, slot_s)
        index = run_end
    _fit_inside(layout, duration_s)
    return layout


def _starts_after(group: list[Clause]) -> bool:
    """The group brings in a source that starts here ("and rain begins", "a dog starts
    barking"), so the group before it keeps its own length instead of a stretched slot."""
    return any(c.onset and _untimed(c) for c in group)


def _runs_on(clause: Clause) -> bool:
    """A continuous source that comes in and goes on until the end or its stop."""
    return clause.onset and _untimed(clause) and clause.entry is not None \
        and clause.entry.continuous and not clause.repeated


def _untimed(clause: Clause) -> bool:
    time = clause.time
    return time.start_s is None and time.length_s is None and time.end_s is None \
        and not clause.count and not clause.stops and not clause.silence


def _layers_with_bed(clause: Clause, group: list[Clause]) -> bool:
    """'rain and thunder outside': a sustained sound layered with a bed runs with it."""
    if not _untimed(clause) or clause.is_bed or clause.is_one_shot:
        return False
    return any(other.is_bed and other is not clause for other in group)


def _place_group(group: list[Clause], start_s: float, slot_s: float, duration_s: float,
                 layout: Layout, running: list[Placed], *, bed_start_s: float | None = None) -> None:
    # Stops first: "the music stops and the room falls silent" ends what runs before new sounds.
    for clause in sorted(group, key=lambda c: not (c.stops or c.silence)):
        own_start_s = clause.time.start_s if clause.time.start_s is not None else start_s
        as_bed = clause.is_bed or _layers_with_bed(clause, group)
        if clause.background and _untimed(clause):
            own_start_s = 0.0  # "throughout", "in the background": from the scene start
        elif as_bed and _untimed(clause) and bed_start_s is not None:
            # "heartbeat throughout, a gasp at 4 s": the bed does not wait for the gasp.
            own_start_s = min(bed_start_s, own_start_s)
        if as_bed and _untimed(clause):
            placed = Placed(clause, own_start_s, duration_s, open_ended=True)
            layout.placed.append(placed)
            running.append(placed)
            continue
        _place_clause(clause, own_start_s, slot_s, duration_s, layout, running)


def _fit_inside(layout: Layout, duration_s: float) -> None:
    """Keep every event inside the scene; say so when the text asked for more than fits."""
    kept: list[Placed] = []
    for placed in layout.placed:
        text = placed.clause.text
        asked_time = placed.clause.time.start_s is not None
        if placed.start_s >= duration_s:
            length_s = min(placed.end_s - placed.start_s, duration_s)
            layout.notes.append(
                f"'{text}' was asked for {placed.start_s:g} s, past the scene end "
                f"({duration_s:g} s); placed at {duration_s - length_s:g} s instead")
            placed.start_s, placed.end_s = duration_s - length_s, duration_s
        elif placed.end_s > duration_s + 1e-9:
            if asked_time or placed.clause.time.length_s is not None:
                layout.notes.append(
                    f"'{text}' runs past the scene end ({duration_s:g} s); trimmed to "
                    f"{duration_s - placed.start_s:g} s")
            placed.end_s = duration_s
        if placed.end_s - placed.start_s > 1e-6:
            kept.append(placed)
    layout.placed = kept


# ---- loudness and fades ----------------------------------------------------------------------

BED_OFFSET_LU = -6.0  # an unknown sound asked to run in the background sits under the rest
# The lexicon's levels are a rough guide; a scene keeps every event within this window of its
# reference so nothing is lost or blasts (loudness words can still push past it).
LEXICON_OFFSET_RANGE_LU = (-18.0, 9.0)


def clause_offset_lu(clause: Clause) -> float:
    """Loudness of the clause's event relative to the scene reference, in LU."""
    entry = clause.entry
    if entry is not None:
        low, high = LEXICON_OFFSET_RANGE_LU
        offset = min(max(entry.loudness_db, low), high)
        if clause.is_bed and entry.kind != "bed":
            offset = min(offset, 0.0) + BED_OFFSET_LU
    else:
        offset = BED_OFFSET_LU if clause.is_bed else 0.0
    return offset + clause.loudness_offset_lu


def fades_s(clause: Clause, length_s: float) -> tuple[float | None, float | None]:
    """Fade-in and fade-out lengths in seconds from the clause's dynamics words."""
    fade_in = round(clause.fade_in_share * length_s, 3) if clause.fade_in_share else None
    fade_out = round(clause.fade_out_share * length_s, 3) if clause.fade_out_share else None
    return fade_in, fade_out
