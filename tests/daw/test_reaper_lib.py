"""AudioAgent_lib.lua's pure helpers: JSON, path guard, command lines, the events-file reader."""

from __future__ import annotations

import json
import sys
import time

import pytest
from lupa.lua54 import LuaError

from tests.daw.fake_reaper import FakeReaper, split_exec_line


@pytest.fixture
def lib(tmp_path):
    reaper = FakeReaper(resource_path=tmp_path)
    return reaper, reaper.load_lib()


def test_json_decodes_what_the_server_sends(lib):
    _, aa = lib
    value = aa.json.decode('{"a": [1, -2.5e1, "x\\u00e9\\ud83d\\ude00\\n\\"q\\"", null, true, false],'
                           ' "b": {"c": null}, "d": ""}')
    assert list(value.a.values())[:3] == [1, -25.0, 'xé😀\n"q"']
    assert value.a[4] is not None and value.a[5] is True and value.a[6] is False
    assert value.b.c is None and value.d == ""
    assert aa.json.encode(aa.json.decode('{"k":[1,2.5,"s"],"n":{"m":true}}')) == '{"k":[1,2.5,"s"],"n":{"m":true}}'


@pytest.mark.parametrize("text", ['{"a":', '{"a" 1}', '[1,]', '"open', '{"a":1} x', 'nul', '{"a":"\\q"}'])
def test_json_rejects_malformed_text(lib, text):
    _, aa = lib
    with pytest.raises(LuaError, match="invalid JSON"):
        aa.json.decode(text)


def test_stem_paths_must_stay_inside_the_root(lib):
    reaper, aa = lib
    assert aa.path_is_under("/data/stems/s1/rain.wav", "/data/stems")
    assert aa.path_is_under("/data/stems/./s1//rain.wav", "/data/stems/")
    assert not aa.path_is_under("/data/stems-other/rain.wav", "/data/stems")
    assert not aa.path_is_under("/data/stems/../etc/passwd", "/data/stems")
    assert not aa.path_is_under("/data/stems", "/data/stems")
    assert not aa.path_is_under("/data/STEMS/a.wav", "/data/stems")  # case matters off Windows
    reaper.os_name = "Win64"
    assert aa.path_is_under("C:\\Data\\STEMS\\a.wav", "c:/data/stems")


def test_posix_command_line_survives_quotes_and_shell_characters(lib, tmp_path):
    """REAPER runs no shell on macOS/Linux: the line it gets must split into exactly
    `/bin/sh SCRIPT` with REAPER's own rules, and the script must hand every argument over
    byte for byte (quotes, shell characters, non-ASCII) and record the exit status."""
    reaper, aa = lib
    jobs = tmp_path / "Application Support" / "jobs"  # macOS resource paths hold a space
    jobs.mkdir(parents=True)
    echo = "import json, sys; print(json.dumps(sys.argv[1:])); sys.exit(3)"
    aa.config.client = reaper.lua.table(sys.executable, "-c", echo)
    prompt = "it's a \"door\"; rm -rf / $(boom) `x` & more \\ 50% !x café 🚪"
    argv = aa.client_argv(_lua_list(reaper, ["generate", prompt]))
    log, exit_file, script = jobs / "job log.txt", jobs / "job.exit", jobs / "job.sh"
    cmd = aa.shell_command(argv, str(log), str(exit_file), str(script))
    assert split_exec_line(cmd) == ["/bin/sh", str(script)]
    assert reaper.real_exec(cmd, 20000) == "0\n"  # the script itself exits 0 after recording
    assert json.loads(log.read_text(encoding="utf-8")) == ["client", "generate", prompt]
    assert exit_file.read_text().strip() == "3"


def _status(reaper: FakeReaper, aa, tmp_path):
    """Run `client status` the way a run does: in the background, then read its files."""
    paths = reaper.lua.table_from({"log": str(tmp_path / "status.log"), "exit": str(tmp_path / "status.exit"),
                                   "script": str(tmp_path / "status.sh")})
    for name in ("status.log", "status.exit"):
        (tmp_path / name).unlink(missing_ok=True)
    assert aa.start_client(_lua_list(reaper, ["status"]), paths)
    assert reaper.exec_commands[-1][1] == -1  # REAPER does not wait for it
    reaper.processes[-1].wait(timeout=30)
    for _ in range(100):  # the script writes the exit status just after the client ends
        if aa.exit_status(paths) is not None:
            break
        time.sleep(0.02)
    return aa.parse_status(aa.exit_status(paths), (tmp_path / "status.log").read_text(encoding="utf-8"))


