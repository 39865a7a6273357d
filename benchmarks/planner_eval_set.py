"""Pass rate of a planner on the structured evaluation set (JSON out, nothing asserted).

    .venv/bin/python benchmarks/planner_eval_set.py            # rule planner, summary JSON
    .venv/bin/python benchmarks/planner_eval_set.py --failures # also one JSON line per failure

Two files hold the set, written in the styles of sound-event captions, film cue sheets and
game-audio task lists:
  planner_eval_requests.jsonl  a prompt, a scene length and expectations about the plan
  planner_eval_edits.jsonl     a starting plan, one plain-language edit, expectations

Every row has a ``split``: "tune" rows may be looked at while improving the planner;
"held_out" rows are only counted (their failures are hidden unless --show-held-out).

Expectations name sources by a key: the key's words must begin the stemmed words of an event's
description ("dog" matches "A dog barks"). Request expectations: c (exact count per key), cmin,
order (first events start in this order), maxlen/minlen (every matching event), at (some
matching event starts within 0.15 s of each time), end (some matching event ends within
0.25 s), span (an event covers the scene), louder ([a, b]: a's loudest target above b's),
overlap ([a, b] sound together), absent, named (every event matches one of these keys), note
(a plan note contains the text), fin/fout (fade-in/out of at least 0.3 s), n (event count).
Edit expectations: len ("shorter"/"longer"/seconds), end, start ("+1"/"-2"/seconds),
lufs ("+3"/"-3"/"up"/"down"), removed, removed_or_muted, added ({key: start}), same_count,
swap, order, replaced ({old key: new key}), all_start, all_lufs, error (substrings of the
message). Events an edit does not name must come back unchanged, ids included.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.errors import AudioAgentError  # noqa: E402
from engine.lexicon import stems  # noqa: E402
from engine.plan import Event, Plan, PlanLimits, validate_plan  # noqa: E402
from engine.planners import Planner, create_planner  # noqa: E402

HERE = Path(__file__).resolve().parent
REQUESTS = HERE / "planner_eval_requests.jsonl"
EDITS = HERE / "planner_eval_edits.jsonl"
AT_TOLERANCE_S = 0.15
END_TOLERANCE_S = 0.25
SPAN_SLACK_S = 0.5
FADE_MIN_S = 0.3
DEFAULT_LUFS = -23.0


def load_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not {"id", "split", "expect"} <= set(row):
                raise ValueError(f"{path}:{number}: needs id, split and expect")
            rows.append(row)
    return rows


def matches(key: str, event: Event) -> bool:
    """The key's stemmed words begin consecutive stemmed words of the description."""
    wanted, words = stems(key), stems(event.description)
    for index in range(len(words) - len(wanted) + 1):
        if all(words[index + k].startswith(w) for k, w in enumerate(wanted)):
            return True
    return False


def of(plan: Plan, key: str) -> list[Event]:
    return [e for e in plan.events if matches(key, e)]


def lufs(event: Event) -> float:
    return DEFAULT_LUFS if event.target_lufs is None else event.target_lufs


def _fade(event: Event, name: str) -> float:
    return float(getattr(event, name, None) or 0.0)


# ---- request checks: each returns a list of failure messages ----------------------------------


