"""`audio-agent install-daw-scripts`: copy the REAPER and Live scripts into each DAW's user folder.

REAPER: <resource path>/Scripts/AudioAgent (the .lua actions, plus AudioAgent_config.lua naming
the `audio-agent` executable of this install so REAPER needs no PATH set up).
Live: <User Library>/Remote Scripts/AudioAgent (the remote script package, plus config.json with
the OSC ports). ``--dest DIR`` puts the AudioAgent folder under DIR instead; ``--print`` only
says where the files would go. ``--reapack DIR --base-url URL`` writes a ReaPack repository
instead (index.xml plus the scripts), for REAPER users to add by URL and get updates from.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import quote
from typing import Mapping

from engine.errors import InvalidInputError, NotFoundError

SCRIPTS_ROOT = Path(__file__).resolve().parents[2] / "daw_scripts"
FOLDER = "AudioAgent"
DAWS = ("reaper", "ableton")


def register(subparsers: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--reapack", type=Path, default=None, metavar="DIR",
                        help="write a ReaPack repository (index.xml + scripts) into DIR instead of installing")
    parser.add_argument("--base-url", default=None,
                        help="with --reapack: the URL DIR will be served from (index.xml's download links)")
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


# ---------------------------------------------------------------------------- ReaPack
REAPACK_PACKAGE = "AudioAgent_Generate_scene.lua"  # the package file; its @provides lists the rest
REAPACK_CATEGORY = FOLDER


def read_header(path: Path) -> dict[str, str]:
    """A script's ReaPack metadata header: `-- @tag value` lines at the top, a tag's value going
    on over following lines indented by `--` plus spaces (reapack-index's packaging format)."""
    tags: dict[str, str] = {}
    last = None
    for line in path.read_text(encoding="utf-8").splitlines():
        tag = re.match(r"^--\s*@(\w+)\s*(.*)$", line)
        if tag:
            last = tag.group(1).lower()
            tags[last] = tag.group(2).strip()
            continue
        more = re.match(r"^--\s{2,}(\S.*)$", line)
        if more and last is not None:
            tags[last] = (tags[last] + "\n" + more.group(1)).strip()
            continue
        break
    return tags


def provided(tags: Mapping[str, str]) -> list[tuple[str, bool]]:
    """(file, is_main) for each line of a @provides value ("[main] file" or "file")."""
    out = []
    for line in tags.get("provides", "").splitlines():
        match = re.match(r"^(\[main\]\s*)?(\S.*)$", line.strip())
        if match:
            out.append((match.group(2).strip(), bool(match.group(1))))
    return out


def reapack_index(*, base_url: str, when: str) -> str:
    """index.xml (ReaPack's index format v1) for the REAPER scripts served from base_url, laid
    out as base_url/AudioAgent/<file>."""
    if not re.match(r"^(https?|file)://", base_url):
        raise InvalidInputError(f"base_url={base_url!r}: must be an http(s):// or file:// URL",
                                field="base_url", value=base_url)
    from xml.sax.saxutils import escape, quoteattr  # pulls in urllib.request: only when used

    source = _source_dir("reaper")
    tags = read_header(source / REAPACK_PACKAGE)
    for required in ("version", "description", "author"):
        if not tags.get(required):
            raise InvalidInputError(f"{REAPACK_PACKAGE}: no @{required} in its header", field=required)

    def url(name: str) -> str:
        # A space (or other unsafe character) in the base would make the URL invalid: quoted too.
        base = quote(base_url.rstrip("/"), safe=":/?&=%#@+,;~")
        return f"{base}/{quote(REAPACK_CATEGORY)}/{quote(name)}"

    sources = [f'        <source main="main">{escape(url(REAPACK_PACKAGE))}</source>']
    for name, is_main in provided(tags):
        if not (source / name).is_file():
            raise NotFoundError(f"@provides {name}: no such script beside {REAPACK_PACKAGE}", field="provides")
        main = ' main="main"' if is_main else ""
        sources.append(f'        <source{main} file={quoteattr(name)}>{escape(url(name))}</source>')
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<index version="1" name="Audio-Agent">',
        f"  <category name={quoteattr(REAPACK_CATEGORY)}>",
        f'    <reapack name={quoteattr(REAPACK_PACKAGE)} type="script" desc={quoteattr(tags["description"])}>',
        f"      <version name={quoteattr(tags['version'])} author={quoteattr(tags['author'])} time={quoteattr(when)}>",
        f"        <changelog><![CDATA[{tags.get('changelog', '')}]]></changelog>",
        *sources,
        "      </version>",
        "    </reapack>",
        "  </category>",
        "</index>",
    ]
    return "\n".join(lines) + "\n"


def write_reapack(folder: Path, *, base_url: str, when: str | None = None) -> list[Path]:
    """A ReaPack repository in `folder`: index.xml and AudioAgent/<scripts>."""
    when = when or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = reapack_index(base_url=base_url, when=when)
    scripts = folder / REAPACK_CATEGORY
    scripts.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(_source_dir("reaper").glob("AudioAgent_*.lua")):
        if path.name != "AudioAgent_config.lua":
            shutil.copy2(path, scripts / path.name)
            written.append(scripts / path.name)
    (folder / "index.xml").write_text(text, encoding="utf-8")
    return [folder / "index.xml", *written]


def _check_port(name: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise InvalidInputError(f"{name}={value}: must be a UDP port (1-65535)", field=name, value=value)


def run(args: argparse.Namespace) -> int:
    _check_port("server_osc_port", args.server_osc_port)
    _check_port("listen_port", args.listen_port)
    if args.reapack is not None:
        if not args.base_url:
            raise InvalidInputError("base_url: --reapack needs --base-url (where DIR will be served from)",
                                    field="base_url")
        written = write_reapack(args.reapack, base_url=args.base_url)
        print(f"ReaPack repository: {len(written)} files in {args.reapack}; in REAPER: Extensions > ReaPack > "
              f"Import repositories > {args.base_url.rstrip('/')}/index.xml")
        return 0
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
