"""`audio-agent vta units|train|eval`: fit, train and score the paper's video-to-audio model.

    audio-agent vta units AUDIO_DIR --out centroids.npy [--clusters 500] [--hubert ID] [--layer 9]
    audio-agent vta train stage1|stage2 DATA_DIR --out CHECKPOINT_DIR [--centroids centroids.npy]
                          [--config vta.toml] [--steps N] [--batch-size B] [--lr X] [--save-every K]
    audio-agent vta eval DATA_DIR --checkpoint CHECKPOINT_DIR [--tolerance-s 0.1] [--out DIR]

Progress goes to stderr; stdout gets the result (the centroids path, the checkpoint folder, or
the metrics as JSON). The data layout and the checkpoint layout are in docs/video.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vta",
        help="fit units, train and evaluate the video-to-audio model",
        description="The paper's video-to-audio model: HuBERT unit centroids, two training stages, "
        "Onset ACC / AP on held-out clips.",
    )
    actions = parser.add_subparsers(dest="vta_command", required=True, metavar="ACTION")

    units = actions.add_parser("units", help="HuBERT layer-9 k-means centroids from a folder of audio")
    units.add_argument("audio_dir", help="folder of audio or video files (searched recursively)")
    units.add_argument("--out", required=True, help="where to write the (clusters, dim) .npy")
    units.add_argument("--clusters", type=int, default=None, help="k-means clusters (default: config, 500)")
    units.add_argument("--hubert", default=None, help="HuBERT id or folder (default: config)")
    units.add_argument("--layer", type=int, default=None, help="HuBERT layer to read (default: config, 9)")
    units.add_argument("--config", default=None, help="VTA config TOML ([vta] table; default presets/vta.toml)")
    units.add_argument("--max-frames", type=int, default=1_000_000, help="k-means fits on at most this many rows")
    units.add_argument("--seed", type=int, default=0)
    units.add_argument("--device", default="auto", help="torch device for HuBERT (auto: cuda, mps, cpu)")
    units.set_defaults(handler=run_units)

    train = actions.add_parser("train", help="train stage1 (connector + LoRA) or stage2 (UNet visual attention)")
    train.add_argument("stage", choices=["stage1", "stage2"])
    train.add_argument("data_dir", help="AVSync15-style folder: <class>/<clip>.mp4 with audio")
    train.add_argument("--out", required=True, help="checkpoint folder (created, or resumed from)")
    train.add_argument("--centroids", default=None, help="centroids .npy from `vta units` (new folders only)")
    train.add_argument("--config", default=None, help="VTA config TOML (new folders; default presets/vta.toml)")
    train.add_argument("--steps", type=int, default=1000, help="total optimiser steps of this stage")
    train.add_argument("--batch-size", type=int, default=2)
    train.add_argument("--lr", type=float, default=1e-4)
    train.add_argument("--save-every", type=int, default=100, help="save weights and optimiser every K steps")
    train.add_argument("--max-clip-s", type=float, default=10.0, help="clips are cut to this length")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="torch device: auto (cuda, mps, cpu), cuda:1, cpu ...")
    train.set_defaults(handler=run_train)

    evaluate = actions.add_parser("eval", help="Onset ACC / AP of the model on held-out clips (JSON)")
    evaluate.add_argument("data_dir", help="AVSync15-style folder of held-out clips")
    evaluate.add_argument("--checkpoint", required=True, help="checkpoint folder with both stages")
    evaluate.add_argument("--tolerance-s", type=float, default=0.1, help="onset match window, +/- seconds")
    evaluate.add_argument("--out", default=None, help="also write each generated and reference WAV here")
    evaluate.add_argument("--max-clips", type=int, default=None)
    evaluate.add_argument("--lambda", dest="visual_scale", type=float, default=None,
                          help="weight of the visual attention (default: the checkpoint's, 0.5)")
    evaluate.add_argument("--steps", type=int, default=None, help="denoising steps (default: Auffusion's)")
    evaluate.set_defaults(handler=run_eval)


def _config(path: str | None, **overrides: object):
    from engine.video.vta_model import load_vta_config

    given = {key: value for key, value in overrides.items() if value is not None}
    return load_vta_config(path, **given)


def _stderr_progress(what: str):
    def show(done: int, total: int) -> None:
        print(f"{what} {done}/{total}", file=sys.stderr, flush=True)

    return show


def run_units(args: argparse.Namespace) -> int:
    from transformers import HubertModel

    from engine.errors import GeneratorError
    from engine.video.units import media_files, save_centroids, units_from_folder

    config = _config(args.config, hubert_model_id=args.hubert, hubert_layer=args.layer, n_audio_tokens=args.clusters)
    media_files(args.audio_dir)  # a wrong folder is refused before a model is loaded
    try:
        hubert = HubertModel.from_pretrained(config.hubert_model_id)
    except Exception as error:  # noqa: BLE001 - one line naming the model
        raise GeneratorError(f"cannot load HuBERT {config.hubert_model_id!r}: {error}", field="hubert",
                             value=config.hubert_model_id) from error
    from engine.generators._diffusion_device import resolve_device

    hubert.to(resolve_device(args.device))
    fit = units_from_folder(args.audio_dir, hubert, layer=config.hubert_layer, n_clusters=config.n_audio_tokens,
                            seed=args.seed, max_frames=args.max_frames, progress=_stderr_progress("features"))
    path = save_centroids(Path(args.out), fit.centroids)
    print(f"{fit.centroids.shape[0]} centroids of {fit.centroids.shape[1]}-d from {fit.n_frames} frames in "
          f"{fit.n_files} files (inertia {fit.inertia:.4g})", file=sys.stderr)
    print(path)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from engine.errors import InvalidInputError
    from engine.video.checkpoint import CONFIG_FILE, check_same_config, create_checkpoint, read_checkpoint
    from engine.video.stages import TrainOptions, stage_runner

    from engine.video.dataset import AVSyncDataset

    AVSyncDataset(args.data_dir)  # a wrong folder is refused before anything is created or loaded
    folder = Path(args.out)
    if (folder / CONFIG_FILE).is_file():
        info = read_checkpoint(folder, need=())
        if args.config is not None:
            check_same_config(info, _config(args.config))
        if args.centroids is not None:
            print(f"note: {folder} keeps its own centroids.npy; --centroids applies to new folders",
                  file=sys.stderr)
    else:
        if args.centroids is None:
            raise InvalidInputError(f"out={str(folder)!r} is a new checkpoint: give --centroids (from "
                                    "`audio-agent vta units`)", field="centroids", value=None)
        config = _config(args.config)
        info = create_checkpoint(folder, config=config, centroids_path=args.centroids)
    options = TrainOptions(steps=args.steps, batch_size=args.batch_size, lr=args.lr, save_every=args.save_every,
                           seed=args.seed, max_clip_s=args.max_clip_s, device=args.device)

    def show(stage: str, step: int, total: int, loss: float) -> None:
        print(f"{stage} step {step}/{total} loss {loss:.4f}", file=sys.stderr, flush=True)

    report = stage_runner(args.stage)(args.data_dir, info, options=options, progress=show)
    if report.start_step >= options.steps:
        print(f"{args.stage}: already at step {report.start_step}; raise --steps to train on", file=sys.stderr)
    else:
        print(f"{args.stage}: steps {report.start_step}..{report.end_step} on {report.n_clips} clips, "
              f"last loss {report.losses[-1]:.4f}", file=sys.stderr)
    print(folder)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from engine.errors import InvalidInputError
    from engine.video.checkpoint import read_checkpoint
    from engine.video.vta_eval import evaluate

    if not (math.isfinite(args.tolerance_s) and args.tolerance_s > 0):
        raise InvalidInputError(f"tolerance_s={args.tolerance_s!r}: must be > 0", field="tolerance_s",
                                value=args.tolerance_s)
    info = read_checkpoint(args.checkpoint)
    options = {key: value for key, value in (("visual_scale", args.visual_scale), ("steps", args.steps))
               if value is not None}
    result = evaluate(args.data_dir, info, tolerance_s=args.tolerance_s, out_dir=args.out, max_clips=args.max_clips,
                      generator_options=options, progress=_stderr_progress("clip"))
    print(json.dumps(result, indent=2))
    return 0
