"""What a VTA cue's generator keeps in memory: where its picture is, not the decoded frames.

A session keeps the generator of its latest VTA cue for the edits that follow, so whatever the
generator holds is held for as long as the server runs, once per session. These tests measure
the bytes with tracemalloc (numpy arrays register their buffers with it), not time."""

from __future__ import annotations

import gc
import os
import tracemalloc

import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.plan import Event, Plan
from engine.video.dataset import read_frames
from server.cli import main
from tests.engine.video import synth, tiny_vta

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FRAME_BYTES = 224 * 224 * 3  # one frame as the model's frame encoder takes it
CUE_S = (0.0, 20.0)
RATE_HZ = 21.5


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A checkpoint trained one step per stage on tiny models, and a 21 s video."""
    root = tmp_path_factory.mktemp("vta-frames")
    made = tiny_vta.tiny_world(root)
    centroids = root / "centroids.npy"
    np.save(centroids, np.random.default_rng(5).standard_normal((tiny_vta.UNITS, tiny_vta.HUBERT_DIM))
            .astype(np.float32))
    checkpoint = root / "ckpt"
    common = ["--out", str(checkpoint), "--steps", "1"]
    assert main(["vta", "train", "stage1", str(made["data"]), *common, "--centroids", str(centroids),
                 "--config", str(made["config"])]) == 0
    assert main(["vta", "train", "stage2", str(made["data"]), *common]) == 0
    video, _ = synth.flashes(root / "reel.mp4", [1.0, 7.3, 15.2, 19.0], duration_s=21.0)
    return {"checkpoint": checkpoint, "video": video}


def _cue(world):
    from engine.video.vta_generator import vta_for_cue

    plan = Plan(duration_s=CUE_S[1] - CUE_S[0], events=(
        Event(id="e1", description="a clap", start_s=7.2, end_s=7.6),
        Event(id="e2", description="a clap", start_s=15.1, end_s=15.5),
    ))
    return vta_for_cue(plan, video_path=world["video"], start_s=CUE_S[0], end_s=CUE_S[1],
                       checkpoint=world["checkpoint"], steps=2, device="cpu")


def test_a_vta_cues_generator_holds_no_decoded_frames(world):
    _cue(world)  # first: module-level caches (presets, model registries) fill once, not per cue
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        seeded, generator = _cue(world)
        gc.collect()
        held_bytes = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    frames = len(generator.frames)
    assert frames == 430  # 20 s at 21.5 Hz
    whole_range_bytes = frames * FRAME_BYTES  # what keeping the decoded cue range costs: 64.7 MB
    # The generator and plan together: well under one MB (the decoded range was 65 MB).
    assert held_bytes < 1_000_000, (held_bytes, whole_range_bytes)
    assert held_bytes < whole_range_bytes / 60
    del seeded, generator


def test_an_events_frames_are_decoded_on_demand_exactly_as_the_whole_range_gave_them(world):
    _, generator = _cue(world)
    whole = read_frames(world["video"], start_s=CUE_S[0], end_s=CUE_S[1], frame_rate_hz=RATE_HZ)
    for first, last in ((0, 9), (155, 164), (326, 335), (421, 430)):
        assert np.array_equal(generator.frames[first:last], whole[first:last]), (first, last)
    # The flash at 15.2 s is in the picture of that range (the frames are the video's, not zeros).
    flash = round(15.2 * RATE_HZ)
    assert generator.frames[flash:flash + 1].mean() > 200 > generator.frames[flash - 4:flash - 3].mean()
    del whole

    # Decoding one event's range late in the reel converts (and holds) about that range's frames,
    # not every frame of the reel before it. Counted, not traced: the arrays PyAV hands out live
    # in its own buffers, which tracemalloc does not see.
    from engine.video import dataset

    converted: list[int] = []
    original = dataset._rgb
    dataset._rgb = lambda frame, size_px: converted.append(1) or original(frame, size_px)
    try:
        event = generator.frames[326:335]  # 9 frames, ~15.2 s into the cue
    finally:
        dataset._rgb = original
    assert event.shape == (9, 224, 224, 3)
    assert len(converted) <= 9  # one per frame on screen; decoding from the start converted all 390 up to it


def test_a_changed_video_is_refused_at_render_time_naming_what_to_do(world, tmp_path):
    import shutil

    from engine.video.vta_generator import vta_for_cue

    copy = tmp_path / "reel.mp4"
    shutil.copy(world["video"], copy)
    plan = Plan(duration_s=2.0, events=(Event(id="e1", description="a clap", start_s=1.0, end_s=1.4),))
    _, generator = vta_for_cue(plan, video_path=copy, start_s=6.0, end_s=8.0,
                               checkpoint=world["checkpoint"], steps=2, device="cpu")
    assert generator.frames[21:30].shape == (9, 224, 224, 3)
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # re-exported over it
    with pytest.raises(InvalidInputError) as changed:
        generator.frames[21:30]
    assert changed.value.field == "video_path" and "send the video_cue again" in str(changed.value)
    copy.unlink()
    with pytest.raises(InvalidInputError) as gone:
        generator.frames[21:30]
    assert "is gone" in str(gone.value)
