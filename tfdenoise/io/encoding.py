"""The bytes a TFRecord stores for one image file: the JPEG as it is, else lossless 8-bit RGB
(raw pixels, or PNG).

Free of TensorFlow on purpose: the records writer may run this in spawned worker processes,
which then start in a fraction of a second instead of importing TensorFlow each.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from PIL import Image

from tfdenoise.config import DEFAULT_MAX_PIXELS, PNG_COMPRESS_LEVEL
from tfdenoise.io import files, png

# How images that are not kept as JPEG bytes are stored ("lossless" choice of make-tfrecords):
# "raw": the 8-bit RGB pixels as they are (H * W * 3 bytes, row-major; the shape is in the
# record), decoded in the input graph by a copy; "png": lossless PNG, a fraction of the bytes
# but decoded at many times the cost of a JPEG. Measured with tools/record_formats.py
# (benchmarks/README.md, "Record formats for non-JPEG images").
LOSSLESS_FORMATS = ("raw", "png")
DEFAULT_LOSSLESS = (
    "png"  # the contract (DESIGN.md: "re-encoded losslessly (PNG)"); raw is faster: --lossless raw
)


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """The bytes stored for one image and what a reader needs to know about them."""

    data: bytes
    format: str  # "jpeg", "png" or "raw" (H * W * 3 bytes of 8-bit RGB)
    height: int
    width: int


def encode_for_storage(
    path: str | Path,
    info: files.ImageInfo,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    lossless: str = DEFAULT_LOSSLESS,
) -> EncodedImage:
    """The bytes to store for a validated file; ImageError if it no longer decodes.

    Only what TF's JPEG decoder reads exactly (RGB or grayscale JPEG, not CMYK) is kept
    byte-identical; anything else is decoded with PIL to 8-bit RGB and stored as `lossless`
    says: "raw" pixels, or "png" (PNGs that are 8-bit RGB already are then kept byte-identical;
    PNG encoding is most of the conversion time). EXIF orientation is not applied, like for the
    stored JPEGs, so every record keeps the pixel layout of its file (training patches are
    orientation-agnostic).
    """
    if lossless not in LOSSLESS_FORMATS:
        raise ValueError(f"lossless must be one of {LOSSLESS_FORMATS}, got {lossless!r}")
    if info.decoder == files.Decoder.JPEG:
        return EncodedImage(Path(path).read_bytes(), "jpeg", info.height, info.width)
    if lossless == "png" and info.format == "PNG":
        data = Path(path).read_bytes()
        if is_rgb8_png(data):  # already what we would write: skip a decode and an encode
            return EncodedImage(data, "png", info.height, info.width)
    pixels = files.load_rgb8(path, max_pixels, apply_orientation=False)
    height, width = pixels.shape[:2]
    if lossless == "raw":
        return EncodedImage(raw_bytes(pixels), "raw", height, width)
    return EncodedImage(png_bytes(pixels), "png", height, width)


def is_rgb8_png(data: bytes) -> bool:
    """True for a PNG whose header says 8 bits per channel, colour type 2 (RGB, no alpha)."""
    header = png.read_header(data)
    return header is not None and header.bit_depth == 8 and header.colour_type == png.RGB


def raw_bytes(pixels) -> bytes:
    """H x W x 3 uint8 pixels as H * W * 3 bytes, row-major (what tf.io.decode_raw reads)."""
    if pixels.dtype != "uint8" or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"raw records hold H x W x 3 uint8, not {pixels.dtype} {pixels.shape}")
    return pixels.tobytes(order="C")


def png_bytes(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def encode_or_skip(
    path: str,
    relpath: str,
    info: files.ImageInfo,
    max_pixels: int,
    lossless: str = DEFAULT_LOSSLESS,
) -> EncodedImage | files.Skipped:
    """Worker job (thread or process): the bytes to store, or why the file fails now."""
    try:
        return encode_for_storage(path, info, max_pixels, lossless)
    except files.ImageError as error:
        return files.Skipped(relpath, str(error))
    except OSError as error:  # vanished or unreadable since it was planned
        return files.Skipped(relpath, f"unreadable at write time: {error.strerror or error}")
