"""Planner quality figures over benchmarks/captions.jsonl (JSON out, nothing asserted).

    .venv/bin/python benchmarks/planner_eval.py --planner rules
    AUDIO_AGENT_LLM_BASE_URL=http://127.0.0.1:8080/v1 \
        .venv/bin/python benchmarks/planner_eval.py --planner llm --llm-model NAME

Prints one JSON line per caption, then one line {"aggregate": {...}}. Per caption:
  events            number of planned events
  valid             the plan passes engine.plan.validate_plan with the limits used
  order_correct     "followed by" captions only: every clause got at least one event and each
                    later clause's first event starts no earlier than the earlier clause's
  coverage          fraction of the scene where at least one event sounds
  peak_overlap      most events sounding at once; overlap_violations counts the stretches
                    where more than --max-overlap sound at once
  ends_at_end       some event ends at the scene end
  fell_back         the LLM planner failed and the rule planner answered
Events are matched to clauses by shared content words (crude stemming), so the order figure
reads a planner's layout, not its wording.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.errors import AudioAgentError  # noqa: E402
from engine.plan import TIME_EPS_S, Plan, PlanLimits, max_concurrent, validate_plan  # noqa: E402
from engine.planners import Planner, create_planner  # noqa: E402

CAPTIONS = Path(__file__).with_name("captions.jsonl")
_STOP = {"a", "an", "the", "of", "in", "on", "at", "to", "and", "by", "with", "as", "is", "are",
         "its", "his", "her", "their", "into", "from", "while", "then", "some", "sound", "noise"}


def load_captions(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not {"id", "kind", "text"} <= set(row):
                raise ValueError(f"{path}:{number}: needs id, kind and text")
            rows.append(row)
    return rows


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


def clause_of_events(plan: Plan, clauses: Sequence[str]) -> dict[int, list[float]]:
    """Clause index -> start times of the events whose words best match it (ties: none)."""
    words = [content_words(clause) for clause in clauses]
    starts: dict[int, list[float]] = {}
    for event in plan.events:
        scores = [len(content_words(event.description) & clause) for clause in words]
        best = max(scores)
        if best > 0 and scores.count(best) == 1:
            starts.setdefault(scores.index(best), []).append(event.start_s)
    return starts


def order_correct(plan: Plan, text: str) -> tuple[bool | None, float | None]:
    """(order holds, fraction of clauses matched) for "followed by" captions, else (None, None)."""
    clauses = [c for c in re.split(r"\bfollowed by\b", text, flags=re.I) if c.strip()]
    if len(clauses) < 2:
        return None, None
    starts = clause_of_events(plan, clauses)
    matched = len(starts) / len(clauses)
    if len(starts) < len(clauses):
        return False, matched
    firsts = [min(starts[i]) for i in range(len(clauses))]
    ordered = all(later >= earlier - TIME_EPS_S for earlier, later in zip(firsts, firsts[1:]))
    return ordered, matched


def coverage(plan: Plan) -> float:
    """Fraction of [0, duration_s) inside the union of the event spans."""
    covered, reach = 0.0, 0.0
    for start_s, end_s in sorted((e.start_s, e.end_s) for e in plan.events):
        start_s = max(start_s, reach)
        if end_s > start_s:
            covered += end_s - start_s
            reach = end_s
    return min(1.0, covered / plan.duration_s)


def overlap_violations(plan: Plan, *, max_overlap: int) -> int:
    """Number of separate stretches where more than ``max_overlap`` events sound at once."""
    points = sorted([(e.start_s, 1) for e in plan.events] + [(e.end_s, -1) for e in plan.events],
                    key=lambda point: (point[0], point[1]))
    count, stretches, over = 0, 0, False
    for _, delta in points:
        count += delta
        if count > max_overlap and not over:
            stretches += 1
        over = count > max_overlap
    return stretches


def score(plan: Plan, text: str, *, limits: PlanLimits) -> dict[str, Any]:
    try:
        validate_plan(plan, limits=limits)
        valid, problem = True, None
    except AudioAgentError as error:
        valid, problem = False, str(error)
    ordered, matched = order_correct(plan, text)
    return {
        "events": len(plan.events),
        "valid": valid,
        "invalid_reason": problem,
        "order_correct": ordered,
        "clauses_matched": matched,
        "coverage": round(coverage(plan), 4),
        "peak_overlap": max_concurrent(plan.events)[0],
        "overlap_violations": overlap_violations(plan, max_overlap=limits.max_overlap),
        "ends_at_end": any(abs(e.end_s - plan.duration_s) <= 1e-3 for e in plan.events),
    }


def evaluate(planner: Planner, rows: Iterable[dict[str, Any]], *, duration_s: float,
             limits: PlanLimits) -> Iterable[dict[str, Any]]:
    for row in rows:
        record: dict[str, Any] = {"id": row["id"], "kind": row["kind"], "text": row["text"]}
        started = time.perf_counter()
        try:
            result = planner.plan(row["text"], duration_s=duration_s, limits=limits)
        except AudioAgentError as error:
            record.update(error=str(error), valid=False, events=0)
        else:
            record.update(score(result.plan, row["text"], limits=limits))
            record.update(planner=result.planner, fell_back=result.fell_back,
                          notes=list(result.notes),
                          plan=[[e.description, e.start_s, e.end_s, e.target_lufs]
                                for e in result.plan.events])
        record["plan_s"] = round(time.perf_counter() - started, 4)
        yield record


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    def summary(subset: list[dict[str, Any]]) -> dict[str, Any]:
        planned = [r for r in subset if "error" not in r]
        orders = [r["order_correct"] for r in planned if r.get("order_correct") is not None]
        return {
            "prompts": len(subset),
            "errors": len(subset) - len(planned),
            "valid_rate": _mean([1.0 if r["valid"] else 0.0 for r in subset]),
            "mean_events": _mean([r["events"] for r in planned]),
            "order_accuracy": _mean([1.0 if ok else 0.0 for ok in orders]),
            "mean_coverage": _mean([r["coverage"] for r in planned]),
            "overlap_violations": sum(r["overlap_violations"] for r in planned),
            "ends_at_end_rate": _mean([1.0 if r["ends_at_end"] else 0.0 for r in planned]),
            "fell_back": sum(1 for r in planned if r.get("fell_back")),
            "mean_plan_s": _mean([r["plan_s"] for r in subset]),
        }

    kinds = sorted({r["kind"] for r in records})
    return {**summary(records), "by_kind": {k: summary([r for r in records if r["kind"] == k])
                                            for k in kinds}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planner", choices=["rules", "llm"], default="rules")
    parser.add_argument("--llm-model", default=None, help="model name for --planner llm")
    parser.add_argument("--no-fallback", action="store_true",
                        help="llm: report failures instead of letting the rule planner answer")
    parser.add_argument("--captions", type=Path, default=CAPTIONS)
    parser.add_argument("--duration", type=float, default=10.0, help="scene length in seconds")
    parser.add_argument("--max-overlap", type=int, default=PlanLimits().max_overlap)
    parser.add_argument("--limit", type=int, default=None, help="first N captions only")
    args = parser.parse_args(argv)

    options: dict[str, Any] = {}
    if args.planner == "llm":
        from engine.planners.llm import llm_configured

        if not llm_configured():
            print("planner_eval: no LLM configured (set AUDIO_AGENT_LLM_BASE_URL or "
                  "OPENAI_API_KEY)", file=sys.stderr)
            return 2
        options = {"model": args.llm_model, "fallback": False if args.no_fallback else None}
    planner = create_planner(args.planner, **options)
    rows = load_captions(args.captions)[: args.limit]
    limits = PlanLimits(max_overlap=args.max_overlap)
    records = []
    for record in evaluate(planner, rows, duration_s=args.duration, limits=limits):
        records.append(record)
        print(json.dumps(record), flush=True)
    print(json.dumps({"aggregate": {"planner": args.planner, "duration_s": args.duration,
                                    **aggregate(records)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
