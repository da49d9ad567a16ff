"""Image files on disk: listing, the hash-stable split, validation, decoding, and metadata.

Shared by the folder pipeline, the TFRecord writer and predict, so every entry point agrees on
which files are images, which split each belongs to, and why a bad file was skipped.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import enum
import hashlib
import io
import os
import re
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
SPLITS = ("train", "val", "test")
DEFAULT_SPLIT = (0.7, 0.1, 0.2)
DEFAULT_MAX_PIXELS = 100_000_000

# We enforce our own pixel limit (with a clear message) before decoding, so PIL's own
# DecompressionBombError threshold is lifted; its warning would be noise.
Image.MAX_IMAGE_PIXELS = None
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


class ImageError(ValueError):
    """A file that is not a usable image; the message is the one-line reason shown to users."""


class Decoder(enum.IntEnum):
    """How the tf.data pipeline decodes a file: native TF ops where they are exact, else PIL."""

    JPEG = 0  # tf.image.decode_and_crop_jpeg: only the crop window is decoded
    TF_IMAGE = 1  # tf.io.decode_image: PNG (any bit depth, palette, alpha) and GIF
    PIL = 2  # everything TF cannot decode faithfully: CMYK JPEG, BMP variants, WebP


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What probing a file learnt without keeping its pixels."""

    format: str  # PIL format name: JPEG, PNG, GIF, BMP, WEBP
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


def list_image_files(root: str | os.PathLike) -> list[Path]:
    """All files under root with an image suffix (any case), sorted by relative path.

    Directory symlinks are not followed, so symlink loops cannot recurse; a directory named
    like an image is walked into, never listed.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"not a directory: {root}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            if has_image_suffix(name):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def split_of(relpath: str, fractions: Sequence[float] = DEFAULT_SPLIT) -> str:
    """The split of a file, from a hash of its relative path.

    The hash maps each path to a fixed point in [0, 1); adding or removing other files never
    moves it, so a test image can never leak into training when a folder grows.
    """
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"split needs three non-negative fractions, got {fractions}")
    digest = hashlib.sha256(relpath.encode("utf-8")).digest()
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
        return Image.open(io.BytesIO(source))
    path = Path(source)
    try:
        if path.is_dir():
            raise ImageError("is a directory")
        if path.stat().st_size == 0:
            raise ImageError("empty file")
        with open(path, "rb"):  # filesystem problems surface here, before any parsing
            pass
    except PermissionError:
        raise ImageError("unreadable: permission denied") from None
    except OSError as error:  # broken symlinks, symlink loops, vanished files
        raise ImageError(f"unreadable: {error.strerror or _short(error)}") from None
    return Image.open(path)


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"invalid size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            f"too large: {width}x{height} = {width * height / 1e6:.0f} MP "
            f"exceeds the limit of {max_pixels / 1e6:.0f} MP"
        )


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text and text[0] else type(error).__name__


@contextlib.contextmanager
def _reading(source: str | os.PathLike | bytes, max_pixels: int) -> Iterator[Image.Image]:
    """Open an image whose declared size is within the limit; every failure -> ImageError.

    The pixel limit is checked on the header, before a single pixel is decoded, so
    decompression bombs cost nothing.
    """
    try:
        with _open(source) as image:
            _check_pixels(image, max_pixels)
            yield image
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError("not an image (unrecognised data)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise ImageError(f"corrupt or truncated: {_short(error)}") from None


def _verified_info(source: str | os.PathLike | bytes, max_pixels: int) -> ImageInfo:
    """Header facts; for PNGs also every chunk's CRC, which PIL's decoder does not check but
    TF's does (so a file is judged the same by every command)."""
    with _reading(source, max_pixels) as image:
        info = ImageInfo(image.format or "", image.mode, image.width, image.height)
        if image.format == "PNG":
            image.verify()  # leaves the image unusable: callers reopen to decode
    return info


