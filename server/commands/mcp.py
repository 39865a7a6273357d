"""`audio-agent mcp`: the engine as a Model Context Protocol server (stdio, or HTTP on loopback).

Desktop assistants launch it over stdio; `--http` serves streamable HTTP with the same rules as
`audio-agent serve`: loopback unless a token is given, Host and Origin checked on every request.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the MCP SDK and the engine load only when the command runs
    from server.app import ServerConfig


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "mcp",
        help="serve the engine to MCP clients (assistants, editors) over stdio or HTTP",
        description="Plan, render and edit scenes as Model Context Protocol tools. Over stdio by "
                    "default (what desktop MCP clients launch); --http serves streamable HTTP.",
    )
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="address for --http (default loopback only)")
    parser.add_argument("--port", type=int, default=8766, help="port for --http (0 = any free port)")
    parser.add_argument("--token", default=None,
                        help="bearer token clients must send over --http; required beyond loopback")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="sessions, stems and cache (share it with `serve` to share scenes)")
    parser.add_argument("--planner", choices=["rules", "llm"], default=None)
    parser.add_argument("--llm-model", default=None, help="model name for --planner llm")
    parser.add_argument("--backend", default=None, help="generator backend (default from settings)")
    parser.add_argument("--job-time-limit", type=float, default=900.0, help="seconds per job")
    parser.add_argument("--log-level", default="WARNING")
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> "ServerConfig":
    from engine.settings import load_settings
    from server.app import ServerConfig

    settings = load_settings()
    return ServerConfig(
        host=args.host, ws_port=0, osc_port=0,
        data_dir=(args.data_dir or settings.resolved_data_dir()).expanduser().resolve(),
        planner=args.planner or settings.planner, llm_model=args.llm_model,
        backend=args.backend or settings.backend, token=args.token,
        time_limit_s=args.job_time_limit,
    )


def run(args: argparse.Namespace) -> int:
    from server.mcp_front import McpFront

    # Logs go to stderr: over stdio, stdout carries the protocol and nothing else.
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    front = McpFront(config_from_args(args))
    front.start()
    try:
        if args.http:
            _serve_http(front, args)
        else:
            front.server.run("stdio")
    finally:
        front.stop()
    return 0


def _serve_http(front: Any, args: argparse.Namespace) -> None:
    import anyio
    import uvicorn

    from server.mcp_http import guarded_app

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as error:
        from engine.errors import InvalidInputError

        raise InvalidInputError(
            f"port={args.port}: cannot listen on {args.host}:{args.port} ({error.strerror or error}); "
            "choose another with --port", field="port", value=args.port,
        ) from None
    port = sock.getsockname()[1]
    sock.listen(128)  # accept into the backlog from now on, so the announced port answers at once
    app = guarded_app(front.server.streamable_http_app(host=args.host), host=args.host, token=args.token)
    config = uvicorn.Config(app, log_level=args.log_level.lower(), lifespan="on")
    shown = f"[{args.host}]" if ":" in args.host else args.host
    # One line on stdout that launchers (tests, scripts) can wait for.
    print(f"audio-agent mcp serving http://{shown}:{port}/mcp data={front.data_dir}", flush=True)
    anyio.run(uvicorn.Server(config).serve, [sock])
