"""`audio-agent plan "PROMPT" --duration 10`: print the plan JSON without rendering.

Also home of the planning options `render` shares (--planner, --llm-model, --seed, ...).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from engine.errors import InvalidInputError
from engine.planners import PlanResult, create_planner
from engine.settings import EngineSettings, load_settings


def add_planning_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="the scene, in plain words")
    parser.add_argument(
        "--duration", type=float, required=True, metavar="S", help="scene length in seconds"
    )
    parser.add_argument(
        "--planner", default=None, help="rules (offline, default) or llm (AUDIO_AGENT_PLANNER)"
    )
    parser.add_argument(
        "--llm-model", default=None, metavar="NAME", help="model name for --planner llm"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="vary the renders of the same prompt"
    )
    parser.add_argument(
        "--target-lufs",
        type=float,
        default=None,
        metavar="X",
        help="loudness of events without their own target (AUDIO_AGENT_TARGET_LUFS, -23)",
    )


def settings_from(args: argparse.Namespace, **extra: object) -> EngineSettings:
    """EngineSettings with the options given on the command line on top."""
    overrides: dict[str, object] = {"planner": args.planner, "target_lufs": args.target_lufs}
    overrides.update(extra)
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def check_planning_args(args: argparse.Namespace, settings: EngineSettings) -> str:
    """Reject bad input before any work; returns the stripped prompt."""
    prompt = args.prompt.strip()
    if not prompt:
        raise InvalidInputError("prompt='': describe the scene to plan", field="prompt", value="")
    duration = args.duration
    if not math.isfinite(duration) or not 0 < duration <= settings.max_duration_s:
        raise InvalidInputError(
            f"duration_s={duration!r}: must be in (0, {settings.max_duration_s:g}] s",
            field="duration_s",
            value=duration,
        )
    if not 0 <= args.seed < 2**32:
        raise InvalidInputError(
            f"seed={args.seed}: must be in [0, 2**32)", field="seed", value=args.seed
        )
    return prompt


def _reseed(result: PlanResult, seed: int) -> PlanResult:
    # The rule planner salts its seeds itself; for the LLM planner --seed offsets every event.
    events = tuple(
        event.model_copy(update={"seed": (event.seed + seed) % 2**32})
        for event in result.plan.events
    )
    plan = result.plan.model_copy(update={"events": events})
    return PlanResult(plan, result.planner, result.fell_back, result.notes, result.reply)


def make_plan(args: argparse.Namespace, settings: EngineSettings) -> PlanResult:
    prompt = check_planning_args(args, settings)
    rules = create_planner("rules", base_lufs=settings.target_lufs, seed=args.seed)
    if settings.planner == "llm":
        # The fallback answers with the same loudness target and seed salt as `--planner rules`.
        options: dict[str, object] = {"fallback": rules}
        if args.llm_model:
            options["model"] = args.llm_model
        planner = create_planner("llm", **options)
    elif settings.planner == "rules":
        planner = rules
    else:
        planner = create_planner(settings.planner)
    result = planner.plan(prompt, duration_s=args.duration, limits=settings.limits())
    if result.planner != "rules" and args.seed:
        result = _reseed(result, args.seed)
    return result


def print_notes(result: PlanResult) -> None:
    fell_back = " (fell back to the rule planner)" if result.fell_back else ""
    print(f"planner: {result.planner}{fell_back}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    result = make_plan(args, settings)
    print_notes(result)
    # stdout carries the plan alone, so it can be piped into anything that reads a Plan.
    print(json.dumps(result.plan.model_dump(mode="json"), indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="plan a scene into timed events and print the plan JSON",
        description="Plan a scene into timed sound events and print the plan as JSON.",
    )
    add_planning_args(parser)
    parser.set_defaults(handler=run)