def check_request(plan: Plan, notes: Sequence[str], expect: dict[str, Any]) -> list[str]:
    bad: list[str] = []
    for key, n in expect.get("c", {}).items():
        if len(of(plan, key)) != n:
            bad.append(f"count {key}: want {n}, got {len(of(plan, key))}")
    for key, n in expect.get("cmin", {}).items():
        if len(of(plan, key)) < n:
            bad.append(f"count {key}: want >= {n}, got {len(of(plan, key))}")
    if "n" in expect and len(plan.events) != expect["n"]:
        bad.append(f"events: want {expect['n']}, got {len(plan.events)}")
    order = expect.get("order", [])
    firsts = [min((e.start_s for e in of(plan, key)), default=None) for key in order]
    for (k1, s1), (k2, s2) in zip(zip(order, firsts), zip(order[1:], firsts[1:])):
        if s1 is None or s2 is None or not s2 > s1 + 0.05:
            bad.append(f"order {k1} ({s1}) before {k2} ({s2})")
    for key, limit in expect.get("maxlen", {}).items():
        found = of(plan, key)
        if not found or any(e.length_s > limit + 1e-6 for e in found):
            bad.append(f"maxlen {key} {limit}: {[round(e.length_s, 2) for e in found]}")
    for key, limit in expect.get("minlen", {}).items():
        found = of(plan, key)
        if not found or any(e.length_s < limit - 1e-6 for e in found):
            bad.append(f"minlen {key} {limit}: {[round(e.length_s, 2) for e in found]}")
    for key, times in expect.get("at", {}).items():
        starts = [e.start_s for e in of(plan, key)]
        for time_s in times if isinstance(times, list) else [times]:
            if not any(abs(s - time_s) <= AT_TOLERANCE_S for s in starts):
                bad.append(f"at {key} {time_s}: starts {starts}")
    for key, time_s in expect.get("end", {}).items():
        ends = [e.end_s for e in of(plan, key)]
        if not any(abs(e - time_s) <= END_TOLERANCE_S for e in ends):
            bad.append(f"end {key} {time_s}: ends {ends}")
    for key in expect.get("span", []):
        if not any(e.start_s <= SPAN_SLACK_S and e.end_s >= plan.duration_s - SPAN_SLACK_S
                   for e in of(plan, key)):
            bad.append(f"span {key}: {[(e.start_s, e.end_s) for e in of(plan, key)]}")
    for a, b in expect.get("louder", []):
        la, lb = [lufs(e) for e in of(plan, a)], [lufs(e) for e in of(plan, b)]
        if not la or not lb or not max(la) > max(lb):
            bad.append(f"louder {a} {la} than {b} {lb}")
    for a, b in expect.get("overlap", []):
        if not any(x.start_s < y.end_s and y.start_s < x.end_s
                   for x in of(plan, a) for y in of(plan, b) if x is not y):
            bad.append(f"overlap {a} with {b}")
    for key in expect.get("absent", []):
        if of(plan, key):
            bad.append(f"absent {key}: {[e.description for e in of(plan, key)]}")
    named = expect.get("named", [])
    if named:
        for event in plan.events:
            if not any(matches(key, event) for key in named):
                bad.append(f"named {named}: {event.description!r}")
    if "note" in expect and not any(expect["note"].lower() in n.lower() for n in notes):
        bad.append(f"note {expect['note']!r}: notes {list(notes)}")
    for key in expect.get("fin", []):
        if not any(_fade(e, "fade_in_s") >= FADE_MIN_S for e in of(plan, key)):
            bad.append(f"fade-in {key}")
    for key in expect.get("fout", []):
        if not any(_fade(e, "fade_out_s") >= FADE_MIN_S for e in of(plan, key)):
            bad.append(f"fade-out {key}")
    return bad


# ---- edit checks ---------------------------------------------------------------------------


def _delta(spec: str | float, old: float, new: float, tolerance: float) -> bool:
    if isinstance(spec, str) and spec in ("up", "longer"):
        return new > old + 1e-6
    if isinstance(spec, str) and spec in ("down", "shorter"):
        return new < old - 1e-6
    if isinstance(spec, str):  # "+1.5" / "-3": relative
        return abs(new - (old + float(spec))) <= tolerance
    return abs(new - float(spec)) <= tolerance


def _only(plan: Plan, key: str) -> Event | None:
    found = of(plan, key)
    return found[0] if len(found) == 1 else None


