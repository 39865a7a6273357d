"""`audio-agent install-daw-scripts`: copy the REAPER and Live scripts into each DAW's user folder.

REAPER: <resource path>/Scripts/AudioAgent (the .lua actions, plus AudioAgent_config.lua naming
the `audio-agent` executable of this install so REAPER needs no PATH set up).
Live: <User Library>/Remote Scripts/AudioAgent (the remote script package, plus config.json with
the OSC ports). ``--dest DIR`` puts the AudioAgent folder under DIR instead; ``--print`` only
says where the files would go.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping

from engine.errors import InvalidInputError, NotFoundError

SCRIPTS_ROOT = Path(__file__).resolve().parents[2] / "daw_scripts"
FOLDER = "AudioAgent"
DAWS = ("reaper", "ableton")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "install-daw-scripts",
        help="copy the REAPER ReaScripts and the Ableton Live remote script into place",
        description="Install the DAW scripts into REAPER's Scripts folder and Live's User Library.",
    )
    parser.add_argument("--daw", choices=[*DAWS, "all"], default="all", help="which DAW (default: all)")
    parser.add_argument("--dest", type=Path, default=None,
                        help="put the AudioAgent folder under DIR (with --daw all: DIR/reaper, DIR/ableton)")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print where the scripts would go and copy nothing")
    parser.add_argument("--url", default=None, help="server WebSocket URL for the REAPER scripts' client calls")
    parser.add_argument("--server-osc-port", type=int, default=9000, help="the server's OSC port (Live script)")
    parser.add_argument("--listen-port", type=int, default=9001, help="UDP port the Live script listens on")
    parser.set_defaults(handler=run)


# ---------------------------------------------------------------------------- where things go
def reaper_resource_path(*, platform: str = sys.platform, env: Mapping[str, str] = os.environ,
                         home: Path | None = None) -> Path:
    home = home or Path.home()
    if platform.startswith("win"):
        return Path(env.get("APPDATA") or home / "AppData" / "Roaming") / "REAPER"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "REAPER"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "REAPER"


def live_user_library(*, platform: str = sys.platform, env: Mapping[str, str] = os.environ,
                      home: Path | None = None) -> Path:
    home = home or Path.home()
    if platform.startswith("win"):
        return Path(env.get("USERPROFILE") or home) / "Documents" / "Ableton" / "User Library"
    if platform == "darwin":
        return home / "Music" / "Ableton" / "User Library"
    # Live has no Linux build; under Wine its Documents folder maps here by default.
    return home / "Documents" / "Ableton" / "User Library"


def destination(daw: str, *, dest: Path | None = None, several: bool = False, platform: str = sys.platform,
                env: Mapping[str, str] = os.environ, home: Path | None = None) -> Path:
    if dest is not None:
        return (dest / daw / FOLDER) if several else (dest / FOLDER)
    if daw == "reaper":
        return reaper_resource_path(platform=platform, env=env, home=home) / "Scripts" / FOLDER
    return live_user_library(platform=platform, env=env, home=home) / "Remote Scripts" / FOLDER


# ---------------------------------------------------------------------------- what is written
def client_command() -> list[str]:
    """How REAPER should start `audio-agent`: this install's own executable when there is one."""
    exe = "audio-agent.exe" if sys.platform.startswith("win") else "audio-agent"
    sibling = Path(sys.executable).parent / exe
    if sibling.is_file():
        return [str(sibling)]
    found = shutil.which("audio-agent")
    if found:
        return [found]
    return [sys.executable, "-m", "server.cli"]


def _lua_string(text: str) -> str:
    # A JSON string is a valid Lua string literal once non-ASCII is left as raw UTF-8.
    return json.dumps(text, ensure_ascii=False)


def reaper_config(*, client: list[str], url: str | None) -> str:
    lines = ["-- Written by `audio-agent install-daw-scripts`; edit to point at another install.",
             "return {",
             "  client = { " + ", ".join(_lua_string(part) for part in client) + " },"]
    if url:
        lines.append(f"  url = {_lua_string(url)},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def live_config(*, server_osc_port: int, listen_port: int) -> str:
    shipped = json.loads((SCRIPTS_ROOT / "ableton" / FOLDER / "config.json").read_text(encoding="utf-8"))
    shipped.update(server_osc_port=server_osc_port, listen_port=listen_port)
    return json.dumps(shipped, indent=2) + "\n"


def _source_dir(daw: str) -> Path:
    source = SCRIPTS_ROOT / daw if daw == "reaper" else SCRIPTS_ROOT / daw / FOLDER
    if not source.is_dir():
        raise NotFoundError(f"daw_scripts={source}: the DAW scripts are not beside this install "
                            "(install audio-agent from a source checkout)", field="daw_scripts", value=str(source))
    return source


def install(daw: str, target: Path, *, url: str | None = None, server_osc_port: int = 9000,
            listen_port: int = 9001) -> list[Path]:
    source = _source_dir(daw)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    pattern = "*.lua" if daw == "reaper" else "*.py"
    for path in sorted(source.glob(pattern)):
        if path.name == "AudioAgent_config.lua":
            continue
        shutil.copy2(path, target / path.name)
        written.append(target / path.name)
    if daw == "reaper":
        config_path, text = target / "AudioAgent_config.lua", reaper_config(client=client_command(), url=url)
    else:
        config_path, text = target / "config.json", live_config(server_osc_port=server_osc_port,
                                                               listen_port=listen_port)
    config_path.write_text(text, encoding="utf-8")
    written.append(config_path)
    return written


def _check_port(name: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise InvalidInputError(f"{name}={value}: must be a UDP port (1-65535)", field=name, value=value)


def run(args: argparse.Namespace) -> int:
    _check_port("server_osc_port", args.server_osc_port)
    _check_port("listen_port", args.listen_port)
    daws = DAWS if args.daw == "all" else (args.daw,)
    for daw in daws:
        target = destination(daw, dest=args.dest, several=len(daws) > 1)
        if args.print_only:
            print(f"{daw}: {target}")
            continue
        written = install(daw, target, url=args.url, server_osc_port=args.server_osc_port,
                          listen_port=args.listen_port)
        print(f"{daw}: installed {len(written)} files in {target}")
    if not args.print_only:
        print("REAPER: Actions > Show action list > New action > Load ReaScript, pick the AudioAgent_*.lua files.")
        print("Live: Settings > Link, Tempo & MIDI > Control Surface: AudioAgent (restart Live after installing).")
    return 0
