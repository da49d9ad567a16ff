"""Binary PGM/PPM with more than 8 bits per sample, at full precision.

SANE's `scanimage --format=pnm --depth 16` writes these. Pillow decodes a 16-bit PPM to 8 bits
per sample, and a 16-bit PGM to mode I without its maxval, so a 12-bit scan (maxval 4095)
would come out 16 times too dark. The binary formats are a short text header and big-endian
samples, so they are read here with numpy (written by hand: no maintained library reads them
at full precision without a native dependency) and rescaled from maxval to 0-65535.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

CHANNELS = {b"P5": 1, b"P6": 3}  # binary graymap, binary pixmap
HEADER_BYTES = 1024  # a header longer than this is comments nobody writes
# a header field: whitespace and comments ("#" to the end of the line) before it, one
# whitespace character after the last one (maxval), then the samples
_FIELD = re.compile(rb"(?:\s|#[^\r\n]*[\r\n])*(\d+)")


def _header(head: bytes) -> tuple[int, int, int, int, int] | None:
    """(channels, width, height, maxval, offset of the samples), or None if not binary PGM/PPM."""
    channels = CHANNELS.get(head[:2])
    if channels is None:
        return None
    position, fields = 2, []
    for _ in range(3):
        match = _FIELD.match(head, position)
        if match is None:
            return None
        fields.append(int(match.group(1)))
        position = match.end()
    width, height, maxval = fields
    return channels, width, height, maxval, position + 1


def _head(source: str | os.PathLike | bytes) -> bytes:
    if isinstance(source, bytes):
        return source[:HEADER_BYTES]
    with open(source, "rb") as stream:
        return stream.read(HEADER_BYTES)


def is_deep(source: str | os.PathLike | bytes) -> bool:
    """Whether a file is a binary PGM/PPM with 2-byte samples (maxval above 255)."""
    header = _header(_head(source))
    return header is not None and 255 < header[3] < 65536


def read_samples16(source: str | os.PathLike | bytes) -> np.ndarray:
    """A deep PGM/PPM's samples as H x W x C uint16 (C = 1 or 3) on 0-65535; ValueError if it
    is not one or is truncated (callers check `is_deep` first and probe the file)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    header = _header(data[:HEADER_BYTES])
    if header is None or not 255 < header[3] < 65536:
        raise ValueError("not a binary PGM/PPM with 16-bit samples")
    channels, width, height, maxval, offset = header
    count = width * height * channels
    if len(data) < offset + 2 * count:
        raise ValueError(f"truncated: {width}x{height} samples need {offset + 2 * count} bytes")
    samples = np.frombuffer(data, ">u2", count, offset).reshape(height, width, channels)
    if maxval == 65535:
        return samples.astype(np.uint16)
    scaled = np.minimum(samples, maxval).astype(np.float64) * (65535.0 / maxval)
    return np.round(scaled).astype(np.uint16)
