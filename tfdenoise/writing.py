"""predict's write stage: the output format and suffix, the image to write, its metadata, and
the atomic write.

A restored archive is only usable if it looks like the original in every colour-managed
viewer and keeps its capture record, so the source's ICC profile, EXIF and XMP (orientation
reset to 1: the pixels are already upright) and DPI go into every output unless stripping is
asked for. PNG, JPEG and WebP all carry the profile, EXIF and XMP; DPI goes into PNG and JPEG
(PIL writes none into WebP). 16-bit outputs are PNGs encoded by TF (PIL has no 16-bit RGB)
with the metadata chunks added here.
"""

from __future__ import annotations

import dataclasses
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, PngImagePlugin

from tfdenoise import atomic, images

FORMATS = ("png", "jpeg", "webp")  # what --format writes; plus "same"
SAME = "same"
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
# --format same, by the input's suffix. GIF is a 256-colour palette format (a denoised photo
# would be re-quantised, i.e. noisy again) and PIL's BMP carries no profile or EXIF: both -> PNG,
# which is lossless too.
SAME_BY_SUFFIX = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}
BIT_DEPTHS = ("8", "16", SAME)
DEFAULT_QUALITY = 95
PNG_SIGNATURE_AND_IHDR = 8 + 25  # bytes before the first chunk that may follow IHDR
PNG_XMP_KEYWORD = "XML:com.adobe.xmp"  # the iTXt keyword XMP lives under in PNG
PIL_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"})


def check_output_options(output_format: str, quality: int, bit_depth: str) -> None:
    """ValueError for option values (or combinations) no output could honour."""
    if output_format not in (*FORMATS, SAME):
        raise ValueError(f"unknown format {output_format!r}; choose {', '.join(FORMATS)} or same")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit depth must be 8, 16 or same, got {bit_depth!r}")
    if bit_depth == "16" and output_format in ("jpeg", "webp"):
        raise ValueError(f"{output_format} holds 8 bits per channel only; 16-bit output needs "
                         "--format png (or same, for PNG inputs)")


def resolve_format(source: Path, requested: str) -> str:
    """The format one output is written in: `requested`, or for "same" the input's (by suffix)."""
    if requested != SAME:
        return requested
    return SAME_BY_SUFFIX.get(source.suffix.lower(), "png")


def output_suffix(source: Path, requested: str) -> str:
    """.png/.jpg/.webp; "same" keeps the input's own suffix (.JPEG stays .JPEG) where it can."""
    if requested == SAME and source.suffix.lower() in SAME_BY_SUFFIX:
        return source.suffix
    return SUFFIXES[resolve_format(source, requested)]


def output_bits(picture: images.Picture, output_format: str, bit_depth: str) -> int:
    """8 or 16 bits per sample; only PNG outputs hold 16."""
    if output_format != "png":
        return 8
    return picture.bits if bit_depth == SAME else int(bit_depth)


def check_writable(picture: images.Picture, output_format: str) -> None:
    """ImageError (before any denoising) when the format would have to drop the alpha channel."""
    if output_format == "jpeg" and picture.alpha is not None:
        raise images.ImageError("has transparency, which JPEG cannot hold: use --format png, "
                                "webp or same")


def profile_fits(icc_profile: bytes, grayscale_output: bool) -> bool:
    """Whether a profile describes the output's channels (ICC header bytes 16-19: the data
    colour space), i.e. GRAY for one-channel outputs and RGB for colour ones."""
    return icc_profile[16:20] == (b"GRAY" if grayscale_output else b"RGB ")


def output_metadata(picture: images.Picture, output_format: str,
                    strip: bool) -> images.Metadata:
    """The metadata one output gets: the source's, stripped on request, and without a profile
    that would misstate its colours -- a CMYK profile after PIL's CMYK -> RGB conversion, or a
    GRAY one in WebP (which has no grayscale: PIL writes gray as RGB)."""
    metadata = picture.metadata.stripped() if strip else picture.metadata
    grayscale_output = picture.grayscale and output_format != "webp"
    if metadata.icc_profile and not profile_fits(metadata.icc_profile, grayscale_output):
        return dataclasses.replace(metadata, icc_profile=None)
    return metadata


# --- the image to write -------------------------------------------------------------------

def _alpha_at(alpha: np.ndarray, bits: int) -> np.ndarray:
    """An 8- or 16-bit alpha channel at `bits` bits, rescaled exactly (x257 up, /257 down)."""
    if bits == 16:
        return alpha if alpha.dtype == np.uint16 else alpha.astype(np.uint16) * 257
    if alpha.dtype == np.uint8:
        return alpha
    return np.round(alpha / 257.0).astype(np.uint8)


def compose_output(picture: images.Picture, denoised: np.ndarray) -> Image.Image:
    """8-bit output: grayscale sources back to L (channel mean), alpha carried over."""
    if picture.grayscale:
        mean = np.round(denoised.mean(axis=2, dtype=np.float32)).astype(np.uint8)
        output = Image.fromarray(mean, mode="L")
    else:
        output = Image.fromarray(denoised, mode="RGB")
    if picture.alpha is not None:
        output.putalpha(Image.fromarray(_alpha_at(picture.alpha, 8), mode="L"))
    return output


