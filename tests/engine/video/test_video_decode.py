"""Decoding: ranges, true timestamps (VFR), rotation, and clear errors for bad files."""

from __future__ import annotations

import av
import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.video.decode import decode_frames, decode_keyframes, probe_video
from tests.engine.video import synth


def test_range_keeps_frames_inside_and_their_times(flash_video):
    path, _ = flash_video
    video = decode_frames(path, start_s=1.0, end_s=2.0)
    assert video.times_s[0] == pytest.approx(1.0)
    assert video.times_s[-1] == pytest.approx(1.96)
    assert len(video) == 25
    assert video.frames.dtype == np.float32 and video.frames.shape[1:] == (64, 64)
    assert 0.0 <= video.frames.min() and video.frames.max() <= 1.0


def test_frames_are_downscaled_to_the_analysis_size(video_dir):
    path = synth.encode(video_dir / "big.mp4", lambda i, t: np.zeros((120, 320, 3), np.uint8),
                        synth.regular_times(0.4), width=320, height=120)
    video = decode_frames(path, max_side_px=64)
    assert video.frames.shape[1:] == (24, 64)
    assert video.info.width == 320 and video.info.height == 120


def test_variable_frame_rate_times_come_from_pts(vfr_video):
    path, flashes = vfr_video
    video = decode_frames(path)
    steps = np.round(np.diff(video.times_s), 3)
    assert set(steps) >= {0.017, 0.05, 0.1}  # uneven spacing survives decoding
    bright = video.times_s[video.frames.mean(axis=(1, 2)) > 0.5]
    np.testing.assert_allclose(bright, flashes, atol=1e-3)


def test_rotation_from_the_display_matrix_turns_frames_upright(video_dir):
    def frame(_i, _t):
        image = np.zeros((32, 64, 3), np.uint8)  # stored landscape, marker at top-left
        image[:8, :8] = 255
        return image

    path = synth.encode(video_dir / "rot.mp4", frame, synth.regular_times(0.4), width=64, height=32,
                        rotation_deg=90)
    video = decode_frames(path)
    assert video.info.rotation_deg == 90
    assert video.frames.shape[1:] == (64, 32)  # shown portrait
    assert (video.info.width, video.info.height) == (32, 64)
    # 90 degrees counter-clockwise moves the top-left corner to the bottom-left.
    first = video.frames[0]
    assert first[-8:, :8].mean() > 0.8 and first[:8, :8].mean() < 0.2


def test_legacy_rotate_tag_is_honoured(video_dir):
    path = video_dir / "tag.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.metadata["rotate"] = "90"  # clockwise, the old phone convention
        for index in range(5):
            image = np.zeros((32, 64, 3), np.uint8)
            image[:8, :8] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    video = decode_frames(path)
    tags = {k.lower(): v for k, v in av.open(str(path)).streams.video[0].metadata.items()}
    if tags.get("rotate") != "90":
        pytest.skip("this FFmpeg build does not keep the rotate tag in Matroska")
    assert video.info.rotation_deg == 270
    # 90 degrees clockwise moves the top-left corner to the top-right.
    assert video.frames.shape[1:] == (64, 32)
    assert video.frames[0][:8, -8:].mean() > 0.7


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InvalidInputError) as info:
        decode_frames(tmp_path / "nope.mp4")
    assert info.value.field == "video_path" and "nope.mp4" in str(info.value)


def test_audio_only_file_is_refused(tmp_path):
    path = tmp_path / "tone.wav"
    import soundfile as sf

    sf.write(path, np.zeros(4800, np.float32), 48000)
    with pytest.raises(InvalidInputError, match="no video stream") as info:
        decode_frames(path)
    assert info.value.value == str(path)


def test_corrupt_file_is_refused(tmp_path, flash_video):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(InvalidInputError) as info:
        decode_frames(path)
    assert info.value.field == "video_path" and "broken.mp4" in str(info.value)


def test_truncated_file_is_refused(tmp_path, flash_video):
    source, _ = flash_video
    path = tmp_path / "cut_short.mp4"
    path.write_bytes(source.read_bytes()[:300])
    with pytest.raises(InvalidInputError) as info:
        decode_frames(path)
    assert info.value.field == "video_path"


def test_empty_range_and_bad_range_are_refused(flash_video):
    path, _ = flash_video
    with pytest.raises(InvalidInputError) as info:
        decode_frames(path, start_s=10.0, end_s=11.0)
    assert info.value.field == "video_path"
    with pytest.raises(InvalidInputError) as info:
        decode_frames(path, start_s=2.0, end_s=1.0)
    assert info.value.field == "end_s"


def test_probe_and_keyframes(flash_video):
    path, flashes = flash_video
    info = probe_video(path)
    assert info.duration_s == pytest.approx(3.0, abs=0.05) and info.frame_rate_hz == pytest.approx(25)
    frames = decode_keyframes(path, [flashes[0], 1.0])
    assert [t for t, _ in frames] == pytest.approx([flashes[0], 1.0])
    assert all(jpeg[:2] == b"\xff\xd8" for _, jpeg in frames)


def test_times_count_from_the_first_frame_of_a_late_starting_file(video_dir):
    # Frames stamped from 5 s on (as MPEG-TS and some cameras do); the flash is 0.48 s in.
    times = [5.0 + t for t in synth.regular_times(1.0)]
    path, _ = synth.flashes(video_dir / "late.mkv", [5.48], times_s=times)
    video = decode_frames(path, start_s=0.2, end_s=0.8)
    assert video.times_s[0] == pytest.approx(0.2)
    assert video.times_s[video.frames.mean(axis=(1, 2)).argmax()] == pytest.approx(0.48)


def test_a_range_past_the_end_says_where_the_video_ends(flash_video):
    path, _ = flash_video  # 3 s long
    with pytest.raises(InvalidInputError) as info:
        decode_frames(path, start_s=5.0, end_s=8.0)
    assert info.value.field == "video_path" and "ends at 3.000 s" in str(info.value)
    tail = decode_frames(path, start_s=2.0, end_s=8.0)  # an end past the video keeps what exists
    assert tail.times_s[0] == pytest.approx(2.0) and tail.times_s[-1] < 3.0


def test_late_keyframes_are_the_frames_shown_at_their_times(flash_video):
    # decode_keyframes seeks to the first wanted time; the picked frames must still be the ones
    # on screen then (the flash frame itself, and the dark frame just before the next flash).
    import av

    path, flashes = flash_video
    late_flash = flashes[2]
    frames = decode_keyframes(path, [late_flash, flashes[3] - 0.02])
    assert [t for t, _ in frames] == pytest.approx([late_flash, flashes[3] - 0.04])

    def brightness(jpeg: bytes) -> float:
        codec = av.CodecContext.create("mjpeg", "r")
        (frame,) = codec.decode(av.Packet(jpeg))
        return float(frame.to_ndarray(format="gray").mean())

    assert brightness(frames[0][1]) > 200 > 40 > brightness(frames[1][1])
