"""AudioAgent_lib.lua's pure helpers: JSON, path guard, command lines, the events-file reader."""

from __future__ import annotations

import shlex

import pytest
from lupa.lua54 import LuaError

from tests.daw.fake_reaper import FakeReaper


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


def test_posix_command_line_survives_quotes_and_shell_characters(lib):
    _, aa = lib
    prompt = "it's a \"door\"; rm -rf / $(boom) `x` & more"
    argv = aa.client_argv(_lua_list(lib[0], ["generate", prompt]))
    cmd = aa.shell_command(argv, "/tmp/job log.txt", "/tmp/job.exit")
    outer = shlex.split(cmd)
    assert outer[:2] == ["/bin/sh", "-c"]
    words = shlex.split(outer[2])
    assert words[:4] == ["audio-agent", "client", "generate", prompt]
    assert words[4:] == [">", "/tmp/job log.txt", "2>&1;", "echo", "$?", ">", "/tmp/job.exit"]


def test_windows_command_line_uses_cmd_with_delayed_exit_status(lib):
    reaper, aa = lib
    reaper.os_name = "Win64"
    argv = aa.client_argv(_lua_list(reaper, ["generate", 'say "hi" 100% now!']))
    cmd = aa.shell_command(argv, "C:/t/j.log", "C:/t/j.exit")
    assert cmd == ('cmd.exe /V:ON /C ""audio-agent" "client" "generate" "say \'hi\' 100 percent now." '
                   '> "C:/t/j.log" 2>&1 & echo !ERRORLEVEL! > "C:/t/j.exit""')


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
