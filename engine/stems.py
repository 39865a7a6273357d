"""Stem files: Broadcast WAVE (BWF) written atomically, with a bext chunk a DAW can spot by.

soundfile cannot write a bext chunk, so the RIFF file is written here directly: a ``fmt ``
chunk, a ``bext`` chunk laid out as EBU Tech 3285 version 2, then ``data`` (24-bit PCM packed
with numpy, or 32-bit IEEE float), encoded and written a chunk of frames at a time. Any WAV reader, soundfile included, reads it back.

Atomic: the file is written to a hidden temp name in the destination folder, fsync'ed, then
``os.replace``'d over the final name, so a DAW watching the folder never sees half a file. On any
failure the temp file is removed and nothing appears at the final path.
"""

from __future__ import annotations

import datetime as _dt
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np

from engine.atomic import atomic_file
from engine.errors import InvalidInputError
from engine.limits import check_audio, check_sample_rate

SUBTYPES = ("PCM_24", "FLOAT")
BEXT_VERSION = 2
# Tech 3285 v2: loudness fields hold value x 100 as int16; 0x7FFF means "not measured".
LOUDNESS_UNSET = 0x7FFF
_BEXT_FIXED = struct.Struct("<256s32s32s10s8sIIH64shhhhh180s")  # 602 bytes
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_IEEE_FLOAT = 3


def _ascii(text: str, size: int) -> bytes:
    # BWF text fields are ASCII, NUL-padded; anything else becomes '?' rather than failing.
    return text.encode("ascii", errors="replace")[:size]


def _loudness_field(value: float | None) -> int:
    if value is None or not np.isfinite(value):
        return LOUDNESS_UNSET
    return int(max(-32767, min(32766, round(value * 100))))


def bext_chunk(
    *,
    description: str,
    originator: str,
    time_reference_samples: int,
    sample_rate: int,
    bits: int,
    channels: int,
    loudness_lufs: float | None = None,
    true_peak_dbtp: float | None = None,
    when: _dt.datetime | None = None,
) -> bytes:
    """The body of a bext chunk (without the 8-byte chunk header)."""
    when = when or _dt.datetime.now()
    reference = int(time_reference_samples)
    if not 0 <= reference < 2**64:
        raise InvalidInputError(
            f"time_reference_samples={reference}: must be in [0, 2**64)",
            field="time_reference_samples",
            value=reference,
        )
    fixed = _BEXT_FIXED.pack(
        _ascii(description, 256),
        _ascii(originator, 32),
        b"",
        when.strftime("%Y-%m-%d").encode("ascii"),
        when.strftime("%H:%M:%S").encode("ascii"),
        reference & 0xFFFFFFFF,
        reference >> 32,
        BEXT_VERSION,
        b"",  # no UMID: we have no SMPTE material number to give
        _loudness_field(loudness_lufs),
        LOUDNESS_UNSET,  # loudness range: not meaningful for a single event
        _loudness_field(true_peak_dbtp),
        LOUDNESS_UNSET,
        LOUDNESS_UNSET,
        b"",
    )
    mode = {1: "mono", 2: "stereo"}.get(channels, "multichannel")
    coding = "PCM" if bits == 24 else "FLOAT"
    history = f"A={coding},F={sample_rate},W={bits},M={mode},T={originator}\r\n"
    return fixed + history.encode("ascii", errors="replace")


def _chunk(tag: bytes, body: bytes) -> bytes:
    pad = b"\x00" if len(body) % 2 else b""
    return tag + struct.pack("<I", len(body)) + body + pad


def _fmt_chunk(*, channels: int, sample_rate: int, subtype: str) -> bytes:
    bits = 24 if subtype == "PCM_24" else 32
    tag = _WAVE_FORMAT_PCM if subtype == "PCM_24" else _WAVE_FORMAT_IEEE_FLOAT
    block = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block, block, bits)
    if tag != _WAVE_FORMAT_PCM:
        body += struct.pack("<H", 0)  # cbSize: non-PCM fmt chunks carry it
    return _chunk(b"fmt ", body)


