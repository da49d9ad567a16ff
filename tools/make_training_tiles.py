#!/usr/bin/env python3
"""Cut source photos into lossless PNG tiles for training the bundled model.

Why: large WebP/PNG photos cost ~0.5 s each to decode, far too slow to sample 128-pixel
patches from at training speed; 512-pixel PNG tiles decode in milliseconds. Photos whose
hash split (tfdenoise.io.files.split_of on the file name) is "test" are left out entirely, so
`tfdenoise evaluate` on those photos measures images the model never saw.

Each photo is tiled at full scale and at 1/2 scale (antialiased): downscaling averages away
sensor noise and compression artefacts, giving cleaner targets.

usage: python tools/make_training_tiles.py SRC OUT [--tile 512] [--scales 1 0.5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfdenoise.io import atomic  # noqa: E402
from tfdenoise.io import files as image_files  # noqa: E402


def downscaled(rgb: Image.Image, scale: float) -> Image.Image:
    """The photo at `scale` with an antialiasing (Lanczos) filter; itself at scale 1."""
    if scale == 1.0:
        return rgb
    size = (round(rgb.width * scale), round(rgb.height * scale))
    return rgb.resize(size, Image.Resampling.LANCZOS)


def tiles_of(photo: Image.Image, tile: int):
    """Non-overlapping tile x tile windows covering the image (edge remainders dropped)."""
    for top in range(0, photo.height - tile + 1, tile):
        for left in range(0, photo.width - tile + 1, tile):
            yield top, left, photo.crop((left, top, left + tile, top + tile))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5])
    args = parser.parse_args()

    written = held_out = 0
    for path in image_files.list_image_files(args.source):
        relpath = path.relative_to(args.source).as_posix()
        if image_files.split_of(relpath) == "test":
            held_out += 1
            continue
        rgb = Image.fromarray(image_files.load_rgb8(path))
        for scale in args.scales:
            scaled = downscaled(rgb, scale)
            folder = args.output / path.stem
            folder.mkdir(parents=True, exist_ok=True)
            for top, left, tile in tiles_of(scaled, args.tile):
                target = folder / f"s{scale:g}_{top:05d}_{left:05d}.png"
                if not target.exists():
                    with atomic.replacing(target) as partial:  # never a half-written tile
                        tile.save(partial)
                written += 1
    print(f"{written} tiles in {args.output}; {held_out} test photos held out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
