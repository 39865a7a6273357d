"""`audio-agent video-cue VIDEO --start S --end S --out DIR`: Foley stems for a video range.

The range is planned from the picture (engine.video.cue) and rendered through the normal stem
path (engine.scene.render_scene), so the stems carry BWF timestamps at anchor + event start and
the manifest is the same one `render` writes. stdout gets one line, the manifest path.
"""

from __future__ import annotations

import argparse
import sys
import time

from engine.compose import build_generator
from engine.scene import MANIFEST_NAME, prepare_out_dir
from engine.settings import load_settings
from engine.video.cue import CueOptions, cue_plan
from server.commands.render import check_anchor, render_result, summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "video-cue",
        help="spot Foley hits in a video range and render them as stems",
        description="Detect visual hits, cuts and motion in VIDEO between --start and --end, "
        "plan one short event per hit, render each as a stem placed at --anchor + its time.",
    )
    parser.add_argument("video", help="video file (anything FFmpeg reads)")
    parser.add_argument("--start", type=float, required=True, help="range start in the video (s)")
    parser.add_argument("--end", type=float, required=True, help="range end in the video (s)")
    parser.add_argument("--hint", default=None, help='what makes the sound, e.g. "footsteps"')
    parser.add_argument("--out", required=True, help="folder for stems, mix.wav, manifest.json")
    parser.add_argument("--anchor", type=float, default=0.0,
                        help="DAW timeline position of --start (s); stems are stamped there")
    parser.add_argument("--backend", default=None, help="generator backend (default: settings, procedural)")
    parser.add_argument("--planner", default="onsets", choices=["onsets", "llm"],
                        help="onsets: offline; llm: a vision model names each hit")
    parser.add_argument("--cuts", default="skip", choices=["skip", "mark"],
                        help="mark hard cuts with a short transition sound, or skip them")
    parser.add_argument("--no-beds", action="store_true", help="no beds for continuous motion")
    parser.add_argument("--sample-rate", type=int, default=None)
    parser.add_argument("--no-cache", action="store_true", help="do not read or fill the render cache")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    check_anchor(args)
    given = {"backend": args.backend, "sample_rate": args.sample_rate}
    overrides = {key: value for key, value in given.items() if value is not None}
    settings = load_settings(**overrides)
    out = prepare_out_dir(args.out)
    generator = build_generator(settings.backend)
    options = CueOptions(cuts=args.cuts, beds=not args.no_beds)
    result = cue_plan(args.video, start_s=args.start, end_s=args.end, hint=args.hint,
                      planner=None if args.planner == "onsets" else args.planner, options=options)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    manifest = render_result(
        result,
        generator=generator,
        settings=settings,
        out=out,
        anchor_s=args.anchor,
        use_cache=not args.no_cache,
    )
    print(summary(manifest, time.perf_counter() - started), file=sys.stderr)
    print(out / MANIFEST_NAME)
    return 0 if not manifest.failed else 1