# Samples are encoded and written this many frames at a time: a 10-minute stereo mix never
# needs a second full-size copy (float64 scaling, int32, bytes) of itself in memory.
ENCODE_CHUNK_FRAMES = 1 << 16
_PCM24_SCALE = np.float32(8388608.0)


def _interleaved(block: np.ndarray, scale: np.float32 | None = None) -> np.ndarray:
    """(frames, channels) float32: ``block`` (channels, frames) interleaved, times ``scale``.

    A channel at a time: numpy iterates ``block.T`` with the channel as the inner axis, two
    or so elements per inner loop, which took five times as long as these strided writes.
    """
    channels, frames = block.shape
    out = np.empty((frames, channels), dtype=np.float32)
    for channel in range(channels):
        if scale is None:
            out[:, channel] = block[channel]
        else:
            with np.errstate(over="ignore"):  # huge values become inf and are clipped after
                np.multiply(block[channel], scale, out=out[:, channel])
    return out


def _encode_pcm24(block: np.ndarray) -> bytes:
    """Interleaved little-endian 24-bit bytes of a (channels, frames) float32 block.

    Scale by 2**23, round half to even and clip to the int24 range, then keep the low three
    bytes of each little-endian int32. Scaling by a power of two is exact in float32, so this
    gives the same bytes as doing it in float64, with a quarter of the memory traffic.
    """
    scaled = _interleaved(block, _PCM24_SCALE)
    np.round(scaled, out=scaled)
    np.clip(scaled, -8388608.0, 8388607.0, out=scaled)
    quads = scaled.astype("<i4").reshape(-1).view(np.uint8).reshape(-1, 4)
    triples = np.empty((quads.shape[0], 3), dtype=np.uint8)
    # Three column copies beat one strided (n, 3) gather by about 2x.
    triples[:, 0] = quads[:, 0]
    triples[:, 1] = quads[:, 1]
    triples[:, 2] = quads[:, 2]
    return triples.tobytes()


def iter_encoded(audio: np.ndarray, *, subtype: str) -> Iterator[bytes]:
    """Interleaved little-endian sample bytes, ENCODE_CHUNK_FRAMES frames at a time."""
    array = np.asarray(audio, dtype=np.float32)
    for start in range(0, array.shape[1], ENCODE_CHUNK_FRAMES):
        block = array[:, start : start + ENCODE_CHUNK_FRAMES]
        if subtype == "FLOAT":
            yield _interleaved(block).astype("<f4", copy=False).tobytes()
        else:
            yield _encode_pcm24(block)


def encode_samples(audio: np.ndarray, *, subtype: str) -> bytes:
    """Interleaved little-endian sample bytes for (channels, frames) float audio."""
    return b"".join(iter_encoded(audio, subtype=subtype))


def _write_data(handle: BinaryIO, size: int, chunks: Iterable[bytes]) -> None:
    """Write the data chunk: header, ``size`` bytes of samples from ``chunks``, pad byte.
    (Separate so tests can make it fail mid-file.)"""
    handle.write(b"data" + struct.pack("<I", size))
    for chunk in chunks:
        handle.write(chunk)
    if size % 2:
        handle.write(b"\x00")


def _check_args(audio: np.ndarray, sample_rate: int, subtype: str) -> np.ndarray:
    if subtype not in SUBTYPES:
        raise InvalidInputError(
            f"subtype={subtype!r}: choose one of {', '.join(SUBTYPES)}",
            field="subtype",
            value=subtype,
        )
    check_sample_rate(sample_rate)  # the engine's rules (engine.limits)
    array = check_audio(audio, min_frames=0, finite=False)
    # The finite check a chunk at a time: no bool temporary the size of a 10-minute mix.
    for start in range(0, array.shape[1], ENCODE_CHUNK_FRAMES):
        if not np.all(np.isfinite(array[:, start : start + ENCODE_CHUNK_FRAMES])):
            raise InvalidInputError("audio: contains NaN or infinite samples", field="audio")
    return array