def compose_output16(picture: images.Picture, denoised: np.ndarray) -> np.ndarray:
    """16-bit output as H x W x C uint16 (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA).

    An 8-bit alpha is scaled by 257 (255 -> 65535, exactly); a 16-bit one is kept.
    """
    if picture.grayscale:
        channels = [np.round(denoised.mean(axis=2, dtype=np.float32)).astype(np.uint16)[..., None]]
    else:
        channels = [denoised]
    if picture.alpha is not None:
        channels.append(_alpha_at(picture.alpha, 16)[..., None])
    return np.concatenate(channels, axis=2) if len(channels) > 1 else channels[0]


# --- encoding with metadata ---------------------------------------------------------------

def pil_save_options(output_format: str, metadata: images.Metadata, quality: int) -> dict:
    """Keyword arguments for PIL's save: metadata plus the format's quality settings.

    JPEG is written with 4:4:4 chroma (no subsampling): halving the colour resolution blurs
    colour edges, the very thing a colour-faithful archive must not do.
    """
    options: dict = {"format": PIL_FORMATS[output_format]}
    if metadata.icc_profile:
        options["icc_profile"] = metadata.icc_profile
    if metadata.exif:
        options["exif"] = metadata.exif
    if metadata.dpi and output_format in ("png", "jpeg"):
        options["dpi"] = metadata.dpi
    if metadata.xmp and output_format == "png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt(PNG_XMP_KEYWORD, metadata.xmp.decode("utf-8", "replace"))
        options["pnginfo"] = info
    elif metadata.xmp:
        options["xmp"] = metadata.xmp
    if output_format == "jpeg":
        options.update(quality=quality, subsampling=0)
    elif output_format == "webp":
        options.update(quality=quality)
    return options


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_metadata_chunks(metadata: images.Metadata) -> bytes:
    """iCCP, eXIf, pHYs and XMP (iTXt) chunks, as PIL writes them, to follow IHDR."""
    chunks = b""
    if metadata.icc_profile:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(metadata.icc_profile))
    if metadata.exif:
        chunks += _png_chunk(b"eXIf", metadata.exif.removeprefix(images.EXIF_HEADER))
    if metadata.dpi:
        per_metre = [round(value / 0.0254) for value in metadata.dpi]
        chunks += _png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1))
    if metadata.xmp:  # keyword, uncompressed, no language or translated keyword, text
        chunks += _png_chunk(b"iTXt", PNG_XMP_KEYWORD.encode() + b"\0\0\0\0\0" + metadata.xmp)
    return chunks


def encode_png16(pixels: np.ndarray, metadata: images.Metadata) -> bytes:
    """A 16-bit PNG (TF's encoder: adaptive filters, any of 1-4 channels) with metadata."""
    png = tf.io.encode_png(tf.convert_to_tensor(pixels, tf.uint16)).numpy()
    return png[:PNG_SIGNATURE_AND_IHDR] + png_metadata_chunks(metadata) + png[
        PNG_SIGNATURE_AND_IHDR:]


# --- writing ------------------------------------------------------------------------------

def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Run `write(temporary)` on a temp file beside `path`, then rename it over `path`
    (atomic.replacing): never a half-written output, whatever fails in between."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as temporary:
        write(temporary)


def save_image(image: Image.Image, path: Path, output_format: str,
               metadata: images.Metadata, quality: int = DEFAULT_QUALITY) -> None:
    """Write an 8-bit PIL image atomically in the given format, metadata included."""
    options = pil_save_options(output_format, metadata, quality)
    write_atomic(path, lambda temporary: image.save(temporary, **options))


def save_png16(pixels: np.ndarray, path: Path, metadata: images.Metadata) -> None:
    """Write 16-bit pixels (see compose_output16) atomically as PNG, metadata included."""
    data = encode_png16(pixels, metadata)
    write_atomic(path, lambda temporary: temporary.write_bytes(data))


def _mode_for(image: Image.Image, output_format: str) -> Image.Image:
    """The source's pixels in a mode the format holds, converting only when it must."""
    keep = {"png": PIL_PNG_MODES, "jpeg": {"L", "RGB"}, "webp": {"RGB", "RGBA"}}[output_format]
    if image.mode in keep:
        return image
    if output_format == "jpeg":
        return image.convert("RGB")  # alpha was refused by check_writable
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def copy_clean(source: Path, target: Path, picture: images.Picture, output_format: str,
               strip_metadata: bool, quality: int = DEFAULT_QUALITY) -> None:
    """--skip-clean: the source's own pixels, not denoised.

    When the output format is the source's and its metadata is to be kept, the file is copied
    byte for byte (no second lossy encode; the EXIF orientation then still applies, as in
    the source). Otherwise the pixels are re-encoded upright, without 8-bit conversion where
    the format holds the mode (16-bit and palette PNGs stay 16-bit and palette).
    """
    if PIL_FORMATS[output_format] == picture.format and not strip_metadata:
        write_atomic(target, lambda temporary: shutil.copyfile(source, temporary))
        return
    metadata = output_metadata(picture, output_format, strip_metadata)
    if picture.bits == 16 and output_format == "png":  # PIL would cut 16-bit colour to 8
        save_png16(compose_output16(picture, picture.rgb), target, metadata)
        return
    with Image.open(source) as image:
        upright = _mode_for(ImageOps.exif_transpose(image), output_format)
        save_image(upright, target, output_format, metadata, quality)
