#!/usr/bin/env python3
"""Make a benchmark/training corpus: N images of mixed sizes, formats and JPEG qualities.

    python tools/make_corpus.py [SOURCE] OUT [-n 3000] [--seed 0] [--exclude-split test]

SOURCE is a folder of source photos (default: the scikit-image sample photos). Each output
image is a random crop of a source, downscaled to 0.1-4 MP (log-uniform) and saved as JPEG
(quality 40-95), PNG, grayscale JPEG, WebP or BMP. The same arguments always give the same
files. `--exclude-split test` skips source photos whose hash split is "test", so a training
corpus never contains the photos kept for evaluation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from tfdenoise.data import (
    corpus,  # noqa: E402
    samples,  # noqa: E402
)
from tfdenoise.io import files as image_files  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="[SOURCE] OUT",
        help="source photo folder (optional) and output folder",
    )
    parser.add_argument("-n", "--count", type=int, default=3000, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--min-mp", type=float, default=0.1, help="smallest size in megapixels")
    parser.add_argument("--max-mp", type=float, default=4.0, help="largest size in megapixels")
    parser.add_argument(
        "--quality",
        type=int,
        nargs=2,
        default=(40, 95),
        metavar=("LOW", "HIGH"),
        help="JPEG/WebP quality range",
    )
    parser.add_argument(
        "--exclude-split",
        action="append",
        default=[],
        choices=image_files.SPLITS,
        help="skip source photos in this split (repeatable), e.g. test",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (the output does not depend on it)",
    )
    args = parser.parse_intermixed_args(argv)  # SOURCE and OUT may follow options
    if len(args.paths) > 2:
        parser.error("expected [SOURCE] OUT")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if len(args.paths) == 2:
        source_root, paths = Path(args.paths[0]), None
    else:
        source_root, paths = samples.sample_photo_dir(), samples.sample_photo_paths()
    out = Path(args.paths[-1])
    spec = corpus.CorpusSpec(
        count=args.count,
        seed=args.seed,
        min_megapixels=args.min_mp,
        max_megapixels=args.max_mp,
        jpeg_quality=tuple(args.quality),
        exclude_splits=tuple(args.exclude_split),
    )
    started = time.perf_counter()
    written = 0

    def on_source(source: str, done: int) -> None:
        nonlocal written
        written += done
        print(f"{written:6d}/{spec.count}  {Path(source).name}", flush=True)

    try:
        manifest = corpus.make_corpus(source_root, out, spec, paths, args.workers, on_source)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{spec.count} images from {len(manifest['sources'])} sources in "
        f"{time.perf_counter() - started:.0f} s -> {out}; formats {manifest['formats']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
