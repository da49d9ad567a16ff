"""TIFF, the scanner's format: 16-bit samples read with tifffile, pages, and TIFF writing.

Pillow decodes every TIFF kind at 8 bits per sample (RGB, RGBA, grayscale, CMYK, palette;
LZW, deflate, PackBits, JPEG; tiled or striped) and checks each page's declared size before a
pixel is decoded (tfdenoise.io.files). What it cannot do is keep 16-bit colour: for 16-bit
grayscale, gray + alpha, RGB and RGBA pages the samples are read here with tifffile (with
imagecodecs for LZW, JPEG and the other compressions), at full precision, and so are 32-bit and
float ones; white-is-zero gray is read as ordinary black-is-zero gray (Pillow inverts only
white-is-zero samples of 8 bits or fewer).

Outputs are written with tifffile, deflate-compressed with the horizontal predictor (lossless),
8 or 16 bits per sample, one page after the other (a multi-page output never holds more than one
page in memory), with the ICC profile, the resolution in dots per inch, the XMP packet and the
descriptive EXIF tags (camera/scanner make and model, software, date, artist, copyright,
description) in each page's directory, and Orientation 1 (the pixels are written upright).
Descriptive text keeps its bytes: non-ASCII text (Latin-1, UTF-8) goes into the "ASCII" tags
byte for byte, as Pillow, libtiff and exiftool write and read it, rather than being dropped,
replaced by "?" or moved to an UNDEFINED-typed tag that readers of Make/Model ignore. EXIF's
own sub-directory (exposure settings) is not carried into TIFF outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from tfdenoise.io.errors import ImageError, check_size, short_reason
from tfdenoise.io.metadata import EXIF_HEADER, Metadata

BITS_PER_SAMPLE = 258
SAMPLE_FORMAT = 339  # 1 = unsigned integer (the default)
PHOTOMETRIC = 262
COMPRESSION = 259  # 1 = none (the default)
EXTRA_SAMPLES = 338  # what each sample beyond the colour ones is
ALPHA_EXTRA_SAMPLES = (1, 2)  # associated, unassociated alpha; 0 = unspecified (infrared, ...)
MINISWHITE, MINISBLACK, RGB = 0, 1, 2  # the photometric interpretations read at 16 bits here
GRAY_PHOTOMETRICS = (MINISWHITE, MINISBLACK)  # white-is-zero gray is read as black-is-zero
XMP_TAG = 700
ORIENTATION_TAG = 274  # read to turn tifffile's pixels; written as 1: they are upright then
# Descriptive IFD0 tags kept in TIFF outputs (ASCII): the scanner's record of the scan.
DESCRIPTIVE_TAGS = {
    270: "ImageDescription",
    271: "Make",
    272: "Model",
    305: "Software",
    306: "DateTime",
    315: "Artist",
    33432: "Copyright",
}
READ_BUFFER_BYTES = 1 << 24
TIFF_COMPRESSION = "zlib"  # Adobe deflate: lossless, written without imagecodecs


def _sample_kind(image: Image.Image) -> tuple[frozenset[int], int, int | None]:
    """The current page's bits per sample (as a set), sample format and photometric
    interpretation, from the tags Pillow read."""
    tags = getattr(image, "tag_v2", {})
    bits = tags.get(BITS_PER_SAMPLE, (1,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    sample_format = tags.get(SAMPLE_FORMAT, 1)
    sample_format = sample_format[0] if isinstance(sample_format, tuple) else sample_format
    return frozenset(bits), sample_format, tags.get(PHOTOMETRIC)


def is_sixteen_bit_page(image: Image.Image) -> bool:
    """Whether the current page of an open TIFF holds 16-bit unsigned gray(+alpha) or
    RGB(A) samples, which Pillow would cut to 8 bits (plain 16-bit gray it keeps as I;16)."""
    bits, sample_format, photometric = _sample_kind(image)
    return bits == {16} and sample_format == 1 and photometric in (*GRAY_PHOTOMETRICS, RGB)


def pillow_misreads(image: Image.Image) -> bool:
    """Whether Pillow opens the current page of a TIFF but misreads its samples, which
    `read_unit_samples` reads right: 32-bit unsigned or float gray, and white-is-zero gray of
    more than 8 bits. Pillow gives the first modes I and F, whose scale files.gray_unit_float
    can only guess (a float ramp in [0, 1] with one highlight above 1 came out nearly black),
    and wraps unsigned samples above 2**31 to negative numbers; it inverts white-is-zero
    samples of 8 bits or fewer only (a 16-bit one came out as a negative)."""
    bits, sample_format, photometric = _sample_kind(image)
    if photometric not in GRAY_PHOTOMETRICS or len(bits) != 1:
        return False
    kind = (sample_format, next(iter(bits)))
    deep = sample_format == 3 or kind[1] == 32 or (photometric == MINISWHITE and kind[1] > 8)
    return kind in UNIT_SAMPLE_KINDS and deep


def first_extra_is_alpha(image: Image.Image) -> bool:
    """Whether the current page's first extra sample is alpha. Scanners' 64-bit RGBI files
    (16-bit RGB + an infrared channel for dust removal) mark it unspecified: taken for alpha,
    it would make the output nearly transparent."""
    kinds = getattr(image, "tag_v2", {}).get(EXTRA_SAMPLES, ())
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return bool(kinds) and kinds[0] in ALPHA_EXTRA_SAMPLES


@dataclasses.dataclass(frozen=True)
class TifffileKind:
    """A TIFF Pillow cannot open that tifffile decodes here: float, 32-bit or 16-bit gray +
    extra-sample pages (HDR merges, scientific and some scanner exports)."""

    width: int
    height: int
    pages: int
    colour_channels: int  # 1 gray, 3 RGB
    alpha: bool  # an extra sample marked as alpha follows the colour ones
    description: str  # "32-bit float RGB", for reports


UNIT_SAMPLE_KINDS = {(1, 8), (1, 16), (1, 32), (3, 16), (3, 32), (3, 64)}  # (format, bits)


def tifffile_kind(source: str | os.PathLike | bytes) -> TifffileKind | None:
    """Its first page's facts when the TIFF is gray or RGB with unsigned 8-32-bit or float
    samples and at most one extra sample, which `read_unit_samples` decodes; None for any
    other kind or a broken file (whose reason files.py gives)."""
    import tifffile

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with tifffile.TiffFile(stream) as tiff:
            page = tiff.pages[0]
            kind = (int(page.sampleformat), int(page.bitspersample))
            photometric = int(page.photometric)
            colour = 3 if photometric == RGB else 1
            extra = int(page.samplesperpixel) - colour
            if photometric not in (*GRAY_PHOTOMETRICS, RGB) or kind not in UNIT_SAMPLE_KINDS:
                return None
            if unknown_compression(page) is not None:
                return None  # files.py names the compression
            if extra not in (0, 1):  # (the pixel limit counts pixels, not samples)
                return None
            alpha = extra > 0 and int(page.extrasamples[0]) in ALPHA_EXTRA_SAMPLES
            number = "float" if kind[0] == 3 else "unsigned"
            return TifffileKind(
                int(page.imagewidth),
                int(page.imagelength),
                len(tiff.pages),
                colour,
                alpha,
                f"{kind[1]}-bit {number} {'RGB' if colour == 3 else 'gray'}",
            )
    except Exception:  # tifffile raises many kinds: all mean "not one we decode"
        return None


def unknown_compression(page) -> int | None:
    """A tifffile page's compression code when tifffile knows no codec for it, else None."""
    import tifffile

    code = page.tags.valueof(COMPRESSION, 1)
    return None if code in tuple(tifffile.COMPRESSION) else code


