"""A tiny OSC 1.0 codec (Live's bundled Python has no python-osc).

Pure functions: bytes in, (address, args) out, and back. Anything malformed raises OSCError and
nothing else, so the caller can drop the datagram with one except clause.
"""

from __future__ import annotations

import struct

BUNDLE_TAG = b"#bundle\x00"
MAX_BUNDLE_DEPTH = 4


class OSCError(ValueError):
    """The bytes are not a valid OSC packet (or hold a type this codec does not speak)."""


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (4 - len(data) % 4)


def _read_string(data: bytes, offset: int) -> tuple[str, int]:
    end = data.find(b"\x00", offset)
    if end < 0:
        raise OSCError(f"unterminated string at byte {offset}")
    try:
        text = data[offset:end].decode("utf-8")
    except UnicodeDecodeError as error:
        raise OSCError(f"string at byte {offset} is not UTF-8") from error
    return text, (end // 4 + 1) * 4


def _read(fmt: str, data: bytes, offset: int) -> tuple[object, int]:
    size = struct.calcsize(fmt)
    if offset + size > len(data):
        raise OSCError(f"truncated argument at byte {offset}")
    return struct.unpack_from(fmt, data, offset)[0], offset + size


def decode_message(data: bytes) -> tuple[str, list[object]]:
    address, offset = _read_string(data, 0)
    if not address.startswith("/"):
        raise OSCError(f"address {address[:40]!r} does not start with '/'")
    if offset >= len(data):
        return address, []  # no type tag string: an old-style message without arguments
    tags, offset = _read_string(data, offset)
    if not tags.startswith(","):
        raise OSCError(f"type tags {tags[:40]!r} do not start with ','")
    args: list[object] = []
    for tag in tags[1:]:
        if tag == "i":
            value, offset = _read(">i", data, offset)
        elif tag == "f":
            value, offset = _read(">f", data, offset)
        elif tag == "d":
            value, offset = _read(">d", data, offset)
        elif tag == "h":
            value, offset = _read(">q", data, offset)
        elif tag in "sS":
            value, offset = _read_string(data, offset)
        elif tag == "b":
            size, offset = _read(">i", data, offset)
            if not 0 <= int(size) <= len(data) - offset:  # type: ignore[call-overload]
                raise OSCError(f"blob size {size} at byte {offset} is out of range")
            value = data[offset:offset + int(size)]  # type: ignore[call-overload]
            offset += (int(size) + 3) // 4 * 4  # type: ignore[call-overload]
        elif tag == "T":
            value = True
        elif tag == "F":
            value = False
        elif tag == "N":
            value = None
        else:
            raise OSCError(f"unsupported type tag {tag!r}")
        args.append(value)
    return address, args


def decode_packet(data: bytes, _depth: int = 0) -> list[tuple[str, list[object]]]:
    """One datagram -> its messages (a bundle is flattened; time tags are ignored)."""
    if not isinstance(data, (bytes, bytearray)) or len(data) % 4 or not data:
        raise OSCError("an OSC packet is a non-empty multiple of 4 bytes")
    data = bytes(data)
    if not data.startswith(BUNDLE_TAG):
        return [decode_message(data)]
    if _depth >= MAX_BUNDLE_DEPTH:
        raise OSCError("bundles nested too deep")
    messages: list[tuple[str, list[object]]] = []
    offset = len(BUNDLE_TAG) + 8  # skip the time tag
    while offset < len(data):
        size, offset = _read(">i", data, offset)
        size = int(size)  # type: ignore[call-overload]
        if size <= 0 or offset + size > len(data):
            raise OSCError(f"bundle element size {size} at byte {offset} is out of range")
        messages.extend(decode_packet(data[offset:offset + size], _depth + 1))
        offset += size
    return messages


def encode_message(address: str, args: list[object] | tuple[object, ...] = ()) -> bytes:
    tags, payload = ",", b""
    for value in args:
        if isinstance(value, bool):
            tags += "T" if value else "F"
        elif isinstance(value, int):
            tags += "i"
            payload += struct.pack(">i", value)
        elif isinstance(value, float):
            tags += "f"
            payload += struct.pack(">f", value)
        elif isinstance(value, str):
            tags += "s"
            payload += _pad(value.encode("utf-8"))
        elif isinstance(value, (bytes, bytearray)):
            tags += "b"
            payload += struct.pack(">i", len(value)) + bytes(value) + b"\x00" * (-len(value) % 4)
        else:
            raise OSCError(f"cannot encode {type(value).__name__} as an OSC argument")
    return _pad(address.encode("utf-8")) + _pad(tags.encode("ascii")) + payload
