"""What a sound file says about itself: stream properties, UCS name parts and text metadata.

Tags come from mutagen (ID3 in MP3/WAV/AIFF, Vorbis comments in FLAC/OGG); the BWF ``bext``
and ``iXML`` chunks, which mutagen locates but does not decode, are decoded here from the
chunk bodies mutagen hands back (EBU Tech 3285 layout; iXML is plain XML). Stream properties
come from libsndfile (soundfile), which also tells us what the file really is whatever its
extension says.

Every reader here treats the file as hostile: sizes are capped before anything is read into
memory, and a broken tag block costs only that block, never the file's audio properties.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import soundfile as sf

from engine.library.ucs import UcsName, cat_id_words, parse_ucs_name

AUDIO_EXTENSIONS = frozenset({".wav", ".bwf", ".wave", ".aif", ".aiff", ".aifc", ".flac",
                              ".ogg", ".oga", ".mp3"})
# libsndfile major formats we index, by the name sf.info reports.
FORMATS = {"WAV": "WAV", "WAVEX": "WAV", "RF64": "WAV", "AIFF": "AIFF", "FLAC": "FLAC",
           "OGG": "OGG", "MP3": "MP3"}

MAX_TEXT_CHUNK_BYTES = 256 * 1024  # a bext/iXML body larger than this is not metadata
BEXT_FIXED_BYTES = 602  # description .. reserved, before the coding history
MAX_FIELD_CHARS = 2000  # per text field stored in the index
MIN_LENGTH_S = 0.01  # shorter than this is a broken file or a stray header, not a sound

# iXML / ASWG element names (lower case) whose text we keep, and what each feeds.
_IXML_FIELDS = {
    "note": "description", "description": "description", "fxname": "title",
    "keywords": "keywords", "category": "keywords", "subcategory": "keywords",
    "catid": "cat_id", "library": "library", "creatorid": "creator", "designer": "creator",
    "recordist": "creator", "copyright": "licence", "license": "licence", "licence": "licence",
    "project": "keywords", "scene": "keywords", "user": "keywords", "usercomments": "description",
}


class UnreadableFile(Exception):
    """A file the index skips; the message is the one-line reason shown to the user."""


@dataclass
class FileMeta:
    format: str
    channels: int
    sample_rate: int
    frames: int
    ucs: UcsName | None = None
    title: str = ""
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    creator: str = ""
    library: str = ""
    licence: str = ""
    cat_id_tag: str = ""  # a CatID found in iXML/ASWG when the name is not UCS

    @property
    def length_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    @property
    def cat_id(self) -> str:
        return self.ucs.cat_id if self.ucs is not None else self.cat_id_tag

    def add(self, slot: str, text: str) -> None:
        """Fill one metadata slot from a tag; the first non-empty value of a slot wins, except
        keywords and descriptions, which gather from every source."""
        text = _clean(text)
        if not text:
            return
        if slot == "keywords":
            if text not in self.keywords:
                self.keywords.append(text)
        elif slot == "description":
            if text not in self.description:
                self.description = f"{self.description} {text}".strip()[:MAX_FIELD_CHARS]
        elif slot == "cat_id":
            self.cat_id_tag = self.cat_id_tag or text.split()[0]
        elif not getattr(self, slot):
            setattr(self, slot, text)

    def search_text(self, path: Path) -> dict[str, str]:
        """The four full-text columns: name, category, description, tags."""
        ucs = self.ucs
        name = ucs.fx_name if ucs is not None else _clean(re.sub(r"[_\-.]+", " ", path.stem))
        category = cat_id_words(self.cat_id) if self.cat_id else ""
        folders = _clean(" ".join(re.sub(r"[_\-.]+", " ", part) for part in path.parent.parts[-3:]))
        tags = [self.title, *self.keywords, self.creator, self.library, folders]
        if ucs is not None:
            tags += [ucs.user_data, ucs.source_id]
        return {
            "name": name,
            "category": category,
            "description": self.description,
            "tags": " ".join(t for t in tags if t)[:MAX_FIELD_CHARS],
        }


def _clean(text: Any) -> str:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    # Control characters (a hostile tag may hold newlines or escapes) become spaces.
    # Undecodable bytes of a file name (surrogate escapes) become U+FFFD: SQLite stores UTF-8.
    text = str(text).encode("utf-8", "replace").decode("utf-8")
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()[:MAX_FIELD_CHARS]


def read_metadata(path: Path) -> FileMeta:
    """Everything but the samples; raises UnreadableFile with the reason to skip ``path``."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise UnreadableFile(f"cannot stat: {error.strerror or error}") from None
    if size == 0:
        raise UnreadableFile("empty file (0 bytes)")
    try:
        with open(path, "rb") as handle:  # a handle: names that are not UTF-8 work too
            info = sf.info(handle)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        # libsndfile repeats the path in its message; the report line names it already.
        reason = re.sub(r"^Error opening .*?: ", "", _clean(error), flags=re.S)
        if reason.startswith("File does not exist"):  # libsndfile's words for "no decoder took it"
            reason = "format not recognised"
        raise UnreadableFile(f"not a readable audio file: {reason[:200]}") from None
    fmt = FORMATS.get(info.format)
    if fmt is None:
        raise UnreadableFile(f"unsupported audio format {info.format}")
    if info.channels < 1 or info.samplerate < 1000 or info.frames < 1:
        raise UnreadableFile(f"no usable audio ({info.channels} channel(s), "
                             f"{info.samplerate} Hz, {info.frames} frames)")
    meta = FileMeta(fmt, int(info.channels), int(info.samplerate), int(info.frames))
    if meta.length_s < MIN_LENGTH_S:
        raise UnreadableFile(f"too short to use ({meta.frames} frames)")
    meta.ucs = parse_ucs_name(_clean(path.stem))
    _read_tags(path, meta)
    if fmt == "WAV":
        _read_riff_chunks(path, meta)
    if meta.ucs is not None:
        meta.add("title", meta.ucs.fx_name)
        meta.add("creator", meta.ucs.creator_id)
        meta.add("library", meta.ucs.source_id)
    return meta


