"""Image files on disk: listing, the hash-stable split, validation (probe/scan), decoder choice
and `load_rgb8`.

Shared by the folder pipeline, the TFRecord writer, evaluate and predict, so every entry point
agrees on which files are images, which split each belongs to, and why a bad file was skipped.
One picture's pixels and metadata as predict keeps them are `tfdenoise.io.photo`'s job.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import enum
import hashlib
import io
import logging
import os
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tfdenoise.config import DEFAULT_MAX_PIXELS, DEFAULT_SPLIT
from tfdenoise.io import heif, netpbm, tiff
from tfdenoise.io.errors import ImageError, check_size, short_reason
from tfdenoise.io.orientation import orient

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".jif"})  # .jfif: Windows' choice
IMAGE_SUFFIXES = JPEG_SUFFIXES | {
    ".png",
    ".tif",
    ".tiff",
    ".webp",
    ".bmp",
    ".gif",
    ".pbm",  # Netpbm: what SANE's scanimage writes (tfdenoise.io.netpbm for 16-bit)
    ".pgm",
    ".ppm",
    ".pnm",
    ".jp2",  # JPEG 2000, which archives and digitisation services deliver
    ".j2k",
    ".jpf",
    ".jpx",
    ".avif",  # decoded by Pillow 11.3 and newer
    ".heic",  # phones' photos, through pillow-heif when installed (tfdenoise.io.heif)
    ".heif",
    ".hif",
}
SPLITS = ("train", "val", "test")
APPLEDOUBLE_PREFIX = "._"  # macOS metadata beside a copied file (see list_image_files)
WINDOWS_FOLDER_FILES = frozenset({"thumbs.db", "desktop.ini"})  # Explorer's, not the user's

# We enforce our own pixel limit (with a clear message) before decoding, so PIL's own
# DecompressionBombError threshold is lifted; its warning would be noise.
Image.MAX_IMAGE_PIXELS = None
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


class Decoder(enum.IntEnum):
    """How the tf.data pipeline decodes a file: native TF ops where they are exact, else PIL."""

    JPEG = 0  # tf.image.decode_and_crop_jpeg: only the crop window is decoded
    TF_IMAGE = 1  # tf.io.decode_image: PNG (any bit depth, palette, alpha) and GIF
    PIL = 2  # what TF cannot decode faithfully: CMYK JPEG, BMP, WebP, TIFF, PNM, JPEG 2000...


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What probing a file learnt without keeping its pixels."""

    format: str  # PIL format name: JPEG, PNG, GIF, BMP, WEBP, TIFF, PPM, JPEG2000, AVIF, HEIF
    mode: str  # PIL mode: RGB, L, RGBA, P, I;16, CMYK, ...
    width: int
    height: int

    @property
    def decoder(self) -> Decoder:
        if self.format == "JPEG" and self.mode in ("RGB", "L"):
            return Decoder.JPEG
        if self.format in ("PNG", "GIF"):
            return Decoder.TF_IMAGE
        return Decoder.PIL


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """A validated image file and the split it belongs to."""

    path: str
    relpath: str
    split: str
    info: ImageInfo


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file left out, with the reason given to the user."""

    path: str
    reason: str


@dataclasses.dataclass
class Scan:
    """The result of scanning a folder: usable files and skipped ones."""

    root: str
    files: list[ImageFile]
    skipped: list[Skipped]

    def split(self, name: str) -> list[ImageFile]:
        return [f for f in self.files if f.split == name]


def has_image_suffix(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _walk_files(root: Path, exclude: str | os.PathLike | None) -> Iterator[tuple[str, str]]:
    """(directory, name) of every file under root, outside the folder `exclude`, without
    following directory symlinks (so symlink loops cannot recurse)."""
    if not root.is_dir():
        raise ValueError(f"not a directory: {root}")
    excluded = os.path.realpath(exclude) if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if excluded is not None:
            dirnames[:] = [
                name
                for name in dirnames
                if os.path.realpath(os.path.join(dirpath, name)) != excluded
            ]
        dirnames.sort()
        for name in filenames:
            yield dirpath, name


def list_image_files(
    root: str | os.PathLike, exclude: str | os.PathLike | None = None
) -> list[Path]:
    """All files under root with an image suffix (any case), sorted by relative path; none
    from the folder `exclude` (predict's OUT inside DIR: its outputs are not inputs).

    A directory named like an image is walked into, never listed. macOS's AppleDouble
    companions (`._NAME`, written beside every file a Mac copies to a USB stick or network
    share) hold metadata, not pixels: never listed, or each photo would come with a failure.
    """
    root = Path(root)
    found = [
        Path(dirpath) / name
        for dirpath, name in _walk_files(root, exclude)
        if has_image_suffix(name) and not name.startswith(APPLEDOUBLE_PREFIX)
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def other_files(
    root: str | os.PathLike, exclude: str | os.PathLike | None = None
) -> collections.Counter[str]:
    """How many files under root are left out of `list_image_files` because of their suffix,
    by lower-case suffix ("" for none): the PDFs, RAW files and notes of a scan folder, which
    a command should name rather than pass over in silence. Hidden files (`.DS_Store`,
    AppleDouble `._NAME`) and Windows' `Thumbs.db` / `desktop.ini` are folder metadata, not
    counted."""
    return collections.Counter(
        Path(name).suffix.lower()
        for _, name in _walk_files(Path(root), exclude)
        if not has_image_suffix(name)
        and not name.startswith(".")
        and name.lower() not in WINDOWS_FOLDER_FILES
    )


def split_of(relpath: str, fractions: Sequence[float] = DEFAULT_SPLIT) -> str:
    """The split of a file, from a hash of its relative path.

    The hash maps each path to a fixed point in [0, 1); adding or removing other files never
    moves it, so a test image can never leak into training when a folder grows.
    """
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"split needs three non-negative fractions, got {fractions}")
    digest = hashlib.sha256(os.fsencode(relpath)).digest()  # a name's bytes, UTF-8 or not
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = float(sum(fractions))
    edge = 0.0
    for name, fraction in zip(SPLITS, fractions):
        edge += fraction / total
        if point < edge:
            return name
    return SPLITS[-1]


def _open(source: str | os.PathLike | bytes) -> Image.Image:
    """Open lazily (header only); problems reading the file itself are "unreadable"."""
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty file")
        _check_decoder(source[: heif.HEAD_BYTES])
        return Image.open(io.BytesIO(source))
    path = Path(source)
    try:
        if path.is_dir():
            raise ImageError("is a directory")
        if path.stat().st_size == 0:
            raise ImageError("empty file")
        with open(path, "rb") as stream:  # filesystem problems surface here, before parsing
            _check_decoder(stream.read(heif.HEAD_BYTES))
    except PermissionError:
        raise ImageError("unreadable: permission denied") from None
    except OSError as error:  # broken symlinks, symlink loops, vanished files
        raise ImageError(f"unreadable: {error.strerror or short_reason(error)}") from None
    return Image.open(path)


def _check_decoder(head: bytes) -> None:
    """Register the optional HEIC decoder for a HEIC file, or say what to install."""
    if heif.is_hevc(head) and not heif.decoder_available():
        raise ImageError(heif.MISSING_DECODER)


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    check_size(*image.size, max_pixels)


# An RLE run stores at most 255 pixels in 2 bytes; only escapes that skip pixels (end of line,
# delta) pack more pixels per byte, and an image made mostly of skipped pixels is empty.
RLE_MAX_PIXELS_PER_BYTE = 128


def _source_size(source: str | os.PathLike | bytes) -> int:
    return len(source) if isinstance(source, bytes) else Path(source).stat().st_size


def _check_rle_density(image: Image.Image, source: str | os.PathLike | bytes) -> None:
    """Refuse RLE-compressed BMPs that declare far more pixels than their bytes can hold.

    PIL decodes RLE BMPs in Python, at ~5 MP/s: found by fuzzing, 606 bytes declaring a
    589968 x 12 image held the decoder 1.3 s (13 s on a busy machine), and within the pixel
    limit a few hundred bytes could hold it for 20 s. Such a file is a decompression bomb for
    a slow decoder, not a picture: refused from the header, before decoding.
    """
    tile = getattr(image, "tile", None)
    if image.format != "BMP" or not tile or tile[0][0] != "bmp_rle":
        return
    data_bytes = max(1, _source_size(source) - tile[0][2])
    pixels = image.width * image.height
    if pixels > RLE_MAX_PIXELS_PER_BYTE * data_bytes:
        raise ImageError(
            f"corrupt or truncated: RLE bitmap declares {image.width}x{image.height} pixels "
            f"in {data_bytes} bytes of data"
        )


def page_count(image: Image.Image, max_pixels: int) -> int:
    """The pages of an open image (a multi-page TIFF has several), each page's declared size
    checked against the limit from its header alone; the first page is current again after."""
    pages = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
    for index in range(1, pages):
        image.seek(index)
        try:
            _check_pixels(image, max_pixels)
        except ImageError as error:
            raise ImageError(f"page {index + 1}: {error}") from None
    if pages > 1:
        image.seek(0)
    return pages


TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


TIFFFILE_MODE = "tifffile"  # ImageInfo.mode of a TIFF only tifffile decodes (TifffileOnly)


class TifffileOnly(ImageError):
    """A TIFF Pillow cannot open that `tiff.read_unit_samples` decodes (`tiff.tifffile_kind`):
    `verified_info` turns it into an ImageInfo with mode TIFFFILE_MODE, and the loaders read it
    with tifffile."""

    def __init__(self, kind: tiff.TifffileKind):
        super().__init__(f"{kind.description} TIFF, which only tifffile decodes")
        self.kind = kind


def _unidentified(source: str | os.PathLike | bytes) -> ImageError:
    """The error for a file PIL could not open: TifffileOnly for a TIFF tifffile decodes here,
    else the reason (see _unidentified_reason)."""
    head = _head(source)
    kind = tiff.tifffile_kind(source) if head[:4] in TIFF_SIGNATURES else None
    if kind is not None:
        return TifffileOnly(kind)
    return ImageError(_unidentified_reason(source, head))


def _head(source: str | os.PathLike | bytes) -> bytes:
    try:
        if isinstance(source, bytes):
            return source[: heif.HEAD_BYTES]
        with open(source, "rb") as stream:
            return stream.read(heif.HEAD_BYTES)
    except OSError:
        return b""


def _unidentified_reason(source: str | os.PathLike | bytes, head: bytes) -> str:
    """Why PIL could not open a file: for data that starts like a TIFF, what is wrong with it
    (tifffile reads the structure: a bad directory offset, an unknown compression)."""
    if heif.is_avif(head):
        return "AVIF: this Pillow cannot decode it (Pillow 11.3 and newer can)"
    if head[:4] not in TIFF_SIGNATURES:
        return "not an image (unrecognised data)"
    import tifffile  # only for broken TIFFs

    logger = logging.getLogger("tifffile")  # its warnings would repeat the reason on stderr
    level, logger.level = logger.level, logging.ERROR
    try:
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        with tifffile.TiffFile(stream) as tiff_file:
            if not tiff_file.pages:
                return "corrupt or truncated: TIFF without a readable page (bad IFD offset)"
            page = tiff_file.pages[0]
            compression = tiff.unknown_compression(page)
            if compression is not None:
                return f"unsupported TIFF compression {compression}"
            return (  # a valid structure PIL has no mode for, e.g. 16-bit gray with alpha
                f"unsupported TIFF kind: {page.bitspersample}-bit, {page.samplesperpixel} "
                f"samples, photometric {page.photometric.name.lower()}"
            )
    except Exception as error:  # tifffile raises many kinds: all mean a broken structure
        return f"corrupt or truncated: {short_reason(error)}"
    finally:
        logger.setLevel(level)
    return "corrupt or truncated: unreadable TIFF structure"


@contextlib.contextmanager
def reading(source: str | os.PathLike | bytes, max_pixels: int) -> Iterator[Image.Image]:
    """Open an image whose declared size is within the limit; every failure -> ImageError.

    The pixel limit is checked on the header, before a single pixel is decoded, so
    decompression bombs cost nothing.
    """
    try:
        with _open(source) as image:
            _check_pixels(image, max_pixels)
            _check_rle_density(image, source)
            yield image
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise _unidentified(source) from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise ImageError(f"corrupt or truncated: {short_reason(error)}") from None
    except (struct.error, IndexError, KeyError, TypeError) as error:  # PIL's parsers on bad
        # data (found by fuzzing: a truncated EXIF block, a PNG without IDAT, a TIFF without
        # size, a TIFF page with an unknown compression)
        reason = f"corrupt or truncated: malformed structure ({short_reason(error)})"
        raise ImageError(reason) from None


def verified_info(source: str | os.PathLike | bytes, max_pixels: int) -> ImageInfo:
    """Header facts; for PNGs also every chunk's CRC, which PIL's decoder does not check but
    TF's does (so a file is judged the same by every command). A TIFF only tifffile decodes
    has mode TIFFFILE_MODE (its later pages' sizes are checked as each is read)."""
    try:
        with reading(source, max_pixels) as image:
            info = ImageInfo(image.format or "", image.mode, image.width, image.height)
            if image.format == "TIFF":
                page_count(image, max_pixels)  # every page's header, before any decoding
            if image.format == "PNG":
                image.verify()  # leaves the image unusable: callers reopen to decode
    except TifffileOnly as only:
        check_size(only.kind.width, only.kind.height, max_pixels)
        return ImageInfo("TIFF", TIFFFILE_MODE, only.kind.width, only.kind.height)
    return info


def probe(source: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Validate a file as an image without keeping its pixels; raise ImageError with a reason.

    The data is decoded once, to catch truncation and corruption: JPEGs at 1/8 scale (the
    entropy stream is still read to the end, at a fraction of the cost), other formats in
    full, after the PNG checksums (see verified_info).
    """
    info = verified_info(source, max_pixels)
    if info.mode == TIFFFILE_MODE:
        read_tifffile_page(source, 0, max_pixels)
        return info
    with reading(source, max_pixels) as image:
        if image.format == "TIFF" and tiff.pillow_misreads(image):  # decoded as loaders do
            read_tifffile_page(source, 0, max_pixels)
            return info
        if image.format == "JPEG":
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
        image.getexif()  # parsed by every loader (orientation): a broken one is judged here too
    return info


HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


def gray_unit_float(image: Image.Image) -> np.ndarray:
    """A 16-bit, 32-bit integer or float grayscale image -> H x W float32 in [0, 1].

    16-bit modes are scaled by 65535; "I" by 65535 when any value exceeds 255 (PNG 16-bit
    read by older PIL), else 255; "F" by 1 when it already is in [0, 1], else 255. Scaled,
    not clipped, so the full range of the source survives.
    """
    mode = image.mode
    if mode not in HIGH_DEPTH_MODES:
        raise ValueError(f"not a high bit depth grayscale mode: {mode}")
    array = np.asarray(image, dtype=np.float32)
    if mode == "F":
        top = 1.0 if array.max(initial=0) <= 1.0 else 255.0
    else:
        top = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
    return np.clip(array / top, 0.0, 1.0)


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Convert any PIL mode to an H x W x 3 uint8 array.

    16-bit and 32-bit integer modes are scaled (not clipped) to 8 bits; alpha is dropped
    (predict carries it over separately); palette, CMYK and 1-bit go through PIL's conversions.
    """
    if image.mode in HIGH_DEPTH_MODES:
        gray = np.round(gray_unit_float(image) * 255.0).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def read_deep_netpbm(source: str | os.PathLike | bytes) -> np.ndarray:
    """A binary PGM/PPM with 2-byte samples (`netpbm.is_deep`) as H x W x C uint16 on
    0-65535; ImageError if truncated."""
    try:
        return netpbm.read_samples16(source)
    except ValueError as error:
        raise ImageError(f"corrupt or truncated: {error}") from None


def read_tifffile_page(
    source: str | os.PathLike | bytes,
    page: int,
    max_pixels: int,
    apply_orientation: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, tiff.TifffileKind]:
    """One page of a TIFF read with tifffile (one Pillow cannot open, or whose samples it
    misreads: `tiff.pillow_misreads`): colour H x W x C and alpha H x W (or None), float32 in
    [0, 1], turned by the page's orientation tag as Pillow turns the TIFFs it reads (unless
    asked not to), and the file's kind; the page's size checked before it is read."""
    kind = tiff.tifffile_kind(source)
    if kind is None:
        raise ImageError("corrupt or truncated: unreadable TIFF structure")
    if not 0 <= page < kind.pages:
        raise ImageError(f"has no page {page + 1} (it has {kind.pages})")
    unit, orientation = tiff.read_unit_samples(source, page, max_pixels)
    if apply_orientation:
        unit = orient(unit, orientation)
    colour = np.ascontiguousarray(unit[..., : kind.colour_channels])
    if colour.shape[2] != kind.colour_channels:
        raise ImageError(f"unsupported TIFF layout: {unit.shape[2]} samples on page {page + 1}")
    alpha = (
        unit[..., kind.colour_channels] if kind.alpha and unit.shape[2] > colour.shape[2] else None
    )
    return colour, alpha, kind


def _tifffile_rgb8(
    source: str | os.PathLike | bytes, max_pixels: int, apply_orientation: bool
) -> np.ndarray:
    """The first page of a TIFF read with tifffile (see read_tifffile_page) as 8-bit RGB."""
    unit = read_tifffile_page(source, 0, max_pixels, apply_orientation)[0]
    colour = np.round(unit * 255.0).astype(np.uint8)
    return np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour


def load_rgb8(
    source: str | os.PathLike | bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    apply_orientation: bool = True,
) -> np.ndarray:
    """Decode a file to H x W x 3 uint8 RGB, EXIF orientation applied; ImageError if unusable."""
    info = verified_info(source, max_pixels)
    if info.mode == TIFFFILE_MODE:
        return _tifffile_rgb8(source, max_pixels, apply_orientation)
    if info.format == "PPM" and netpbm.is_deep(source):  # PIL: 8 bits, or no maxval (PGM)
        eight = np.round(read_deep_netpbm(source) / 257.0).astype(np.uint8)
        return np.repeat(eight, 3, axis=2) if eight.shape[2] == 1 else eight
    with reading(source, max_pixels) as image:
        if image.format == "TIFF" and tiff.pillow_misreads(image):
            return _tifffile_rgb8(source, max_pixels, apply_orientation)
        image.load()
        if apply_orientation:
            image = ImageOps.exif_transpose(image)
        return to_rgb8(image)


def _probe_one(path: Path, max_pixels: int) -> ImageInfo | Skipped:
    try:
        return probe(path, max_pixels)
    except ImageError as error:
        return Skipped(str(path), str(error))


def scan(
    root: str | os.PathLike,
    paths: Iterable[str | os.PathLike] | None = None,
    fractions: Sequence[float] = DEFAULT_SPLIT,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
) -> Scan:
    """Probe every image file under root (or the given paths) and assign splits.

    Probing runs on a thread pool: PIL releases the GIL while decoding.
    """
    root = Path(root)
    paths = [Path(p) for p in paths] if paths is not None else list_image_files(root)
    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda p: _probe_one(p, max_pixels), paths))
    files, skipped = [], []
    for path, result in zip(paths, results):
        if isinstance(result, Skipped):
            skipped.append(result)
            continue
        relpath = path.relative_to(root).as_posix()
        files.append(ImageFile(str(path), relpath, split_of(relpath, fractions), result))
    return Scan(str(root), files, skipped)
