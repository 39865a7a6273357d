"""`audio-agent onsets GEN_DIR REF_DIR [--tolerance-s 0.1]`: Onset ACC / AP of WAV pairs.

Files are paired by name. Prints one JSON object: per-file scores, their mean and the window.
Formulas: engine/eval/onsets.py and docs/video.md.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from engine.errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "onsets",
        help="Onset ACC and AP of generated vs reference WAVs",
        description="Score the onsets of each generated WAV against the same-named reference WAV.",
    )
    parser.add_argument("gen_dir", help="folder of generated WAVs")
    parser.add_argument("ref_dir", help="folder of reference WAVs (same file names)")
    parser.add_argument("--tolerance-s", type=float, default=None,
                        help="match window, +/- seconds (default 0.1)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # numpy and the scorer load here, not at import: `audio-agent --help` stays fast.
    from engine.eval.onsets import DEFAULT_TOLERANCE_S, score_folders

    if args.tolerance_s is None:
        args.tolerance_s = DEFAULT_TOLERANCE_S
    if not math.isfinite(args.tolerance_s) or args.tolerance_s <= 0:
        raise InvalidInputError(
            f"tolerance_s={args.tolerance_s!r}: must be > 0", field="tolerance_s", value=args.tolerance_s
        )
    result = score_folders(Path(args.gen_dir), Path(args.ref_dir), tolerance_s=args.tolerance_s)
    print(json.dumps(result, indent=2))
    return 0