# --- mutagen tags -------------------------------------------------------------------------

_ID3_SLOTS = {"TIT2": "title", "TIT3": "description", "COMM": "description", "TPE1": "creator",
              "TCOM": "creator", "TALB": "library", "TPUB": "library", "TCOP": "licence",
              "WCOP": "licence", "TCON": "keywords", "TXXX": "keywords"}
_VORBIS_SLOTS = {"title": "title", "description": "description", "comment": "description",
                 "artist": "creator", "album": "library", "organization": "library",
                 "copyright": "licence", "license": "licence", "genre": "keywords",
                 "keywords": "keywords", "ucs_catid": "cat_id", "catid": "cat_id"}


def _read_tags(path: Path, meta: FileMeta) -> None:
    import mutagen  # imported here: rendering without a library never needs it

    try:
        with open(path, "rb") as handle:
            tagged = mutagen.File(handle)
    except Exception:  # noqa: BLE001 - a broken tag block costs only the tags
        return
    tags = getattr(tagged, "tags", None)
    if not tags:
        return
    if hasattr(tags, "getall") and hasattr(tags, "version"):  # ID3 (MP3, WAV id3 chunk, AIFF)
        for frame in tags.values():
            slot = _ID3_SLOTS.get(frame.FrameID)
            if slot is None:
                continue
            if frame.FrameID == "WCOP":
                meta.add(slot, frame.url)
            elif frame.FrameID == "TXXX":
                desc = str(getattr(frame, "desc", "")).lower()
                target = _VORBIS_SLOTS.get(desc, "keywords")
                for text in frame.text:
                    meta.add(target, text)
            else:
                for text in getattr(frame, "text", []):
                    meta.add(slot, text)
        return
    try:  # Vorbis comments (FLAC, OGG): a list of (key, value)
        items: Iterable[tuple[str, str]] = (
            list(tags.items()) if hasattr(tags, "items") else list(tags)
        )
    except Exception:  # noqa: BLE001
        return
    for key, value in items:
        slot = _VORBIS_SLOTS.get(str(key).lower())
        values = value if isinstance(value, list) else [value]
        for text in values:
            if slot is not None:
                meta.add(slot, text)


# --- BWF bext, iXML and RIFF INFO ---------------------------------------------------------

_INFO_SLOTS = {b"INAM": "title", b"ICMT": "description", b"ISBJ": "description",
               b"IART": "creator", b"IENG": "creator", b"ICOP": "licence", b"IKEY": "keywords",
               b"IGNR": "keywords", b"IPRD": "library"}


def _read_riff_chunks(path: Path, meta: FileMeta) -> None:
    from mutagen._riff import RiffFile  # mutagen's RIFF walker; it does not decode bext/iXML

    try:
        with open(path, "rb") as handle:
            riff = RiffFile(handle)
            for chunk in riff.root.subchunks():
                wanted = chunk.id in ("bext", "iXML", "LIST")
                if not wanted or chunk.data_size > MAX_TEXT_CHUNK_BYTES:
                    continue
                body = chunk.read()
                if chunk.id == "bext":
                    _decode_bext(body, meta)
                elif chunk.id == "iXML":
                    _decode_ixml(body, meta)
                else:
                    _decode_info(body, meta)
    except Exception:  # noqa: BLE001 - malformed chunks cost only this metadata
        return


def decode_bext(body: bytes) -> dict[str, str]:
    """The text fields of a bext body (EBU Tech 3285: fixed 602 bytes, then coding history)."""
    def text(start: int, size: int) -> str:
        return _clean(body[start:start + size].split(b"\x00", 1)[0])

    return {
        "description": text(0, 256),
        "originator": text(256, 32),
        "originator_reference": text(288, 32),
        "coding_history": _clean(body[BEXT_FIXED_BYTES:].split(b"\x00", 1)[0]),
    }


def _decode_bext(body: bytes, meta: FileMeta) -> None:
    if len(body) < 256:
        return
    fields = decode_bext(body)
    meta.add("description", fields["description"])
    meta.add("creator", fields["originator"])


def _decode_ixml(body: bytes, meta: FileMeta) -> None:
    # Entity declarations are the XML bombs; iXML never needs them.
    if b"<!ENTITY" in body or b"<!DOCTYPE" in body:
        return
    try:
        root = ElementTree.fromstring(body.rstrip(b"\x00"))
    except ElementTree.ParseError:
        return
    for element in root.iter():
        slot = _IXML_FIELDS.get(element.tag.lower())
        if slot is not None and element.text:
            meta.add(slot, element.text)


def _decode_info(body: bytes, meta: FileMeta) -> None:
    if body[:4] != b"INFO":
        return
    position = 4
    while position + 8 <= len(body):
        tag = body[position:position + 4]
        size = int.from_bytes(body[position + 4:position + 8], "little")
        value = body[position + 8:position + 8 + size]
        slot = _INFO_SLOTS.get(tag)
        if slot is not None:
            meta.add(slot, value.split(b"\x00", 1)[0].decode("utf-8", "replace"))
        position += 8 + size + (size & 1)


def describe_path(path: os.PathLike[str] | str) -> str:
    """A path printable on one line: control characters and undecodable bytes escaped."""
    text = os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)
