"""The one error every image reader raises for a file it cannot use, and its one-line reason.

A module of its own so that the format modules (tiff.py) and the listing/validation module
(files.py, which dispatches to them) can both raise it without importing each other.
"""

from __future__ import annotations


class ImageError(ValueError):
    """A file that is not a usable image; the message is the one-line reason shown to users."""


def short_reason(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(error).strip().splitlines()
    return text[0] if text and text[0] else type(error).__name__


def check_size(width: int, height: int, max_pixels: int | None, where: str = "") -> None:
    """ImageError for a size no decoder should be asked to allocate (`where`: "page 2: ")."""
    if width < 1 or height < 1:
        raise ImageError(f"{where}invalid size {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{where}too large: {width}x{height} = {_pixels(width * height)} exceeds the limit "
            f"of {_pixels(max_pixels)}"
        )


def _pixels(count: int) -> str:
    """Megapixels, or plain pixels below one (a limit set low must not read '0 MP')."""
    return f"{count / 1e6:.0f} MP" if count >= 1_000_000 else f"{count} pixels"
