"""Server figures, printed as JSON (never asserted in tests).

1. request -> accepted latency (p50/p99, ms) over WebSocket and OSC with 1, 10 and 50 concurrent
   clients: each client sends generate requests and times the server's 'accepted' reply. The
   renders behind them use a near-free backend so the figure is the transport + queue cost.
2. edit-one-of-N: wall time of a full render of an N-event scene vs. an edit that changes one
   event's text (one generator call, the others reused), N = 4, 8, 16, on the procedural backend.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/server.py [--requests-per-client 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pythonosc.osc_message import OscMessage  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from engine.generators import GenerationResult, register_generator  # noqa: E402
from server.app import AudioAgentServer, ServerConfig  # noqa: E402
from server.osc import build_datagram  # noqa: E402

SOUNDS = [
    "a dog barking", "a bell ringing", "a car horn honking", "footsteps on gravel", "a door creaking",
    "glass breaking", "a phone ringing", "birds chirping", "a kettle whistling", "a cat meowing",
    "thunder rumbling", "a clock ticking", "a baby crying", "rain on a window", "a train passing",
    "a whistle blowing",
]


class QuietGenerator:
    """Near-free audio so latency rounds measure the server, not synthesis."""

    name = "bench-quiet"

    def identity(self) -> dict[str, Any]:
        return {}

    def generate(self, requests: Any, *, progress: Any = None, cancel: Any = None) -> list[GenerationResult]:
        return [GenerationResult(audio=(0.05 * np.random.default_rng(r.seed).standard_normal(
            (1, int(r.length_s * r.sample_rate)))).astype(np.float32)) for r in requests]


register_generator("bench-quiet", lambda **_: QuietGenerator())


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3), "p99_ms": round(p99 * 1000, 3),
            "samples": len(ordered)}


def gen_request(rid: str, session: str) -> dict[str, Any]:
    return {"v": 1, "type": "generate", "id": rid, "session": session, "prompt": "a soft hum", "duration_s": 0.5}


async def ws_round(port: int, clients: int, per_client: int) -> list[float]:
    async def one(index: int) -> list[float]:
        times = []
        async with connect(f"ws://127.0.0.1:{port}", max_size=2**24) as ws:
            for k in range(per_client):
                started = time.perf_counter()
                await ws.send(json.dumps(gen_request(f"w{index}-{k}", f"ws{index}")))
                while True:
                    message = json.loads(await ws.recv())
                    if message["type"] == "accepted" and not times[k:]:
                        times.append(time.perf_counter() - started)
                    if message["type"] in ("done", "error"):
                        break
        return times

    results = await asyncio.gather(*(one(i) for i in range(clients)))
    return [t for r in results for t in r]


def osc_round(port: int, clients: int, per_client: int) -> list[float]:
    """All clients fire at once; replies are read as they arrive (select), so a slow 'done' for
    one client never delays the timestamp of another client's 'accepted'."""
    sockets = []
    for _ in range(clients):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sockets.append(sock)
    times: list[float] = []
    try:
        for k in range(per_client):
            started: dict[socket.socket, float] = {}
            for index, sock in enumerate(sockets):
                started[sock] = time.perf_counter()
                sock.sendto(build_datagram("/audioagent/generate",
                                           [f"o{index}-{k}", f"osc{index}", "a soft hum", 0.5, 0.0, 0]),
                            ("127.0.0.1", port))
            open_socks = set(sockets)
            while open_socks:
                ready, _, _ = select.select(list(open_socks), [], [], 120)
                if not ready:
                    raise TimeoutError("no OSC reply within 120 s")
                for sock in ready:
                    message = OscMessage(sock.recvfrom(65535)[0])
                    if message.address == "/audioagent/accepted":
                        times.append(time.perf_counter() - started[sock])
                    elif message.address in ("/audioagent/done", "/audioagent/error"):
                        open_socks.discard(sock)
    finally:
        for sock in sockets:
            sock.close()
    return times


async def timed(port: int, request: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    async with connect(f"ws://127.0.0.1:{port}", max_size=2**24) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps(request))
        while True:
            message = json.loads(await ws.recv())
            if message["type"] in ("done", "error"):
                return time.perf_counter() - started, message


def edit_one_of_n(port: int, n: int) -> dict[str, Any]:
    prompt = ", followed by ".join(SOUNDS[:n])
    session = f"edit{n}"
    full_s, done = asyncio.run(timed(port, {"v": 1, "type": "generate", "id": "g", "session": session,
                                            "prompt": prompt, "duration_s": float(n)}))
    assert done["type"] == "done", done
    target = done["manifest"]["events"][n // 2]["id"]
    edit_s, edited = asyncio.run(timed(port, {
        "v": 1, "type": "edit", "id": "e", "session": session,
        "change": {"op": "replace_text", "event_id": target, "description": f"a trumpet fanfare, take {n}"}}))
    assert edited["type"] == "done", edited
    # A fresh description per N: the content-addressed cache would otherwise answer the edit.
    hits = sum(1 for e in edited["manifest"]["events"] if e["cache_hit"])
    return {"events": n, "full_render_s": round(full_s, 3), "edit_one_s": round(edit_s, 3),
            "speedup": round(full_s / edit_s, 2), "cache_hits_after_edit": hits}


def serve_only(data_dir: str, backend: str) -> None:
    """Child mode: run the server in its own process (so client and server do not share a GIL)
    and print its ports on one line; stops when stdin closes."""
    config = ServerConfig(ws_port=0, osc_port=0, data_dir=Path(data_dir), backend=backend, max_jobs=10_000)
    with AudioAgentServer(config) as server:
        print(f"{server.ws_port} {server.osc_port}", flush=True)
        sys.stdin.read()


class ServerProcess:
    def __init__(self, data_dir: Path, backend: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-only", str(data_dir), "--backend", backend],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        self.ws_port, self.osc_port = (int(x) for x in self.process.stdout.readline().split())

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-per-client", type=int, default=4)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 10, 50])
    parser.add_argument("--serve-only", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="procedural", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_only:
        serve_only(args.serve_only, args.backend)
        return
    report: dict[str, Any] = {"benchmark": "server", "server": "separate process", "latency": [],
                              "edit_one_of_n": []}
    with tempfile.TemporaryDirectory() as tmp:
        with ServerProcess(Path(tmp) / "lat", "bench-quiet") as server:
            for clients in args.concurrency:
                ws_times = asyncio.run(ws_round(server.ws_port, clients, args.requests_per_client))
                osc_times = osc_round(server.osc_port, clients, args.requests_per_client)
                report["latency"].append({"clients": clients, "websocket": percentiles(ws_times),
                                          "osc": percentiles(osc_times)})
        with ServerProcess(Path(tmp) / "edit", "procedural") as server:
            # Untimed warm-up: the first render pays imports and backend set-up.
            asyncio.run(timed(server.ws_port, {"v": 1, "type": "generate", "id": "w", "session": "warm",
                                               "prompt": "a low drone", "duration_s": 1.0}))
            for n in (4, 8, 16):
                report["edit_one_of_n"].append(edit_one_of_n(server.ws_port, n))
    report["backend_for_edits"] = "procedural"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