def test_posix_status_call_returns_the_clients_output(lib, tmp_path):
    reaper, aa = lib
    pong = {"stem_root": "/data/stems", "server_version": "x"}
    aa.config.client = reaper.lua.table(sys.executable, "-c", f"print({json.dumps(json.dumps(pong))})")
    value = _status(reaper, aa, tmp_path)
    assert value is not None and value.stem_root == "/data/stems"
    aa.config.client = reaper.lua.table(sys.executable, "-c", "import sys; sys.exit('audio-agent: error: refused')")
    value, message = _status(reaper, aa, tmp_path)
    assert value is None and message == "the Audio-Agent server is not reachable: audio-agent: error: refused"


def test_a_script_path_reaper_cannot_quote_is_refused(lib, tmp_path):
    _, aa = lib
    argv = aa.client_argv(_lua_list(lib[0], ["status"]))
    with pytest.raises(LuaError, match="cannot run a script"):
        aa.shell_command(argv, "log", "exit", str(tmp_path / "a\"b'c`d.sh"))
    # One quote kind in the path is fine: another kind wraps it.
    cmd = aa.shell_command(argv, "log", "exit", str(tmp_path / 'say "hi".sh'))
    assert split_exec_line(cmd) == ["/bin/sh", str(tmp_path / 'say "hi".sh')]


def batch_line_argv(line: str) -> list[str]:
    """What a command line in a .cmd file hands the program: cmd.exe turns %% into % (delayed
    expansion off, so ! stays), then the C runtime splits it (Microsoft's documented rules:
    2n backslashes + quote -> n backslashes and a quote toggle; 2n+1 -> n and a literal quote;
    other backslashes are literal)."""
    line = line.replace("%%", "%")
    argv, current, in_quotes, i, have = [], [], False, 0, False
    while i < len(line):
        char = line[i]
        if char == "\\":
            j = i
            while j < len(line) and line[j] == "\\":
                j += 1
            count = j - i
            if j < len(line) and line[j] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    i = j + 1
                else:
                    i = j
                have = True
                continue
            current.append("\\" * count)
            i = j
            have = True
            continue
        if char == '"':
            in_quotes = not in_quotes
            have = True
        elif char == " " and not in_quotes:
            if have:
                argv.append("".join(current))
            current, have = [], False
        else:
            current.append(char)
            have = True
        i += 1
    if have:
        argv.append("".join(current))
    return argv


def test_windows_batch_file_passes_percent_bang_and_trailing_backslash(lib, tmp_path):
    """`WOW! take (100%).mp4` must reach the client as it is (no delayed expansion, % doubled
    for the batch file), and an argument ending in `\\` must not swallow the next one."""
    reaper, aa = lib
    reaper.os_name = "Win64"
    video = "C:\\Users\\me!\\WOW! take (100%).mp4"
    argv = aa.client_argv(_lua_list(reaper, ["video-cue", video, "--hint", 'a "door" \\', "--session", "s"]))
    script = tmp_path / "job.sh"
    cmd = aa.shell_command(argv, "C:/t/100% j!.log", "C:/t/j!.exit", str(script))
    batch = tmp_path / "job.cmd"
    assert cmd == f'cmd.exe /D /C "{batch}"'
    lines = batch.read_bytes().decode("utf-8").split("\r\n")
    assert lines[2] == "setlocal DisableDelayedExpansion"
    command = lines[4]
    words = batch_line_argv(command[: command.index(" > ")])
    assert words == ["audio-agent", "client", "video-cue", video, "--hint", "a 'door' \\", "--session", "s"]
    assert batch_line_argv(command[command.index(" > ") + 3:])[0] == "C:/t/100% j!.log"
    assert lines[5] == '(echo %ERRORLEVEL%)> "C:/t/j!.exit"'


def test_background_jobs_keep_cmd_minimised_on_windows(lib):
    reaper, aa = lib
    assert aa.no_wait() == -1
    reaper.os_name = "Win64"
    assert aa.no_wait() == -2  # -1 would show a console window for the whole job


def test_line_reader_returns_each_complete_line_once(lib, tmp_path):
    _, aa = lib
    path = tmp_path / "events.jsonl"
    reader = aa.line_reader(str(path))
    assert list(reader.read().values()) == []  # no file yet
    path.write_text('{"a":1}\n{"b"')
    assert list(reader.read().values()) == ['{"a":1}']
    with open(path, "a") as handle:
        handle.write(':2}\n\n{"c":3}\n')
    assert list(reader.read().values()) == ['{"b":2}', '{"c":3}']
    assert list(reader.read().values()) == []


def _lua_list(reaper: FakeReaper, values: list[str]):
    return reaper.lua.table(*values)


def test_a_missing_client_executable_is_named_as_such(lib, tmp_path):
    reaper, aa = lib
    aa.config.client = reaper.lua.table(str(tmp_path / "moved-venv" / "audio-agent"))
    value, message = _status(reaper, aa, tmp_path)
    assert value is None
    assert message.startswith(f"could not start the audio-agent client ({tmp_path / 'moved-venv' / 'audio-agent'})")
    assert "install-daw-scripts" in message
