"""Server figures, printed as JSON (never asserted in tests).

The server runs in its own process (client and server do not share an interpreter lock) on the
real procedural backend, and is warmed up (imports, render path, planner, connections) before
anything is timed.

1. request -> accepted latency (p50/p99, ms) over WebSocket with 1, 10 and 50 concurrent clients
   WHILE RENDERING: one more connection keeps the render worker busy with long procedural scenes
   (--scene-s) the whole time. Each client sends generate requests one after another; their own
   renders use a near-free backend so they finish between the background scenes. First requests
   are spread over --start-spread-s; then, at the largest count, the worst case: every client's
   first request in the same millisecond ("synchronized_burst").
2. fairness: each client's mean request -> done time; the worst client over the median client.
3. a client that never reads: the server's RSS growth while it floods pings, and the close code
   it gets (4008 once its unread replies pass the 4 MiB outbox).
4. optional: OSC accepted latency on an idle server (--osc), the same rounds with no background
   render (--no-render), edit-one-of-N render times on the procedural backend (--edits).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/server.py [--requests-per-client 8]
     [--start-spread-s 0.25] [--edits]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pythonosc.osc_message import OscMessage  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from server.app import AudioAgentServer, ServerConfig  # noqa: E402
from server.osc import build_datagram  # noqa: E402

SOUNDS = [
    "a dog barking", "a bell ringing", "a car horn honking", "footsteps on gravel", "a door creaking",
    "glass breaking", "a phone ringing", "birds chirping", "a kettle whistling", "a cat meowing",
    "thunder rumbling", "a clock ticking", "a baby crying", "rain on a window", "a train passing",
    "a whistle blowing",
]




def percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3), "p99_ms": round(p99 * 1000, 3),
            "samples": len(ordered)}


def gen_request(rid: str, session: str) -> dict[str, Any]:
    # The near-free backend: the client jobs' own renders stay short, the background scene is
    # the heavy rendering.
    return {"v": 1, "type": "generate", "id": rid, "session": session, "prompt": "a soft hum",
            "duration_s": 0.5, "backend": "bench-quiet"}


async def ws_round(port: int, clients: int, per_client: int, start_spread_s: float) -> dict[str, Any]:
    """``clients`` connections at once, each sending ``per_client`` generate requests one after
    another (the next once the previous is done). Each client's first request waits a random
    0..``start_spread_s`` (seeded): designers at 50 DAWs do not press Enter in the same
    millisecond. ``start_spread_s=0`` is the worst case, every first request in one burst.
    Returns the accepted latencies and each client's mean request->done time (fairness: the
    render worker serves jobs in arrival order, so no client should wait much longer than the
    others)."""

    connected = 0
    everyone_in = asyncio.Event()
    spread = random.Random(clients)
    start_delays_s = [spread.uniform(0.0, start_spread_s) for _ in range(clients)]

    async def one(index: int) -> tuple[list[float], list[float]]:
        nonlocal connected
        accepted: list[float] = []
        done: list[float] = []
        async with connect(f"ws://127.0.0.1:{port}", max_size=2**24) as ws:
            # Clients connect first, then all start at once: a DAW keeps its connection open,
            # so handshakes are not part of a request's latency.
            connected += 1
            if connected == clients:
                everyone_in.set()
            await everyone_in.wait()
            await asyncio.sleep(start_delays_s[index])
            for k in range(per_client):
                started = time.perf_counter()
                await ws.send(json.dumps(gen_request(f"w{index}-{k}", f"ws{index}")))
                while True:
                    message = json.loads(await ws.recv())
                    if message["type"] == "accepted":
                        accepted.append(time.perf_counter() - started)
                    if message["type"] == "error" and message.get("job") is None:
                        raise RuntimeError(f"request refused: {message}")
                    if message["type"] in ("done", "error"):
                        done.append(time.perf_counter() - started)
                        break
        return accepted, done

    results = await asyncio.gather(*(one(i) for i in range(clients)))
    accepted = [t for r in results for t in r[0]]
    client_done_s = [statistics.mean(r[1]) for r in results]
    median_s = statistics.median(client_done_s)
    # The first requests arrive within start_spread_s (all in one burst when it is 0) and can
    # queue on the loop; later ones are spread out by their different done times. Shown apart.
    first = [r[0][0] for r in results]
    later = [t for r in results for t in r[0][1:]]
    return {
        "clients": clients, "start_spread_s": start_spread_s, "requests": len(accepted),
        "accepted": percentiles(accepted),
        "accepted_first": percentiles(first), "accepted_after_first": percentiles(later) if later else None,
        "done_per_client_ms": {"median": round(median_s * 1000, 1), "worst": round(max(client_done_s) * 1000, 1)},
        "fairness_worst_over_median": round(max(client_done_s) / median_s, 2),
    }


class BackgroundRender:
    """Keeps the server's render worker busy with real procedural scenes for as long as it runs,
    on its own connection: the latency rounds then measure the loop while rendering holds the
    interpreter lock and the CPU, as it does in use."""

    def __init__(self, port: int, scene_s: float) -> None:
        self.port = port
        self.scene_s = scene_s
        self.renders = 0
        self.render_s: list[float] = []
        self._stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with connect(f"ws://127.0.0.1:{self.port}", max_size=2**24) as ws:
            k = 0
            while not self._stop.is_set():
                # A fresh prompt each time: the content-addressed cache would answer a repeat.
                prompt = f"heavy rain on a tin roof, wind through trees, a distant train passing, take {k}"
                started = time.perf_counter()
                await ws.send(json.dumps({"v": 1, "type": "generate", "id": f"bg{k}", "session": f"bg{k}",
                                          "prompt": prompt, "duration_s": self.scene_s}))
                while True:
                    message = json.loads(await ws.recv())
                    if message["type"] in ("done", "error"):
                        if message["type"] == "error":
                            raise RuntimeError(f"background render failed: {message}")
                        break
                self.renders += 1
                self.render_s.append(time.perf_counter() - started)
                k += 1

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        assert self.task is not None
        await self.task  # the scene in flight finishes: the server is left idle


async def latency_rounds(port: int, concurrency: list[int], per_client: int, scene_s: float,
                         with_render: bool, start_spread_s: float) -> dict[str, Any]:
    """A round per client count with first requests spread over ``start_spread_s``, then the
    worst case at the largest count: every client's first request in the same millisecond."""
    background = BackgroundRender(port, scene_s) if with_render else None
    if background is not None:
        background.start()
        await asyncio.sleep(1.0)  # the first background scene is planned and rendering
    rounds = []
    for clients in concurrency:
        rounds.append(await ws_round(port, clients, per_client, start_spread_s))
    out: dict[str, Any] = {"rounds": rounds}
    if concurrency and start_spread_s > 0:
        out["synchronized_burst"] = await ws_round(port, max(concurrency), per_client, 0.0)
    if background is not None:
        await background.stop()
        out["background_scene_s"] = scene_s
        out["background_renders"] = background.renders
        out["background_render_wall_s"] = percentiles(background.render_s) if background.render_s else None
    return out


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def non_reading_client(port: int, pid: int, messages: int) -> dict[str, Any]:
    """A client that sends ``messages`` pings and never reads a reply: the server must drop it
    (close 4008) rather than hold its replies; reports the server's RSS growth meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and nothing is read from it
    sock.connect(("127.0.0.1", port))
    before = rss_bytes(pid)
    peak = before
    sent = 0
    started = time.perf_counter()
    async with connect(f"ws://127.0.0.1:{port}", sock=sock, max_queue=1, close_timeout=1) as ws:
        ping = json.dumps({"v": 1, "type": "ping", "id": "p" * 120})
        try:
            for sent in range(1, messages + 1):
                await ws.send(ping)
                if sent % 500 == 0:
                    peak = max(peak, rss_bytes(pid))
            # The server closes with 4008, but that close frame waits behind the replies this
            # client never reads; after its close timeout (10 s) the server drops the socket.
            await asyncio.wait_for(ws.wait_closed(), 12)
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        peak = max(peak, rss_bytes(pid))
        code = ws.close_code
    await asyncio.sleep(0.5)
    pong_bytes = len(json.dumps({"v": 1, "type": "pong", "id": "p" * 120, "server_version": "0.1.0",
                                 "stem_root": "/" * 40, "planner": "rules", "backend": "procedural"}))
    return {"pings_sent": sent, "close_code": code,
            "unread_replies_mb_if_unbounded": round(sent * pong_bytes / 2**20, 1), "seconds": round(time.perf_counter() - started, 2),
            "server_rss_before_mb": round(before / 2**20, 1),
            "server_rss_growth_peak_mb": round((peak - before) / 2**20, 2),
            "server_rss_growth_after_mb": round((rss_bytes(pid) - before) / 2**20, 2),
            "outbox_limit_mb": 4.0}


async def warm_up(port: int) -> None:
    """Untimed: imports, the render path, the planner, each backend once, and connection set-up."""
    async with connect(f"ws://127.0.0.1:{port}", max_size=2**24) as ws:
        for k, (backend, prompt) in enumerate([("procedural", "a low drone, rain"),
                                                ("bench-quiet", "a soft hum")]):
            await ws.send(json.dumps({"v": 1, "type": "generate", "id": f"warm{k}", "session": f"warm{k}",
                                      "prompt": prompt, "duration_s": 2.0, "backend": backend}))
            while json.loads(await ws.recv())["type"] not in ("done", "error"):
                pass
    await ws_round(port, 10, 2, 0.0)


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
    config = ServerConfig(ws_port=0, osc_port=0, data_dir=Path(data_dir), backend=backend, max_jobs=10_000,
                          plugins=("benchmarks.quiet_backend",))
    pauses_s: dict[int, list[float]] = {0: [], 1: [], 2: []}
    began = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        # Collections stop every thread, the event loop included: their length is loop latency.
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses_s[info["generation"]].append(time.perf_counter() - began[0])

    with AudioAgentServer(config) as server:
        for thread in threading.enumerate():
            if thread.name == "aa-warm":  # the server's own render warm-up (server.app)
                thread.join()
        gc.callbacks.append(on_gc)
        print(f"{server.ws_port} {server.osc_port}", flush=True)
        sys.stdin.read()
        gc.callbacks.remove(on_gc)
    print(json.dumps({f"gen{g}": {"count": len(v), "max_ms": round(max(v, default=0.0) * 1000, 1)}
                      for g, v in pauses_s.items()}), flush=True)


class ServerProcess:
    def __init__(self, data_dir: Path, backend: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-only", str(data_dir), "--backend", backend],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        self.ws_port, self.osc_port = (int(x) for x in self.process.stdout.readline().split())
        self.gc_pauses: dict[str, Any] | None = None

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        last = self.process.stdout.read().strip().splitlines()
        self.gc_pauses = json.loads(last[-1]) if last else None
        self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-per-client", type=int, default=8)
    parser.add_argument("--start-spread-s", type=float, default=0.25,
                        help="first requests spread over this many seconds (0: all at once)")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 10, 50])
    parser.add_argument("--scene-s", type=float, default=60.0, help="length of the background scenes")
    parser.add_argument("--no-render", action="store_true", help="also measure with no background render")
    parser.add_argument("--osc", action="store_true", help="also time OSC requests (idle server)")
    parser.add_argument("--edits", action="store_true", help="also time edit-one-of-N")
    parser.add_argument("--unread-pings", type=int, default=100_000)
    parser.add_argument("--serve-only", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="procedural", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_only:
        serve_only(args.serve_only, args.backend)
        return
    if min(args.concurrency, default=1) < 1 or args.requests_per_client < 1:
        parser.error("--concurrency and --requests-per-client must be at least 1")
    report: dict[str, Any] = {"benchmark": "server", "server": "separate process, procedural backend",
                              "client_jobs_backend": "bench-quiet", "requests_per_client": args.requests_per_client}
    with tempfile.TemporaryDirectory() as tmp:
        with ServerProcess(Path(tmp) / "lat", "procedural") as server:
            asyncio.run(warm_up(server.ws_port))
            report["websocket_with_rendering"] = asyncio.run(latency_rounds(
                server.ws_port, args.concurrency, args.requests_per_client, args.scene_s, True,
                args.start_spread_s))
            if args.no_render:
                report["websocket_idle"] = asyncio.run(latency_rounds(
                    server.ws_port, args.concurrency, args.requests_per_client, args.scene_s, False,
                    args.start_spread_s))
            if args.osc:
                report["osc_idle"] = [{"clients": clients, "accepted": percentiles(
                    osc_round(server.osc_port, clients, args.requests_per_client))} for clients in args.concurrency]
            if args.unread_pings > 0:
                report["non_reading_client"] = asyncio.run(non_reading_client(
                    server.ws_port, server.process.pid, args.unread_pings))
        report["server_gc_pauses_after_warm_up"] = server.gc_pauses
        if args.edits:
            report["edit_one_of_n"] = []
            with ServerProcess(Path(tmp) / "edit", "procedural") as server:
                # Untimed warm-up: the first render pays imports and backend set-up.
                asyncio.run(timed(server.ws_port, {"v": 1, "type": "generate", "id": "w", "session": "warm",
                                                   "prompt": "a low drone", "duration_s": 1.0}))
                for n in (4, 8, 16):
                    report["edit_one_of_n"].append(edit_one_of_n(server.ws_port, n))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
