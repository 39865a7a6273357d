"""Shared diffusion helpers: presets, segment planning, joining, rate, batching with OOM halving."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import CancelledError, InvalidInputError
from engine.generators import GenerationRequest
from engine.generators._diffusion_batching import run_in_batches
from engine.generators._diffusion_device import resolve_dtype
from engine.generators._diffusion_presets import load_model_preset
from engine.generators._diffusion_segments import (
    SegmentJob,
    join_segments,
    plan_jobs,
    plan_segments,
    segment_seed,
    to_request_rate,
)
from engine.progress import CancelToken


@pytest.mark.parametrize("backend", ["auffusion", "stable-audio", "audioldm2"])
def test_shipped_presets_validate(backend: str) -> None:
    preset = load_model_preset(backend)
    assert preset.steps > 0 and preset.sample_rate > 0 and preset.overlap_s < preset.max_segment_s


def test_auffusion_preset_geometry_is_the_published_one() -> None:
    preset = load_model_preset("auffusion")
    assert (preset.sample_rate, preset.mel_bins, preset.hop_length, preset.clip_frames) == (16000, 256, 160, 1024)
    # Upstream's 10 s training clips padded with 0.24 s of silence: segments count the content.
    assert preset.clip_frames * preset.hop_length / preset.sample_rate == pytest.approx(10.24)
    content_s = (preset.clip_frames - preset.pad_frames) * preset.hop_length / preset.sample_rate
    assert content_s == pytest.approx(10.0) == preset.max_segment_s == preset.length_quantum_s


def test_bad_preset_names_the_key(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "presets" / "models.toml").read_text()
    broken = tmp_path / "models.toml"
    broken.write_text(text.replace("steps = 25", "steps = -3", 1))
    with pytest.raises(InvalidInputError) as caught:
        load_model_preset("auffusion", path=broken)
    assert caught.value.field == "auffusion.steps" and caught.value.value == -3
    with pytest.raises(InvalidInputError) as missing:
        load_model_preset("no-such-backend", path=broken)
    assert missing.value.field == "backend"


def test_unknown_key_in_preset_is_rejected(tmp_path: Path) -> None:
    broken = tmp_path / "models.toml"
    broken.write_text('[audioldm2]\nmodel="m"\nsample_rate=16000\nchannels=1\nmax_segment_s=10\n'
                      'length_quantum_s=2\noverlap_s=1\nsteps=10\nguidance=3\nscheduler="DDIMScheduler"\nstesp=4\n')
    with pytest.raises(InvalidInputError) as caught:
        load_model_preset("audioldm2", path=broken)
    assert caught.value.field == "audioldm2.stesp"


def test_dtype_auto_is_half_on_gpu_and_float32_on_cpu() -> None:
    assert resolve_dtype("auto", torch.device("cpu"), gpu_dtype="float16") == torch.float32
    assert resolve_dtype("auto", torch.device("cuda"), gpu_dtype="bfloat16") == torch.bfloat16
    with pytest.raises(InvalidInputError) as caught:
        resolve_dtype("float8", torch.device("cpu"), gpu_dtype="float16")
    assert caught.value.field == "dtype"


def test_short_events_round_up_to_the_quantum_and_long_ones_overlap() -> None:
    assert plan_segments(3.0, max_segment_s=10.24, quantum_s=2.56, overlap_s=1.0) == [5.12]
    assert plan_segments(10.24, max_segment_s=10.24, quantum_s=2.56, overlap_s=1.0) == [10.24]
    segments = plan_segments(25.0, max_segment_s=10.0, quantum_s=10.0, overlap_s=1.0)
    assert segments == [10.0, 10.0, 10.0]
    covered = sum(segments) - (len(segments) - 1) * 1.0
    assert covered >= 25.0 and covered - 9.0 < 25.0  # one fewer segment would not cover it


def test_segment_seeds_are_stable_and_distinct() -> None:
    assert segment_seed(7, 0) == 7
    assert segment_seed(7, 1) == segment_seed(7, 1) != segment_seed(7, 2)
    jobs = plan_jobs([GenerationRequest("rain", 25.0, 7, 48000)], max_segment_s=10.0, quantum_s=10.0, overlap_s=1.0)
    assert [job.segment_index for job in jobs] == [0, 1, 2] and len({job.seed for job in jobs}) == 3


def test_join_crossfades_with_equal_power() -> None:
    ones = np.ones((1, 100), dtype=np.float32)
    joined = join_segments([ones, ones], overlap_frames=20)
    assert joined.shape == (1, 180)
    # Uncorrelated noise keeps its power through the joint with cos/sin gains.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1, 40000)), rng.standard_normal((1, 40000))
    joint = join_segments([a, b], overlap_frames=40000)
    assert np.mean(joint**2) == pytest.approx(1.0, rel=0.03)


def test_request_rate_is_exact_length() -> None:
    native = np.random.default_rng(1).standard_normal((2, 16000)).astype(np.float32)
    request = GenerationRequest("x", 0.7333, 1, 48000)
    out = to_request_rate(native, native_rate=16000, request=request)
    assert out.shape == (2, round(0.7333 * 48000)) and out.dtype == np.float32 and out.flags.c_contiguous


def _jobs(count: int) -> list[SegmentJob]:
    return [SegmentJob(i, 0, f"event {i}", 1.0, i) for i in range(count)]


def _fake_render(sizes: list[int], *, fits: int, poison: str | None = None):
    def render(jobs, on_step):
        sizes.append(len(jobs))
        if len(jobs) > fits or any(job.description == poison for job in jobs):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        for step in range(1, 4):
            on_step(step)
        return [np.full((1, 4), job.seed, dtype=np.float32) for job in jobs]

    return render


def test_out_of_memory_halves_the_batch_and_later_chunks_start_small() -> None:
    sizes: list[int] = []
    outcomes = run_in_batches(_jobs(8), _fake_render(sizes, fits=2), group_key=lambda j: 0, max_batch=8, steps=3)
    assert sizes == [8, 4, 2, 2, 2, 2]
    assert [float(o[0, 0]) for o in outcomes] == list(range(8))


def test_a_single_job_that_never_fits_fails_alone() -> None:
    sizes: list[int] = []
    outcomes = run_in_batches(_jobs(4), _fake_render(sizes, fits=4, poison="event 2"),
                              group_key=lambda j: 0, max_batch=4, steps=3)
    assert isinstance(outcomes[2], str) and "out of memory" in outcomes[2]
    assert [float(outcomes[i][0, 0]) for i in (0, 1, 3)] == [0.0, 1.0, 3.0]


def test_progress_is_monotone_and_ends_at_one_and_cancel_stops_between_steps() -> None:
    fractions: list[float] = []
    run_in_batches(_jobs(3), _fake_render([], fits=8), group_key=lambda j: j.request_index, max_batch=8, steps=3,
                   progress=lambda stage, f: fractions.append(f))
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 9

    token = CancelToken()
    seen: list[float] = []

    def cancel_at_first(stage: str, fraction: float) -> None:
        seen.append(fraction)
        token.cancel("user pressed stop")

    with pytest.raises(CancelledError, match="user pressed stop"):
        run_in_batches(_jobs(3), _fake_render([], fits=8), group_key=lambda j: j.request_index, max_batch=8,
                       steps=3, progress=cancel_at_first, cancel=token)
    assert seen == [pytest.approx(1 / 9)]


def test_other_errors_fail_only_their_chunk() -> None:
    def render(jobs, on_step):
        if jobs[0].length_s > 1.5:
            raise ValueError("prompt too long")
        return [np.zeros((1, 2), dtype=np.float32) for _ in jobs]

    jobs = [SegmentJob(0, 0, "a", 1.0, 0), SegmentJob(1, 0, "b", 2.0, 1)]
    outcomes = run_in_batches(jobs, render, group_key=lambda j: j.length_s, max_batch=4, steps=1)
    assert isinstance(outcomes[0], np.ndarray) and outcomes[1] == "ValueError: prompt too long"
    assert not math.isnan(float(outcomes[0].sum()))


def test_caches_are_emptied_after_the_failed_call_has_let_go_of_its_tensors(monkeypatch) -> None:
    # An OOM's traceback holds the failed call's frames (its activations); emptying the device
    # cache while they are alive gives nothing back. The retry must come after they are gone.
    import weakref

    from engine.generators import _diffusion_batching

    class Activations:
        pass

    alive_at_free: list[bool] = []
    refs: list[weakref.ref] = []

    def render(jobs, on_step):
        activations = Activations()  # a local of the failing frame, like a UNet's hidden states
        refs.append(weakref.ref(activations))
        if len(jobs) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return [np.zeros((1, 2), dtype=np.float32) for _ in jobs]

    def free() -> None:
        alive_at_free.append(refs[-1]() is not None)

    monkeypatch.setattr(_diffusion_batching, "_free_after_oom", free)
    outcomes = run_in_batches(_jobs(2), render, group_key=lambda j: 0, max_batch=2, steps=1)
    assert all(isinstance(o, np.ndarray) for o in outcomes)
    assert alive_at_free == [False]


def test_out_of_memory_is_recognised_on_torch_without_the_generic_class(monkeypatch) -> None:
    # pyproject allows torch 2.3/2.4, which have torch.cuda.OutOfMemoryError but no
    # torch.OutOfMemoryError; an unrelated render error must not become an AttributeError.
    from engine.generators._diffusion_batching import is_out_of_memory

    cuda_kind = torch.cuda.OutOfMemoryError
    monkeypatch.delattr(torch, "OutOfMemoryError")
    assert is_out_of_memory(cuda_kind("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"))
    assert not is_out_of_memory(ValueError("prompt too long"))
    outcomes = run_in_batches(_jobs(2), lambda jobs, on_step: (_ for _ in ()).throw(ValueError("bad")),
                              group_key=lambda j: 0, max_batch=2, steps=1)
    assert outcomes == ["ValueError: bad", "ValueError: bad"]


def test_segment_maths_imports_no_torch() -> None:
    # Planning and joining are numpy; a caller that only plans (the renderer's preview, a
    # benchmark) must not pay torch's import time.
    import subprocess
    import sys

    code = ("import sys; import engine.generators._diffusion_segments, engine.generators._diffusion_presets; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"
