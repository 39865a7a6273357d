"""engine/stems.py: BWF files read back by soundfile, bext layout checked byte by byte, atomic
writes."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import soundfile as sf

from engine import stems
from engine.errors import InvalidInputError

SR = 48000


def audio(channels: int = 2, frames: int = 4801, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.9, 0.9, (channels, frames))).astype(np.float32)


def raw_chunks(path) -> dict[bytes, bytes]:
    """Top-level RIFF chunks parsed here, independently of engine.stems."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
    chunks, order, position = {}, [], 12
    while position < len(data):
        tag, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        chunks[tag] = data[position + 8 : position + 8 + size]
        order.append(tag)
        position += 8 + size + size % 2
    chunks[b"order"] = b",".join(order)
    return chunks


def test_pcm24_round_trip_through_soundfile(tmp_path):
    clip = audio()
    path = stems.write_stem(tmp_path / "a.wav", clip, sample_rate=SR)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 2, 4801, "PCM_24")
    back, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR
    np.testing.assert_allclose(back.T, clip, atol=1.0 / 2**23)


def test_float_round_trip_is_exact(tmp_path):
    clip = audio(channels=1, seed=1)
    path = stems.write_stem(tmp_path / "f.wav", clip, sample_rate=44100, subtype="FLOAT")
    assert sf.info(path).subtype == "FLOAT"
    back, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 44100
    np.testing.assert_array_equal(back.T, clip)


def test_full_scale_is_clipped_not_wrapped(tmp_path):
    clip = np.array([[1.5, 1.0, -1.0, -1.5, 0.5]], dtype=np.float32)
    back, _ = sf.read(stems.write_stem(tmp_path / "c.wav", clip, sample_rate=SR), always_2d=True)
    assert back[:, 0].tolist() == pytest.approx([1.0, 1.0, -1.0, -1.0, 0.5], abs=2e-7)


def test_bext_layout_follows_tech_3285(tmp_path):
    reference = 2**32 + 123_456  # needs both TimeReference words
    path = stems.write_stem(
        tmp_path / "b.wav",
        audio(),
        sample_rate=SR,
        time_reference_samples=reference,
        description="Thunder rumbles in the distance",
        loudness_lufs=-23.45,
        true_peak_dbtp=-1.5,
    )
    chunks = raw_chunks(path)
    assert chunks[b"order"] == b"fmt ,bext,data"  # bext before data
    bext = chunks[b"bext"]
    assert bext[:30].rstrip(b"\x00") == b"Thunder rumbles in the distance"[:30]
    assert bext[256:288].rstrip(b"\x00") == b"Audio-Agent"
    date, time_ = bext[320:330].decode(), bext[330:338].decode()
    assert date[4] == "-" and date[7] == "-" and time_[2] == ":" and time_[5] == ":"
    low, high, version = struct.unpack_from("<IIH", bext, 338)
    assert (high << 32) | low == reference
    assert version == 2
    assert bext[348:412] == b"\x00" * 64  # UMID unset
    loudness, lra, peak, momentary, short = struct.unpack_from("<5h", bext, 412)
    assert (loudness, lra, peak, momentary, short) == (-2345, 0x7FFF, -150, 0x7FFF, 0x7FFF)
    assert bext[422:602] == b"\x00" * 180  # reserved
    assert bext[602:].startswith(b"A=PCM,F=48000,W=24,M=stereo")
    parsed = stems.read_bext(path)
    assert parsed["time_reference_samples"] == reference
    assert parsed["loudness_lufs"] == -23.45 and parsed["loudness_range_lu"] is None


def test_odd_sized_chunks_are_padded(tmp_path):
    # Mono 24-bit with an odd frame count gives an odd data size: RIFF needs a pad byte.
    path = stems.write_stem(tmp_path / "o.wav", audio(channels=1, frames=3), sample_rate=SR)
    chunks = raw_chunks(path)
    assert len(chunks[b"data"]) == 9
    assert path.stat().st_size % 2 == 0
    assert sf.read(path)[0].shape == (3,)


def _no_temp_left(folder) -> bool:
    return not [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_failure_mid_write_leaves_no_file_and_no_temp(tmp_path, monkeypatch):
    def broken(handle, size, chunks):
        first = next(iter(chunks))
        handle.write(first[: len(first) // 2])  # some of the samples reach the disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stems, "_write_data", broken)
    with pytest.raises(OSError):
        stems.write_stem(tmp_path / "x.wav", audio(), sample_rate=SR)
    assert not (tmp_path / "x.wav").exists()
    assert _no_temp_left(tmp_path)


def test_failed_replace_keeps_the_old_file(tmp_path, monkeypatch):
    path = stems.write_stem(tmp_path / "keep.wav", audio(seed=1), sample_rate=SR)
    before = path.read_bytes()

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        stems.write_stem(path, audio(seed=2), sample_rate=SR)
    assert path.read_bytes() == before
    assert _no_temp_left(tmp_path)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"subtype": "PCM_16"}, "subtype"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"time_reference_samples": -1}, "time_reference_samples"),
    ],
)
def test_bad_arguments_name_the_field(tmp_path, kwargs, field):
    options = {"sample_rate": SR, **kwargs}
    with pytest.raises(InvalidInputError) as info:
        stems.write_stem(tmp_path / "bad.wav", audio(), **options)
    assert info.value.field == field
    assert not list(tmp_path.iterdir())


