"""`audio-agent library add|list|remove|rescan|search|embed`: the designer's sound library index.

The index lives at <data_dir>/library.sqlite (or the [library] ``index`` setting, or
``--index``). Summaries go to stdout; each skipped file is one line on stderr
("skipped: PATH: reason"), so a scan of a large library reads like a log and never stops.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import InvalidInputError


def _open(args: argparse.Namespace, *, readonly: bool = False):  # -> LibraryIndex
    from engine.library.settings import index_path
    from engine.library.store import LibraryIndex

    path = Path(args.index).expanduser() if args.index else index_path()
    return LibraryIndex(path, readonly=readonly)


def _progress(stream):  # a "N files..." line every 500 files, so a long scan shows life
    def report(count: int, _path: str) -> None:
        if count % 500 == 0:
            print(f"... {count} files", file=stream, flush=True)

    return report


def _print_report(report) -> None:
    for path, reason in report.skipped:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    print(
        f"{report.root}: {report.indexed} indexed ({report.added} new, {report.updated} updated, "
        f"{report.unchanged} unchanged), {report.removed} removed, {len(report.skipped)} skipped"
    )


def run_add(args: argparse.Namespace) -> int:
    from engine.library.scan import add_folder, resolve_folder

    folders = [resolve_folder(folder) for folder in args.folders]  # all checked before any scan
    with _open(args) as index:
        for folder in folders:
            _print_report(add_folder(index, folder, progress=_progress(sys.stderr)))
    return 0


def run_rescan(args: argparse.Namespace) -> int:
    from engine.library.scan import rescan

    with _open(args) as index:
        reports = rescan(index, progress=_progress(sys.stderr))
        if not reports:
            print("the library has no folders; add one with 'audio-agent library add DIR'")
        for report in reports:
            _print_report(report)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with _open(args) as index:
        roots = index.roots()
        if args.json:
            listed = [{"folder": r.display, "files": r.files, "skipped": r.skipped} for r in roots]
            print(json.dumps(listed, indent=2))
        else:
            for root in roots:
                print(f"{root.display}\t{root.files} files\t{root.skipped} skipped")
            print(f"{index.count()} files in {len(roots)} folder(s): {index.path}")
        if args.skipped:
            for path, reason in index.skips():
                print(f"skipped: {path}: {reason}", file=sys.stderr)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    with _open(args) as index:
        for folder in args.folders:
            path = Path(folder).expanduser()
            path = path.resolve() if path.exists() else path.absolute()
            root = index.root_for(path)
            if root is None:
                known = ", ".join(r.display for r in index.roots()) or "none"
                raise InvalidInputError(f"{folder}: not a library folder (folders: {known})",
                                        field="folder", value=folder)
            removed = index.remove_root(root)
            print(f"{root.display}: removed ({removed} files)")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from engine.library.search import search

    if args.length is not None and not args.length > 0:
        raise InvalidInputError(
            f"length_s={args.length!r}: must be > 0", field="length_s", value=args.length
        )
    with _open(args, readonly=True) as index:
        semantic = None
        if args.clap:
            from engine.library.semantic import SemanticIndex

            semantic = SemanticIndex.from_settings(index)
        hits = search(index, args.text, length_s=args.length, limit=args.limit, semantic=semantic)
    if args.json:
        print(json.dumps([
            {"score": h.score, "path": h.file.display, "cat_id": h.file.cat_id,
             "length_s": round(h.file.length_s, 3), "channels": h.file.channels,
             "text": h.text, "category": h.category, "shape": h.shape, "semantic": h.semantic}
            for h in hits
        ], indent=2))
        return 0
    if not hits:
        print(f"no library file matches {args.text!r}", file=sys.stderr)
        return 0
    for hit in hits:
        file = hit.file
        print(f"{hit.score:.3f}\t{file.display}\t{file.cat_id or '-'}\t{file.length_s:.2f} s\t"
              f"{file.channels} ch\t({hit.explain()})")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from engine.library.semantic import ClapEmbedder, SemanticIndex

    with _open(args) as index:
        semantic = (SemanticIndex(index, ClapEmbedder(args.model)) if args.model
                    else SemanticIndex.from_settings(index))
        done, failures = semantic.update()
    for path, reason in failures:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    print(f"{done} file(s) embedded with {semantic.embedder.name}, {len(failures)} skipped")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "library",
        help="index your own sound library and search it (for --backend library/hybrid)",
        description="Index folders of sound files (WAV/BWF, AIFF, FLAC, OGG, MP3) and search them.",
    )
    parser.add_argument("--index", metavar="FILE", default=None,
                        help="index file (default: <data_dir>/library.sqlite or [library] index)")
    actions = parser.add_subparsers(dest="library_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add folders and index them")
    add.add_argument("folders", nargs="+", metavar="DIR")
    add.set_defaults(handler=run_add)

    listing = actions.add_parser("list", help="the indexed folders and file counts")
    listing.add_argument("--skipped", action="store_true",
                         help="also print every skipped file and why")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=run_list)

    remove = actions.add_parser("remove", help="forget folders (files on disk are untouched)")
    remove.add_argument("folders", nargs="+", metavar="DIR")
    remove.set_defaults(handler=run_remove)

    again = actions.add_parser("rescan", help="re-read new and changed files, drop deleted ones")
    again.set_defaults(handler=run_rescan)

    embed = actions.add_parser(
        "embed", help="compute CLAP vectors for files that have none (semantic search)"
    )
    embed.add_argument("--model", default=None, metavar="ID_OR_DIR",
                       help="CLAP Hub id or local folder (default: [library] clap_model)")
    embed.set_defaults(handler=run_embed)

    find = actions.add_parser("search", help="ranked matches for an event description")
    find.add_argument("text", help='what the event sounds like, e.g. "heavy wooden door slam"')
    find.add_argument("--limit", type=int, default=10)
    find.add_argument("--length", type=float, default=None, metavar="SECONDS",
                      help="the event's length (helps pick one-shots vs beds)")
    find.add_argument("--clap", action="store_true",
                      help="blend in CLAP similarity ([library] clap_model)")
    find.add_argument("--json", action="store_true")
    find.set_defaults(handler=run_search)