def _touched_keys(expect: dict[str, Any]) -> list[str]:
    keys: list[str] = []
    for name in ("len", "end", "start", "lufs", "added", "replaced", "same_count"):
        keys.extend(expect.get(name, {}))
    for name in ("removed", "removed_or_muted", "swap", "order"):
        keys.extend(expect.get(name, []))
    return keys


def check_edit(old: Plan, new: Plan, expect: dict[str, Any]) -> list[str]:
    bad: list[str] = []
    new_by_id = {e.id: e for e in new.events}

    def pair(key: str) -> tuple[Event | None, Event | None]:
        before = _only(old, key)
        return before, (new_by_id.get(before.id) if before else None)

    for name, attr in (("len", "length_s"), ("end", "end_s"), ("start", "start_s"),
                       ("lufs", "target_lufs")):
        for key, spec in expect.get(name, {}).items():
            before, after = pair(key)
            if before is None or after is None:
                bad.append(f"{name} {key}: event missing after the edit")
                continue
            value_old = lufs(before) if attr == "target_lufs" else getattr(before, attr)
            value_new = lufs(after) if attr == "target_lufs" else getattr(after, attr)
            if not _delta(spec, value_old, value_new, 0.1 if attr == "target_lufs" else 0.05):
                bad.append(f"{name} {key} {spec}: {value_old} -> {value_new}")
    for key in expect.get("removed", []):
        if of(new, key) or not of(old, key):
            bad.append(f"removed {key}: {[e.description for e in of(new, key)]}")
    for key in expect.get("removed_or_muted", []):
        if any(lufs(e) > -60 for e in of(new, key)):
            bad.append(f"muted {key}")
    for key, start_s in expect.get("added", {}).items():
        fresh = [e for e in of(new, key) if e.id not in {o.id for o in old.events}]
        if not any(abs(e.start_s - start_s) <= AT_TOLERANCE_S for e in fresh):
            bad.append(f"added {key} at {start_s}: new events {[(e.description, e.start_s) for e in fresh]}")
    for key, count in expect.get("same_count", {}).items():
        if len(of(new, key)) != count:
            bad.append(f"count {key}: {len(of(new, key))}")
    if "swap" in expect:
        a, b = expect["swap"]
        (oa, na), (ob, nb) = pair(a), pair(b)
        if None in (oa, na, ob, nb) or (oa.start_s < ob.start_s) == (na.start_s < nb.start_s):
            bad.append(f"swap {a} {b}")
    if "order" in expect:
        a, b = expect["order"]
        na, nb = _only(new, a), _only(new, b)
        if na is None or nb is None or not na.start_s < nb.start_s:
            bad.append(f"order {a} before {b}")
    for key, new_key in expect.get("replaced", {}).items():
        before, after = pair(key)
        if before is None or after is None or not matches(new_key, after) or after.start_s != before.start_s:
            bad.append(f"replaced {key} by {new_key}: {after}")
    if "all_start" in expect:
        for event in old.events:
            after = new_by_id.get(event.id)
            if after is None or not _delta(expect["all_start"], event.start_s, after.start_s, 0.05) \
                    and not (after.start_s == 0.0 and event.start_s + float(expect["all_start"]) < 0):
                bad.append(f"all_start {event.id}: {event.start_s} -> {after and after.start_s}")
    if "all_lufs" in expect:
        for event in old.events:
            after = new_by_id.get(event.id)
            if after is None or not _delta(expect["all_lufs"], lufs(event), lufs(after), 0.1):
                bad.append(f"all_lufs {event.id}")
    # Events the edit does not name come back unchanged, ids included.
    if not ("all_start" in expect or "all_lufs" in expect):
        touched = {e.id for key in _touched_keys(expect) for e in of(old, key)}
        for event in old.events:
            if event.id in touched:
                continue
            after = new_by_id.get(event.id)
            if after is None or (after.description, after.start_s, after.end_s, after.target_lufs) != \
                    (event.description, event.start_s, event.end_s, event.target_lufs):
                bad.append(f"untouched {event.id} changed: {after}")
    removed = {e.id for key in expect.get("removed", []) for e in of(old, key)}
    lost = [e.id for e in old.events if e.id not in new_by_id and e.id not in removed
            and not expect.get("removed_or_muted")]
    if lost:
        bad.append(f"ids lost: {lost}")
    return bad


