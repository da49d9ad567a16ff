"""The embedded default data: the natural photos that scikit-image ships in `skimage.data`.

They are read where skimage installed them (no download, nothing copied), so `tfdenoise fit`
works offline on a fresh machine. Synthetic test patterns are left out.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)


def sample_photo_dir() -> Path:
    """The folder holding skimage's bundled images."""
    import skimage

    return Path(skimage.__file__).parent / "data"


def sample_photo_paths() -> list[Path]:
    """Paths of the bundled photos that this skimage version actually has."""
    root = sample_photo_dir()
    paths = [root / name for name in SAMPLE_PHOTOS if (root / name).is_file()]
    if not paths:
        raise FileNotFoundError(f"no sample photos found in {root}; is scikit-image installed?")
    return paths
