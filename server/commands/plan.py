"""`audio-agent plan "PROMPT" --duration 10`: print the plan JSON without rendering.

Also home of the planning options `render` shares (--planner, --llm-model, --seed, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from engine.limits import check_duration_s, check_seed, check_text

if TYPE_CHECKING:  # engine modules load when a command runs, not for `--help` (start-up)
    from engine.planners import PlanResult
    from engine.settings import EngineSettings


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
        "--seed", type=int, default=0, metavar="N",
        help="vary the renders of the same prompt (default 0; a seed gives the same stems "
        "here and through the server)",
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
    from engine.settings import load_settings

    overrides: dict[str, object] = {"planner": args.planner, "target_lufs": args.target_lufs}
    overrides.update(extra)
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def check_planning_args(args: argparse.Namespace, settings: EngineSettings) -> str:
    """Reject bad input before any work; returns the stripped prompt."""
    prompt = check_text("prompt", args.prompt)
    check_duration_s(args.duration, maximum=settings.max_duration_s)
    check_seed(args.seed)
    return prompt


def make_plan(args: argparse.Namespace, settings: EngineSettings) -> PlanResult:
    """Plan as the server does (engine.compose builds the planner, engine.seeds applies --seed),
    so the same prompt, seed and settings give the same plan from every front door."""
    from engine.compose import build_planner
    from engine.seeds import plan_prompt

    prompt = check_planning_args(args, settings)
    planner = build_planner(settings.planner, settings=settings, llm_model=args.llm_model)
    return plan_prompt(planner, prompt, duration_s=args.duration, seed=args.seed,
                       limits=settings.limits())


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