def plan_from(row: dict[str, Any]) -> Plan:
    events = [Event(id=i, description=d, start_s=s, end_s=e, target_lufs=l)
              for i, d, s, e, l in row["events"]]
    return validate_plan(Plan(duration_s=row["duration_s"], events=tuple(events)),
                         limits=PlanLimits(max_overlap=16))


def run_requests(planner: Planner, rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for row in rows:
        try:
            result = planner.plan(row["text"], duration_s=row["duration_s"])
        except AudioAgentError as error:
            yield {"id": row["id"], "split": row["split"], "ok": False, "failures": [str(error)]}
            continue
        notes = list(result.notes) + list(getattr(result.plan, "notes", ()) or ())
        bad = check_request(result.plan, notes, row["expect"])
        yield {"id": row["id"], "split": row["split"], "ok": not bad, "failures": bad,
               "text": row["text"],
               "plan": [[e.description, round(e.start_s, 2), round(e.end_s, 2), e.target_lufs]
                        for e in result.plan.events]}


def run_edits(planner: Planner, rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for row in rows:
        old = plan_from(row)
        expect = row["expect"]
        record: dict[str, Any] = {"id": row["id"], "split": row["split"], "text": row["edit"]}
        try:
            result = planner.edit(old, row["edit"], limits=PlanLimits(max_overlap=16))
        except AudioAgentError as error:
            message = str(error)
            wanted = expect.get("error")
            ok = bool(wanted) and all(w.lower() in message.lower() for w in wanted)
            record.update(ok=ok, failures=[] if ok else [f"error: {message}"])
            yield record
            continue
        if "error" in expect:
            bad = [f"wanted an error naming {expect['error']}, got a plan"]
        else:
            bad = check_edit(old, result.plan, expect)
        record.update(ok=not bad, failures=bad,
                      plan=[[e.id, e.description, round(e.start_s, 2), round(e.end_s, 2),
                             e.target_lufs] for e in result.plan.events])
        yield record


def _rate(records: list[dict[str, Any]]) -> dict[str, Any]:
    passed = sum(1 for r in records if r["ok"])
    return {"total": len(records), "passed": passed,
            "rate": round(passed / len(records), 4) if records else None}


def summary(requests: list[dict[str, Any]], edits: list[dict[str, Any]]) -> dict[str, Any]:
    def split(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
        return [r for r in records if r["split"] == name]

    return {
        "requests": _rate(requests), "edits": _rate(edits), "overall": _rate(requests + edits),
        "tune": {"requests": _rate(split(requests, "tune")), "edits": _rate(split(edits, "tune"))},
        "held_out": {"requests": _rate(split(requests, "held_out")),
                     "edits": _rate(split(edits, "held_out"))},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planner", choices=["rules", "llm"], default="rules")
    parser.add_argument("--failures", action="store_true", help="print each failing row")
    parser.add_argument("--show-held-out", action="store_true",
                        help="include held-out rows in --failures (spoils them for tuning)")
    args = parser.parse_args(argv)
    planner = create_planner(args.planner)
    requests = list(run_requests(planner, load_rows(REQUESTS)))
    edits = list(run_edits(planner, load_rows(EDITS)))
    if args.failures:
        shown: Callable[[dict[str, Any]], bool] = (
            lambda r: not r["ok"] and (args.show_held_out or r["split"] == "tune"))
        for record in filter(shown, requests + edits):
            print(json.dumps(record), flush=True)
    print(json.dumps({"planner": args.planner, **summary(requests, edits)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
