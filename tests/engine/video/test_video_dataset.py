"""AVSync15-style loader: class folders of clips with audio -> 21.5 Hz frames + 16 kHz audio."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from engine.errors import InvalidInputError
from engine.video import vta_model as vta
from engine.video.dataset import AVSyncDataset
from engine.video.train import batch_from_items
from tests.engine.video import synth, tiny_vta

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("avsync")
    for label, tone_hz, seconds in (("hammer", 440.0, 2.0), ("dog", 1000.0, 1.2)):
        (root / label).mkdir()

        def frame(index, _t, level=60 if label == "dog" else 160):
            image = np.full((synth.SIZE_PX, synth.SIZE_PX, 3), level, np.uint8)
            image[:8, :8] = 255 if index % 2 else 0
            return image

        synth.encode(root / label / "clip.mp4", frame, synth.regular_times(seconds), audio_tone_hz=tone_hz)
    (root / "notes.txt").write_text("not a clip")
    return root


def _peak_hz(waveform, rate):
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()]


def test_items_have_frames_at_21_5_hz_and_16_khz_audio(dataset_root):
    data = AVSyncDataset(dataset_root, frame_size_px=32)
    assert len(data) == 2 and data.classes == ["dog", "hammer"]
    dog, hammer = data[0], data[1]
    assert (dog.label, hammer.label) == ("dog", "hammer")
    assert hammer.frames.shape == (43, 32, 32, 3) and hammer.frames.dtype == np.uint8
    assert np.allclose(np.diff(hammer.frame_times_s), 1 / 21.5)
    assert hammer.sample_rate == 16000 and hammer.waveform.dtype == np.float32
    assert abs(len(hammer.waveform) / 16000 - 2.0) < 0.1
    assert _peak_hz(hammer.waveform, 16000) == pytest.approx(440, abs=5)
    assert _peak_hz(dog.waveform, 16000) == pytest.approx(1000, abs=5)
    assert dog.frames.mean() < hammer.frames.mean()  # each item decodes its own clip


def test_frames_are_sampled_from_pts(dataset_root):
    item = AVSyncDataset(dataset_root, frame_size_px=32)[1]
    # The marker toggles every 40 ms frame; sample k shows frame floor(k / 21.5 * 25).
    expected = np.array([int(np.floor(t * 25 + 1e-6)) % 2 for t in item.frame_times_s]) * 255
    np.testing.assert_allclose(item.frames[:, 1, 1].mean(axis=1), expected, atol=40)


def test_missing_audio_and_empty_root_are_refused(tmp_path, flash_video):
    with pytest.raises(InvalidInputError) as info:
        AVSyncDataset(tmp_path)
    assert info.value.field == "dataset_root"
    (tmp_path / "silent").mkdir()
    (tmp_path / "silent" / "clip.mp4").write_bytes(flash_video[0].read_bytes())
    with pytest.raises(InvalidInputError, match="audio stream"):
        AVSyncDataset(tmp_path)[0]


def test_items_become_a_training_batch(dataset_root, tmp_path):
    data = AVSyncDataset(dataset_root, frame_size_px=32, max_duration_s=1.0)
    encoder = vta.FrameEncoder.from_pretrained(str(tiny_vta.clip(tmp_path / "clip")))
    table = vta.CentroidTable.load(tiny_vta.centroids(tmp_path / "c.npy"), dim=tiny_vta.HUBERT_DIM)
    units = vta.HubertUnitTokenizer(tiny_vta.hubert(tmp_path / "hubert"), table, layer=9)
    batch = batch_from_items([data[0], data[1]], frame_encoder=encoder, unit_tokenizer=units)
    assert batch.features.shape == (2, 22, tiny_vta.CLIP_DIM)
    assert batch.units.shape[0] == 2 and 45 <= batch.units.shape[1] <= 50
    assert batch.units.dtype == torch.int64 and int(batch.units.max()) < 500
