"""`audio-agent` command line: one module per subcommand under server/commands/.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``handler=<callable(args) -> int>``. Errors the project raises on purpose become one line on
stderr and a non-zero exit status: 2 for bad input, 1 for everything else.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from engine.errors import AudioAgentError, InvalidInputError

# Order is the order `audio-agent --help` lists them.
COMMAND_MODULES = [
    "server.commands.render",
    "server.commands.plan",
    "server.commands.serve",
    "server.commands.client",
    "server.commands.video_cue",
    "server.commands.onsets",
    "server.commands.install_daw",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audio-agent",
        description="Plan sound scenes as timed events and render each as a stem.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except InvalidInputError as error:
        print(f"audio-agent: error: {error}", file=sys.stderr)
        return 2
    except AudioAgentError as error:
        print(f"audio-agent: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("audio-agent: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
