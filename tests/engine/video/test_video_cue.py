"""Cue planning: hits on onsets, hint wording, ranges, cuts, beds, and plan limits."""

from __future__ import annotations

import pytest

from engine.errors import InvalidInputError
from engine.plan import PlanLimits, max_concurrent, validate_plan
from engine.video.cue import (
    CueItem,
    CueOptions,
    bed_description,
    cue_plan,
    hit_description,
    plan_from_items,
    plan_from_video,
)


def _hits(plan):
    return [e for e in plan.events if e.description.startswith("a single") or "impact" in e.description]


def test_hint_words_become_one_hit_each():
    assert hit_description("footsteps") == "a single footstep"
    assert hit_description("Knocks on a door.") == "a single knock on a door"
    assert hit_description("glass bottles") == "a single glass bottle"
    assert hit_description("a door slam") == "a door slam"
    assert hit_description(None) == "a short sharp impact"
    assert "footsteps" in bed_description("footsteps")


def test_each_flash_becomes_a_hit_on_its_frame(flash_video):
    path, truth = flash_video
    result = plan_from_video(path, start_s=0.0, end_s=3.0, hint="footsteps")
    plan = validate_plan(result.plan)
    assert result.planner == "video-onsets" and not result.fell_back
    assert plan.duration_s == 3.0
    starts = sorted(e.start_s for e in plan.events)
    assert starts == pytest.approx(truth, abs=0.041)
    assert {e.description for e in plan.events} == {"a single footstep"}
    assert all(e.end_s - e.start_s <= 0.4 + 1e-9 for e in plan.events)
    assert len({e.seed for e in plan.events}) == len(plan.events)  # variation between hits


def test_range_offsets_every_event(flash_video):
    path, truth = flash_video
    plan = plan_from_video(path, start_s=1.0, end_s=2.5).plan
    assert plan.duration_s == pytest.approx(1.5)
    expected = [t - 1.0 for t in truth if 1.0 <= t < 2.5]
    assert sorted(e.start_s for e in plan.events) == pytest.approx(expected, abs=0.041)
    assert all(e.description == "a short sharp impact" for e in plan.events)


def test_wall_hit_and_its_travel_bed(wall_video):
    path, (hit_s,) = wall_video
    plan = plan_from_video(path, start_s=0.0, end_s=3.0, hint="wooden crate").plan
    hits = [e for e in plan.events if e.description == "a single wooden crate"]
    beds = [e for e in plan.events if e.description.startswith("continuous")]
    assert [e.start_s for e in hits] == pytest.approx([hit_s], abs=0.1)
    assert len(beds) == 1 and beds[0].end_s == pytest.approx(hit_s, abs=0.1)
    assert beds[0].target_lufs < hits[0].target_lufs


def test_cuts_skipped_or_marked(cut_video):
    path, truth = cut_video
    skipped = plan_from_video(path, start_s=0.0, end_s=3.0).plan
    assert [e.description for e in skipped.events] == ["quiet room tone"]  # nothing to hit
    marked = cue_plan(path, start_s=0.0, end_s=3.0, options=CueOptions(cuts="mark")).plan
    assert sorted(e.start_s for e in marked.events) == pytest.approx(truth)
    assert all("scene change" in e.description for e in marked.events)


def test_dense_hits_stay_within_overlap_and_event_limits():
    items = [CueItem("hit", "a single clap", 0.05 * k, 0.05 * k + 0.4, -20.0, 1.0 + k) for k in range(12)]
    items.append(CueItem("bed", "continuous clapping", 0.0, 1.0, -32.0))
    limits = PlanLimits(max_overlap=2, max_events=8)
    plan = plan_from_items(items, duration_s=1.0, options=CueOptions(limits=limits, min_hit_length_s=0.05))
    validate_plan(plan, limits=limits)
    assert len(plan.events) == 8 and max_concurrent(plan.events)[0] <= 2
    assert all(e.description == "a single clap" for e in plan.events)  # beds go first


def test_bad_range_and_planner_are_refused(flash_video):
    path, _ = flash_video
    with pytest.raises(InvalidInputError) as info:
        plan_from_video(path, start_s=2.0, end_s=1.0)
    assert info.value.field == "end_s"
    with pytest.raises(InvalidInputError) as info:
        plan_from_video(path, start_s=0.0, end_s=1.0, planner="crystal-ball")
    assert info.value.field == "planner"


def test_seeds_vary_between_hits_but_not_with_the_range(flash_video):
    path, _ = flash_video
    whole = plan_from_video(path, start_s=0.0, end_s=3.0).plan
    later = plan_from_video(path, start_s=0.3, end_s=3.0).plan  # same hits, shifted 0.3 s
    assert len({e.seed for e in whole.events}) == len(whole.events)
    assert [e.seed for e in whole.events] == [e.seed for e in later.events]
    assert [e.start_s - 0.3 for e in whole.events] == pytest.approx([e.start_s for e in later.events])


def test_overlong_range_is_refused_before_decoding(tmp_path):
    with pytest.raises(InvalidInputError) as info:
        plan_from_video(tmp_path / "never-opened.mp4", start_s=0.0, end_s=601.0)
    assert info.value.field == "end_s" and "600" in str(info.value)


def test_hints_with_a_verb_or_an_irregular_plural_stay_english():
    assert hit_description("keys jingling") == "a single key jingling"
    assert hit_description("boxes falling on a floor") == "a single box falling on a floor"
    assert hit_description("horse hooves") == "a single horse hoof"
    assert hit_description("glass breaking") == "a single glass breaking"
    assert hit_description("dry leaves") == "a single dry leaf"
    assert hit_description("sword clashes") == "a single sword clash"
