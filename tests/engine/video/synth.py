"""Synthetic test videos encoded with PyAV, each with the times its visual events happen.

Every builder returns (path, event_times_s). Frames are RGB uint8; a frame i is shown at
times[i] (pts in ms), so variable frame rates are just uneven times.
"""

from __future__ import annotations

import fractions
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np

SIZE_PX = 64
FPS = 25

FrameFn = Callable[[int, float], np.ndarray]


def encode(
    path: Path,
    frame_fn: FrameFn,
    times_s: Sequence[float],
    *,
    width: int = SIZE_PX,
    height: int = SIZE_PX,
    rotation_deg: int = 0,
    codec: str = "libx264",
    audio_tone_hz: float | None = None,
    audio_rate: int = 44100,
) -> Path:
    """Write frame_fn(i, t) at each time in times_s; optionally a sine track beside it."""
    ms = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = ms
        stream.codec_context.time_base = ms  # frame pts are ms; a 1/fps base would merge VFR frames
        if codec == "libx264":
            # Near-lossless and no B-frame reordering: the analysis sees the frames we drew.
            stream.options = {"crf": "10", "bf": "0", "g": "12"}
        if rotation_deg:
            stream.set_display_rotation(rotation_deg)
        audio = None
        if audio_tone_hz is not None:
            audio = out.add_stream("aac", rate=audio_rate)
            audio.layout = "mono"
        for index, time_s in enumerate(times_s):
            frame = av.VideoFrame.from_ndarray(frame_fn(index, time_s), format="rgb24")
            frame.pts, frame.time_base = int(round(time_s * 1000)), ms
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            _write_tone(out, audio, audio_tone_hz, times_s[-1] + 1 / FPS, audio_rate)
    return path


def _write_tone(out, stream, tone_hz: float, duration_s: float, rate: int) -> None:
    total = int(duration_s * rate)
    t = np.arange(total) / rate
    wave = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    chunk = 1024
    for offset in range(0, total, chunk):
        piece = wave[offset : offset + chunk][None, :]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, offset
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def regular_times(duration_s: float, fps: int = FPS) -> list[float]:
    return [i / fps for i in range(int(round(duration_s * fps)))]


def _blank(level: int = 20) -> np.ndarray:
    return np.full((SIZE_PX, SIZE_PX, 3), level, np.uint8)


def flashes(path: Path, flash_times_s: Sequence[float], *, duration_s: float = 3.0,
            times_s: Sequence[float] | None = None, rotation_deg: int = 0):
    """A dark frame that turns white for the one frame nearest each flash time."""
    times = list(times_s) if times_s is not None else regular_times(duration_s)
    flash_frames = {int(np.argmin([abs(t - f) for t in times])) for f in flash_times_s}
    actual = sorted(times[i] for i in flash_frames)

    def frame(index: int, _t: float) -> np.ndarray:
        image = _blank()
        if index in flash_frames:
            image[:] = 235
        return image

    return encode(path, frame, times, rotation_deg=rotation_deg), actual


def block_hits_wall(path: Path, *, duration_s: float = 3.0, hit_frame: int = 40,
                    speed_px: int = 3, block_px: int = 12):
    """A white block slides right at constant speed and stops dead against a wall."""
    times = regular_times(duration_s)
    wall_x = SIZE_PX - 6
    stop_x = wall_x - block_px

    def frame(index: int, _t: float) -> np.ndarray:
        image = _blank()
        image[:, wall_x:] = 120
        x = stop_x - speed_px * max(0, hit_frame - index)
        if x > -block_px:
            left = max(0, x)
            image[26 : 26 + block_px, left : x + block_px] = 235
        return image

    return encode(path, frame, times), [times[hit_frame]]


def hard_cuts(path: Path, cut_times_s: Sequence[float], *, duration_s: float = 3.0):
    """Static shots of different brightness and texture, switching at each cut time."""
    times = regular_times(duration_s)
    rng = np.random.default_rng(7)
    shots = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
             for _ in range(len(cut_times_s) + 1)]
    shots = [np.clip(s.astype(int) // 3 + 80 * (i % 3), 0, 255).astype(np.uint8)
             for i, s in enumerate(shots)]

    def frame(_index: int, t: float) -> np.ndarray:
        return shots[sum(1 for c in cut_times_s if t >= c - 1e-9)]

    return encode(path, frame, times), [times[int(round(c * FPS))] for c in cut_times_s]
