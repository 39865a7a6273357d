"""`audio-agent render` / `audio-agent plan` and engine/settings.py, through server.cli.main.

A fake backend registered under a test name keeps most runs fast; the demo prompt also runs on
the real procedural backend, in-process and once through the installed console script.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyloudnorm
import pytest
import soundfile as sf

from engine.errors import InvalidInputError
from engine.generators import register_generator
from engine.manifest import read_manifest
from engine.plan import validate_plan
from engine.settings import EngineSettings, load_settings
from engine.stems import read_bext
from server.cli import main
from tests.engine.test_scene import FakeGenerator

DEMO_PROMPT = (
    "Rain pouring outside as thunder rumbles in the distance, followed by a door slamming"
)
FAKE = "fake-cli-test"
HAS_PROCEDURAL = importlib.util.find_spec("engine.generators.procedural") is not None
needs_procedural = pytest.mark.skipif(not HAS_PROCEDURAL, reason="procedural backend not built")

register_generator(FAKE, lambda: FakeGenerator(name=FAKE))
register_generator(f"{FAKE}-failing", lambda: FakeGenerator(name=FAKE, fail_word="door"))


@pytest.fixture(autouse=True)
def hermetic_settings(tmp_path, monkeypatch):
    """No user config or environment leaks in; the cache lives in the test's folder."""
    for name in list(os.environ):
        if name.startswith("AUDIO_AGENT_"):
            monkeypatch.delenv(name)
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("AUDIO_AGENT_CONFIG", str(config))
    monkeypatch.setenv("AUDIO_AGENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return config


def file_lufs(path: str) -> float:
    data, rate = sf.read(path, dtype="float64", always_2d=True)
    return float(pyloudnorm.Meter(rate).integrated_loudness(data))


def check_render(out: Path, stdout: str) -> dict:
    manifest_path = Path(stdout.strip().splitlines()[-1])
    assert manifest_path == (out / "manifest.json").resolve()
    manifest = read_manifest(manifest_path)
    assert manifest.events and not manifest.failed
    for event in manifest.events:
        assert Path(event.stem_path).is_file() and Path(event.stem_path).parent == out.resolve()
        if event.end_s - event.start_s >= 0.5:
            measured = file_lufs(event.stem_path)
            assert abs(measured - event.target_lufs) <= 0.5, (event.id, measured)
    assert Path(manifest.mix_path).is_file()
    assert sf.info(manifest.mix_path).frames == round(manifest.duration_s * manifest.sample_rate)
    return json.loads(manifest_path.read_text())


# -- demo prompt -----------------------------------------------------------------------------


@needs_procedural
def test_demo_prompt_renders_stems_mix_and_manifest(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["render", DEMO_PROMPT, "--duration", "10", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = check_render(out, captured.out)
    descriptions = " ".join(e["description"].lower() for e in data["events"])
    assert "rain" in descriptions and "thunder" in descriptions and "door" in descriptions
    assert data["backend"] == "procedural" and data["planner"] == "rules"
    assert any("procedural" in note for note in data["notes"])
    assert "rendered" in captured.err


@needs_procedural
def test_installed_console_script_renders_demo(tmp_path):
    script = Path(sys.executable).parent / "audio-agent"
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    out = tmp_path / "sub"
    completed = subprocess.run(
        [str(script), "render", DEMO_PROMPT, "--duration", "10", "--out", str(out), "--aligned"],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr
    data = check_render(out, completed.stdout)
    aligned = (out / "aligned").resolve()
    assert all(Path(e["aligned_path"]).parent == aligned for e in data["events"])
    # Piped stderr gets plain progress lines, never carriage-return bars.
    assert "\r" not in completed.stderr
    assert "render 100%" in completed.stderr.splitlines()


# -- options ---------------------------------------------------------------------------------


def test_render_options_reach_the_files(tmp_path, capsys):
    out = tmp_path / "opts"
    code = main([
        "render", "rain on a tin roof, then a dog barks", "--duration", "6", "--out", str(out),
        "--backend", FAKE, "--float", "--sample-rate", "44100", "--anchor", "2.5",
        "--target-lufs", "-20",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = check_render(out, captured.out)
    assert data["sample_rate"] == 44100 and data["anchor_s"] == 2.5
    for event in data["events"]:
        info = sf.info(event["stem_path"])
        assert (info.subtype, info.samplerate) == ("FLOAT", 44100)
        position = read_bext(event["stem_path"])["time_reference_samples"]
        assert position == round((2.5 + event["start_s"]) * 44100)
    # --target-lufs moves the scene's reference level: every event's target follows it (the
    # planner places events relative to it; -23 is the default).
    plan = json.loads(_plan_json(capsys, "rain on a tin roof, then a dog barks", "6"))
    targets = {event["id"]: event["target_lufs"] for event in data["events"]}
    for event in plan["events"]:
        assert targets[event["id"]] == pytest.approx(min(-5.0, (event["target_lufs"] or -23.0) + 3.0))


def _plan_json(capsys, prompt: str, duration: str) -> str:
    assert main(["plan", prompt, "--duration", duration]) == 0
    return capsys.readouterr().out


def test_cue_markers_file_marks_every_event(tmp_path, capsys):
    import mido

    out = tmp_path / "cues"
    code = main(["render", "rain on a tin roof, then a dog barks", "--duration", "6", "--out", str(out),
                 "--backend", FAKE, "--anchor", "4", "--cue-markers", "--tempo", "90"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = check_render(out, captured.out)
    assert data["cues_path"] == str(out.resolve() / "cues.mid")
    midi = mido.MidiFile(data["cues_path"])
    tempo, now_s, markers = 500000, 0.0, {}
    for message in midi.tracks[0]:
        now_s += mido.tick2second(message.time, midi.ticks_per_beat, tempo)
        tempo = message.tempo if message.type == "set_tempo" else tempo
        if message.type == "marker":
            markers[message.text.split(":")[0]] = now_s
    assert mido.tempo2bpm(tempo) == pytest.approx(90.0)
    assert markers == {e["id"]: pytest.approx(4 + e["start_s"], abs=1e-3) for e in data["events"]}


def test_second_render_into_same_folder_reuses_stems(tmp_path, capsys):
    out = tmp_path / "again"
    argv = ["render", "wind through pines", "--duration", "4", "--out", str(out), "--backend", FAKE]
    assert main(argv) == 0
    first = read_manifest(out / "manifest.json")
    assert main(argv + ["--no-cache"]) == 0
    second = read_manifest(out / "manifest.json")
    assert [e.stem_path for e in second.events] == [e.stem_path for e in first.events]
    assert all(e.cache_hit for e in second.events)
    capsys.readouterr()


def test_seed_changes_the_render(tmp_path, capsys):
    paths = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        argv = ["render", "a bell rings", "--duration", "3", "--out", str(out), "--seed", seed,
                "--backend", FAKE]
        assert main(argv) == 0
        paths.append(read_manifest(out / "manifest.json").events[0].cache_key)
    assert paths[0] != paths[1]
    capsys.readouterr()


def test_failed_event_exits_1_with_manifest_written(tmp_path, capsys):
    out = tmp_path / "fail"
    code = main(["render", DEMO_PROMPT, "--duration", "10", "--out", str(out),
                 "--backend", f"{FAKE}-failing"])
    captured = capsys.readouterr()
    assert code == 1
    manifest = read_manifest(out / "manifest.json")
    assert [f.description for f in manifest.failed] == ["A door slamming"]
    errors = [line for line in captured.err.splitlines() if line.startswith("audio-agent: error:")]
    assert len(errors) == 1 and "1 event(s) failed" in errors[0]


def test_plan_prints_a_valid_plan_without_rendering(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["plan", DEMO_PROMPT, "--duration", "10"])
    captured = capsys.readouterr()
    assert code == 0
    plan = validate_plan(json.loads(captured.out))
    assert plan.duration_s == 10 and len(plan.events) >= 3
    assert "planner: rules" in captured.err
    assert not list(tmp_path.rglob("*.wav"))


# -- bad input: exit 2 and exactly one line ---------------------------------------------------


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--backend", "no-such-model"], "backend"),
        (["--duration", "-3"], "duration_s"),
        (["--duration", "nan"], "duration_s"),
        (["--anchor", "-1"], "anchor_s"),
        (["--sample-rate", "100"], "sample_rate"),
        (["--planner", "oracle"], "planner"),
        (["--target-lufs", "3"], "target_lufs"),
        (["--seed", "-4"], "seed"),
        (["PROMPT="], "prompt"),
        (["OUT=file"], "out_dir"),
        (["--cue-markers", "--tempo", "0"], "tempo_bpm"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, field):
    prompt, out = "rain", tmp_path / "out"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    extra = []
    for item in argv:
        if item == "PROMPT=":
            prompt = "   "
        elif item == "OUT=file":
            out = blocker / "inside"
        else:
            extra.append(item)
    base = ["render", prompt, "--out", str(out), "--backend", FAKE]
    if "--duration" not in extra:
        base += ["--duration", "4"]
    code = main(base + extra)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("audio-agent: error: ") and field in lines[0]
    assert captured.out == ""
    assert not list(tmp_path.rglob("*.wav"))


def test_plan_rejects_empty_prompt(capsys):
    assert main(["plan", "", "--duration", "5"]) == 2
    assert capsys.readouterr().err.strip().startswith("audio-agent: error: prompt=")


# -- settings --------------------------------------------------------------------------------


def test_settings_defaults():
    settings = EngineSettings()
    levels = (settings.sample_rate, settings.target_lufs, settings.ceiling_dbtp)
    assert levels == (48000, -23.0, -1.0)
    assert (settings.backend, settings.planner, settings.max_overlap) == ("procedural", "rules", 6)
    assert settings.limits().max_overlap == 6


def test_settings_env_beats_toml_file(hermetic_settings, monkeypatch):
    hermetic_settings.write_text('sample_rate = 44100\ntarget_lufs = -18.0\nbackend = "auffusion"\n'
                                 "[server]\nws_port = 9\n")
    monkeypatch.setenv("AUDIO_AGENT_TARGET_LUFS", "-16")
    settings = load_settings()
    assert settings.sample_rate == 44100 and settings.backend == "auffusion"
    assert settings.target_lufs == -16.0
    assert load_settings(target_lufs=-30.0).target_lufs == -30.0  # keyword beats both


def test_settings_errors_name_the_field(hermetic_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIO_AGENT_MAX_OVERLAP", "zero")
    with pytest.raises(InvalidInputError) as info:
        load_settings()
    assert info.value.field == "max_overlap"
    monkeypatch.delenv("AUDIO_AGENT_MAX_OVERLAP")
    hermetic_settings.write_text("sample_rate = [oops")
    with pytest.raises(InvalidInputError):
        load_settings()
    monkeypatch.setenv("AUDIO_AGENT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidInputError) as info:
        load_settings()
    assert info.value.field == "AUDIO_AGENT_CONFIG"


def test_cli_reads_settings_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUDIO_AGENT_BACKEND", FAKE)
    monkeypatch.setenv("AUDIO_AGENT_SAMPLE_RATE", "32000")
    out = tmp_path / "env"
    assert main(["render", "crickets at night", "--duration", "3", "--out", str(out)]) == 0
    manifest = read_manifest(out / "manifest.json")
    assert manifest.backend == FAKE and manifest.sample_rate == 32000
    assert not math.isnan(manifest.events[0].measured_lufs)
    capsys.readouterr()


def test_llm_model_is_passed_to_the_llm_planner(monkeypatch, capsys):
    import engine.compose as compose
    from engine.planners.rules import RulePlanner
    from engine.seeds import mix_seed

    seen = {}

    class StandIn(RulePlanner):
        name = "llm"  # answers like an LLM planner would

    def fake_create(name, **options):
        seen[name] = options
        return RulePlanner(**options) if name == "rules" else StandIn()

    monkeypatch.setattr(compose, "create_planner", fake_create)
    assert main(["plan", "a kettle whistles", "--duration", "5", "--planner", "llm",
                 "--llm-model", "qwen2.5-7b-instruct", "--seed", "7", "--target-lufs", "-18"]) == 0
    assert seen["llm"]["model"] == "qwen2.5-7b-instruct"
    # The fallback carries the CLI's loudness target; planners are built unsalted.
    fallback = seen["llm"]["fallback"]
    assert (fallback.base_lufs, fallback.seed) == (-18.0, 0)
    plan = json.loads(capsys.readouterr().out)
    # --seed is mixed into every planner's seeds by the one seed rule (engine.seeds).
    unseeded = RulePlanner().plan("a kettle whistles", duration_s=5).plan.events[0].seed
    assert plan["events"][0]["seed"] == mix_seed(unseeded, 7) != unseeded


def test_model_option_on_a_backend_without_weights_is_bad_input(tmp_path, capsys):
    code = main(["render", "rain", "--duration", "2", "--out", str(tmp_path / "m"),
                 "--backend", FAKE, "--model", "/models/x"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "model=" in lines[0]
    code = main(["render", "rain", "--duration", "2", "--out", str(tmp_path / "m"),
                 "--backend", "procedural", "--steps", "10"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "steps=10" in lines[0] and "procedural" in lines[0]


def test_steps_and_guidance_reach_a_model_backend(tmp_path, capsys, monkeypatch):
    import engine.compose as render_command

    seen = {}

    def fake_create(name, **options):
        seen.update(options)
        return FakeGenerator(name=FAKE)

    monkeypatch.setattr(render_command, "create_generator", fake_create)
    code = main(["render", "rain", "--duration", "2", "--out", str(tmp_path / "g"), "--backend", "auffusion",
                 "--model", "/models/auffusion", "--steps", "12", "--guidance", "4.5"])
    assert code == 0, capsys.readouterr().err
    assert seen == {"model": "/models/auffusion", "steps": 12, "guidance": 4.5}


def test_progress_is_a_redrawn_bar_on_a_terminal():
    import io

    from server.commands.render import ProgressDisplay

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    display = ProgressDisplay(stream)
    for fraction in (0.0, 0.5, 1.0):
        display("render", fraction)
    display.close()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n")
    assert "[" + "#" * 24 + "] 100.0%" in text
    piped = io.StringIO()
    plain = ProgressDisplay(piped)
    for fraction in (0.0, 0.1, 0.3, 0.31, 1.0):
        plain("render", fraction)
    assert piped.getvalue().splitlines() == ["render 0%", "render 25%", "render 100%"]


def test_new_anchor_in_same_folder_writes_correctly_stamped_stems(tmp_path, capsys):
    out = tmp_path / "anchor"
    argv = ["render", "a clock ticks", "--duration", "3", "--out", str(out), "--backend", FAKE]
    assert main(argv) == 0
    first = read_manifest(out / "manifest.json").events[0]
    assert main(argv + ["--anchor", "4"]) == 0
    second = read_manifest(out / "manifest.json").events[0]
    assert second.stem_path != first.stem_path and second.cache_hit  # from the raw cache
    stamp = read_bext(second.stem_path)["time_reference_samples"]
    assert stamp == round((4 + second.start_s) * 48000)
    assert read_bext(first.stem_path)["time_reference_samples"] == round(first.start_s * 48000)
    capsys.readouterr()


# -- packaging ------------------------------------------------------------------------------


def test_a_regular_install_ships_presets_and_daw_scripts(tmp_path):
    """A wheel (what a non-editable `pip install .` installs) carries presets/ and daw_scripts/
    at the place the code looks for them: beside engine/ and server/ in site-packages."""
    import shutil
    import zipfile

    pytest.importorskip("setuptools", minversion="70.1")  # builds wheels without `wheel`
    from engine.planners.llm_prompt import PRESETS_DIR, PROMPT_FILES
    from server.commands.install_daw import SCRIPTS_ROOT

    root = Path(__file__).resolve().parents[2]
    assert (PRESETS_DIR.parent, SCRIPTS_ROOT.parent) == (root, root)  # where the code looks
    source = tmp_path / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    for name in ("engine", "server", "presets", "daw_scripts"):
        shutil.copytree(root / name, source / name, ignore=ignore)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=240,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("audio_agent-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for variant_file in PROMPT_FILES.values():
        assert f"presets/{variant_file}" in names
    for data_file in ("presets/models.toml", "presets/vta.toml"):
        assert data_file in names
    scripts = [p for p in SCRIPTS_ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert scripts
    for path in scripts:
        assert path.relative_to(root).as_posix() in names


def test_a_reader_that_closes_the_pipe_gets_no_traceback(tmp_path):
    # `audio-agent plan ... | head -1`: stdout's reader is gone before the plan is written.
    script = Path(sys.executable).parent / "audio-agent"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    process = subprocess.Popen(
        [*command, "plan", "rain then a door slams", "--duration", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


@pytest.mark.parametrize(
    "argv",
    [["render", "rain", "--duration", "abc", "--out", "x"], ["render", "rain", "--out", "x"],
     ["plan", "rain"], ["no-such-command"]],
)
def test_usage_errors_are_one_line_too(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    assert info.value.code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audio-agent: error: "), captured.err
    assert "--help" in lines[0]