def write_stem(
    path: str | os.PathLike[str],
    audio: np.ndarray,
    *,
    sample_rate: int,
    subtype: str = "PCM_24",
    time_reference_samples: int = 0,
    description: str = "",
    originator: str = "Audio-Agent",
    loudness_lufs: float | None = None,
    true_peak_dbtp: float | None = None,
) -> Path:
    """Atomically write a BWF WAV (PCM_24 default, or FLOAT) and return its path.

    ``time_reference_samples`` is the file's position on the DAW timeline in samples since
    the timeline's zero (bext TimeReference). Loudness and true peak, when given, fill the
    bext loudness fields.
    """
    array = _check_args(audio, sample_rate, subtype)
    final = Path(path)
    channels = array.shape[0]
    bits = 24 if subtype == "PCM_24" else 32
    bext = bext_chunk(
        description=description,
        originator=originator,
        time_reference_samples=time_reference_samples,
        sample_rate=sample_rate,
        bits=bits,
        channels=channels,
        loudness_lufs=loudness_lufs,
        true_peak_dbtp=true_peak_dbtp,
    )
    payload_size = array.shape[1] * channels * bits // 8
    head = _fmt_chunk(channels=channels, sample_rate=sample_rate, subtype=subtype)
    head += _chunk(b"bext", bext)
    if subtype == "FLOAT":
        head += _chunk(b"fact", struct.pack("<I", array.shape[1]))
    data_size = 8 + payload_size + payload_size % 2
    riff_size = 4 + len(head) + data_size
    if riff_size >= 2**32:
        raise InvalidInputError("audio: too long for a RIFF WAV file", field="audio")
    with atomic_file(final) as handle:
        handle.write(b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + head)
        _write_data(handle, payload_size, iter_encoded(array, subtype=subtype))
    return final


def iter_chunks(path: str | os.PathLike[str]) -> list[tuple[bytes, int, int]]:
    """(tag, offset of body, body size) for each top-level RIFF chunk, in file order."""
    data = Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidInputError(f"{path}: not a RIFF WAVE file", field="path", value=str(path))
    chunks = []
    position = 12
    while position + 8 <= len(data):
        tag = data[position : position + 4]
        size = struct.unpack_from("<I", data, position + 4)[0]
        chunks.append((tag, position + 8, size))
        position += 8 + size + size % 2
    return chunks


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace")


def _loudness_value(raw: int) -> float | None:
    return None if raw == LOUDNESS_UNSET else raw / 100.0


def read_bext(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Decode a file's bext chunk into a dict; InvalidInputError if the file has none."""
    chunks = iter_chunks(path)
    for tag, offset, size in chunks:
        if tag != b"bext":
            continue
        with open(path, "rb") as handle:
            handle.seek(offset)
            body = handle.read(size)
        fields = _BEXT_FIXED.unpack_from(body)
        return {
            "description": _text(fields[0]),
            "originator": _text(fields[1]),
            "originator_reference": _text(fields[2]),
            "origination_date": _text(fields[3]),
            "origination_time": _text(fields[4]),
            "time_reference_samples": fields[5] | (fields[6] << 32),
            "version": fields[7],
            "umid": fields[8],
            "loudness_lufs": _loudness_value(fields[9]),
            "loudness_range_lu": _loudness_value(fields[10]),
            "max_true_peak_dbtp": _loudness_value(fields[11]),
            "max_momentary_lufs": _loudness_value(fields[12]),
            "max_short_term_lufs": _loudness_value(fields[13]),
            "coding_history": body[_BEXT_FIXED.size :].split(b"\x00", 1)[0].decode("ascii"),
            "chunk_order": [chunk[0].decode("ascii", errors="replace") for chunk in chunks],
        }
    raise InvalidInputError(f"{path}: has no bext chunk", field="path", value=str(path))
