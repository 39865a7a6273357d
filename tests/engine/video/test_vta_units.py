"""Small pieces of the VTA path without model weights: k-means over features, the mel analysis
stage 2 trains on, picture-range seeds, and the refusals of the checkpoint reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.errors import InvalidInputError
from engine.generators.hifigan import log_mel
from engine.plan import Event, Plan
from engine.video.checkpoint import CONFIG_FILE, check_same_config, create_checkpoint, read_checkpoint
from engine.video.units import fit_centroids, media_files
from engine.video.vta_generator import plan_for_vta
from engine.video.vta_model import load_vta_config
from tests.engine.tiny_models import TINY_HIFIGAN


def test_kmeans_finds_separated_clusters_and_refuses_too_few_frames() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    features = np.concatenate([c + 0.1 * rng.standard_normal((200, 2)) for c in centres]).astype(np.float32)
    found, inertia = fit_centroids(features, n_clusters=3, seed=1)
    assert found.shape == (3, 2) and found.dtype == np.float32
    for centre in centres:  # every true centre has a fitted centroid next to it
        assert np.linalg.norm(found - centre, axis=1).min() < 0.1
    assert inertia < 600 * 0.1
    with pytest.raises(InvalidInputError) as caught:
        fit_centroids(features[:5], n_clusters=8)
    assert caught.value.field == "clusters" and "5 feature frames" in str(caught.value)


def test_media_files_lists_audio_and_video_and_refuses_an_empty_folder(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("a/one.wav", "two.MP4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in media_files(tmp_path)] == ["one.wav", "two.MP4"]  # sorted by path, recursive
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError) as caught:
        media_files(tmp_path / "empty")
    assert "no audio or video files" in str(caught.value)


def test_log_mel_puts_a_tone_in_its_mel_band() -> None:
    # 16 mel bins over 0..1 kHz at 2 kHz: a 250 Hz tone must light a low band, 800 Hz a high one.
    rate, hop = TINY_HIFIGAN["sampling_rate"], 10
    t = np.arange(4000) / rate
    low = log_mel(torch.tensor(np.sin(2 * np.pi * 250 * t), dtype=torch.float32)[None], TINY_HIFIGAN)
    high = log_mel(torch.tensor(np.sin(2 * np.pi * 800 * t), dtype=torch.float32)[None], TINY_HIFIGAN)
    assert low.shape == (1, 16, 4000 // hop)
    low_bin, high_bin = int(low[0].mean(1).argmax()), int(high[0].mean(1).argmax())
    assert low_bin < 8 <= high_bin
    silent = log_mel(torch.zeros(1, 400), TINY_HIFIGAN)
    assert torch.allclose(silent, torch.full_like(silent, float(np.log(1e-5))), atol=0.5)


def test_picture_seeds_name_the_range_not_the_words() -> None:
    events = (Event(id="e1", description="a single clap", start_s=0.1, end_s=0.5, seed=7),
              Event(id="e2", description="a single clap", start_s=0.9, end_s=1.3, seed=7),
              Event(id="e3", description="a bed", start_s=0.0, end_s=2.0, seed=9))
    seeded, ranges = plan_for_vta(Plan(duration_s=2.0, events=events))
    seeds = [e.seed for e in seeded.events]
    assert len(set(seeds)) == 3  # the same words on two ranges are two renders
    assert ranges[seeds[1]].start_s == 0.9 and ranges[seeds[1]].end_s == 1.3
    again, _ = plan_for_vta(Plan(duration_s=2.0, events=events))
    assert [e.seed for e in again.events] == seeds
    assert [(e.start_s, e.end_s, e.description) for e in seeded.events] == \
        [(e.start_s, e.end_s, e.description) for e in events]


def _config(**overrides):
    return load_vta_config(n_audio_tokens=4, centroid_dim=3, **overrides)


def test_checkpoint_reader_names_each_bad_part(tmp_path) -> None:
    centroids = tmp_path / "c.npy"
    np.save(centroids, np.ones((4, 3), np.float32))
    folder = create_checkpoint(tmp_path / "ck", config=_config(), centroids_path=centroids).folder
    with pytest.raises(InvalidInputError) as exists:
        create_checkpoint(folder, config=_config(), centroids_path=centroids)
    assert "already holds" in str(exists.value)

    info = read_checkpoint(folder, need=())
    assert info.config.n_audio_tokens == 4 and info.steps == {}
    with pytest.raises(InvalidInputError) as stage2:
        read_checkpoint(folder, need=("stage2",))
    assert "visual_attention.safetensors" in str(stage2.value) and "vta train stage2" in str(stage2.value)

    (folder / "lora").mkdir()
    (folder / "lora" / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(InvalidInputError) as pickled:
        read_checkpoint(folder, need=("stage1",))
    assert "pickle" in str(pickled.value)

    with pytest.raises(InvalidInputError) as other:
        check_same_config(info, _config(lora_r=8))
    assert other.value.field == "lora_r"

    meta = json.loads((folder / CONFIG_FILE).read_text())
    meta["config"]["lora_rank"] = 3
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(InvalidInputError) as unknown:
        read_checkpoint(folder, need=())
    assert unknown.value.field == "lora_rank"
    (folder / CONFIG_FILE).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InvalidInputError) as fmt:
        read_checkpoint(folder, need=())
    assert "audio-agent-vta/1" in str(fmt.value)
    with pytest.raises(InvalidInputError) as missing:
        read_checkpoint(tmp_path / "nowhere")
    assert missing.value.field == "checkpoint"
