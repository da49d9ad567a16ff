#!/usr/bin/env python3
"""Print the README's comparison table from `tfdenoise evaluate --json` files.

Columns are taken in the order given: `LABEL=FILE:METHOD` picks one method's scores (e.g.
`"bundled model=bundled.json:model"`, `"CBM3D=baselines.json:cbm3d"`). The first file also
gives the noisy column. Every file must score the same images, or the rows would compare
different photos; that is checked.

usage: python tools/evaluation_table.py "LABEL=FILE:METHOD" ... [--bold LABEL]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROWS = {
    "gaussian-15": "Gaussian σ=15",
    "gaussian-25": "Gaussian σ=25",
    "gaussian-50": "Gaussian σ=50",
    "prototype": "prototype's noise",
    "seed": "prototype's noise",  # evaluate JSON written before the rename
    "clean": "clean (no noise)",
}


def column(spec: str) -> tuple[str, dict, str]:
    label, _, source = spec.partition("=")
    path, _, method = source.rpartition(":")
    if not (label and path and method):
        raise SystemExit(f"expected LABEL=FILE:METHOD, got {spec!r}")
    return label, json.loads(Path(path).read_text()), method


def cell(score: dict | None, key: str, digits: int) -> str:
    if not score or score.get(key) is None:
        return ""
    return f"{score[key]:.{digits}f}"


def speed_cell(score: dict | None) -> str:
    """MP/s with a third decimal for the slow methods (CBM3D: 0.004), so they do not read 0."""
    value = (score or {}).get("megapixels_per_second")
    return cell(score, "megapixels_per_second", 3 if value and value < 0.1 else 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("columns", nargs="+", help="LABEL=FILE:METHOD")
    parser.add_argument("--bold", default=None, help="label of the column to set in bold")
    args = parser.parse_args()
    columns = [column(spec) for spec in args.columns]
    first = columns[0][1]
    for label, scores, _ in columns:
        if scores["images"] != first["images"] or scores["crop"] != first["crop"]:
            raise SystemExit(f"{label}: scored other images than {columns[0][0]}")

    def bold(label: str, text: str) -> str:
        return f"**{text}**" if text and label == args.bold else text

    header = ["condition", "noisy", *[label for label, _, _ in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for condition, name in ROWS.items():
        noisy = first["scores"].get(condition, {}).get("noisy")
        cells = [name, " / ".join(filter(None, [cell(noisy, "psnr", 2), cell(noisy, "ssim", 3)]))]
        for label, scores, method in columns:
            score = scores["scores"].get(condition, {}).get(method)
            text = f"{cell(score, 'psnr', 2)} / {cell(score, 'ssim', 3)}" if score else ""
            cells.append(bold(label, text))
        lines.append("| " + " | ".join(cells) + " |")
    delta = [
        "ΔE00 at σ=25 (low-pass)",
        cell(first["scores"]["gaussian-25"].get("noisy"), "delta_e", 2),
    ]
    speed = ["speed, MP/s (σ=25)", ""]
    for label, scores, method in columns:
        score = scores["scores"]["gaussian-25"].get(method)
        delta.append(bold(label, cell(score, "delta_e", 2)))
        speed.append(bold(label, speed_cell(score)))
    lines += ["| " + " | ".join(delta) + " |", "| " + " | ".join(speed) + " |"]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
