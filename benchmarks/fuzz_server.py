"""The server fuzz suite (tests/server/test_fuzz.py) at a larger count, printed as JSON.

Runs ``--count`` OSC datagrams and ``--count`` WebSocket frames in batches against a real server
on loopback (the tests' FakeEngine behind it, so the figures are the transports' and protocol's),
with the suite's checks after every batch: both transports answer ping, every request got one
well-formed first answer, reply-type datagrams got none, no traceback was logged, and the CPU
used over an idle window once the batch's jobs are over (the highest is reported).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_server.py [--seed 1] [--count 10000]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server import app as app_module  # noqa: E402
from server.app import AudioAgentServer, ServerConfig  # noqa: E402
from tests.server import test_fuzz as fuzz  # noqa: E402
from tests.server.conftest import FakeEngine, ping_ok  # noqa: E402


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def run(seed: int, count: int, batch: int) -> dict[str, Any]:
    handler = _Records()
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("audio_agent").setLevel(logging.DEBUG)
    warmed = threading.Event()
    warmed.set()
    app_module._warmed = warmed  # the FakeEngine renders nothing worth warming up
    rng = random.Random(seed)
    totals: dict[str, Any] = {
        "benchmark": "fuzz_server", "seed": seed, "count_per_transport": count, "batch": batch,
        "osc": {"sent": 0, "expected_answers": 0, "answered": 0, "unanswered": [], "malformed": [],
                "answered_replies": []},
        "websocket": {"sent": 0, "expected_answers": 0, "answered": 0, "unanswered": [], "malformed": []},
        "batches": 0, "ping_failures": 0, "tracebacks": [], "max_idle_cpu_s": 0.0,
        "idle_window_s": fuzz.IDLE_WINDOW_S,
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        config = ServerConfig(ws_port=0, osc_port=0, data_dir=data_dir)
        with AudioAgentServer(config, engine=FakeEngine(data_dir)) as server:
            done = 0
            while done < count:
                size = min(batch, count - done)
                for name, result in (("osc", fuzz.osc_batch(server.osc_port, rng, size)),
                                     ("websocket", fuzz.ws_batch(server.ws_port, rng, size))):
                    out = totals[name]
                    out["sent"] += result.sent
                    out["expected_answers"] += result.expected
                    out["answered"] += result.answered
                    out["unanswered"] += result.unanswered[:5]
                    out["malformed"] += result.malformed[:5]
                    if name == "osc":
                        out["answered_replies"] += result.unexpected[:5]
                if not ping_ok(server):
                    totals["ping_failures"] += 1
                fuzz.settle(server)
                totals["max_idle_cpu_s"] = max(totals["max_idle_cpu_s"], round(fuzz.idle_cpu_s(), 4))
                totals["batches"] += 1
                done += size
    totals["tracebacks"] = fuzz.tracebacks(handler.records)[:10]
    totals["log_records"] = len(handler.records)
    totals["duration_s"] = round(time.monotonic() - started, 2)
    totals["ok"] = (not totals["tracebacks"] and totals["ping_failures"] == 0
                    and totals["max_idle_cpu_s"] < fuzz.IDLE_CPU_S
                    and all(totals[k]["answered"] == totals[k]["expected_answers"] and not totals[k]["malformed"]
                            for k in ("osc", "websocket"))
                    and not totals["osc"]["answered_replies"])
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=10_000, help="datagrams, and frames, in all")
    parser.add_argument("--batch", type=int, default=500, help="checks run after each batch")
    args = parser.parse_args()
    if args.count < 1 or args.batch < 1:
        parser.error("--count and --batch must be at least 1")
    report = run(args.seed, args.count, args.batch)
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
