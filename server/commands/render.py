"""`audio-agent render "PROMPT" --duration 10 --out DIR`: plan, render stems + mix + manifest.

stdout gets one line, the manifest path, so scripts can capture it; the progress display and
the summary go to stderr (a bar on a terminal, plain lines when piped).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from engine.errors import InvalidInputError
from server.commands.plan import add_planning_args, make_plan, print_notes, settings_from

if TYPE_CHECKING:  # engine modules load when a command runs, not for `--help` (start-up)
    from engine.cache import RenderCache
    from engine.generators import Generator
    from engine.manifest import Manifest
    from engine.planners import PlanResult
    from engine.settings import EngineSettings

BAR_WIDTH = 24


class ProgressDisplay:
    """A redrawn bar on a terminal; one line per stage and per quarter when piped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last: tuple[str, int] | None = None

    def __call__(self, stage: str, fraction: float) -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        if self.tty:
            filled = int(round(fraction * BAR_WIDTH))
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r{stage:<9} [{bar}] {fraction * 100:5.1f}%")
            self.stream.flush()
            return
        step = int(fraction * 4)  # 0..4: report 0, 25, 50, 75, 100 %
        if self.last == (stage, step):
            return
        self.last = (stage, step)
        print(f"{stage} {step * 25}%", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def check_anchor(args: argparse.Namespace) -> None:
    if not math.isfinite(args.anchor) or args.anchor < 0:
        raise InvalidInputError(
            f"anchor_s={args.anchor!r}: must be a number >= 0", field="anchor_s", value=args.anchor
        )


def _make_generator(args: argparse.Namespace, backend: str) -> Generator:
    """The backend with the model options given on the command line (procedural takes none)."""
    from engine import compose

    given = {"model": args.model, "steps": args.steps, "guidance": args.guidance}
    return compose.build_generator(backend, **{k: v for k, v in given.items() if v is not None})


def open_cache(settings: EngineSettings, enabled: bool) -> RenderCache | None:
    if not enabled:
        return None
    from engine import compose

    return compose.open_cache(settings.resolved_cache_dir(), required=False)


def summary(manifest: Manifest, wall_s: float) -> str:
    hits = sum(event.cache_hit for event in manifest.events)
    peak = manifest.mix_true_peak_dbtp
    peak_text = "silent" if peak is None else f"{peak:.1f} dBTP"
    return (
        f"rendered {len(manifest.events)} stem(s) ({hits} reused/cached), "
        f"{len(manifest.failed)} failed, mix peak {peak_text}, {wall_s:.1f} s"
    )


def render_result(
    result: PlanResult,
    *,
    generator: Generator,
    settings: EngineSettings,
    out: Path,
    anchor_s: float,
    use_cache: bool,
    subtype: str = "PCM_24",
    aligned: bool = False,
    cue_markers_bpm: float | None = None,
) -> Manifest:
    """Render a planned scene into ``out`` with a progress display (shared by render, video-cue)."""
    from engine.render_settings import RenderSettings, SceneLabels
    from engine.reuse import folder_reuse
    from engine.scene import render_scene

    display = ProgressDisplay(sys.stderr)
    cache = open_cache(settings, use_cache)
    try:
        return render_scene(
            result.plan,
            generator=generator,
            out_dir=out,
            settings=RenderSettings.from_settings(
                settings, subtype=subtype, aligned=aligned, cue_markers_bpm=cue_markers_bpm
            ),
            anchor_s=anchor_s,
            cache=cache,
            reuse=folder_reuse(out, result.plan, anchor_s),
            labels=SceneLabels(settings.backend, result.planner, result.notes),
            progress=display,
        )
    finally:
        display.close()
        if cache is not None:
            cache.close()


def run(args: argparse.Namespace) -> int:
    from engine.midi import check_tempo_bpm
    from engine.scene import MANIFEST_NAME, prepare_out_dir

    started = time.perf_counter()
    settings = settings_from(args, backend=args.backend, sample_rate=args.sample_rate)
    check_anchor(args)
    cue_markers_bpm = check_tempo_bpm(args.tempo) if args.cue_markers else None
    out = prepare_out_dir(args.out)  # fail on a bad --out before planning or loading a model
    generator = _make_generator(args, settings.backend)
    result = make_plan(args, settings)
    print_notes(result)
    manifest = render_result(
        result,
        generator=generator,
        settings=settings,
        out=out,
        anchor_s=args.anchor,
        use_cache=not args.no_cache,
        subtype="FLOAT" if args.float else "PCM_24",
        aligned=args.aligned,
        cue_markers_bpm=cue_markers_bpm,
    )
    print(summary(manifest, time.perf_counter() - started), file=sys.stderr)
    for note in manifest.notes:
        if note not in result.notes:
            print(f"note: {note}", file=sys.stderr)
    print(out / MANIFEST_NAME)
    if manifest.failed:
        first = manifest.failed[0]
        print(
            f"audio-agent: error: {len(manifest.failed)} event(s) failed; "
            f"{first.id} ({first.description!r}): {first.error}",
            file=sys.stderr,
        )
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="plan a scene and render one stem per event, a mix and a manifest",
        description="Plan a scene and render one BWF stem per event, mix.wav and manifest.json.",
    )
    add_planning_args(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for stems and manifest")
    parser.add_argument(
        "--backend", default=None, metavar="NAME",
        help="generator (AUDIO_AGENT_BACKEND, default procedural)",
    )
    parser.add_argument(
        "--model", default=None, metavar="ID_OR_PATH",
        help="weights for a model backend: a Hub id or a local checkpoint folder",
    )
    parser.add_argument(
        "--sample-rate", type=int, default=None, metavar="HZ", help="stem sample rate (48000)"
    )
    parser.add_argument(
        "--anchor", type=float, default=0.0, metavar="S",
        help="DAW timeline position of the scene start (stems are stamped anchor + start)",
    )
    parser.add_argument(
        "--aligned", action="store_true",
        help="also write full-scene-length copies starting at 0 under aligned/",
    )
    parser.add_argument("--float", action="store_true", help="32-bit float stems (default 24-bit)")
    parser.add_argument(
        "--no-cache", action="store_true", help="do not read or fill the raw render cache"
    )
    parser.add_argument(
        "--steps", type=int, default=None, metavar="N",
        help="denoising steps for a model backend (default: presets/models.toml)",
    )
    parser.add_argument(
        "--guidance", type=float, default=None, metavar="X",
        help="classifier-free guidance scale for a model backend (default: presets/models.toml)",
    )
    parser.add_argument(
        "--cue-markers", action="store_true",
        help="also write cues.mid: a MIDI marker per event, importable into any DAW",
    )
    parser.add_argument(
        "--tempo", type=float, default=120.0, metavar="BPM",
        help="tempo the cues.mid ticks are written at (default 120; match your session)",
    )
    parser.set_defaults(handler=run)
