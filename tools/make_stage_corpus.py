#!/usr/bin/env python3
"""Build the training folder of the bundled model's "real photos" stages: links, no copies.

The mix, and why: `bsd432` (432 natural photographs, the classic colour training set of blind
denoisers: texture, foliage, faces, the statistics of the Kodak and CBSD test sets) is the
base. To it come tiles of the Debian photos (`../shared/fetch_photos.sh` and
`tools/fetch_more_photos.sh`, cut by `tools/make_training_tiles.py --tile 384 --scales 0.5`):
larger, sharper modern captures and some rendered art with flat areas and hard edges, which
teach the model to leave clean smooth regions and graphics alone. At most `--per-photo` tiles
per photo and `--tiles` in all, so that no single wallpaper and not the wallpapers as a whole
outweigh the natural photographs (about 3 to 2 by default). Photos in the hashed "test" split
are already left out by make_training_tiles.py. Never add `kodak24` or `rni6`.

Deterministic: the same inputs give the same file names (fit's split hashes them), so a stage
resumed on another machine sees the same training and validation images.

usage: python tools/make_stage_corpus.py BSD432 TILES OUT [--tiles 260] [--per-photo 4]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def chosen_tiles(tiles_dir: Path, count: int, per_photo: int, seed: int = 0) -> list[Path]:
    """At most `per_photo` tiles of each photo (one subfolder per photo), `count` in all."""
    rng = random.Random(seed)
    chosen: list[Path] = []
    for photo in sorted(p for p in tiles_dir.iterdir() if p.is_dir()):
        tiles = sorted(t for t in photo.iterdir() if t.is_file())
        rng.shuffle(tiles)
        chosen += tiles[:per_photo]
    rng.shuffle(chosen)
    return chosen[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bsd432", type=Path)
    parser.add_argument("tiles", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--tiles", dest="count", type=int, default=260)
    parser.add_argument("--per-photo", type=int, default=4)
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    links = {f"bsd432_{p.name}": p for p in sorted(args.bsd432.iterdir()) if p.is_file()}
    for tile in chosen_tiles(args.tiles, args.count, args.per_photo):
        links["debian_" + "_".join(tile.relative_to(args.tiles).parts)] = tile
    for name, target in links.items():
        link = args.output / name
        if not link.is_symlink():
            link.symlink_to(target.resolve())
    print(f"{len(links)} images in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
