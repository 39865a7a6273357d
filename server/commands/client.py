"""`audio-agent client`: one request to a running server over WebSocket (for DAW scripts).

Output contract (kept exactly; DAW scripts parse it): --events-file gets every server message as
one JSON line, flushed per line; stdout gets the final manifest JSON on one line (``status``:
the pong JSON); failures print one line on stderr and exit non-zero (1 failed, 2 bad input,
3 server unreachable).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_URL = "ws://127.0.0.1:8765"  # same as server.client.DEFAULT_URL (imported lazily)


def _common(parser: argparse.ArgumentParser, *, session: bool = True) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server WebSocket URL (default {DEFAULT_URL})")
    parser.add_argument("--events-file", type=Path, default=None, help="append each server message as a JSON line")
    parser.add_argument("--token", default=None, help="server token (or AUDIO_AGENT_TOKEN)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the answer")
    if session:
        parser.add_argument("--session", required=True, help="session name")
        parser.add_argument("--daw", choices=["ableton"], default=None,
                            help="also send this job's messages as OSC to the Live script")
        parser.add_argument("--osc-port", type=int, default=9001, help="the Live script's OSC port")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("client", help="send one request to a running server",
                                   description="Talk to `audio-agent serve` over WebSocket.")
    commands = parser.add_subparsers(dest="client_command", required=True, metavar="REQUEST")

    gen = commands.add_parser("generate", help="plan and render a new scene")
    gen.add_argument("prompt")
    gen.add_argument("--duration", type=float, default=10.0, help="scene length in seconds")
    gen.add_argument("--anchor", type=float, default=0.0, help="timeline position of the scene start (s)")
    gen.add_argument("--planner", default=None)
    gen.add_argument("--backend", default=None)
    gen.add_argument("--seed", type=int, default=None)
    _common(gen)

    edit = commands.add_parser("edit", help="revise the session's scene")
    edit.add_argument("instruction")
    _common(edit)

    for name in ("undo", "redo"):
        _common(commands.add_parser(name, help=f"{name} the last scene edit"))

    video = commands.add_parser("video-cue", help="plan sounds for a range of a video file")
    video.add_argument("video")
    video.add_argument("--start", type=float, required=True, help="range start in the video (s)")
    video.add_argument("--end", type=float, required=True, help="range end in the video (s)")
    video.add_argument("--anchor", type=float, default=0.0, help="timeline position of the range start (s)")
    video.add_argument("--hint", default=None)
    _common(video)

    _common(commands.add_parser("status", help="print the server's pong JSON"), session=False)
    parser.set_defaults(handler=run)


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    kind = args.client_command
    if kind == "status":
        return {"type": "ping"}
    request: dict[str, Any] = {"session": args.session}
    if kind == "generate":
        request.update(type="generate", prompt=args.prompt, duration_s=args.duration, anchor_s=args.anchor)
        for name in ("planner", "backend", "seed"):
            if getattr(args, name) is not None:
                request[name] = getattr(args, name)
    elif kind == "edit":
        request.update(type="edit", instruction=args.instruction)
    elif kind in ("undo", "redo"):
        request["type"] = kind
    else:
        request.update(
            type="video_cue", video_path=str(Path(args.video).expanduser().resolve()),
            start_s=args.start, end_s=args.end, anchor_s=args.anchor,
        )
        if args.hint:
            request["hint"] = args.hint
    if args.daw == "ableton":
        request["notify_osc_port"] = args.osc_port
    return request


def run(args: argparse.Namespace) -> int:
    from server.client import run_request, token_from_env

    outcome = run_request(
        build_request(args), url=args.url, events_path=args.events_file,
        token=args.token or token_from_env(), timeout_s=args.timeout or None,
    )
    message = outcome.message
    if outcome.exit_code != 0:
        print(f"audio-agent: error: {message.get('code')}: {message.get('message')}", file=sys.stderr)
        return outcome.exit_code
    if message.get("type") == "done":
        print(json.dumps(message["manifest"], separators=(",", ":")), flush=True)
    else:
        print(json.dumps(message, separators=(",", ":")), flush=True)
    return 0
