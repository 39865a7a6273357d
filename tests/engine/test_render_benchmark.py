"""benchmarks/render.py: the per-step CPU split of a scene render (``--steps``)."""

from __future__ import annotations

from engine import render, scene, truepeak


def test_step_meter_splits_a_render_and_puts_every_function_back(tmp_path):
    from benchmarks import render as bench

    originals = (render.measure, truepeak.scan, scene.write_stem, render.MixBus.add)
    steps = bench.StepMeter()
    steps.install()
    try:
        assert render.measure is not originals[0]
        # Loud targets: the limiter runs, so true peak and limiter gain are timed too.
        plan = bench.staggered_plan(3, 6.0).model_copy(update={"events": tuple(
            event.model_copy(update={"target_lufs": -9.0})
            for event in bench.staggered_plan(3, 6.0).events)})
        manifest = scene.render_scene(plan, generator=bench.SyntheticGenerator(),
                                      out_dir=tmp_path)
    finally:
        steps.uninstall()
    assert (render.measure, truepeak.scan, scene.write_stem, render.MixBus.add) == originals
    assert len(manifest.events) == 3
    split = steps.split(outside_s=10.0)
    for step in ("fit", "fades", "loudness", "true_peak", "limiter_gain", "name_hash",
                 "wav_write", "mix_add"):
        assert step in steps.seconds and split[step] >= 0.0, step  # timed at least once
    assert split["other"] == round(10.0 - sum(steps.seconds.values()), 3)
