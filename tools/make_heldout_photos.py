#!/usr/bin/env python3
"""Write the held-out photos (never in the training tiles) whole, downscaled, as PNG: the
folder `tfdenoise fit --val-data` validates on.

Why: make_training_tiles.py keeps every photo whose hash split is "test" out of training;
scored whole (at the tiles' 1/2 scale, where downscaling averages away the photos' own noise
and JPEG artefacts), the camera photos among them rank epochs for real noise as Kodak24's
`jpeg-noise` does, without touching the benchmark (training/README.md). `--only` keeps the
names a list file gives (e.g. training/heldout-photographs.txt, the camera photographs;
lines starting with # are comments).

usage: python tools/make_heldout_photos.py SRC OUT [--scale 0.5] [--only LIST]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_training_tiles import downscaled  # noqa: E402
from PIL import Image  # noqa: E402

from tfdenoise.io import atomic  # noqa: E402
from tfdenoise.io import files as image_files  # noqa: E402


def listed_names(path: Path) -> set[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--only", type=Path, help="keep only the file names listed here")
    args = parser.parse_args()
    only = listed_names(args.only) if args.only else None

    written = 0
    for path in image_files.list_image_files(args.source):
        relpath = path.relative_to(args.source).as_posix()
        if image_files.split_of(relpath) != "test" or (only is not None and path.name not in only):
            continue
        target = args.output / f"{path.stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(target) as partial:  # never a half-written photo
            downscaled(Image.fromarray(image_files.load_rgb8(path)), args.scale).save(partial)
        written += 1
    print(f"{written} held-out photos at scale {args.scale:g} in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
