"""Onset ACC / AP of the VTA model on held-out clips: render each clip's sound from its picture
(caption = its class folder), detect onsets in the render and in the clip's own audio, score
(engine/eval/onsets.py; `ap_avsync` is the CondFoleyGen-style AP the paper's figures use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.errors import GeneratorError
from engine.eval.onsets import DEFAULT_TOLERANCE_S, score_audio_pair
from engine.generators import GenerationRequest
from engine.video.checkpoint import CheckpointInfo
from engine.video.dataset import AVSyncDataset
from engine.video.stages import caption
from engine.video.vta_generator import PictureRange, VTAGenerator, picture_seed

EVAL_RATE_HZ = 16000
# (clips done, clips in all) after each clip.
ClipProgress = Callable[[int, int], None]


def evaluate(
    data_dir: str | Path,
    info: CheckpointInfo,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    out_dir: str | Path | None = None,
    max_clips: int | None = None,
    generator_options: dict[str, Any] | None = None,
    progress: ClipProgress | None = None,
) -> dict[str, Any]:
    import soundfile as sf

    dataset = AVSyncDataset(data_dir, frame_rate_hz=info.config.frame_rate_hz, sample_rate=EVAL_RATE_HZ)
    count = len(dataset) if max_clips is None else min(len(dataset), max_clips)
    clips: dict[str, dict[str, Any]] = {}
    for index in range(count):
        item = dataset[index]
        frames_s = len(item.frames) / info.config.frame_rate_hz
        length_s = min(frames_s, len(item.waveform) / EVAL_RATE_HZ)
        seed = picture_seed(0.0, length_s)
        generator = VTAGenerator(checkpoint=info.folder, frames=item.frames,
                                 ranges={seed: PictureRange(0.0, length_s)},
                                 video_identity={"path": item.path}, **(generator_options or {}))
        result = generator.generate([GenerationRequest(caption(item.label), length_s, seed, EVAL_RATE_HZ)])[0]
        if result.audio is None:
            raise GeneratorError(f"{item.path}: VTA render failed: {result.error}", field="clip", value=item.path)
        reference = item.waveform[: round(length_s * EVAL_RATE_HZ)]
        scores = score_audio_pair(result.audio, reference[None, :], sample_rate=EVAL_RATE_HZ, tolerance_s=tolerance_s)
        name = f"{item.label}/{Path(item.path).stem}"
        clips[name] = {**scores.__dict__, "length_s": round(length_s, 3)}
        if out_dir is not None:
            stem = Path(out_dir) / item.label
            stem.mkdir(parents=True, exist_ok=True)
            sf.write(stem / f"{Path(item.path).stem}.gen.wav", result.audio.T, EVAL_RATE_HZ, subtype="FLOAT")
            sf.write(stem / f"{Path(item.path).stem}.ref.wav", reference, EVAL_RATE_HZ, subtype="FLOAT")
        if progress is not None:
            progress(index + 1, count)
    mean = {key: float(np.mean([clip[key] for clip in clips.values()])) for key in ("acc", "ap", "ap_avsync")}
    return {"checkpoint": str(info.folder), "data_dir": str(data_dir), "tolerance_s": tolerance_s,
            "n_clips": len(clips), "mean": mean, "clips": clips}
