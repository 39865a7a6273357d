"""`audio-agent video-cue VIDEO --start S --end S --out DIR`: Foley stems for a video range.

The range is planned from the picture (engine.video.cue) and rendered through the normal stem
path (engine.scene.render_scene), so the stems carry BWF timestamps at anchor + event start and
the manifest is the same one `render` writes. stdout gets one line, the manifest path.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace

from engine.errors import InvalidInputError
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
    parser.add_argument("--generator", default="text", choices=["text", "vta"],
                        help="text: each event's words through --backend; vta: the video-to-audio model "
                        "renders each event from its picture (needs --checkpoint)")
    parser.add_argument("--checkpoint", default=None,
                        help="VTA checkpoint folder (written by `audio-agent vta train`)")
    parser.add_argument("--lambda", dest="visual_scale", type=float, default=None,
                        help="VTA: weight of the picture against the text (default: the checkpoint's, 0.5)")
    parser.add_argument("--planner", default="onsets", choices=["onsets", "llm"],
                        help="onsets: offline; llm: a vision model names each hit")
    parser.add_argument("--cuts", default="skip", choices=["skip", "mark"],
                        help="mark hard cuts with a short transition sound, or skip them")
    parser.add_argument("--no-beds", action="store_true", help="no beds for continuous motion")
    parser.add_argument("--sample-rate", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help="denoising steps for a model backend or vta (default: presets/models.toml)")
    parser.add_argument("--guidance", type=float, default=None, metavar="X",
                        help="classifier-free guidance for a model backend or vta (default: presets/models.toml)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or fill the render cache")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Engine modules load here, not at import: `audio-agent --help` stays fast (start-up).
    from engine.compose import build_generator
    from engine.scene import MANIFEST_NAME, prepare_out_dir
    from engine.settings import load_settings
    from engine.video.cue import CueOptions, cue_plan

    started = time.perf_counter()
    check_anchor(args)
    given = {"backend": args.backend, "sample_rate": args.sample_rate}
    overrides = {key: value for key, value in given.items() if value is not None}
    settings = load_settings(**overrides)
    _check_generator_options(args)
    out = prepare_out_dir(args.out)
    model_options = {key: value for key, value in (("steps", args.steps), ("guidance", args.guidance))
                     if value is not None}
    generator = build_generator(settings.backend, **model_options) if args.generator == "text" else None
    options = CueOptions(cuts=args.cuts, beds=not args.no_beds)
    result = cue_plan(args.video, start_s=args.start, end_s=args.end, hint=args.hint,
                      planner=None if args.planner == "onsets" else args.planner, options=options)
    if generator is None:
        # The onset planner still places the events; the picture of each range makes its sound.
        from engine.video.vta_generator import vta_for_cue

        plan, generator = vta_for_cue(result.plan, video_path=args.video, start_s=args.start, end_s=args.end,
                                      checkpoint=args.checkpoint, visual_scale=args.visual_scale, **model_options)
        result = replace(result, plan=plan)
        settings = settings.model_copy(update={"backend": "vta"})
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


def _check_generator_options(args: argparse.Namespace) -> None:
    if args.generator == "vta" and not args.checkpoint:
        raise InvalidInputError("--generator vta needs --checkpoint DIR, a folder written by "
                                "`audio-agent vta train stage1|stage2 DATA_DIR --out DIR`", field="checkpoint")
    if args.generator != "vta" and (args.checkpoint or args.visual_scale is not None):
        raise InvalidInputError("--checkpoint and --lambda apply to --generator vta only", field="generator",
                                value=args.generator)
    if args.visual_scale is not None and not (math.isfinite(args.visual_scale) and args.visual_scale >= 0):
        raise InvalidInputError(f"lambda={args.visual_scale!r}: must be a number >= 0", field="lambda",
                                value=args.visual_scale)
