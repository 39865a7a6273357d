"""Decode a time range of a video into small grey frames with their true timestamps.

Timestamps come from each frame's pts, never from an assumed frame rate, so variable-frame-rate
files (phones, screen captures) keep their timing. Frames are turned upright from the display
matrix (or the older 'rotate' stream tag) so analysis sees what the editor sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InvalidInputError

DEFAULT_ANALYSIS_SIZE_PX = 64  # longest side of the analysis frames


@dataclass(frozen=True)
class VideoInfo:
    path: str
    duration_s: float
    width: int  # as displayed (after rotation)
    height: int
    rotation_deg: int  # counter-clockwise degrees applied to make frames upright
    frame_rate_hz: float  # average; a VFR file's frames still carry their own times
    has_audio: bool


@dataclass(frozen=True)
class VideoFrames:
    """Grey frames float32 (n, height, width) in [0, 1], and each frame's time in seconds."""

    frames: np.ndarray
    times_s: np.ndarray
    info: VideoInfo

    def __len__(self) -> int:
        return len(self.times_s)


def _bad(path: Path, message: str) -> InvalidInputError:
    return InvalidInputError(f"video_path={str(path)!r}: {message}", field="video_path", value=str(path))


def _open(path: Path):  # -> av.container.InputContainer
    import av

    if not path.is_file():
        raise _bad(path, "no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise _bad(path, f"not a readable media file ({error})") from None
    if not container.streams.video:
        container.close()
        raise _bad(path, "has no video stream (audio-only or data file)")
    return container


def tag_rotation_deg(stream) -> int:
    """The legacy 'rotate' tag is clockwise; return counter-clockwise degrees like the matrix."""
    # Matroska stores tags upper-case; MP4 from older phones lower-case.
    tag = next((value for key, value in stream.metadata.items() if key.lower() == "rotate"), None)
    try:
        return int(-float(tag)) % 360 if tag is not None else 0
    except ValueError:
        return 0


def quarter_turns(rotation_deg: float) -> int:
    return int(round(rotation_deg / 90.0)) % 4


def _analysis_size(width: int, height: int, max_side_px: int) -> tuple[int, int]:
    scale = min(1.0, max_side_px / max(width, height))
    # Even sizes keep swscale's chroma handling exact; at least 2 px per side.
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def probe_video(path: str | Path) -> VideoInfo:
    """Duration, displayed size, rotation and average rate, without decoding every frame."""
    path = Path(path)
    container = _open(path)
    try:
        return _info(path, container, rotation_deg=None)
    finally:
        container.close()


def _info(path: Path, container, *, rotation_deg: int | None) -> VideoInfo:
    stream = container.streams.video[0]
    if rotation_deg is None:
        rotation_deg = _first_frame_rotation(container, stream)
    width, height = stream.codec_context.width, stream.codec_context.height
    if quarter_turns(rotation_deg) % 2:
        width, height = height, width
    duration_s = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / 1_000_000
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(
        path=str(path),
        duration_s=duration_s,
        width=width,
        height=height,
        rotation_deg=rotation_deg,
        frame_rate_hz=float(rate) if rate else 0.0,
        has_audio=bool(container.streams.audio),
    )


def _first_frame_rotation(container, stream) -> int:
    import av

    try:
        for frame in container.decode(stream):
            rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
            break
        else:
            rotation = 0
    except av.FFmpegError:
        rotation = 0
    container.seek(0)
    return rotation or tag_rotation_deg(stream)


def _upright(grey: np.ndarray, rotation_deg: int) -> np.ndarray:
    # np.rot90 turns counter-clockwise for positive k, the same sense as the display matrix.
    turns = quarter_turns(rotation_deg)
    return np.ascontiguousarray(np.rot90(grey, k=turns)) if turns else grey


def decode_frames(
    path: str | Path,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_side_px: int = DEFAULT_ANALYSIS_SIZE_PX,
) -> VideoFrames:
    """Frames whose time lies in [start_s, end_s), grey, upright, longest side <= max_side_px.

    Raises InvalidInputError with field 'video_path' for missing, audio-only or corrupt files
    and for a range that holds no frame (naming where the video ends), and with field
    'start_s'/'end_s' for a negative start or an end not after the start.
    """
    import av

    path = Path(path)
    if start_s < 0:
        raise InvalidInputError(f"start_s={start_s!r}: must be >= 0", field="start_s", value=start_s)
    if end_s is not None and end_s <= start_s:
        raise InvalidInputError(
            f"end_s={end_s!r}: must be > start_s ({start_s})", field="end_s", value=end_s
        )
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames, times, rotation = _read_range(container, stream, start_s, end_s, max_side_px)
        info = _info(path, container, rotation_deg=rotation)
    except av.FFmpegError as error:
        raise _bad(path, f"could not be decoded ({error})") from None
    finally:
        container.close()
    if not frames:
        span = f"[{start_s}, {end_s if end_s is not None else 'end'}) s"
        if 0 < info.duration_s <= start_s:
            # The usual cause: a DAW range that starts after the video item's media ends.
            raise _bad(path, f"has no frames in {span}: the video ends at {info.duration_s:.3f} s")
        raise _bad(path, f"has no frames in {span}")
    return VideoFrames(np.stack(frames).astype(np.float32) / 255.0, np.asarray(times), info)


def file_start_s(container) -> float:
    """Presentation time of the file's first sample; the DAW's video item starts there.

    MPEG-TS and some cameras start at a non-zero pts; every time we report is relative to this,
    and taking the earliest stream keeps picture and sound in sync.
    """
    return container.start_time / 1_000_000 if container.start_time is not None else 0.0


def _read_range(container, stream, start_s, end_s, max_side_px):
    origin_s = file_start_s(container)
    if start_s > 0 and stream.time_base is not None:
        # Seek lands on the keyframe at or before start_s; frames before it are skipped below.
        container.seek(int((start_s + origin_s) / stream.time_base), stream=stream, backward=True)
    frames: list[np.ndarray] = []
    times: list[float] = []
    rotation = None
    size = None
    for frame in container.decode(stream):
        if frame.pts is None or frame.time is None:
            continue
        time_s = float(frame.time) - origin_s
        if time_s < start_s - 1e-6:
            continue
        if end_s is not None and time_s >= end_s - 1e-6:
            break
        if rotation is None:
            rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360 or tag_rotation_deg(stream)
            size = _analysis_size(frame.width, frame.height, max_side_px)
        grey = frame.reformat(width=size[0], height=size[1], format="gray").to_ndarray()
        frames.append(_upright(grey, rotation))
        times.append(time_s)
    return frames, times, rotation or 0


def decode_keyframes(
    path: str | Path, times_s: list[float], *, max_side_px: int = 384
) -> list[tuple[float, bytes]]:
    """(frame time, JPEG bytes) of the upright colour frame shown at each requested time.

    For a vision model: one pass over the file keeps the last frame at or before each time.
    """
    import av

    path = Path(path)
    wanted = sorted(set(times_s))
    container = _open(path)
    picked: list[tuple[float, object]] = []
    try:
        stream = container.streams.video[0]
        origin_s = file_start_s(container)
        if wanted and wanted[0] > 0 and stream.time_base is not None:
            # A cue deep into a long reel must not decode everything before it: start at the
            # keyframe at or before the first wanted time.
            container.seek(int((wanted[0] + origin_s) / stream.time_base), stream=stream, backward=True)
        previous = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            frame_time_s = float(frame.time) - origin_s
            while wanted and frame_time_s > wanted[0] + 1e-6:
                wanted.pop(0)
                if previous is not None:
                    picked.append(previous)
            previous = (frame_time_s, frame)
            if not wanted:
                break
        if wanted and previous is not None:
            picked.append(previous)
        rotation = tag_rotation_deg(stream)
        out = []
        seen: set[float] = set()
        for time_s, frame in picked:
            if time_s not in seen:
                seen.add(time_s)
                out.append((time_s, _jpeg(frame, max_side_px, rotation)))
    except av.FFmpegError as error:
        raise _bad(path, f"could not be decoded ({error})") from None
    finally:
        container.close()
    return out


def _jpeg(frame, max_side_px: int, fallback_rotation_deg: int) -> bytes:
    import fractions

    import av

    rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360 or fallback_rotation_deg
    width, height = _analysis_size(frame.width, frame.height, max_side_px)
    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    rgb = _upright(rgb, rotation)
    upright = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = upright.width, upright.height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = fractions.Fraction(1, 25)
    packets = codec.encode(upright.reformat(format="yuvj420p")) + codec.encode(None)
    return b"".join(bytes(packet) for packet in packets)
