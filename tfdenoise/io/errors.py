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
