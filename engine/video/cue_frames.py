"""The picture of one video cue at the VTA model's frame rate, decoded when a render asks for it.

A session keeps a VTA cue's generator for the edits that follow (engine.session PendingVersion /
its bound generators), possibly for hours and for many sessions. Holding the decoded cue range
would cost frames x 224 x 224 x 3 bytes for each: 150 KB per frame, about 194 MB for a minute at
21.5 Hz, 1.9 GB for the longest cue. So ``CueFrames`` keeps only where the picture is (file,
cue range, rate, and the file's size and modification time) and decodes the frames of the one
event range a render asks for (``frames[first:last]``, indices into the cue's samples), returning
exactly what slicing the whole decoded range would, and keeping nothing afterwards. Decoding starts
at the keyframe before the range (engine.video.dataset.read_frames_at), so a re-render costs one
GOP of decoding, small beside the model's own work.

The file is the one the cue was spotted on only while its size and modification time are those
the cue saw (they are also in every render's cache key): a replaced or re-exported file is refused,
naming what to do, rather than rendered from a picture the plan was never made on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InvalidInputError


@dataclass(frozen=True)
class CueFrames:
    """Frames of [start_s, end_s) of ``path`` sampled at ``frame_rate_hz`` (sample-and-hold by
    pts), as a read-only sequence: ``len()`` and contiguous slices, decoded per slice."""

    path: Path
    start_s: float
    end_s: float
    frame_rate_hz: float
    frame_size_px: int
    size_bytes: int  # the file as the cue saw it
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path, *, start_s: float, end_s: float, frame_rate_hz: float,
           frame_size_px: int = 224) -> "CueFrames":
        stat = Path(path).stat()
        return cls(path=Path(path).resolve(), start_s=float(start_s), end_s=float(end_s),
                   frame_rate_hz=float(frame_rate_hz), frame_size_px=int(frame_size_px),
                   size_bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)

    def _times(self) -> np.ndarray:
        from engine.video.vta_model import frame_times

        return self.start_s + frame_times(self.end_s - self.start_s, rate_hz=self.frame_rate_hz)

    def __len__(self) -> int:
        return len(self._times())

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError("CueFrames takes a slice (frames[first:last])")
        times = self._times()[index]
        if len(times) > 1 and np.any(np.diff(times) <= 0):
            raise ValueError("CueFrames slices run forward")
        self._check_unchanged()
        from engine.video.dataset import read_frames_at

        return read_frames_at(self.path, times, frame_size_px=self.frame_size_px)

    def _check_unchanged(self) -> None:
        try:
            stat = os.stat(self.path)
        except OSError:
            stat = None
        if stat is None or (stat.st_size, stat.st_mtime_ns) != (self.size_bytes, self.mtime_ns):
            what = "is gone" if stat is None else "changed (size or modification time)"
            raise InvalidInputError(
                f"video_path={str(self.path)!r}: {what} since this cue was spotted, so its events "
                "cannot be rendered from the picture they were planned on; send the video_cue again",
                field="video_path", value=str(self.path))
