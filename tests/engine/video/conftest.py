"""Synthetic videos shared by the video tests (built once per session; each is a few kB)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.engine.video import synth


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def flash_video(video_dir):
    return synth.flashes(video_dir / "flashes.mp4", [0.5, 1.3, 2.2, 2.6])


@pytest.fixture(scope="session")
def wall_video(video_dir):
    return synth.block_hits_wall(video_dir / "wall.mp4", hit_frame=40)


@pytest.fixture(scope="session")
def cut_video(video_dir):
    return synth.hard_cuts(video_dir / "cuts.mp4", [1.0, 2.0])


@pytest.fixture(scope="session")
def vfr_video(video_dir):
    rng = np.random.default_rng(3)
    times = [0.0]
    while times[-1] < 3.0:
        times.append(round(times[-1] + float(rng.choice([0.017, 0.033, 0.05, 0.1])), 3))
    return synth.flashes(video_dir / "vfr.mp4", [0.7, 1.6, 2.45], times_s=times)
