#!/usr/bin/env python3
"""Before/after crops of real noisy photos (no clean reference), for the README.

Real noise has no ground truth, so it is judged by eye and by a noise estimate: for each image
of DIR this denoises the whole image with each `--model` (one pass, as `predict --ensemble 1`),
prints the Immerkaer noise sigma (0-255) of the input and of each output as a Markdown table,
and writes one PNG: a row per image, the input's centre crop first, then each model's same
crop, enlarged `--zoom` times (nearest neighbour, so the pixels are seen as they are). The
centre crop, not a chosen one, so the picture is not cherry-picked.

usage: python tools/real_noise_crops.py DIR OUT.png --model LABEL=MODEL [--model ...]
           [--crop 128] [--zoom 2]      (MODEL: a .keras file, a run directory, or "bundled")
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfdenoise import checkpoints, inference  # noqa: E402
from tfdenoise.noise_level import estimate_sigma_255  # noqa: E402

GAP = 4
LABEL_HEIGHT = 16


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    top = max(0, (image.shape[0] - size) // 2)
    left = max(0, (image.shape[1] - size) // 2)
    return image[top : top + size, left : left + size]


def grid(rows: list[list[np.ndarray]], labels: list[str], zoom: int) -> Image.Image:
    """Rows of equal-size crops, enlarged, with a label over each column."""
    height, width = rows[0][0].shape[:2]
    cell_h, cell_w = height * zoom, width * zoom
    columns = len(labels)
    canvas = Image.new(
        "RGB",
        (columns * (cell_w + GAP) - GAP, LABEL_HEIGHT + len(rows) * (cell_h + GAP) - GAP),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    for column, label in enumerate(labels):
        draw.text((column * (cell_w + GAP) + 2, 2), label, fill="black")
    for row_index, row in enumerate(rows):
        for column, crop in enumerate(row):
            tile = Image.fromarray(crop).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (column * (cell_w + GAP), LABEL_HEIGHT + row_index * (cell_h + GAP)))
    return canvas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--model", action="append", required=True, help="LABEL=MODEL")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--zoom", type=int, default=2)
    args = parser.parse_args()
    models = []
    for spec in args.model:
        label, _, path = spec.partition("=")
        models.append((label, checkpoints.load_denoiser(None if path == "bundled" else path)))
    paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in {".png", ".jpg"})
    print("| image | input σ | " + " | ".join(f"{label} σ" for label, _ in models) + " |")
    print("|---" * (len(models) + 2) + "|")
    rows = []
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        outputs = [inference.denoise_rgb8(model, pixels) for _, model in models]
        sigmas = [estimate_sigma_255(image) for image in (pixels, *outputs)]
        print(f"| {path.stem} | " + " | ".join(f"{s:.1f}" for s in sigmas) + " |")
        rows.append([centre_crop(image, args.crop) for image in (pixels, *outputs)])
    size = min(min(crop.shape[0] for crop in row) for row in rows)
    rows = [[crop[:size, :size] for crop in row] for row in rows]
    labels = ["input", *(label for label, _ in models)]
    grid(rows, labels, args.zoom).save(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