def probe(source: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Validate a file as an image without keeping its pixels; raise ImageError with a reason.

    The data is decoded once, to catch truncation and corruption: JPEGs at 1/8 scale (the
    entropy stream is still read to the end, at a fraction of the cost), other formats in
    full, after the PNG checksums (see _verified_info).
    """
    info = _verified_info(source, max_pixels)
    with _reading(source, max_pixels) as image:
        if image.format == "JPEG":
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
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


def load_rgb8(
    source: str | os.PathLike | bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    apply_orientation: bool = True,
) -> np.ndarray:
    """Decode a file to H x W x 3 uint8 RGB, EXIF orientation applied; ImageError if unusable."""
    _verified_info(source, max_pixels)
    with _reading(source, max_pixels) as image:
        image.load()
        if apply_orientation:
            image = ImageOps.exif_transpose(image)
        return to_rgb8(image)


GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
EXIF_HEADER = b"Exif\x00\x00"  # the APP1 prefix; PIL's JPEG writer expects it, PNG/WebP strip it
ORIENTATION = 0x0112  # EXIF tag: how a viewer must rotate/flip the stored pixels
TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # these swap width and height


@dataclasses.dataclass(frozen=True)
class Metadata:
    """What a restored file must keep from its source besides pixels (archives need all of it).

    The ICC profile says what the RGB numbers mean: dropping it shifts colours for every
    colour-managed viewer (Adobe RGB read as sRGB looks dull). EXIF is the capture record.
    """

    icc_profile: bytes | None = None  # the source's embedded profile, byte for byte
    exif: bytes | None = None  # EXIF_HEADER + TIFF bytes, orientation reset to 1
    dpi: tuple[float, float] | None = None  # (x, y) of the upright image
    xmp: bytes | None = None  # UTF-8 XMP packet (captions, rights), orientation reset to 1

    def stripped(self) -> Metadata:
        """--strip-metadata: no profile, EXIF or XMP; DPI is a property of the scan, kept."""
        return Metadata(dpi=self.dpi)


def _set_orientation_in_place(tiff: bytes) -> bytes | None:
    """TIFF (EXIF) bytes with IFD0's orientation set to 1, every other byte unchanged, or None
    when the tag is not where the format puts it.

    Patching in place keeps maker notes and thumbnails intact, which re-serialising through
    PIL's Exif can break (maker notes hold absolute offsets).
    """
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return None
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for index in range(count):
            entry = ifd + 2 + 12 * index
            tag, kind = struct.unpack_from(order + "HH", tiff, entry)
            if tag == ORIENTATION and kind == 3:  # SHORT: the value sits in the entry itself
                patched = bytearray(tiff)
                struct.pack_into(order + "H", patched, entry + 8, 1)
                return bytes(patched)
    except struct.error:
        return None
    return None


def upright_exif(image: Image.Image) -> bytes | None:
    """The source's EXIF for an output whose pixels are already upright (orientation 1)."""
    raw = image.info.get("exif")
    if not raw:
        return None
    tiff = raw[len(EXIF_HEADER):] if raw.startswith(EXIF_HEADER) else raw
    if image.getexif().get(ORIENTATION, 1) == 1:
        return EXIF_HEADER + tiff
    patched = _set_orientation_in_place(tiff)
    if patched is not None:
        return EXIF_HEADER + patched
    exif = image.getexif()  # unusual layout: let PIL rewrite it
    exif[ORIENTATION] = 1
    return exif.tobytes()


XMP_ORIENTATION = (re.compile(rb'(tiff:Orientation=")[0-9](")'),
                   re.compile(rb"(<tiff:Orientation>)[0-9](</tiff:Orientation>)"))


def upright_xmp(image: Image.Image) -> bytes | None:
    """The source's XMP packet with tiff:Orientation set to 1 (PIL applies it too when EXIF
    has none), as UTF-8 bytes (PIL reads JPEG's as bytes, PNG's as text)."""
    xmp = image.info.get("xmp")
    if not xmp:
        return None
    packet = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    for pattern in XMP_ORIENTATION:
        packet = pattern.sub(rb"\g<1>1\g<2>", packet)
    return packet


def read_metadata(image: Image.Image) -> Metadata:
    """ICC profile, EXIF and XMP (orientations reset) and DPI of an opened, not yet transposed
    image."""
    dpi = image.info.get("dpi")
    if dpi and image.getexif().get(ORIENTATION, 1) in TRANSPOSING_ORIENTATIONS:
        dpi = (dpi[1], dpi[0])
    return Metadata(icc_profile=image.info.get("icc_profile") or None,
                    exif=upright_exif(image),
                    dpi=tuple(float(d) for d in dpi) if dpi else None,
                    xmp=upright_xmp(image))


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
    bits: int = 8  # bits per sample of the source: 16 for 16-bit PNGs, else 8
    format: str = ""  # PIL format of the source: JPEG, PNG, WEBP, GIF, BMP
    metadata: Metadata = dataclasses.field(default_factory=Metadata)


def _alpha_of(image: Image.Image) -> np.ndarray | None:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.uint8).copy()
    return None


