"""EXIF orientation (tag 274) applied to pixel arrays.

Pillow's `ImageOps.exif_transpose` turns the images Pillow decodes; pixels decoded elsewhere
(16-bit PNGs by TensorFlow, TIFFs by tifffile) are numpy arrays and are turned here, the same
way, so that every reader of a file gives the picture a viewer shows.
"""

from __future__ import annotations

import numpy as np

_TRANSFORMS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to H x W (x C) pixels, as PIL's exif_transpose does; 1 and
    values outside 1-8 leave them as they are."""
    transform = _TRANSFORMS.get(orientation)
    return np.ascontiguousarray(transform(pixels)) if transform else pixels
