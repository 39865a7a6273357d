"""Build small real sound files in code: every indexed format, with metadata, and hostile ones.

Audio is written by libsndfile (soundfile); tags by mutagen, the same library the indexer reads
them with; bext and iXML chunks are spliced into the RIFF by hand (EBU Tech 3285 layout), since
nothing else here writes them.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 48000


def hit(*, onset_s: float, length_s: float = 1.0, rate: int = RATE, seed: int = 0,
        channels: int = 1, decay_s: float = 0.08, level: float = 0.5) -> np.ndarray:
    """Silence, then a noise burst with an instant attack at ``onset_s`` and an exponential
    decay: (frames, channels) as soundfile wants."""
    rng = np.random.default_rng(seed)
    frames = int(length_s * rate)
    out = np.zeros((frames, channels), dtype=np.float32)
    start = int(round(onset_s * rate))
    n = frames - start
    burst = rng.standard_normal((n, channels)).astype(np.float32)
    burst *= np.exp(-np.arange(n) / (decay_s * rate))[:, None].astype(np.float32)
    out[start:] = level * burst / np.max(np.abs(burst))
    return out


def bed(*, length_s: float = 4.0, rate: int = RATE, seed: int = 0, channels: int = 2,
        level: float = 0.1) -> np.ndarray:
    """Steady noise: a bed that loops cleanly."""
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal((int(length_s * rate), channels))).astype(np.float32)


def fade_out(audio: np.ndarray) -> np.ndarray:
    """A bed that fades to silence: it does not loop."""
    ramp = np.linspace(1.0, 0.0, len(audio), dtype=np.float32) ** 3
    return audio * ramp[:, None]


def write(path: Path, audio: np.ndarray, *, rate: int = RATE, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, format=fmt)
    return path


def _riff_chunk(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def bext_body(description: str, originator: str = "", coding_history: str = "") -> bytes:
    fixed = (description.encode("ascii").ljust(256, b"\x00")[:256]
             + originator.encode("ascii").ljust(32, b"\x00")[:32]
             + b"\x00" * 32 + b"2026-01-01" + b"12:00:00" + struct.pack("<Q", 0)
             + struct.pack("<H", 2) + b"\x00" * 64 + b"\x00" * 10 + b"\x00" * 180)
    assert len(fixed) == 602
    return fixed + coding_history.encode("ascii")


def add_riff_chunks(path: Path, chunks: list[tuple[bytes, bytes]]) -> Path:
    """Splice chunks in right after the RIFF/WAVE header and fix the RIFF size."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    extra = b"".join(_riff_chunk(tag, body) for tag, body in chunks)
    body = data[12:] + b""
    out = b"RIFF" + struct.pack("<I", 4 + len(extra) + len(body)) + b"WAVE" + extra + body
    path.write_bytes(out)
    return path


def bwf(path: Path, audio: np.ndarray, *, description: str = "", originator: str = "",
        ixml: str | None = None, rate: int = RATE) -> Path:
    write(path, audio, rate=rate, fmt="WAV")
    chunks = [(b"bext", bext_body(description, originator))]
    if ixml is not None:
        chunks.append((b"iXML", ixml.encode("utf-8")))
    return add_riff_chunks(path, chunks)


def id3_tags(path: Path, *, title: str = "", comment: str = "", artist: str = "", album: str = "",
             copyright: str = "") -> Path:
    """ID3v2 tags on an MP3, WAV or AIFF file (mutagen picks the container)."""
    import mutagen
    from mutagen.id3 import COMM, TALB, TCOP, TIT2, TPE1

    tagged = mutagen.File(str(path))
    if tagged.tags is None:
        tagged.add_tags()
    tags = tagged.tags
    if title:
        tags.add(TIT2(encoding=3, text=[title]))
    if comment:
        tags.add(COMM(encoding=3, lang="eng", desc="", text=[comment]))
    if artist:
        tags.add(TPE1(encoding=3, text=[artist]))
    if album:
        tags.add(TALB(encoding=3, text=[album]))
    if copyright:
        tags.add(TCOP(encoding=3, text=[copyright]))
    tagged.save()
    return path


def vorbis_tags(path: Path, **fields: str) -> Path:
    """Vorbis comments on a FLAC or OGG file."""
    import mutagen

    tagged = mutagen.File(str(path))
    for key, value in fields.items():
        tagged[key] = [value]
    tagged.save()
    return path


def truncated(path: Path, source: Path, keep_bytes: int = 60) -> Path:
    path.write_bytes(source.read_bytes()[:keep_bytes])
    return path


def huge_data_claim(path: Path) -> Path:
    """A WAV whose RIFF and data sizes claim ~2 GB with only 1 kB of samples behind them."""
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
    body = b"WAVE" + _riff_chunk(b"fmt ", fmt) + b"data" + struct.pack("<I", 0x7FFFFFF0) + b"\x01\x02" * 512
    path.write_bytes(b"RIFF" + struct.pack("<I", 0x7FFFFFF8) + body)
    return path


def huge_bext_claim(path: Path, source: Path) -> Path:
    """A real WAV with a bext chunk that claims ~4 GB spliced in before its data."""
    data = source.read_bytes()
    extra = b"bext" + struct.pack("<I", 0xFFFFFFF0) + b"\x00" * 16
    path.write_bytes(data[:4] + struct.pack("<I", 0xFFFFFFF8) + data[8:12] + extra + data[12:])
    return path
