"""One picture's pixels and metadata: `load_picture` decodes a file the way predict needs it,
`save_picture` writes a (denoised) picture in the requested format, atomically.

Loading keeps what must survive into the output: 16-bit samples (never quantised to 8 bits
first), alpha (carried over, not denoised), the grayscale flag and the metadata
(tfdenoise.io.metadata). Saving writes PNG, JPEG or WebP through PIL, and 16-bit PNGs through
TF's encoder (PIL has no 16-bit RGB) with the metadata chunks added after IHDR. A restored
archive is only usable if it looks like the original in every colour-managed viewer, so the
ICC profile, EXIF, XMP and DPI go into every output unless stripping is asked for (PIL writes
no DPI into WebP). TIFFs (tfdenoise.io.tiff) are read a page at a time, 16-bit colour at full
precision, and written as lossless TIFF, 8 or 16 bits, one page after the other.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

from tfdenoise.config import DEFAULT_MAX_PIXELS, PNG_COMPRESS_LEVEL
from tfdenoise.io import atomic, netpbm, png, tiff
from tfdenoise.io.files import (
    JPEG_SUFFIXES,
    TIFFFILE_MODE,
    ImageError,
    read_deep_netpbm,
    read_tifffile_page,
    reading,
    short_reason,
    to_rgb8,
    verified_info,
)
from tfdenoise.io.metadata import (
    ORIENTATION,
    PNG_XMP_KEYWORD,
    Metadata,
    png_chunks,
    profile_fits,
    read_metadata,
)
from tfdenoise.io.orientation import orient

GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
# The mode reported for a 16-bit picture read outside PIL, by samples (colour + alpha).
SIXTEEN_BIT_SAMPLE_MODES = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}
# Formats whose later frames are an animation's (not an MPO's previews or a TIFF's pages):
# only the first frame is read, and Picture.frames says how many there are.
ANIMATION_FORMATS = frozenset({"GIF", "PNG", "WEBP", "AVIF"})


# --- loading ------------------------------------------------------------------------------


@dataclasses.dataclass
class Picture:
    """A decoded image as predict needs it: pixels plus what must survive into the output.

    8-bit sources are H x W x 3 uint8 (grayscale replicated; denoised as RGB, then averaged
    back). 16-bit sources keep every sample as uint16 -- H x W x 1 for grayscale, H x W x 3
    for colour -- and become float one batch at a time, like 8-bit ones: the model sees their
    full precision (never quantised to 8 bits first) at 2 bytes a sample. Alpha is not
    denoised, only carried over (uint16 when the source's is 16-bit).
    """

    rgb: np.ndarray  # uint8 H x W x 3, or uint16 H x W x (1 or 3); EXIF orientation applied
    grayscale: bool  # the source had one colour channel: write mode L / I;16 (or LA)
    alpha: np.ndarray | None  # H x W uint8 (uint16 for 16-bit sources), None: no transparency
    mode: str  # the source's PIL mode (RGB;16, RGBA;16, LA;16 for 16-bit colour PNGs), reports
    bits: int = 8  # bits per sample of the source: 16 for 16-bit PNGs, TIFFs and PNMs, else 8
    format: str = ""  # PIL format of the source: JPEG, PNG, WEBP, GIF, BMP, TIFF, PPM, ...
    metadata: Metadata = dataclasses.field(default_factory=Metadata)
    page: int = 0  # which page of a multi-page TIFF these pixels are (0-based)
    pages: int = 1  # how many pages the source has (TIFF); each is loaded on its own
    frames: int = 1  # how many frames the source's animation has; only the first is loaded


def _alpha_of(image: Image.Image) -> np.ndarray | None:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.uint8).copy()
    return None


def _pixels_for_model(image: Image.Image) -> np.ndarray:
    """uint8 RGB for 8-bit sources; uint16 H x W x 1 for 16-bit grayscale (see Picture)."""
    if image.mode in SIXTEEN_BIT_MODES:
        return np.asarray(image, dtype=np.uint16)[..., None].copy()
    return to_rgb8(image)


PNG16_COLOUR_MODES = {png.RGB: "RGB;16", png.GRAY_ALPHA: "LA;16", png.RGBA: "RGBA;16"}  # report


def _png16_colour_type(source: str | os.PathLike | bytes) -> int | None:
    """The IHDR colour type of a 16-bit PNG with colour or alpha, which PIL decodes to 8 bits
    per sample (it keeps 16 only for plain grayscale, mode I;16); None for anything else."""
    header = png.read_file_header(source)
    if header is None or header.bit_depth != 16 or header.colour_type not in PNG16_COLOUR_MODES:
        return None
    return header.colour_type


def _decode_png16(source: str | os.PathLike | bytes) -> np.ndarray:
    """Every sample of a 16-bit PNG, H x W x C uint16, decoded by TF (imported only here:
    records workers import this module and must start fast)."""
    import tensorflow as tf

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        return tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    except tf.errors.OpError as error:
        raise ImageError(f"corrupt or truncated: {short_reason(error)}") from None


def _png16_picture(
    source: str | os.PathLike | bytes, colour_type: int, orientation: int, metadata: Metadata
) -> Picture:
    samples = orient(_decode_png16(source), orientation)
    colour_channels = 1 if colour_type == png.GRAY_ALPHA else 3
    alpha = samples[..., colour_channels].copy() if colour_type != png.RGB else None
    pixels = np.ascontiguousarray(samples[..., :colour_channels])
    return Picture(
        pixels,
        colour_type == png.GRAY_ALPHA,
        alpha,
        PNG16_COLOUR_MODES[colour_type],
        16,
        "PNG",
        metadata,
    )


def _tiff16_picture(
    source: str | os.PathLike | bytes, image: Image.Image, page: int, metadata: Metadata
) -> Picture:
    """A 16-bit gray(+alpha) or RGB(A) TIFF page at full precision (see tfdenoise.io.tiff);
    an extra sample that is not alpha (a scanner's infrared channel) is left out."""
    samples = orient(tiff.read_samples16(source, page), image.getexif().get(ORIENTATION, 1))
    colour_channels = 3 if image.tag_v2.get(tiff.PHOTOMETRIC) == tiff.RGB else 1
    if samples.shape[2] < colour_channels:
        raise ImageError(f"unsupported TIFF layout: {samples.shape[2]} samples for RGB")
    has_alpha = samples.shape[2] > colour_channels and tiff.first_extra_is_alpha(image)
    alpha = samples[..., colour_channels].copy() if has_alpha else None
    pixels = samples if samples.shape[2] == colour_channels else samples[..., :colour_channels]
    return Picture(
        np.ascontiguousarray(pixels),
        colour_channels == 1,
        alpha,
        SIXTEEN_BIT_SAMPLE_MODES[colour_channels + has_alpha],
        16,
        "TIFF",
        metadata,
    )


def _netpbm16_picture(source: str | os.PathLike | bytes) -> Picture:
    """A 16-bit (or 9-15-bit) binary PGM/PPM at full precision (see tfdenoise.io.netpbm)."""
    samples = read_deep_netpbm(source)
    gray = samples.shape[2] == 1
    return Picture(samples, gray, None, SIXTEEN_BIT_SAMPLE_MODES[samples.shape[2]], 16, "PPM")


def _tifffile_picture(
    source: str | os.PathLike | bytes,
    page: int,
    max_pixels: int,
    metadata: Metadata | None = None,
) -> Picture:
    """A TIFF page read with tifffile (float, 32-bit, 16-bit gray + alpha), kept at 16 bits;
    `metadata` as Pillow read it, or none when Pillow cannot open the file."""
    colour, alpha, kind = read_tifffile_page(source, page, max_pixels)

    def sixteen(unit: np.ndarray) -> np.ndarray:
        return np.round(unit * 65535.0).astype(np.uint16)

    gray = kind.colour_channels == 1
    mode = SIXTEEN_BIT_SAMPLE_MODES[kind.colour_channels + (alpha is not None)]
    return Picture(
        sixteen(colour),
        gray,
        None if alpha is None else sixteen(alpha),
        mode,
        16,
        "TIFF",
        metadata or Metadata(),
        page=page,
        pages=kind.pages,
    )


def load_picture(
    source: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, page: int = 0
) -> Picture:
    """Decode for predict: pixels (EXIF orientation applied), grayscale flag, alpha, metadata;
    for a multi-page TIFF the given page (0-based; `Picture.pages` says how many there are),
    for an animation its first frame (`Picture.frames` says how many there are)."""
    if verified_info(source, max_pixels).mode == TIFFFILE_MODE:
        return _tifffile_picture(source, page, max_pixels)
    with reading(source, max_pixels) as image:
        pages = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
        if not 0 <= page < pages:
            raise ImageError(f"has no page {page + 1} (it has {pages})")
        if page:
            image.seek(page)
        picture = _load_page(source, image, max_pixels)
        frames = getattr(image, "n_frames", 1) if image.format in ANIMATION_FORMATS else 1
        return dataclasses.replace(picture, page=page, pages=pages, frames=frames)


def _load_page(source: str | os.PathLike | bytes, image: Image.Image, max_pixels: int) -> Picture:
    """The current page of an open image, decoded for predict."""
    image_format = image.format or ""
    if image_format == "TIFF" and tiff.is_sixteen_bit_page(image):  # tifffile decodes it
        return _tiff16_picture(source, image, image.tell(), _metadata_of(image))
    if image_format == "TIFF" and tiff.pillow_misreads(image):  # 32-bit or float gray
        return _tifffile_picture(source, image.tell(), max_pixels, _metadata_of(image))
    if image_format == "PPM" and netpbm.is_deep(source):  # PIL would cut it to 8 bits
        return _netpbm16_picture(source)
    image.load()
    mode = image.mode
    metadata = _metadata_of(image)
    colour_type = _png16_colour_type(source) if image_format == "PNG" else None
    if colour_type is not None:
        return _png16_picture(source, colour_type, image.getexif().get(ORIENTATION, 1), metadata)
    image = ImageOps.exif_transpose(image)
    return Picture(
        _pixels_for_model(image),
        mode in GRAYSCALE_MODES,
        _alpha_of(image),
        mode,
        16 if mode in SIXTEEN_BIT_MODES else 8,
        image_format,
        metadata,
    )


def _metadata_of(image: Image.Image) -> Metadata:
    """read_metadata, plus a TIFF's descriptive tags as EXIF (PIL gives TIFFs no EXIF block)."""
    metadata = read_metadata(image)
    if image.format == "TIFF" and not metadata.exif:
        metadata = dataclasses.replace(metadata, exif=tiff.tiff_exif(image))
    return metadata


# --- saving -------------------------------------------------------------------------------

OUTPUT_FORMATS = ("png", "jpeg", "webp", "tiff")  # what --format writes; plus "same"
SAME = "same"
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}
OUTPUT_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}
SIXTEEN_BIT_FORMATS = ("png", "tiff")  # the output formats that hold 16 bits per sample
# --format same, by the input's suffix. GIF is a 256-colour palette format (a denoised photo
# would be re-quantised, i.e. noisy again) and PIL's BMP carries no profile or EXIF: both -> PNG,
# which is lossless too, as are the formats tfdenoise reads but does not write (Netpbm, JPEG
# 2000, AVIF, HEIC).
SAME_BY_SUFFIX = {
    **{suffix: "jpeg" for suffix in JPEG_SUFFIXES},
    ".png": "png",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
BIT_DEPTHS = ("8", "16", SAME)
DEFAULT_QUALITY = 95
PIL_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"})


def check_output_options(output_format: str, quality: int, bit_depth: str) -> None:
    """ValueError for option values (or combinations) no output could honour."""
    if output_format not in (*OUTPUT_FORMATS, SAME):
        raise ValueError(
            f"unknown format {output_format!r}; choose {', '.join(OUTPUT_FORMATS)} or same"
        )
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit depth must be 8, 16 or same, got {bit_depth!r}")
    if bit_depth == "16" and output_format in ("jpeg", "webp"):
        raise ValueError(
            f"{output_format} holds 8 bits per channel only; 16-bit output needs "
            "--format png or tiff (or same, for PNG and TIFF inputs)"
        )


def resolve_format(source: Path, requested: str) -> str:
    """The format one output is written in: `requested`, or for "same" the input's (by suffix)."""
    if requested != SAME:
        return requested
    return SAME_BY_SUFFIX.get(source.suffix.lower(), "png")


def output_suffix(source: Path, requested: str) -> str:
    """.png/.jpg/.webp; "same" keeps the input's own suffix (.JPEG stays .JPEG) where it can."""
    if requested == SAME and source.suffix.lower() in SAME_BY_SUFFIX:
        return source.suffix
    return OUTPUT_SUFFIXES[resolve_format(source, requested)]


def output_bits(picture: Picture, output_format: str, bit_depth: str) -> int:
    """8 or 16 bits per sample; only PNG and TIFF outputs hold 16."""
    if output_format not in SIXTEEN_BIT_FORMATS:
        return 8
    return picture.bits if bit_depth == SAME else int(bit_depth)


def check_writable(picture: Picture, output_format: str) -> None:
    """ImageError (before any denoising) when the format would have to drop the alpha channel
    or cannot hold the picture's size."""
    if output_format == "jpeg" and picture.alpha is not None:
        raise ImageError("has transparency, which JPEG cannot hold: use --format png, webp or same")
    height, width = picture.rgb.shape[:2]
    if output_format == "webp" and max(height, width) > WEBP_MAX_SIDE:  # found by fuzzing
        raise ImageError(
            f"{width}x{height} is too large for WebP (at most {WEBP_MAX_SIDE} pixels a side): "
            "use --format png"
        )
    if output_format == "jpeg" and max(height, width) > JPEG_MAX_SIDE:  # found by fuzzing
        raise ImageError(
            f"{width}x{height} is too large for JPEG (at most {JPEG_MAX_SIDE} pixels a side): "
            "use --format png or tiff"
        )


WEBP_MAX_SIDE = 16383  # libwebp's limit; PIL's encoder raises ValueError beyond it
JPEG_MAX_SIDE = 65500  # libjpeg's JPEG_MAX_DIMENSION; PIL's encoder raises OSError beyond it


def output_metadata(picture: Picture, output_format: str, strip: bool) -> Metadata:
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


def _rgb8(samples: np.ndarray) -> np.ndarray:
    """16-bit H x W x 1 or 3 samples as the H x W x 3 uint8 RGB an 8-bit output is composed of."""
    eight = np.round(samples / 257.0).astype(np.uint8)
    return np.repeat(eight, 3, axis=2) if eight.shape[2] == 1 else eight


def compose_output(picture: Picture, denoised: np.ndarray) -> Image.Image:
    """8-bit output: grayscale sources back to L (channel mean), alpha carried over."""
    if picture.grayscale:
        mean = np.round(denoised.mean(axis=2, dtype=np.float32)).astype(np.uint8)
        output = Image.fromarray(mean, mode="L")
    else:
        output = Image.fromarray(denoised, mode="RGB")
    if picture.alpha is not None:
        output.putalpha(Image.fromarray(_alpha_at(picture.alpha, 8), mode="L"))
    return output


def compose_output16(picture: Picture, denoised: np.ndarray) -> np.ndarray:
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


def compose_samples(picture: Picture, denoised: np.ndarray, bits: int) -> np.ndarray:
    """8- or 16-bit output samples as H x W x C (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA),
    e.g. for TIFF; `denoised` is H x W x 3 at `bits` bits."""
    if bits == 16:
        return compose_output16(picture, denoised)
    if picture.grayscale:
        channels = [np.round(denoised.mean(axis=2, dtype=np.float32)).astype(np.uint8)[..., None]]
    else:
        channels = [denoised]
    if picture.alpha is not None:
        channels.append(_alpha_at(picture.alpha, 8)[..., None])
    return np.concatenate(channels, axis=2) if len(channels) > 1 else channels[0]


# --- encoding with metadata ---------------------------------------------------------------


def pil_save_options(output_format: str, metadata: Metadata, quality: int) -> dict:
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
    if output_format == "png":
        options.update(compress_level=PNG_COMPRESS_LEVEL)
    elif output_format == "jpeg":
        options.update(quality=quality, subsampling=0)
    elif output_format == "webp":
        options.update(quality=quality)
    return options


def encode_png16(pixels: np.ndarray, metadata: Metadata) -> bytes:
    """A 16-bit PNG (TF's encoder: adaptive filters, any of 1-4 channels) with metadata."""
    import tensorflow as tf  # here only: records workers import this package and start fast

    samples = tf.convert_to_tensor(pixels, tf.uint16)
    encoded = tf.io.encode_png(samples, compression=PNG_COMPRESS_LEVEL).numpy()
    return png.insert_after_header(encoded, png_chunks(metadata))


def save_image(
    image: Image.Image,
    path: Path,
    output_format: str,
    metadata: Metadata,
    quality: int = DEFAULT_QUALITY,
) -> None:
    """Write an 8-bit PIL image atomically in the given format, metadata included."""
    options = pil_save_options(output_format, metadata, quality)
    atomic.write_with(path, lambda temporary: image.save(temporary, **options))


def save_picture(
    picture: Picture,
    path: Path,
    output_format: str = "png",
    bits: int = 8,
    quality: int = DEFAULT_QUALITY,
    strip_metadata: bool = False,
) -> None:
    """Write a picture (e.g. a loaded one with denoised RGB pixels) atomically: `bits` 8 or 16
    per sample (16 only in PNG and TIFF), grayscale and alpha as the source had them, its
    metadata kept (or stripped) as far as the format holds it. One page: see save_tiff_pages
    for multi-page TIFF outputs."""
    metadata = output_metadata(picture, output_format, strip_metadata)
    if output_format == "tiff":
        save_tiff_pages(path, [(picture, bits)], strip_metadata, picture.rgb.nbytes)
    elif bits == 16:
        save_png16(compose_output16(picture, picture.rgb), path, metadata)
    else:
        save_image(compose_output(picture, picture.rgb), path, output_format, metadata, quality)


def save_tiff_pages(
    path: Path,
    pages: Iterable[tuple[Picture, int]],
    strip_metadata: bool = False,
    uncompressed_bytes: int = 0,
) -> int:
    """Write (picture, bits) pairs atomically as the pages of one lossless TIFF, each page
    composed and written as it comes (a generator can denoise them one at a time, so only one
    page is ever in memory); return the number of pages. `uncompressed_bytes` (an estimate of
    all pages' samples) decides between classic TIFF and BigTIFF."""
    written = 0

    def write(temporary: Path) -> None:
        nonlocal written
        with tiff.tiff_pages(temporary, uncompressed_bytes) as writer:
            for picture, bits in pages:
                metadata = output_metadata(picture, "tiff", strip_metadata)
                samples = compose_samples(picture, picture.rgb, bits)
                writer.write(samples, metadata, picture.grayscale)
                written += 1

    atomic.write_with(path, write)
    return written


def save_png16(pixels: np.ndarray, path: Path, metadata: Metadata) -> None:
    """Write 16-bit pixels (see compose_output16) atomically as PNG, metadata included."""
    data = encode_png16(pixels, metadata)
    atomic.write_with(path, lambda temporary: temporary.write_bytes(data))


def _mode_for(image: Image.Image, output_format: str) -> Image.Image:
    """The source's pixels in a mode the format holds, converting only when it must."""
    keep = {"png": PIL_PNG_MODES, "jpeg": {"L", "RGB"}, "webp": {"RGB", "RGBA"}}[output_format]
    if image.mode in keep:
        return image
    if output_format == "jpeg":
        return image.convert("RGB")  # alpha was refused by check_writable
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def copy_clean(
    source: Path,
    target: Path,
    picture: Picture,
    output_format: str,
    strip_metadata: bool,
    quality: int = DEFAULT_QUALITY,
) -> None:
    """--skip-clean: the source's own pixels, not denoised.

    When the output format is the source's and its metadata is to be kept, the file is copied
    byte for byte (no second lossy encode; the EXIF orientation then still applies, as in
    the source). Otherwise the pixels are re-encoded upright, without 8-bit conversion where
    the format holds the mode (16-bit and palette PNGs stay 16-bit and palette); 16-bit
    pictures from the samples as loaded, not as Pillow would decode the file again (it cannot
    open float RGB TIFFs, and would read a float gray one on the wrong scale).
    """
    if PIL_FORMATS[output_format] == picture.format and not strip_metadata:
        atomic.write_with(target, lambda temporary: shutil.copyfile(source, temporary))
        return
    metadata = output_metadata(picture, output_format, strip_metadata)
    if picture.bits == 16 and output_format == "png":  # PIL would cut 16-bit colour to 8
        save_png16(compose_output16(picture, picture.rgb), target, metadata)
        return
    if output_format == "tiff":
        save_picture(picture, target, "tiff", picture.bits, quality, strip_metadata)
        return
    if picture.bits == 16:  # read outside Pillow (TF, tifffile, netpbm): Pillow misreads some
        eight = dataclasses.replace(picture, rgb=_rgb8(picture.rgb))
        save_picture(eight, target, output_format, 8, quality, strip_metadata)
        return
    with Image.open(source) as image:
        upright = _mode_for(ImageOps.exif_transpose(image), output_format)
        save_image(upright, target, output_format, metadata, quality)
