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


def register(subparsers: argparse._SubParsersAction) -> None:
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
    edit.add_argument("instruction", nargs="?", default=None,
                      help="what to change (or give --changes-file)")
    edit.add_argument("--changes-file", type=Path, default=None,
                      help="a JSON list of structured changes ({op, event_id, ...}) applied as one version")
    _base_version(edit)
    _common(edit)

    for name in ("undo", "redo"):
        step = commands.add_parser(name, help=f"{name} the last scene edit")
        _base_version(step)
        _common(step)

    _common(commands.add_parser("get-session", help="print the session's current state as JSON"))
    _common(commands.add_parser("list-sessions", help="print the server's sessions as JSON"), session=False)
    cancel = commands.add_parser("cancel", help="cancel a running job")
    cancel.add_argument("--job", required=True, help="the job id (from the job's accepted message)")
    _common(cancel, session=False)

    video = commands.add_parser("video-cue", help="plan sounds for a range of a video file")
    video.add_argument("video")
    video.add_argument("--start", type=float, required=True, help="range start in the video (s)")
    video.add_argument("--end", type=float, required=True, help="range end in the video (s)")
    video.add_argument("--anchor", type=float, default=0.0, help="timeline position of the range start (s)")
    video.add_argument("--hint", default=None)
    video.add_argument("--generator", default="text", choices=["text", "vta"],
                       help="vta: the server's video-to-audio model renders each hit from its picture")
    video.add_argument("--checkpoint", default=None, metavar="NAME",
                       help="vta: one of the checkpoint names the server was started with (--vta-checkpoint)")
    video.add_argument("--lambda", dest="vta_lambda", type=float, default=None,
                       help="vta: weight of the picture against the text (default: the checkpoint's)")
    _common(video)

    _common(commands.add_parser("status", help="print the server's pong JSON"), session=False)
    parser.set_defaults(handler=run)


def _base_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-version", type=int, default=None,
                        help="the version the request is based on; the server refuses it (conflict) "
                             "when the session has moved on")


def read_changes(path: Path) -> list[dict[str, Any]]:
    """The --changes-file: a JSON list of change objects (checked by the server's schema)."""
    from engine.errors import InvalidInputError

    try:
        changes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"changes_file={str(path)!r}: cannot read a JSON list ({error})",
                                field="changes_file", value=str(path)) from None
    if not isinstance(changes, list) or not changes or not all(isinstance(c, dict) for c in changes):
        raise InvalidInputError(f"changes_file={str(path)!r}: must hold a non-empty JSON list of change objects",
                                field="changes_file", value=str(path))
    return changes


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    kind = args.client_command
    if kind == "status":
        return {"type": "ping"}
    if kind == "cancel":
        return {"type": "cancel", "job": args.job}
    if kind == "list-sessions":
        return {"type": "list_sessions"}
    request: dict[str, Any] = {"session": args.session}
    if kind == "get-session":
        request["type"] = "get_session"
        return request
    if kind == "generate":
        request.update(type="generate", prompt=args.prompt, duration_s=args.duration, anchor_s=args.anchor)
        for name in ("planner", "backend", "seed"):
            if getattr(args, name) is not None:
                request[name] = getattr(args, name)
    elif kind == "edit":
        request["type"] = "edit"
        if (args.instruction is None) == (args.changes_file is None):
            from engine.errors import InvalidInputError

            raise InvalidInputError("instruction: give an instruction or --changes-file (one of them)",
                                    field="instruction")
        if args.changes_file is not None:
            request["changes"] = read_changes(args.changes_file)
        else:
            request["instruction"] = args.instruction
    elif kind in ("undo", "redo"):
        request["type"] = kind
    else:
        request.update(
            type="video_cue", video_path=str(Path(args.video).expanduser().resolve()),
            start_s=args.start, end_s=args.end, anchor_s=args.anchor,
        )
        if args.hint:
            request["hint"] = args.hint
        if args.generator != "text":
            request["generator"] = args.generator
        if args.checkpoint is not None:
            request["checkpoint"] = args.checkpoint
        if args.vta_lambda is not None:
            request["vta_lambda"] = args.vta_lambda
    if kind in ("edit", "undo", "redo") and args.base_version is not None:
        request["base_version"] = args.base_version
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
