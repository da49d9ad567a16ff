#!/usr/bin/env python3
"""Mean PSNR per condition pooled over several `tfdenoise evaluate --json` runs.

Why: held-out sets are evaluated separately (each run seeds its noise by the image's index,
so scores of one run cannot be recomputed inside another), yet a verdict should rest on all
held-out images, each counting once. A column is `LABEL=FILE:METHOD[,FILE:METHOD...]`, one
part per image set; the sets of different parts must not share images, and every column must
cover the same images (checked). Pooled from the per-image PSNRs, so SSIM is not given.
`--only FILE` pools just the images FILE names (one per line, `#` comments), e.g. the
photographs among held-out sets that also hold renders and patterns.

usage: python tools/pooled_scores.py [--only FILE] "LABEL=a.json:model,b.json:model" "CBM3D=..."
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CONDITIONS = ("gaussian-15", "gaussian-25", "gaussian-50", "prototype", "clean")
EARLIER_NAMES = {"prototype": "seed"}  # how evaluate JSON written before the rename calls it


def pooled(
    parts: list[tuple[dict, str]], only: set[str] | None = None
) -> tuple[list[str], dict[str, float]]:
    """The images covered (those in `only`, if given) and each condition's mean PSNR over all
    of them."""
    images: list[str] = []
    values: dict[str, list[float]] = {condition: [] for condition in CONDITIONS}
    for scores, method in parts:
        if set(images) & set(scores["images"]):
            raise ValueError("two parts of a column score the same image")
        kept = [
            index for index, name in enumerate(scores["images"]) if only is None or name in only
        ]
        images += [scores["images"][index] for index in kept]
        for condition in CONDITIONS:
            by_method = scores["scores"].get(condition) or scores["scores"].get(
                EARLIER_NAMES.get(condition, ""), {}
            )
            score = by_method.get(method)
            if score:
                values[condition].append([score["per_image_psnr"][index] for index in kept])
    means = {}
    for condition, per_part in values.items():
        if len(per_part) == len(parts):  # a condition scored in every part
            flat = [value for part in per_part for value in part]
            means[condition] = sum(flat) / len(flat)
    return images, means


def read_names(path: Path) -> set[str]:
    """Image names, one per line; blank lines and `#` comments ignored."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def column(spec: str, only: set[str] | None = None) -> tuple[str, list[str], dict[str, float]]:
    label, _, sources = spec.partition("=")
    parts = []
    for source in sources.split(","):
        path, _, method = source.rpartition(":")
        if not (label and path and method):
            raise SystemExit(f"expected LABEL=FILE:METHOD[,FILE:METHOD...], got {spec!r}")
        parts.append((json.loads(Path(path).read_text()), method))
    return (label, *pooled(parts, only))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("columns", nargs="+")
    parser.add_argument("--only", type=Path, help="pool only the images this file names")
    args = parser.parse_args()
    only = read_names(args.only) if args.only else None
    try:
        columns = [column(spec, only) for spec in args.columns]
    except ValueError as error:
        raise SystemExit(str(error)) from None
    missing = sorted(only - set(columns[0][1])) if only else []
    if missing:  # a typo would silently shrink the pool
        raise SystemExit(f"--only names images no column scored: {', '.join(missing)}")
    for label, images, _ in columns:
        if sorted(images) != sorted(columns[0][1]):
            raise SystemExit(f"{label}: scored other images than {columns[0][0]}")
    print(f"mean PSNR dB over {len(columns[0][1])} images")
    print("| condition | " + " | ".join(label for label, _, _ in columns) + " |")
    print("|" + "---|" * (len(columns) + 1))
    for condition in CONDITIONS:
        cells = [f"{means[condition]:.2f}" if condition in means else "" for _, _, means in columns]
        if any(cells):
            print(f"| {condition} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
