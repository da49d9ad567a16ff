"""Image files on disk: listing, the hash-stable split, validation, and decoding to 8-bit RGB.

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
import warnings
from collections.abc import Iterable, Sequence
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
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty file")
        return Image.open(io.BytesIO(source))
    path = Path(source)
    if path.is_dir():
        raise ImageError("is a directory")
    if path.stat().st_size == 0:
        raise ImageError("empty file")
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


def probe(source: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Validate a file as an image without keeping its pixels; raise ImageError with a reason.

    The declared size is checked before any pixel is decoded (decompression bombs). The data
    is then decoded once, to catch truncation and corruption: JPEGs at 1/8 scale (the entropy
    stream is still read to the end, at a fraction of the cost), other formats in full.
    """
    try:
        with _open(source) as image:
            _check_pixels(image, max_pixels)
            info = ImageInfo(image.format or "", image.mode, image.width, image.height)
            if image.format == "JPEG":
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError("not an image (unrecognised data)") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise ImageError(f"corrupt or truncated: {_short(error)}") from None
    return info


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text and text[0] else type(error).__name__


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Convert any PIL mode to an H x W x 3 uint8 array.

    16-bit and 32-bit integer modes are scaled (not clipped) to 8 bits; alpha is dropped
    (predict carries it over separately); palette, CMYK and 1-bit go through PIL's conversions.
    """
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(array / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        top = 1.0 if array.max(initial=0) <= 1.0 else 255.0
        gray = np.clip(np.round(array / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


@contextlib.contextmanager
def _decoding_errors():
    """Turn PIL's many failure types into ImageError with a one-line reason."""
    try:
        yield
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError("not an image (unrecognised data)") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise ImageError(f"corrupt or truncated: {_short(error)}") from None


def load_rgb8(
    source: str | os.PathLike | bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    apply_orientation: bool = True,
) -> np.ndarray:
    """Decode a file to H x W x 3 uint8 RGB, EXIF orientation applied; ImageError if unusable."""
    with _decoding_errors(), _open(source) as image:
        _check_pixels(image, max_pixels)
        image.load()
        if apply_orientation:
            image = ImageOps.exif_transpose(image)
        return to_rgb8(image)


GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@dataclasses.dataclass
class Picture:
    """A decoded image as predict needs it: RGB pixels plus what must survive into the output.

    Grayscale sources are still denoised as RGB (the channels replicated), then averaged back;
    alpha is not denoised, only carried over.
    """

    rgb: np.ndarray  # H x W x 3 uint8, EXIF orientation applied
    grayscale: bool  # the source had one colour channel: write mode L (or LA)
    alpha: np.ndarray | None  # H x W uint8, or None when the source had no transparency
    mode: str  # the source's PIL mode, for reports


def _alpha_of(image: Image.Image) -> np.ndarray | None:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.uint8).copy()
    return None


def load_picture(source: str | os.PathLike | bytes,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode for predict: RGB uint8 (EXIF orientation applied), grayscale flag and alpha."""
    with _decoding_errors(), _open(source) as image:
        _check_pixels(image, max_pixels)
        image.load()
        mode = image.mode
        image = ImageOps.exif_transpose(image)
        return Picture(to_rgb8(image), mode in GRAYSCALE_MODES, _alpha_of(image), mode)


def _probe_one(path: Path, max_pixels: int) -> ImageInfo | Skipped:
    try:
        return probe(path, max_pixels)
    except ImageError as error:
        return Skipped(str(path), str(error))
    except OSError as error:  # broken symlinks, loops, vanished files
        return Skipped(str(path), f"unreadable: {_short(error)}")


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
