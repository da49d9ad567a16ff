"""PNG's signature and header, parsed in one place.

PIL hides what tfdenoise needs to know before (or instead of) decoding a PNG: whether its
samples are 16-bit (PIL reads 16-bit colour as 8-bit) and whether it is already the 8-bit RGB
a TFRecord stores. Writing 16-bit PNGs with metadata also needs chunks inserted after IHDR.
The layout is fixed by the PNG specification: signature, then the IHDR chunk (length, type,
width, height, bit depth, colour type, ...).
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER_END = 8 + 25  # signature + IHDR chunk: where the chunks that may follow IHDR start

# IHDR colour types
GRAY, RGB, PALETTE, GRAY_ALPHA, RGBA = 0, 2, 3, 4, 6


@dataclasses.dataclass(frozen=True)
class Header:
    """The IHDR fields tfdenoise reads."""

    width: int
    height: int
    bit_depth: int
    colour_type: int


def read_header(data: bytes) -> Header | None:
    """The header of PNG bytes (at least their first HEADER_END bytes); None if not a PNG."""
    if len(data) < HEADER_END or data[:8] != SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height, bit_depth, colour_type = struct.unpack_from(">IIBB", data, 16)
    return Header(width, height, bit_depth, colour_type)


def read_file_header(source: str | os.PathLike | bytes) -> Header | None:
    """read_header of a file (only its first bytes are read) or of bytes in memory."""
    if isinstance(source, bytes):
        return read_header(source[:HEADER_END])
    with open(source, "rb") as stream:
        return read_header(stream.read(HEADER_END))


def chunk(kind: bytes, data: bytes) -> bytes:
    """One chunk: length, type, data, CRC of type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def insert_after_header(png: bytes, chunks: bytes) -> bytes:
    """PNG bytes with `chunks` placed right after IHDR (where iCCP must come, before IDAT)."""
    return png[:HEADER_END] + chunks + png[HEADER_END:]