def read_unit_samples(
    source: str | os.PathLike | bytes, page: int, max_pixels: int
) -> tuple[np.ndarray, int]:
    """A `tifffile_kind` page as H x W x S float32, as stored (not turned), and its orientation
    tag: unsigned samples scaled to [0, 1], float samples clipped to it (HDR highlights above 1
    saturate); ImageError if unusable or above `max_pixels` (checked from its directory, before
    decoding)."""
    samples, orientation = _page_samples(source, page, max_pixels)
    if samples.dtype.kind == "u":
        unit = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max)
    else:
        unit = np.nan_to_num(samples.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(unit, 0.0, 1.0), orientation


def read_samples16(source: str | os.PathLike | bytes, page: int) -> np.ndarray:
    """One 16-bit page's samples as H x W x S uint16 (S = 1 gray, 2 gray + alpha, 3 RGB,
    4 RGBA), whatever its compression, tiling or planar layout; ImageError if unusable."""
    samples, _ = _page_samples(source, page)  # its caller reads the orientation with Pillow
    if samples.dtype != np.uint16:
        raise ImageError(f"unexpected TIFF samples: {samples.dtype}")
    return samples


def _page_samples(
    source: str | os.PathLike | bytes, page: int, max_pixels: int | None = None
) -> tuple[np.ndarray, int]:
    """One page's samples as H x W x S (S <= 4), in the file's sample type, and its
    orientation tag (1 when it has none; the samples are as stored); the gray of a
    white-is-zero page inverted (maximum - value; 1 - value for float), so that 0 is black as
    in every other kind and the output looks like the input as displayed. A page of more
    than 4 samples a pixel (the pixel limit counts pixels: it could hold thousands each) or,
    given `max_pixels`, more pixels is refused from its directory, before decoding."""
    import tifffile

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with tifffile.TiffFile(stream) as tiff:
            tiff_page = tiff.pages[page]
            if int(tiff_page.samplesperpixel) > 4:
                raise ImageError(
                    f"unsupported TIFF layout: {tiff_page.samplesperpixel} samples a pixel"
                )
            width, height = int(tiff_page.imagewidth), int(tiff_page.imagelength)
            check_size(width, height, max_pixels, where=f"page {page + 1}: ")
            # compressed data read 16 MB at a time: tifffile's default buffer holds up to
            # 256 MB of it besides the samples (a 35 MP scan peaked 470 MB higher)
            samples = tiff_page.asarray(maxworkers=1, buffersize=READ_BUFFER_BYTES)
            axes = tiff_page.axes
            white_is_zero = int(tiff_page.photometric) == MINISWHITE
            orientation = tiff_page.tags.valueof(ORIENTATION_TAG, 1)
            orientation = int(orientation) if isinstance(orientation, int) else 1  # damaged
    except ImageError:
        raise
    except Exception as error:  # tifffile and its codecs raise many kinds: all mean "corrupt"
        raise ImageError(f"corrupt or truncated: {short_reason(error)}") from None
    if axes.startswith("S"):  # planar configuration "separate": one plane per sample
        samples = np.moveaxis(samples, 0, -1)
    if samples.ndim == 2:
        samples = samples[..., None]
    if samples.ndim != 3 or samples.shape[2] > 4:
        raise ImageError(f"unsupported TIFF layout: axes {axes}, shape {samples.shape}")
    samples = np.ascontiguousarray(samples)
    if white_is_zero:  # the gray sample only: an extra one (alpha) is not inverted
        white = np.iinfo(samples.dtype).max if samples.dtype.kind == "u" else 1.0
        samples[..., 0] = white - samples[..., 0]
    return samples, orientation


def tiff_exif(image: Image.Image) -> bytes | None:
    """EXIF bytes holding a TIFF source's descriptive IFD0 tags (make, model, date, ...), so
    that they reach outputs in any format; None when it has none."""
    tags = getattr(image, "tag_v2", {})
    exif = Image.Exif()
    for tag in DESCRIPTIVE_TAGS:
        value = tags.get(tag)
        if isinstance(value, str) and value:
            exif[tag] = _ascii_tag_bytes(value)  # as bytes: PIL would write non-ASCII as "?"
    if not len(exif):
        return None
    data = exif.tobytes()  # PIL prefixes the APP1 header (as metadata.Metadata keeps EXIF)
    return data if data.startswith(EXIF_HEADER) else EXIF_HEADER + data


def descriptive_tags(exif: bytes | None) -> list[tuple[int, str]]:
    """The descriptive IFD0 tags of EXIF bytes, as (tag, text) pairs; none from EXIF PIL
    cannot parse (the output keeps its pixels and other metadata, as other formats do)."""
    if not exif:
        return []
    parsed = Image.Exif()
    try:
        parsed.load(exif.removeprefix(EXIF_HEADER))
        values = [(tag, parsed.get(tag)) for tag in DESCRIPTIVE_TAGS]  # values decode lazily
    except (SyntaxError, struct.error, KeyError, TypeError, ValueError):  # PIL's, on damage
        return []
    return [(tag, value) for tag, value in values if isinstance(value, str) and value]


def _ascii_tag_bytes(text: str) -> bytes:
    """The bytes of a TIFF/EXIF "ASCII" tag as PIL read them: PIL decodes them as Latin-1, so
    encoding back gives the source's bytes (UTF-8 text, a (c) sign, stays as it was)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _page_options(samples: np.ndarray, metadata: Metadata, grayscale: bool) -> dict:
    """tifffile's write options for one output page."""
    channels = samples.shape[2]
    options: dict = {
        "photometric": "minisblack" if grayscale else "rgb",
        "compression": TIFF_COMPRESSION,
        "predictor": True,
        "metadata": None,  # no tifffile JSON in ImageDescription
        "software": False,
    }
    if channels in (2, 4):
        options["extrasamples"] = ("unassalpha",)
    if metadata.icc_profile:
        options["iccprofile"] = metadata.icc_profile
    if metadata.dpi:
        options.update(resolution=tuple(metadata.dpi), resolutionunit="INCH")
    # Orientation 1 said explicitly: without the tag, readers fall back to the XMP packet's
    # tiff:Orientation (PIL does), so any rotation left in it would be applied a second time
    extratags = [(ORIENTATION_TAG, "H", 1, 1, True)]
    for tag, text in descriptive_tags(metadata.exif):
        extratags.append((tag, "s", 0, _ascii_tag_bytes(text), True))
    if metadata.xmp:
        extratags.append((XMP_TAG, "B", len(metadata.xmp), metadata.xmp, True))
    options["extratags"] = extratags
    return options


class PageWriter:
    """Appends output pages to an open TIFF file (see tiff_pages)."""

    def __init__(self, writer) -> None:
        self._writer = writer

    def write(self, samples: np.ndarray, metadata: Metadata, grayscale: bool) -> None:
        """One page: H x W x C uint8 or uint16 samples (C = 1 gray, 2 gray + alpha, 3 RGB,
        4 RGBA)."""
        data = samples[..., 0] if samples.shape[2] == 1 else samples
        self._writer.write(data, **_page_options(samples, metadata, grayscale))


CLASSIC_TIFF_BYTES = 2**31  # above this many uncompressed bytes, write BigTIFF (no 4 GB limit)


@contextlib.contextmanager
def tiff_pages(path: Path, uncompressed_bytes: int = 0) -> Iterator[PageWriter]:
    """A TIFF being written at path, one page per `write`: classic TIFF (read everywhere),
    BigTIFF when the samples could pass classic TIFF's 4 GB offsets."""
    import tifffile

    bigtiff = uncompressed_bytes > CLASSIC_TIFF_BYTES
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as writer:
        yield PageWriter(writer)
