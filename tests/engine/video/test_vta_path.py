"""The VTA path end to end through the real commands on tiny random models built in code:
`vta units` on generated clips, `vta train stage1` and `stage2` (resumed), `video-cue --generator
vta`, `vta eval`. Every model is saved and loaded through the loaders a user's weights go through."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from engine.errors import InvalidInputError
from engine.manifest import read_manifest
from engine.video.checkpoint import read_checkpoint
from server.cli import main
from tests.engine.video import tiny_vta

os.environ.setdefault("HF_HUB_OFFLINE", "1")
UNITS = tiny_vta.UNITS


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tiny_vta.tiny_world(tmp_path_factory.mktemp("vta-path"))


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def test_the_whole_path_units_train_use_and_eval(world, flash_video, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AUDIO_AGENT_CACHE_DIR", str(tmp_path / "cache"))
    data, config = world["data"], world["config"]

    # 1. Units: HuBERT layer-9 features of every clip, k-means centroids.
    centroids = tmp_path / "centroids.npy"
    code, out, err = _run(capsys, "vta", "units", data, "--out", centroids, "--config", config,
                          "--clusters", UNITS)
    assert code == 0, err
    assert out == str(centroids) and "features 2/2" in err
    table = np.load(centroids, allow_pickle=False)
    assert table.shape == (UNITS, tiny_vta.HUBERT_DIM) and np.isfinite(table).all()

    # 2. Both stages, saved every step; stage 1 resumed from its last saved step.
    checkpoint = tmp_path / "ckpt"
    code, out, err = _run(capsys, "vta", "train", "stage1", data, "--out", checkpoint, "--centroids", centroids,
                          "--config", config, "--steps", 2, "--save-every", 1)
    assert code == 0, err
    assert out == str(checkpoint) and "stage1 step 2/2 loss" in err
    code, _, err = _run(capsys, "vta", "train", "stage1", data, "--out", checkpoint, "--steps", 3)
    assert code == 0, err
    assert "stage1 step 3/3" in err and "step 1/3" not in err and "steps 2..3" in err
    code, _, err = _run(capsys, "vta", "train", "stage2", data, "--out", checkpoint, "--steps", 2)
    assert code == 0, err
    assert "stage2 step 2/2 loss" in err
    info = read_checkpoint(checkpoint)
    assert info.steps == {"stage1": 3, "stage2": 2} and info.visual["visual_dim"] == tiny_vta.HUBERT_DIM

    # 3. video-cue with the VTA model: the onset planner places events; stems land on them.
    path, truth = flash_video
    cue = tmp_path / "cue"
    code, out, err = _run(capsys, "video-cue", path, "--start", 0.5, "--end", 2.5, "--hint", "hand claps",
                          "--out", cue, "--generator", "vta", "--checkpoint", checkpoint, "--lambda", 0.7,
                          "--steps", 2, "--no-cache")
    assert code == 0, err
    manifest = read_manifest(out.splitlines()[-1])
    inside = [t - 0.5 for t in truth if 0.5 <= t < 2.5]
    assert sorted(e.start_s for e in manifest.events) == pytest.approx(inside, abs=0.041)
    for event in manifest.events:
        audio, rate = sf.read(event.stem_path, dtype="float32", always_2d=True)
        assert audio.shape[0] == round((event.end_s - event.start_s) * rate)
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert json.loads((cue / "manifest.json").read_text())["backend"] == "vta"

    # 4. eval: Onset ACC / AP (and the AVSync-style AP) as JSON.
    code, out, err = _run(capsys, "vta", "eval", data, "--checkpoint", checkpoint, "--steps", 2,
                          "--out", tmp_path / "eval")
    assert code == 0, err
    result = json.loads(out)
    assert result["n_clips"] == 2 and set(result["mean"]) == {"acc", "ap", "ap_avsync"}
    assert all(0.0 <= value <= 1.0 for value in result["mean"].values())
    assert (tmp_path / "eval" / "hammer" / "take1.gen.wav").is_file()


def test_stage1_resumed_equals_one_uninterrupted_run(world, tmp_path, capsys):
    data, config = world["data"], world["config"]
    centroids = tmp_path / "c.npy"
    np.save(centroids, np.random.default_rng(0).standard_normal((UNITS, tiny_vta.HUBERT_DIM)).astype(np.float32))
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ["--centroids", centroids, "--config", config, "--save-every", 1]
    assert _run(capsys, "vta", "train", "stage1", data, "--out", straight, "--steps", 3, *common)[0] == 0
    assert _run(capsys, "vta", "train", "stage1", data, "--out", resumed, "--steps", 1, *common)[0] == 0
    assert _run(capsys, "vta", "train", "stage1", data, "--out", resumed, "--steps", 3)[0] == 0
    from safetensors.numpy import load_file

    for name in ("connector.safetensors", "lora/adapter_model.safetensors"):
        one, two = load_file(straight / name), load_file(resumed / name)
        assert one.keys() == two.keys()
        for key in one:
            np.testing.assert_allclose(one[key], two[key], rtol=1e-5, atol=1e-6)


def test_missing_parts_are_named_with_the_command_that_makes_them(world, tmp_path, capsys):
    data, config = world["data"], world["config"]
    code, _, err = _run(capsys, "video-cue", "x.mp4", "--start", 0, "--end", 1, "--out", tmp_path / "o",
                        "--generator", "vta")
    assert code == 2 and "--checkpoint" in err and len(err.splitlines()) == 1
    code, _, err = _run(capsys, "vta", "train", "stage1", data, "--out", tmp_path / "new", "--config", config)
    assert code == 2 and "--centroids" in err
    code, _, err = _run(capsys, "vta", "train", "stage2", tmp_path / "no-data", "--out", tmp_path / "new2",
                        "--centroids", tmp_path / "c.npy")
    assert code == 2 and "no-data" in err and not (tmp_path / "new2").exists()

    centroids = tmp_path / "c.npy"
    np.save(centroids, np.zeros((UNITS, tiny_vta.HUBERT_DIM), np.float32))
    from engine.video.checkpoint import create_checkpoint
    from engine.video.vta_model import load_vta_config

    folder = tmp_path / "half"
    create_checkpoint(folder, config=load_vta_config(config), centroids_path=centroids)
    with pytest.raises(InvalidInputError) as stage1:
        read_checkpoint(folder)
    assert "lora/adapter_model.safetensors" in str(stage1.value) or "vta_adapter.json" in str(stage1.value)
    assert "vta train stage1" in str(stage1.value)

    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((UNITS + 1, tiny_vta.HUBERT_DIM), np.float32))
    with pytest.raises(InvalidInputError) as shape:
        create_checkpoint(tmp_path / "w", config=load_vta_config(config), centroids_path=wrong)
    assert "(9, 32)" in str(shape.value) and "(8, 32)" in str(shape.value)

    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError) as unsafe:
        create_checkpoint(tmp_path / "p", config=load_vta_config(config), centroids_path=pickled)
    assert "not a plain .npy" in str(unsafe.value)

    code, _, err = _run(capsys, "vta", "units", tmp_path / "nothing", "--out", tmp_path / "u.npy")
    assert code == 2 and "not a folder" in err


def test_vta_backend_renders_only_its_own_ranges_and_keeps_them_apart(world, tmp_path, capsys, monkeypatch):
    # A request whose seed names no picture range fails alone; a malformed one beside it does not
    # shift the others onto the wrong frames.
    from engine.generators import GenerationRequest
    from engine.video.vta_generator import PictureRange, VTAGenerator

    data, config = world["data"], world["config"]
    centroids = tmp_path / "c.npy"
    np.save(centroids, np.random.default_rng(1).standard_normal((UNITS, tiny_vta.HUBERT_DIM)).astype(np.float32))
    checkpoint = tmp_path / "ck"
    common = ["--out", checkpoint, "--steps", 1]
    assert _run(capsys, "vta", "train", "stage1", data, *common, "--centroids", centroids, "--config", config)[0] == 0
    assert _run(capsys, "vta", "train", "stage2", data, *common)[0] == 0
    frames = np.zeros((30, 32, 32, 3), np.uint8)
    frames[15:] = 255  # the second half of the range is a different picture
    ranges = {11: PictureRange(0.0, 0.1), 22: PictureRange(0.7, 0.8)}
    generator = VTAGenerator(checkpoint=checkpoint, frames=frames, ranges=ranges, video_identity={"path": "x"},
                             steps=2, device="cpu")
    seen: list[int] = []
    original = generator._job_frames
    generator._job_frames = lambda job, runtime: seen.append(int(original(job, runtime).mean() > 0)) or \
        original(job, runtime)
    results = generator.generate([GenerationRequest("a knock", -1.0, 11, 16000),
                                  GenerationRequest("a knock", 0.1, 22, 16000),
                                  GenerationRequest("a knock", 0.1, 33, 16000)])
    assert not results[0].ok and "length_s" in results[0].error
    assert results[1].ok and results[1].audio.shape == (1, 1600)
    assert not results[2].ok and "no picture range" in results[2].error
    assert seen == [1]  # seed 22's frames are the bright half of the range
    with pytest.raises(InvalidInputError) as bad:
        VTAGenerator(checkpoint=checkpoint, frames=frames, ranges=ranges, video_identity={}, visual_scale=-1)
    assert bad.value.field == "lambda"

    # Two cues on different stretches of one video, with hits at the same times relative to each
    # cue, are different pictures: their renders must never share a cache entry.
    from engine.plan import Event, Plan
    from engine.video import dataset
    from engine.video.vta_generator import vta_for_cue

    monkeypatch.setattr(dataset, "read_frames", lambda *args, **kwargs: frames)
    cue = Plan(duration_s=1.0, events=(Event(id="e1", description="a knock", start_s=0.2, end_s=0.4),))
    video = world["config"]  # any existing file: identity is its path, size and time
    identities = [vta_for_cue(cue, video_path=video, start_s=start_s, end_s=start_s + 1.0,
                              checkpoint=checkpoint, steps=2, device="cpu")[1].identity()
                  for start_s in (0.0, 5.0, 0.0)]
    assert identities[0] != identities[1] and identities[0] == identities[2]
