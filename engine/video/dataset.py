"""An AVSync15-style dataset: a folder of <class>/<clip>.mp4, each with its own audio track.

An item is the clip's RGB frames sampled at 21.5 Hz (sample-and-hold: the frame on screen at
each sample time, from pts, so VFR files sample correctly) and its audio as mono float32 at
16 kHz (HuBERT's rate), plus the class name taken from the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.errors import InvalidInputError
from engine.video.vta_model import frame_times

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


@dataclass(frozen=True)
class AVItem:
    path: str
    label: str
    frames: np.ndarray  # uint8 (N, H, W, 3), upright
    frame_times_s: np.ndarray  # the sample times (k / frame_rate_hz)
    waveform: np.ndarray  # float32 (samples,) mono
    sample_rate: int


def _bad(path: Path, message: str) -> InvalidInputError:
    return InvalidInputError(f"video_path={str(path)!r}: {message}", field="video_path", value=str(path))


def read_clip(
    path: str | Path,
    *,
    frame_rate_hz: float = 21.5,
    sample_rate: int = 16000,
    frame_size_px: int = 224,
    max_duration_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames uint8 (N, S, S, 3), sample times, waveform float32) of one clip."""
    import av

    from engine.video.decode import quarter_turns, tag_rotation_deg

    path = Path(path)
    if not path.is_file():
        raise _bad(path, "no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video or not container.streams.audio:
                raise _bad(path, "needs both a video and an audio stream")
            tag_rotation = tag_rotation_deg(container.streams.video[0])
            shown, times, rotation = _video(container, frame_size_px, max_duration_s)
            waveform = _audio(container, sample_rate, max_duration_s)
    except av.FFmpegError as error:
        raise _bad(path, f"could not be decoded ({error})") from None
    if not shown:
        raise _bad(path, "has no video frames")
    rotation = rotation or tag_rotation
    duration_s = min(times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1 / frame_rate_hz),
                     len(waveform) / sample_rate if len(waveform) else np.inf)
    sample_times = frame_times(duration_s, rate_hz=frame_rate_hz)
    # Sample-and-hold: each sample time shows the last frame that started at or before it.
    shown_at = np.searchsorted(np.asarray(times), sample_times + 1e-6, side="right") - 1
    picks = np.clip(shown_at, 0, len(shown) - 1)
    turns = quarter_turns(rotation)
    frames = np.stack([np.rot90(shown[i], k=turns) if turns else shown[i] for i in picks])
    return np.ascontiguousarray(frames), sample_times, waveform


def read_frames(
    path: str | Path, *, start_s: float, end_s: float, frame_rate_hz: float = 21.5, frame_size_px: int = 224
) -> np.ndarray:
    """uint8 RGB frames (N, S, S, 3), upright, sampled at ``frame_rate_hz`` over [start_s, end_s)
    of the file (sample-and-hold by pts, like read_clip); the video needs no audio track."""
    times = start_s + frame_times(end_s - start_s, rate_hz=frame_rate_hz)
    return read_frames_at(path, times, frame_size_px=frame_size_px)


def read_frames_at(path: str | Path, times_s: Sequence[float] | np.ndarray, *, frame_size_px: int = 224) -> np.ndarray:
    """uint8 RGB frames (len(times_s), S, S, 3), upright: at each time (seconds in the file,
    ascending) the frame on screen then, from pts (sample-and-hold; before the first frame, the
    first frame).

    Decoding starts at the keyframe at or before the first time and stops after the last, and
    only the frame on screen is held while decoding, so memory is the frames returned (not every
    frame of the file up to the range) and a range deep into a long reel costs one GOP of decoding
    before it, not the whole file."""
    path = Path(path)
    times = np.asarray(times_s, dtype=np.float64)
    if not path.is_file():
        raise _bad(path, "no such file")
    if times.size == 0:
        return np.zeros((0, frame_size_px, frame_size_px, 3), np.uint8)
    held = _hold_frames(path, times, frame_size_px, seek=bool(times[0] > 0))
    if held is None:  # the seek landed after the first time (an inexact index): from the start
        held = _hold_frames(path, times, frame_size_px, seek=False)
    assert held is not None
    picked, last_time_s, rotation = held
    if last_time_s is None or last_time_s < times[0] - 1.0:
        raise _bad(path, f"has no frames around {times[0]:.3f} s")
    from engine.video.decode import quarter_turns

    frames = np.stack(picked)
    turns = quarter_turns(rotation)
    return np.ascontiguousarray(np.rot90(frames, k=turns, axes=(1, 2)) if turns else frames)


