"""benchmarks/planner_eval.py: its metrics on hand-made plans, and a run over both planners."""

from __future__ import annotations

import json

import pytest

from benchmarks import planner_eval as bench  # the script under test
from engine.plan import Event, Plan, PlanLimits
from engine.planners.llm import LLMPlanner, LLMSettings
from tests.fake_openai_server import FakeOpenAIServer


def plan_of(*spans: tuple[str, float, float], duration_s: float = 10.0) -> Plan:
    return Plan(duration_s=duration_s, events=tuple(
        Event(id=f"e{i}", description=text, start_s=start, end_s=end)
        for i, (text, start, end) in enumerate(spans, 1)))


def test_caption_set_has_the_three_kinds_in_the_planned_sizes():
    rows = bench.load_captions(bench.CAPTIONS)
    kinds = [row["kind"] for row in rows]
    assert (kinds.count("single"), kinds.count("pair"), kinds.count("complex")) == (20, 20, 10)
    assert all(" followed by " in row["text"] for row in rows if row["kind"] == "pair")
    assert len({row["id"] for row in rows}) == len(rows)


def test_order_is_judged_by_clause_words_and_first_starts():
    text = "A door creaks open followed by footsteps on a wooden floor"
    right = plan_of(("A door creaks open", 0, 4), ("Footsteps on wooden boards", 4, 10))
    wrong = plan_of(("Footsteps on a wooden floor", 0, 6), ("A door creaks", 6, 10))
    unmatched = plan_of(("A door creaks open", 0, 10))
    assert bench.order_correct(right, text) == (True, 1.0)
    assert bench.order_correct(wrong, text) == (False, 1.0)
    assert bench.order_correct(unmatched, text) == (False, 0.5)
    assert bench.order_correct(right, "A door creaks open") == (None, None)


def test_coverage_and_overlap_violations():
    gappy = plan_of(("a", 0, 2), ("b", 1, 3), ("c", 6, 10))
    assert bench.coverage(gappy) == pytest.approx(0.7)
    crowded = plan_of(("a", 0, 10), ("b", 0, 5), ("c", 1, 4), ("d", 2, 3), ("e", 6, 7))
    assert bench.overlap_violations(crowded, max_overlap=3) == 1
    assert bench.overlap_violations(crowded, max_overlap=2) == 1
    assert bench.overlap_violations(crowded, max_overlap=1) == 2
    back_to_back = plan_of(("a", 0, 5), ("b", 5, 10))
    assert bench.overlap_violations(back_to_back, max_overlap=1) == 0


def test_rules_run_prints_a_line_per_caption_and_an_aggregate(capsys):
    assert bench.main(["--planner", "rules", "--limit", "25"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records, aggregate = lines[:-1], lines[-1]["aggregate"]
    assert len(records) == 25 and aggregate["prompts"] == 25
    assert aggregate["by_kind"]["pair"]["prompts"] == 5
    assert aggregate["valid_rate"] == 1.0 and aggregate["overlap_violations"] == 0
    # Short sounds keep their natural length, so a scene may end in silence: only validity holds.
    assert all(r["planner"] == "rules" and r["valid"] for r in records)


def test_llm_run_scores_what_the_model_planned():
    caption = {"id": "p1", "kind": "pair", "text": "A phone rings followed by a man talking"}
    backwards = {"events": [
        {"id": "e1", "description": "A man talks on the phone.", "start_s": 0, "end_s": 6,
         "target_lufs": -20},
        {"id": "e2", "description": "A telephone rings.", "start_s": 6, "end_s": 9,
         "target_lufs": -20},
    ]}
    with FakeOpenAIServer() as server:
        server.add_json(backwards)
        planner = LLMPlanner(settings=LLMSettings(base_url=server.base_url, api_key="k"),
                             fallback=False)
        (record,) = bench.evaluate(planner, [caption], duration_s=10.0, limits=PlanLimits())
    assert record["planner"] == "llm" and record["valid"] and record["events"] == 2
    # The model put the talking first: both clauses matched, the order is wrong.
    assert (record["order_correct"], record["clauses_matched"]) == (False, 1.0)
    assert record["coverage"] == pytest.approx(0.9) and not record["ends_at_end"]
