"""`audio-agent` command line: one module per subcommand under server/commands/.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``handler=<callable(args) -> int>``. Errors the project raises on purpose become one line on
stderr and a non-zero exit status: 2 for bad input, 1 for everything else.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from typing import NoReturn, Sequence

from engine.errors import AudioAgentError, InvalidInputError

# numpy's BLAS (OpenBLAS) wakes one thread per core for products above a few thousand rows; the
# engine's numpy blocks stay under that, and on a busy machine the pool costs more CPU than it
# saves (a 60 s scene used ~16 % more). OpenBLAS reads this once, when numpy is first imported,
# which no command does before this line runs. Torch's own intra-op threads are not affected.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Order is the order `audio-agent --help` lists them.
COMMAND_MODULES = [
    "server.commands.render",
    "server.commands.plan",
    "server.commands.llm",
    "server.commands.serve",
    "server.commands.client",
    "server.commands.video_cue",
    "server.commands.onsets",
    "server.commands.vta",
    "server.commands.install_daw",
    "server.commands.library",
    "server.commands.mcp",
]


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line too, like every other error (DAW scripts show stderr as is).

    Subcommand parsers are made with the parent's class, so this covers all of them."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"audio-agent: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that went away is handled below
        return code
    except BrokenPipeError:
        # `audio-agent ... | head`: the reader closed the pipe. Stop quietly, like other tools,
        # and point stdout at /dev/null so the interpreter's final flush cannot fail again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a killed writer
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
