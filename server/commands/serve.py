"""`audio-agent serve`: run the WebSocket + OSC server until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the server stack is imported only when `serve` runs
    from server.app import ServerConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the server DAW scripts talk to (WebSocket and OSC)",
        description="Serve scene requests over WebSocket and OSC; stems land under --data-dir.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    parser.add_argument("--ws-port", type=int, default=8765, help="WebSocket port (0 = any free port)")
    parser.add_argument("--osc-port", type=int, default=9000, help="OSC/UDP port (0 = any free port)")
    parser.add_argument("--data-dir", type=Path, default=None, help="sessions, stems and cache live here")
    parser.add_argument("--planner", choices=["rules", "llm"], default=None)
    parser.add_argument("--llm-model", default=None, help="model name for --planner llm")
    parser.add_argument("--backend", default=None, help="generator backend (default from settings)")
    parser.add_argument("--token", default=None, help="required when --host is not loopback")
    parser.add_argument("--osc-allow", nargs="*", default=[], metavar="ADDR",
                        help="client IP addresses allowed to send OSC besides loopback")
    parser.add_argument("--cache-max-mb", type=float, default=None, help="bound the render cache size")
    parser.add_argument("--max-jobs", type=int, default=256, help="queued + running jobs before 'busy'")
    parser.add_argument("--max-jobs-per-client", type=int, default=8,
                        help="queued + running jobs one connection (or OSC sender) may have")
    parser.add_argument("--job-time-limit", type=float, default=900.0, help="seconds per job")
    parser.add_argument("--vta-checkpoint", action="append", default=[], metavar="NAME=DIR",
                        help="a VTA checkpoint folder clients may use by NAME in video_cue "
                        "(generator vta); repeat for several. Adds to the settings file's "
                        "[vta] checkpoints table; a NAME listed there gets this DIR instead. "
                        "Clients never send paths")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="a Python module to import before the engine starts (it may register "
                        "generator backends); repeat for several")
    parser.add_argument("--in-process", action="store_true",
                        help="plan and render in the server's own process instead of a worker "
                        "process (debugging; the server answers slower while rendering)")
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> "ServerConfig":
    from engine.settings import load_settings
    from engine.video.vta_choice import serve_checkpoint_table
    from server.app import ServerConfig

    settings = load_settings()
    return ServerConfig(
        host=args.host, ws_port=args.ws_port, osc_port=args.osc_port,
        data_dir=(args.data_dir or settings.resolved_data_dir()).expanduser().resolve(),
        planner=args.planner or settings.planner, llm_model=args.llm_model,
        backend=args.backend or settings.backend, token=args.token, osc_allow=list(args.osc_allow),
        cache_max_mb=args.cache_max_mb, max_jobs=args.max_jobs,
        max_jobs_per_client=args.max_jobs_per_client, time_limit_s=args.job_time_limit,
        # The settings' [vta] checkpoints with the flags on top, every folder checked before binding.
        vta_checkpoints=serve_checkpoint_table(args.vta_checkpoint),
        engine_process=not args.in_process, plugins=tuple(args.plugin),
    )


def run(args: argparse.Namespace) -> int:
    from server.app import AudioAgentServer

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = AudioAgentServer(config_from_args(args)).start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    # One line on stdout that launchers (tests, DAW helpers) can wait for.
    shown = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 literal, as in a URL
    print(f"audio-agent serving ws://{shown}:{server.ws_port} osc://{shown}:{server.osc_port} "
          f"data={server.config.data_dir}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    print("audio-agent: stopped", file=sys.stderr)
    return 0
