"""Auffusion backend on a tiny random checkpoint saved in the published layout, on CPU.

Tiny geometry: 16 mel bins, hop 10 at 2 kHz, images of 32 frames = 0.16 s whose last 2 frames
stand for the published model's learned-silence padding, so 30 frames = 0.15 s of content.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.errors import CancelledError, InvalidInputError  # noqa: E402
from engine.generators import GenerationRequest, create_generator  # noqa: E402
from engine.generators._diffusion_models import release_resident_models, resident_keys  # noqa: E402
from engine.generators.auffusion import AuffusionGenerator  # noqa: E402
from engine.generators.hifigan import HiFiGAN, load_hifigan  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from engine.render import fit_to_length  # noqa: E402
from tests.engine.tiny_models import (  # noqa: E402
    TINY_HIFIGAN,
    _weight_norm_layout,
    build_tiny_auffusion,
    build_tiny_auffusion_plain,
)

CONTENT_S = 30 * 10 / 2000
# Requests obey the engine's sample-rate rule (engine.limits, >= 8 kHz); the tiny vocoder renders
# at 2 kHz and the backend resamples (4 output samples per native one).
RATE = 8000
OPTIONS = {"steps": 3, "clip_frames": 32, "pad_frames": 2, "overlap_s": 0.04, "dtype": "float32", "device": "cpu"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_auffusion(tmp_path_factory.mktemp("tiny") / "auffusion")
    yield folder
    release_resident_models()


@pytest.fixture()
def generator(checkpoint: Path) -> AuffusionGenerator:
    return create_generator("auffusion", model=str(checkpoint), **OPTIONS)


def _one(generator, description: str, length_s: float, seed: int, rate: int = RATE) -> np.ndarray:
    result = generator.generate([GenerationRequest(description, length_s, seed, rate)])[0]
    assert result.ok, result.error
    return result.audio


def test_text_to_waveform_through_the_published_layout(generator) -> None:
    audio = _one(generator, "a dog barks twice", 0.1, 1, rate=48000)
    assert audio.dtype == np.float32 and audio.shape == (1, 4800)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    # The renderer's fit is then a no-op: the backend already returns the exact event length.
    assert np.array_equal(fit_to_length(audio, frames=4800, sample_rate=48000), audio)


def test_environment_variable_points_the_backend_at_local_weights(checkpoint: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUDIO_AGENT_AUFFUSION_MODEL", str(checkpoint))
    generator = create_generator("auffusion", **{k: v for k, v in OPTIONS.items()})
    assert generator.model == str(checkpoint) and generator.identity()["revision"].startswith("local-")


def test_same_seed_same_audio_and_different_seeds_differ(generator) -> None:
    first = _one(generator, "rain on a tin roof", 0.12, 5)
    again = _one(generator, "rain on a tin roof", 0.12, 5)
    other = _one(generator, "rain on a tin roof", 0.12, 6)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other, rtol=1e-3, atol=1e-6)


def test_batched_equals_one_call_per_event_and_uses_one_call(checkpoint: Path, monkeypatch) -> None:
    generator = create_generator("auffusion", model=str(checkpoint), **OPTIONS)
    sizes: list[int] = []
    render = AuffusionGenerator._render_batch
    monkeypatch.setattr(AuffusionGenerator, "_render_batch",
                        lambda self, p, jobs, step: sizes.append(len(jobs)) or render(self, p, jobs, step))
    requests = [GenerationRequest("door slam", 0.05, 1, RATE), GenerationRequest("birds chirping in a park", 0.15, 2, RATE),
                GenerationRequest("engine idle", 0.08, 3, RATE)]
    batched = generator.generate(requests)
    assert sizes == [3]
    for request, result in zip(requests, batched):
        alone = generator.generate([request])[0]
        np.testing.assert_allclose(result.audio, alone.audio, atol=1e-5)


def test_long_event_is_segmented_and_crossfaded(checkpoint: Path, monkeypatch) -> None:
    generator = create_generator("auffusion", model=str(checkpoint), **OPTIONS)
    sizes: list[int] = []
    render = AuffusionGenerator._render_batch
    monkeypatch.setattr(AuffusionGenerator, "_render_batch",
                        lambda self, p, jobs, step: sizes.append(len(jobs)) or render(self, p, jobs, step))
    long_audio = _one(generator, "wind through trees", 0.5, 9)
    assert long_audio.shape == (1, 4000)
    assert sizes == [5]  # (0.5 - 0.04) / (0.15 - 0.04) -> 5 overlapping clips in one call
    # Until the first crossfade starts, the long event is exactly the first clip of that seed.
    head = _one(generator, "wind through trees", CONTENT_S, 9)
    # (2 kHz -> 8 kHz: the resampler's long filter tails let the joint leak in at the 1e-3 level)
    untouched = round((CONTENT_S - 0.04) * RATE)
    np.testing.assert_allclose(long_audio[:, : untouched - 80], head[:, : untouched - 80], atol=2e-3)
    assert np.abs(long_audio[:, untouched:1200] - head[:, untouched:1200]).max() > 2e-2


def test_progress_reaches_every_step_and_cancel_stops_between_steps(generator) -> None:
    fractions: list[tuple[str, float]] = []
    generator.generate([GenerationRequest("a bell", 0.1, 1, RATE)], progress=lambda s, f: fractions.append((s, f)))
    assert [round(f, 3) for _, f in fractions] == [0.333, 0.667, 1.0] and {s for s, _ in fractions} == {"generate"}

    token = CancelToken()
    steps_seen: list[float] = []

    def stop(stage: str, fraction: float) -> None:
        steps_seen.append(fraction)
        token.cancel()

    with pytest.raises(CancelledError):
        generator.generate([GenerationRequest("a bell", 0.1, 1, RATE)], progress=stop, cancel=token)
    assert len(steps_seen) == 1


def test_injected_out_of_memory_halves_and_matches_unbatched(checkpoint: Path, monkeypatch) -> None:
    generator = create_generator("auffusion", model=str(checkpoint), **OPTIONS)
    sizes: list[int] = []
    render = AuffusionGenerator._render_batch

    def limited(self, pipeline, jobs, on_step):
        sizes.append(len(jobs))
        if len(jobs) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        if any(job.description == "impossible" for job in jobs):
            raise torch.OutOfMemoryError("CUDA out of memory (injected, always)")
        return render(self, pipeline, jobs, on_step)

    requests = [GenerationRequest(f"sound {i}", 0.1, i, RATE) for i in range(4)]
    reference = [generator.generate([r])[0].audio for r in requests]
    monkeypatch.setattr(AuffusionGenerator, "_render_batch", limited)
    sizes.clear()
    results = generator.generate(requests)
    assert sizes == [4, 2, 2]
    for result, alone in zip(results, reference):
        np.testing.assert_allclose(result.audio, alone, atol=1e-5)

    mixed = generator.generate([requests[0], GenerationRequest("impossible", 0.1, 1, RATE)])
    assert mixed[0].ok and not mixed[1].ok and "out of memory" in mixed[1].error


def test_identity_names_everything_that_changes_samples(checkpoint: Path, tmp_path: Path) -> None:
    identity = create_generator("auffusion", model=str(checkpoint), **OPTIONS).identity()
    for key in ("backend", "model", "revision", "steps", "guidance", "scheduler", "dtype", "clip_frames"):
        assert key in identity
    assert identity["backend"] == "auffusion" and identity["scheduler"] == "DPMSolverMultistepScheduler"
    assert identity["revision"].startswith("local-")
    more_steps = create_generator("auffusion", model=str(checkpoint), **{**OPTIONS, "steps": 4}).identity()
    assert more_steps != identity
    # Editing a config file changes the folder's identity.
    copy = shutil.copytree(checkpoint, tmp_path / "copy")
    assert create_generator("auffusion", model=str(copy), **OPTIONS).identity()["revision"] == identity["revision"]
    config = json.loads((copy / "unet" / "config.json").read_text())
    config["sample_size"] = 17
    (copy / "unet" / "config.json").write_text(json.dumps(config))
    assert create_generator("auffusion", model=str(copy), **OPTIONS).identity()["revision"] != identity["revision"]


def test_models_stay_resident_and_switching_frees_the_old_one(checkpoint: Path, tmp_path: Path) -> None:
    first = create_generator("auffusion", model=str(checkpoint), **OPTIONS)
    second = create_generator("auffusion", model=str(checkpoint), **{**OPTIONS, "steps": 2})
    assert first.pipeline() is second.pipeline()
    other = shutil.copytree(checkpoint, tmp_path / "other")
    create_generator("auffusion", model=str(other), **OPTIONS).pipeline()
    keys = resident_keys()
    assert len(keys) == 1 and keys[0][1] == str(other)


def test_vocoder_checkpoint_with_weight_norm_pairs_loads_exactly(tmp_path: Path) -> None:
    torch.manual_seed(3)
    original = HiFiGAN(TINY_HIFIGAN).eval()
    stored = _weight_norm_layout(original.state_dict())
    assert "conv_pre.weight_g" in stored and "conv_pre.weight" not in stored
    (tmp_path / "config.json").write_text(json.dumps(TINY_HIFIGAN))
    torch.save({"generator": stored}, tmp_path / "vocoder.pt")
    loaded = load_hifigan(tmp_path)
    mel = torch.randn(2, 16, 12)
    with torch.no_grad():
        expected, wave = original(mel), loaded(mel)
    assert wave.shape == (2, 1, 12 * 10)  # exactly frames x hop, odd (kernel - rate) included
    torch.testing.assert_close(wave, expected, rtol=1e-5, atol=1e-6)


def test_missing_layout_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    generator = create_generator("auffusion", model=str(tmp_path / "empty"), **OPTIONS)
    with pytest.raises(InvalidInputError) as caught:
        generator.generate([GenerationRequest("x", 0.1, 1, RATE)])
    assert caught.value.field == "model" and "condition_config.json" in str(caught.value)


def test_a_malformed_request_fails_alone(generator) -> None:
    results = generator.generate([GenerationRequest("   ", 0.1, 1, RATE), GenerationRequest("a bell", 0.1, 1, RATE),
                                  GenerationRequest("a gong", -1.0, 1, RATE)])
    assert not results[0].ok and "description" in results[0].error
    assert results[1].ok and results[1].audio.shape == (1, 800)
    assert not results[2].ok and "length_s=-1.0" in results[2].error


def test_a_different_clip_length_gets_its_own_resident_model(checkpoint: Path) -> None:
    # clip_frames is baked into the loaded pipeline: sharing it would render the second
    # generator's events at the first one's clip length while its cache key says otherwise.
    short = create_generator("auffusion", model=str(checkpoint), **OPTIONS)
    longer = create_generator("auffusion", model=str(checkpoint), **{**OPTIONS, "clip_frames": 64})
    assert short.pipeline().clip_frames == 32
    assert longer.pipeline().clip_frames == 64
    assert longer.identity() != short.identity()


@pytest.mark.parametrize("style", ["legacy", "parametrize"])
def test_vocoder_folds_torch_weight_norm_of_every_conv_kind(tmp_path: Path, style: str) -> None:
    # The published vocoder.pt was saved from a generator wrapped in torch's own weight norm
    # (Conv1d and ConvTranspose1d alike, dim 0). Build that with torch, give every magnitude g
    # its own value (so g != |v|), and check our fold reproduces the wrapped module's output.
    import warnings

    torch.manual_seed(4)
    wrapped = HiFiGAN(TINY_HIFIGAN).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated, not gone
        for module in wrapped.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                if style == "legacy":
                    torch.nn.utils.weight_norm(module)
                else:
                    torch.nn.utils.parametrizations.weight_norm(module)
    with torch.no_grad():
        for name, tensor in wrapped.state_dict(keep_vars=True).items():
            if name.endswith(("weight_g", "original0")):
                tensor.mul_(torch.rand_like(tensor) + 0.5)
    state = wrapped.state_dict()
    assert any(k.endswith(("weight_g", "original0")) for k in state)
    (tmp_path / "config.json").write_text(json.dumps(TINY_HIFIGAN))
    torch.save({"generator": state}, tmp_path / "vocoder.pt")
    loaded = load_hifigan(tmp_path)
    mel = torch.randn(1, 16, 9)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), wrapped(mel), rtol=1e-5, atol=1e-6)


def test_visual_tokens_condition_sampling_through_the_decoupled_attention(checkpoint: Path) -> None:
    # The VTA path's last hop: k-means centroids steer Auffusion's UNet. With lambda 0 the audio
    # is the text-only audio exactly; with 0.5 it changes; a UNet without the visual attention
    # refuses the tokens instead of silently dropping them.
    from engine.video.vta_model import install_visual_attention, set_visual_scale

    def fresh():
        return create_generator("auffusion", model=str(checkpoint), **OPTIONS)._load()

    def sample(pipeline, tokens=None):
        generators = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
        return pipeline.sample(["a door knock", "steps on gravel"], generators, steps=3, guidance=7.5,
                               on_step=lambda step: None, visual_tokens=tokens)

    plain = fresh()
    text_only = sample(plain)
    tokens = torch.randn(1, 10, 6, generator=torch.Generator().manual_seed(3))
    with pytest.raises(InvalidInputError) as refused:
        sample(plain, tokens)
    assert refused.value.field == "visual_tokens"

    pipeline = fresh()
    install_visual_attention(pipeline.unet, visual_dim=6, scale=0.0)
    np.testing.assert_array_equal(sample(pipeline, tokens), text_only)
    set_visual_scale(pipeline.unet, 0.5)
    guided = sample(pipeline, tokens)
    assert guided.shape == text_only.shape and not np.allclose(guided, text_only, atol=1e-6)
    with pytest.raises(InvalidInputError):
        sample(pipeline, torch.randn(3, 10, 6))


def test_placement_comes_from_the_environment_or_config_file_when_not_given(
    checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:
    # The server and the CLI build backends by name alone: device, precision, offload and batch
    # size must be settable without code.
    for name in ("DEVICE", "DTYPE", "CPU_OFFLOAD", "MAX_BATCH"):
        monkeypatch.delenv(f"AUDIO_AGENT_DIFFUSION_{name}", raising=False)
    config = tmp_path / "config.toml"
    config.write_text('[diffusion]\ndevice = "cpu"\ndtype = "bfloat16"\nmax_batch = 3\n')
    monkeypatch.setenv("AUDIO_AGENT_CONFIG", str(config))
    base = {"steps": 3, "clip_frames": 32}
    from_file = create_generator("auffusion", model=str(checkpoint), **base)
    assert (from_file.dtype, from_file.max_batch, from_file.identity()["dtype"]) == (torch.bfloat16, 3, "bfloat16")
    monkeypatch.setenv("AUDIO_AGENT_DIFFUSION_MAX_BATCH", "2")
    assert create_generator("auffusion", model=str(checkpoint), **base).max_batch == 2  # env beats file
    explicit = create_generator("auffusion", model=str(checkpoint), **base, dtype="float32", max_batch=5)
    assert (explicit.dtype, explicit.max_batch) == (torch.float32, 5)  # arguments beat both
    monkeypatch.setenv("AUDIO_AGENT_DIFFUSION_MAX_BATCH", "zero")
    with pytest.raises(InvalidInputError) as bad:
        create_generator("auffusion", model=str(checkpoint), **base)
    assert bad.value.field == "max_batch"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_asking_for_a_missing_gpu_is_refused_by_name(checkpoint: Path) -> None:
    with pytest.raises(InvalidInputError) as caught:
        create_generator("auffusion", model=str(checkpoint), device="cuda", clip_frames=32)
    assert caught.value.field == "device" and "no CUDA device" in str(caught.value)


# --------------------------------------------------------------------------- content length and padding


def _pad_is_silent(monkeypatch, calls: list[int]) -> None:
    """Make every rendered image what the published model renders: its content (here a steady
    level of 1.0, so joints can be read exactly) followed by the learned silence of the padding."""
    from engine.generators.auffusion import AuffusionPipeline

    def sample(self, prompts, generators, **_):
        calls.append(len(prompts))
        wave = np.ones((len(prompts), 1, self.clip_frames * self.vocoder.hop_length), dtype=np.float32)
        wave[..., self.content_samples:] = 0.0
        return wave

    monkeypatch.setattr(AuffusionPipeline, "sample", sample)


def test_an_event_between_content_and_image_length_does_not_end_in_the_padding(generator, monkeypatch) -> None:
    # 0.155 s lies between the 0.15 s of content and the 0.16 s image. Rendered as one image and
    # trimmed, its last 5 ms would be the padding's silence; it must be two clips instead.
    calls: list[int] = []
    _pad_is_silent(monkeypatch, calls)
    audio = _one(generator, "a long creak", 0.155, 4)
    assert audio.shape == (1, 1240) and calls == [2]
    # Padding would cover the last 5 ms (40 samples here); the resampler rings at the very end.
    assert np.abs(audio[:, -100:-10]).min() > 0.9  # the old way: ~0 over the last 40
    _one(generator, "a long creak", CONTENT_S, 4)
    assert calls[-1] == 1  # exactly the content length still takes one image


def test_long_events_do_not_dip_at_the_crossfades(generator, monkeypatch) -> None:
    # Fading one clip out over its padding while the next fades in leaves a hole of up to -3 dB
    # at every joint; content-to-content equal-power fades of a steady level never drop below it.
    calls: list[int] = []
    _pad_is_silent(monkeypatch, calls)
    audio = _one(generator, "steady rain", 0.6, 8)
    assert audio.shape == (1, 4800) and calls == [5]
    assert np.abs(audio[:, 40:-40]).min() > 0.97  # the ends are the resampler's edges


def test_generator_geometry_counts_content_and_refuses_bad_padding(checkpoint: Path, generator) -> None:
    pipeline = generator.pipeline()
    assert (pipeline.clip_s, pipeline.content_s) == (pytest.approx(0.16), pytest.approx(CONTENT_S))
    geometry = generator._geometry(pipeline)
    assert geometry.max_segment_s == geometry.quantum_s == pytest.approx(CONTENT_S)
    for bad in (-1, 32, 1.5):
        with pytest.raises(InvalidInputError) as caught:
            create_generator("auffusion", model=str(checkpoint), **{**OPTIONS, "pad_frames": bad})
        assert caught.value.field == "pad_frames"
    other = create_generator("auffusion", model=str(checkpoint), **{**OPTIONS, "pad_frames": 4})
    assert other.identity() != generator.identity()


# --------------------------------------------------------------------------- the no-adapter layout


@pytest.fixture(scope="module")
def plain_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_auffusion_plain(tmp_path_factory.mktemp("tiny") / "auffusion-full-no-adapter")


def test_plain_stable_diffusion_layout_renders_with_the_empty_prompt_as_unconditional(plain_checkpoint) -> None:
    generator = create_generator("auffusion", model=str(plain_checkpoint), **OPTIONS)
    audio = _one(generator, "a kitten mewing", 0.1, 3)
    assert audio.shape == (1, 800) and np.isfinite(audio).all() and np.abs(audio).max() > 0
    pipeline = generator.pipeline()
    assert pipeline.layout == "plain"
    with torch.inference_mode():
        condition = pipeline.encode(["a kitten mewing", "rain"])
        unconditional = pipeline.unconditional(condition)
        empty = pipeline.encode([""])
    # Prompts are padded to the full 77 tokens, as StableDiffusionPipeline encodes them.
    assert condition.shape == (2, 77, 8)
    # The unconditional is CLIP(""), not zeros, and the same row for every prompt of the batch.
    assert torch.equal(unconditional[0], empty[0]) and torch.equal(unconditional[1], empty[0])
    assert unconditional.abs().max() > 0


def test_adapter_layout_keeps_its_all_zero_unconditional(generator) -> None:
    pipeline = generator.pipeline()
    with torch.inference_mode():
        condition = pipeline.encode(["a kitten mewing"])
    assert pipeline.layout == "adapter" and not pipeline.unconditional(condition).any()


def test_a_broken_plain_layout_or_another_pipeline_is_refused_with_the_reason(plain_checkpoint, tmp_path) -> None:
    other = shutil.copytree(plain_checkpoint, tmp_path / "sdxl")
    (other / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(InvalidInputError) as wrong_class:
        create_generator("auffusion", model=str(other), **OPTIONS).pipeline()
    assert "StableDiffusionXLPipeline" in str(wrong_class.value) and "not Auffusion" in str(wrong_class.value)

    no_vocoder = shutil.copytree(plain_checkpoint, tmp_path / "no-vocoder")
    shutil.rmtree(no_vocoder / "vocoder")
    with pytest.raises(InvalidInputError) as missing:
        create_generator("auffusion", model=str(no_vocoder), **OPTIONS).pipeline()
    assert "vocoder/" in str(missing.value) and missing.value.field == "model"


def test_audio_encodes_to_latents_of_the_image_geometry(generator) -> None:
    # Stage 2 of the VTA model trains on the latents of real clips' mel images.
    pipeline = generator.pipeline()
    waves = np.random.default_rng(0).standard_normal((2, 500)).astype(np.float32) * 0.1
    first = pipeline.encode_audio(waves, generator=torch.Generator().manual_seed(1))
    again = pipeline.encode_audio(waves, generator=torch.Generator().manual_seed(1))
    assert first.shape == (2, 4, 16 // 2, 32 // 2) and torch.equal(first, again)
    assert torch.isfinite(first).all() and not torch.allclose(first[0], first[1])