def _hold_frames(path: Path, times: np.ndarray, size_px: int, *, seek: bool):
    """(one array per time, the last decoded frame's time, rotation), or None when ``seek`` landed
    after ``times[0]`` (the frame on screen then was not decoded)."""
    import av

    from engine.video.decode import file_start_s, tag_rotation_deg

    picked: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _bad(path, "has no video stream")
            stream = container.streams.video[0]
            rotation = 0
            origin_s = file_start_s(container)
            if seek and stream.time_base is not None:
                container.seek(int((times[0] + origin_s) / stream.time_base), stream=stream, backward=True)
            held = held_array = None
            last_time_s = None
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                time_s = float(frame.time) - origin_s
                if held is None and seek and time_s > times[0] + 1e-6:
                    return None
                rotation = rotation or int(round(getattr(frame, "rotation", 0) or 0)) % 360
                # Every time before this frame shows the held one (or, before the first frame, this one).
                while len(picked) < len(times) and time_s > times[len(picked)] + 1e-6:
                    if held_array is None:
                        held_array = _rgb(held if held is not None else frame, size_px)
                    picked.append(held_array)
                held, held_array, last_time_s = frame, None, time_s
                if len(picked) == len(times):
                    break
            if held is not None and len(picked) < len(times):
                last = _rgb(held, size_px)  # past the last frame: it stays on screen
                picked.extend([last] * (len(times) - len(picked)))
            return picked, last_time_s, rotation or tag_rotation_deg(stream)
    except av.FFmpegError as error:
        raise _bad(path, f"could not be decoded ({error})") from None


def _rgb(frame, size_px: int) -> np.ndarray:
    return frame.reformat(width=size_px, height=size_px, format="rgb24").to_ndarray()


def _video(container, size_px: int, max_duration_s: float | None):
    from engine.video.decode import file_start_s

    frames, times, rotation = [], [], 0
    origin_s = file_start_s(container)
    for frame in container.decode(container.streams.video[0]):
        if frame.time is None:
            continue
        time_s = float(frame.time) - origin_s
        if max_duration_s is not None and time_s >= max_duration_s:
            break
        rotation = rotation or int(round(getattr(frame, "rotation", 0) or 0)) % 360
        frames.append(frame.reformat(width=size_px, height=size_px, format="rgb24").to_ndarray())
        times.append(time_s)
    return frames, times, rotation


def _audio(container, sample_rate: int, max_duration_s: float | None) -> np.ndarray:
    import av

    container.seek(0)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    pieces = []
    for frame in container.decode(container.streams.audio[0]):
        for out in resampler.resample(frame):
            pieces.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        pieces.append(out.to_ndarray().reshape(-1))
    waveform = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
    if max_duration_s is not None:
        waveform = waveform[: int(max_duration_s * sample_rate)]
    return waveform


class AVSyncDataset:
    """Clips under root/<class>/*.mp4, sorted by class then name; items decoded on access."""

    def __init__(self, root: str | Path, *, frame_rate_hz: float = 21.5, sample_rate: int = 16000,
                 frame_size_px: int = 224, max_duration_s: float | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InvalidInputError(
                f"dataset_root={str(root)!r}: not a folder", field="dataset_root", value=str(root)
            )
        self.paths = sorted(p for p in self.root.glob("*/*") if p.suffix.lower() in VIDEO_SUFFIXES)
        if not self.paths:
            raise InvalidInputError(f"dataset_root={str(root)!r}: no <class>/<clip> videos",
                                    field="dataset_root", value=str(root))
        self.classes = sorted({p.parent.name for p in self.paths})
        self.frame_rate_hz, self.sample_rate = frame_rate_hz, sample_rate
        self.frame_size_px, self.max_duration_s = frame_size_px, max_duration_s

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> AVItem:
        path = self.paths[index]
        frames, times, waveform = read_clip(
            path,
            frame_rate_hz=self.frame_rate_hz,
            sample_rate=self.sample_rate,
            frame_size_px=self.frame_size_px,
            max_duration_s=self.max_duration_s,
        )
        return AVItem(str(path), path.parent.name, frames, times, waveform, self.sample_rate)
