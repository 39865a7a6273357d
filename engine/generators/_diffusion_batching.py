"""Batching policy: jobs of one group share a model call up to max_batch; an out-of-memory
error halves the chunk, later chunks start at the size that fitted, and any other failure costs
only its own chunk. Progress counts denoising steps; cancellation is checked at every step."""

from __future__ import annotations

import gc
import logging
from collections import deque
from typing import Callable, Hashable, Sequence

import numpy as np
import torch

from engine.errors import AudioAgentError
from engine.generators._diffusion_device import empty_device_caches
from engine.generators._diffusion_segments import SegmentJob
from engine.progress import CancelToken, ProgressFn

log = logging.getLogger(__name__)

# Called after each denoising step with the 1-based step index.
StepFn = Callable[[int], None]


def is_out_of_memory(error: BaseException) -> bool:
    # torch.OutOfMemoryError exists from torch 2.5 on; we allow 2.3, which has only the CUDA
    # name. Looked up on each call so a missing one can never turn an error into a crash.
    kinds = tuple(kind for kind in (getattr(torch, "OutOfMemoryError", None),
                                    getattr(torch.cuda, "OutOfMemoryError", None)) if isinstance(kind, type))
    if kinds and isinstance(error, kinds):
        return True
    # MPS and older backends raise a plain RuntimeError with this wording.
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


class _Progress:
    """Denoising steps done over steps needed by all jobs, reported monotonically."""

    def __init__(self, progress: ProgressFn | None, *, total_units: int) -> None:
        self._progress = progress
        self._total = max(1, total_units)
        self._done = 0
        self._last = 0.0

    def report(self, units_in_flight: int = 0) -> None:
        fraction = min(1.0, (self._done + units_in_flight) / self._total)
        if self._progress is not None and fraction > self._last:
            self._last = fraction
            self._progress("generate", fraction)

    def finish_chunk(self, units: int) -> None:
        self._done += units


def run_in_batches(
    jobs: Sequence[SegmentJob],
    render: Callable[[Sequence[SegmentJob], StepFn], list[np.ndarray]],
    *,
    group_key: Callable[[SegmentJob], Hashable],
    max_batch: int,
    steps: int,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[np.ndarray | str]:
    """Render every job in as few calls as memory allows; one outcome (audio or error) per job.

    Jobs of one group share a call, up to ``max_batch``. An out-of-memory error halves the chunk
    and retries both halves, and later chunks start at the size that last fitted; a single job
    that still does not fit gets an error instead of audio.
    """
    outcomes: list[np.ndarray | str | None] = [None] * len(jobs)
    tracker = _Progress(progress, total_units=len(jobs) * steps)
    limit = max(1, max_batch)
    groups: dict[Hashable, list[int]] = {}
    for position, job in enumerate(jobs):
        groups.setdefault(group_key(job), []).append(position)
    pending: deque[list[int]] = deque()
    for members in groups.values():
        pending.extend(members[start : start + limit] for start in range(0, len(members), limit))

    while pending:
        chunk = pending.popleft()
        if len(chunk) > limit:  # a smaller size fitted since this chunk was queued
            pending.extendleft(reversed([chunk[i : i + limit] for i in range(0, len(chunk), limit)]))
            continue
        if cancel is not None:
            cancel.raise_if_cancelled()

        def on_step(step: int, size: int = len(chunk)) -> None:
            if cancel is not None:
                cancel.raise_if_cancelled()
            tracker.report(size * step)

        out_of_memory = ""
        try:
            audios = render([jobs[p] for p in chunk], on_step)
        except AudioAgentError:
            raise
        except Exception as error:  # noqa: BLE001 - one failing call must not sink the other jobs
            if not is_out_of_memory(error):
                log.exception("generation failed for %d job(s)", len(chunk))
                for position in chunk:
                    outcomes[position] = f"{type(error).__name__}: {error}"
                tracker.finish_chunk(len(chunk) * steps)
                continue
            out_of_memory = str(error) or type(error).__name__
        if out_of_memory:
            # Freed only now: inside the except block the traceback still holds the failed
            # call's frames and the activations in them, which empty_cache cannot give back.
            _free_after_oom()
            if len(chunk) == 1:
                outcomes[chunk[0]] = f"out of memory even at batch size 1: {out_of_memory}"
                tracker.finish_chunk(steps)
                continue
            half = len(chunk) // 2
            limit = max(1, half)
            log.warning("out of memory at batch %d; retrying as %d + %d", len(chunk), half, len(chunk) - half)
            pending.extendleft([chunk[half:], chunk[:half]])
            continue
        for position, audio in zip(chunk, audios):
            outcomes[position] = audio
        tracker.finish_chunk(len(chunk) * steps)
        tracker.report()
    tracker.report()  # reaches 1.0 even when the last chunk failed
    return [outcome if outcome is not None else "no output" for outcome in outcomes]


def _free_after_oom() -> None:
    gc.collect()
    empty_device_caches()