def test_nan_audio_is_rejected(tmp_path):
    clip = audio()
    clip[0, 10] = np.nan
    with pytest.raises(InvalidInputError) as info:
        stems.write_stem(tmp_path / "nan.wav", clip, sample_rate=SR)
    assert info.value.field == "audio"


def test_mono_vector_is_accepted(tmp_path):
    path = stems.write_stem(tmp_path / "m.wav", np.zeros(100, dtype=np.float32), sample_rate=SR)
    assert sf.info(path).channels == 1
    assert stems.read_bext(path)["coding_history"].startswith("A=PCM,F=48000,W=24,M=mono")


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
def test_a_third_party_bwf_reader_sees_the_time_reference(tmp_path, subtype):
    # FFmpeg's WAV demuxer (through PyAV) parses bext the way DAW importers do: this checks the
    # chunk is found and decoded by code that is not ours, for both sample formats.
    av = pytest.importorskip("av")
    reference = 12 * SR + 345  # 12.0072 s on the timeline
    path = stems.write_stem(
        tmp_path / "spot.wav", audio(frames=2400), sample_rate=SR, subtype=subtype,
        time_reference_samples=reference, description="A door slams",
    )
    with av.open(str(path)) as container:
        metadata = dict(container.metadata)
        stream = container.streams.audio[0]
        assert (stream.sample_rate, stream.channels) == (SR, 2)
        frames = sum(frame.samples for frame in container.decode(stream))
    assert int(metadata["time_reference"]) == reference
    assert metadata["comment"] == "A door slams"
    assert metadata["encoded_by"] == "Audio-Agent"
    assert frames == 2400


# -- the previous writer ---------------------------------------------------------------------


def _previous_stems():
    from benchmarks.baseline import stems_v1

    return stems_v1


def _edge_values() -> np.ndarray:
    lsb = 1.0 / 8388608.0
    values = [0.0, -0.0, 1.0, -1.0, 1.5, -1.5, 1.0 - lsb, -1.0 + lsb, 0.5 * lsb, 1.5 * lsb,
              2.5 * lsb, -0.5 * lsb, -2.5 * lsb, 1e-41, -1e-41, 3e38, -3e38]
    return np.array(values, dtype=np.float32)


@pytest.mark.parametrize("channels, frames", [(1, 1), (2, 4801), (5, 3), (2, 3 * 65536 + 7)])
@pytest.mark.parametrize("subtype", stems.SUBTYPES)
def test_samples_encode_to_the_previous_writers_bytes(channels, frames, subtype, monkeypatch):
    clip = audio(channels, frames, seed=frames) * 1.2  # some samples clip
    edges = _edge_values()
    clip[0, : min(frames, edges.size)] = edges[: min(frames, edges.size)]
    expected = _previous_stems().encode_samples(clip, subtype=subtype)
    assert stems.encode_samples(clip, subtype=subtype) == expected
    monkeypatch.setattr(stems, "ENCODE_CHUNK_FRAMES", 1000)  # many chunks, odd seams
    assert stems.encode_samples(clip, subtype=subtype) == expected


@pytest.mark.parametrize("subtype", stems.SUBTYPES)
def test_files_are_byte_identical_to_the_previous_writer(tmp_path, subtype, monkeypatch):
    clip = audio(2, 70001, seed=5)
    kwargs = dict(sample_rate=SR, subtype=subtype, time_reference_samples=123456,
                  description="rain", loudness_lufs=-23.04, true_peak_dbtp=-1.3)
    monkeypatch.setattr(stems, "ENCODE_CHUNK_FRAMES", 4096)
    new = stems.write_stem(tmp_path / "new.wav", clip, **kwargs).read_bytes()
    old = _previous_stems().write_stem(tmp_path / "old.wav", clip, **kwargs).read_bytes()
    # The bext origination date and time (bytes 320..337 of its body) are the write clock's.
    start = new.index(b"bext") + 8 + 320
    assert len(new) == len(old)
    assert new[:start] == old[:start] and new[start + 18 :] == old[start + 18 :]