def _pixels_for_model(image: Image.Image) -> np.ndarray:
    """uint8 RGB for 8-bit sources; uint16 H x W x 1 for 16-bit grayscale (see Picture)."""
    if image.mode in SIXTEEN_BIT_MODES:
        return np.asarray(image, dtype=np.uint16)[..., None].copy()
    return to_rgb8(image)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG16_COLOUR_MODES = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}  # IHDR colour type -> report mode


def _png16_colour_type(source: str | os.PathLike | bytes) -> int | None:
    """The IHDR colour type of a 16-bit PNG with colour or alpha, which PIL decodes to 8 bits
    per sample (it keeps 16 only for plain grayscale, mode I;16); None for anything else."""
    if isinstance(source, bytes):
        head = source[:26]
    else:
        with open(source, "rb") as stream:
            head = stream.read(26)
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR" or head[24] != 16:
        return None
    return head[25] if head[25] in PNG16_COLOUR_MODES else None


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to H x W (x C) pixels, as PIL's exif_transpose does."""
    transforms = {
        2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return np.ascontiguousarray(transform(pixels)) if transform else pixels


def _decode_png16(source: str | os.PathLike | bytes) -> np.ndarray:
    """Every sample of a 16-bit PNG, H x W x C uint16, decoded by TF (imported only here:
    records workers import this module and must start fast)."""
    import tensorflow as tf

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        return tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    except tf.errors.OpError as error:
        raise ImageError(f"corrupt or truncated: {_short(error)}") from None


def _png16_picture(source: str | os.PathLike | bytes, colour_type: int, orientation: int,
                   metadata: Metadata) -> Picture:
    samples = orient(_decode_png16(source), orientation)
    colour_channels = 1 if colour_type == 4 else 3
    alpha = samples[..., colour_channels].copy() if colour_type in (4, 6) else None
    pixels = np.ascontiguousarray(samples[..., :colour_channels])
    return Picture(pixels, colour_type == 4, alpha, PNG16_COLOUR_MODES[colour_type], 16, "PNG",
                   metadata)


def load_picture(source: str | os.PathLike | bytes,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode for predict: pixels (EXIF orientation applied), grayscale flag, alpha, metadata."""
    _verified_info(source, max_pixels)
    with _reading(source, max_pixels) as image:
        image.load()
        mode, image_format = image.mode, image.format or ""
        metadata = read_metadata(image)
        colour_type = _png16_colour_type(source) if image_format == "PNG" else None
        if colour_type is not None:
            return _png16_picture(source, colour_type, image.getexif().get(ORIENTATION, 1),
                                  metadata)
        image = ImageOps.exif_transpose(image)
        return Picture(_pixels_for_model(image), mode in GRAYSCALE_MODES, _alpha_of(image), mode,
                       16 if mode in SIXTEEN_BIT_MODES else 8, image_format, metadata)


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
