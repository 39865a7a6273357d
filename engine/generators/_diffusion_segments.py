"""Segment maths, pure numpy: how a request becomes model samples (short ones rounded up to a
length quantum, long ones as overlapping clips with stable per-segment seeds), and how samples
become one waveform again (equal-power crossfades, trim, resample to the request's rate).

Imports no torch, so planning and joining can be used and tested without a model stack.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import soxr

from engine.generators import GenerationRequest


@dataclass(frozen=True)
class SegmentJob:
    """One model sample: a whole short event, or one segment of a long one."""

    request_index: int
    segment_index: int
    description: str
    length_s: float  # generated length of this sample at the model's native rate
    seed: int


def plan_segments(length_s: float, *, max_segment_s: float, quantum_s: float, overlap_s: float) -> list[float]:
    """Lengths of the samples that cover ``length_s``.

    Short events render at their length rounded up to the quantum; long ones as full clips that
    overlap by ``overlap_s`` (the last clip may run past the end; it is trimmed after joining).
    """
    if length_s <= max_segment_s + 1e-9:
        steps = math.ceil(length_s / quantum_s - 1e-9)
        return [min(max_segment_s, max(1, steps) * quantum_s)]
    hop_s = max_segment_s - overlap_s
    count = math.ceil((length_s - overlap_s) / hop_s - 1e-9)
    return [max_segment_s] * count


def segment_seed(seed: int, index: int) -> int:
    """Segment 0 keeps the request's seed; later segments get independent, stable seeds."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)


def plan_jobs(
    requests: Sequence[GenerationRequest], *, max_segment_s: float, quantum_s: float, overlap_s: float
) -> list[SegmentJob]:
    jobs = []
    for index, request in enumerate(requests):
        lengths = plan_segments(request.length_s, max_segment_s=max_segment_s, quantum_s=quantum_s, overlap_s=overlap_s)
        for segment, length_s in enumerate(lengths):
            jobs.append(SegmentJob(index, segment, request.description, length_s, segment_seed(request.seed, segment)))
    return jobs


def join_segments(segments: Sequence[np.ndarray], *, overlap_frames: int) -> np.ndarray:
    """Concatenate (channels, frames) clips, crossfading each joint over ``overlap_frames``.

    Equal-power curves: neighbouring segments are independent renders, so their sum keeps a
    steady loudness through the joint when the gains' squares add to one.
    """
    joined = segments[0]
    for segment in segments[1:]:
        fade = min(overlap_frames, joined.shape[-1], segment.shape[-1])
        if fade == 0:
            joined = np.concatenate([joined, segment], axis=-1)
            continue
        angle = np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)
        mixed = joined[:, -fade:] * np.cos(angle) + segment[:, :fade] * np.sin(angle)
        joined = np.concatenate([joined[:, :-fade], mixed, segment[:, fade:]], axis=-1)
    return joined


def to_request_rate(audio: np.ndarray, *, native_rate: int, request: GenerationRequest) -> np.ndarray:
    """Trim to the event, resample with soxr, and return exactly round(length_s * rate) frames."""
    audio = audio[:, : math.ceil(request.length_s * native_rate)]
    if native_rate != request.sample_rate:
        audio = soxr.resample(audio.T.astype(np.float64), native_rate, request.sample_rate, quality="HQ").T
    frames = round(request.length_s * request.sample_rate)
    if audio.shape[-1] < frames:
        audio = np.pad(audio, ((0, 0), (0, frames - audio.shape[-1])))
    return np.ascontiguousarray(audio[:, :frames], dtype=np.float32)
