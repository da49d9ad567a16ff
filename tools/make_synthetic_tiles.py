#!/usr/bin/env python3
"""Render clean synthetic graphics tiles to train beside the photo tiles.

Why: scans and screenshots hold content that photographs rarely do -- thin lines, text, flat
fills, smooth gradients and blocky pixel art. A denoiser trained on photos alone blurs 1-pixel
lines and leaves blotches in flat areas, exactly where block matching (BM3D) is strongest.
These tiles are noise-free by construction (anti-aliased by rendering at 2x and downscaling),
so they teach the model to keep such structure sharp. Some tiles are faint (every colour
within a few tens of levels of the background, like pencil, watermarks and pale print), some
are softened by a blur (out-of-focus scans, soft vector edges) and some lie on fine stripes:
the low-contrast structure a denoiser most easily mistakes for noise. Every tile is a pure
function of (--seed, its index): re-running writes the same files, and existing files are kept.

usage: python tools/make_synthetic_tiles.py OUT [--count 400] [--tile 512] [--seed 0]
"""

from __future__ import annotations

import argparse
import string
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfdenoise.io import atomic  # noqa: E402

SUPERSAMPLE = 2  # drawn at 2x, downscaled with a box filter: anti-aliased edges and lines
LETTERS = string.ascii_letters + string.digits + "  .,;:!?-()"
FAINT_TILES = 0.4  # share of tiles whose colours all stay near the background colour
FAINT_SPREAD = (6, 40)  # how far (grey levels per channel) a faint tile's colours may stray
SOFT_TILES = 0.25  # share of drawn tiles blurred afterwards
SOFT_RADIUS = (0.5, 3.0)  # Gaussian blur radius in output pixels
STRIPED_BACKGROUNDS = 0.15
STRIPE_PERIOD = (3.0, 12.0)  # output pixels


@dataclass
class Inks:
    """Random colours for one tile: anything, or (faint) within `spread` levels of `base`."""

    rng: np.random.Generator
    base: np.ndarray | None = None
    spread: float = 0.0

    @classmethod
    def for_tile(cls, rng: np.random.Generator) -> Inks:
        base = rng.integers(0, 256, 3).astype(np.float32)
        if rng.random() < FAINT_TILES:
            return cls(rng, base, float(rng.uniform(*FAINT_SPREAD)))
        return cls(rng)

    def __call__(self, alpha: int | None = None) -> tuple[int, ...]:
        rgb = self.rng.integers(0, 256, 3).astype(np.float32)
        if self.base is not None:
            rgb = np.clip(self.base + (rgb - 127.5) * (self.spread / 127.5), 0, 255)
        values = tuple(int(round(v)) for v in rgb)
        return values if alpha is None else (*values, alpha)


def _ramp(rng: np.random.Generator, size: int) -> np.ndarray:
    """Position along a random direction, 0..1 across the tile."""
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return np.clip((xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle) + 0.5, 0, 1)


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    """0/1 stripes of a few output pixels' period at a random angle (hatching, halftone-like)."""
    period = rng.uniform(*STRIPE_PERIOD) * SUPERSAMPLE
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) / period
    return (phase % 1.0 < rng.uniform(0.3, 0.7)).astype(np.float32)


def background(inks: Inks, size: int) -> Image.Image:
    """A flat fill, a linear gradient between two colours at a random angle, or stripes."""
    first = inks()
    choice = inks.rng.random()
    if choice < 0.3:
        return Image.new("RGB", (size, size), first)
    first, second = np.array(first, np.float32), np.array(inks(), np.float32)
    mix = _stripes(inks.rng, size) if choice < 0.3 + STRIPED_BACKGROUNDS else _ramp(inks.rng, size)
    pixels = first + (second - first) * mix[..., None]
    return Image.fromarray(np.round(pixels).astype(np.uint8))


def translucent_shapes(canvas: Image.Image, inks: Inks) -> Image.Image:
    """Overlapping see-through polygons: soft-edged flat regions like vector wallpapers."""
    size, rng = canvas.width, inks.rng
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.integers(1, 6)):
        points = [
            tuple(int(v) for v in rng.integers(-size // 2, size * 3 // 2, 2))
            for _ in range(rng.integers(3, 6))
        ]
        draw.polygon(points, fill=inks(int(rng.integers(30, 140))))
    return Image.alpha_composite(canvas.convert("RGBA"), layer).convert("RGB")


def lines_and_shapes(draw: ImageDraw.ImageDraw, inks: Inks, size: int) -> None:
    """Thin straight lines across the tile, outlines and filled shapes."""
    rng = inks.rng
    for _ in range(rng.integers(2, 12)):
        ends = [tuple(int(v) for v in rng.integers(-size // 4, size * 5 // 4, 2)) for _ in range(2)]
        draw.line(ends, fill=inks(), width=int(rng.integers(1, 4 * SUPERSAMPLE)))
    for _ in range(rng.integers(0, 6)):
        corner = rng.integers(0, size, 2)
        extent = rng.integers(size // 32, size // 3, 2)
        box = [
            int(corner[0]),
            int(corner[1]),
            int(corner[0] + extent[0]),
            int(corner[1] + extent[1]),
        ]
        fill = inks() if rng.random() < 0.5 else None
        width = int(rng.integers(1, 3 * SUPERSAMPLE))
        if rng.random() < 0.5:
            draw.rectangle(box, fill=fill, outline=inks(), width=width)
        else:
            draw.ellipse(box, fill=fill, outline=inks(), width=width)


def text(draw: ImageDraw.ImageDraw, inks: Inks, size: int) -> None:
    """Lines of random characters in a few sizes, like a scanned page or a screenshot."""
    rng = inks.rng
    ink = inks()
    top = int(rng.integers(0, size // 4))
    while top < size:
        height = int(rng.integers(8, 48)) * SUPERSAMPLE
        font = ImageFont.load_default(size=height)
        line = "".join(rng.choice(list(LETTERS), int(rng.integers(10, 60))))
        draw.text((int(rng.integers(-height, size // 4)), top), line, fill=ink, font=font)
        top += int(height * rng.uniform(1.2, 2.5))
        if rng.random() < 0.15:
            ink = inks()


def pixel_art(inks: Inks, size: int) -> Image.Image:
    """A small random palette image enlarged with nearest-neighbour: hard blocky edges."""
    rng = inks.rng
    block = int(rng.choice([4, 6, 8, 12, 16, 24]))
    cells = -(-size // block)
    palette = np.array([inks() for _ in range(int(rng.integers(2, 8)))], np.uint8)
    indices = rng.integers(0, len(palette), (cells, cells))
    if rng.random() < 0.5:  # runs of one colour, like sprites and icons
        indices = np.repeat(indices[:, : -(-cells // 2)], 2, axis=1)[:, :cells]
    return (
        Image.fromarray(palette[indices])
        .resize((cells * block,) * 2, Image.NEAREST)
        .crop((0, 0, size, size))
    )


def tile_style(index: int, seed: int) -> tuple[Inks, float]:
    """Tile `index`'s colours (faint or not) and blur radius (0 = sharp), drawn first."""
    rng = np.random.default_rng([seed, index])
    inks = Inks.for_tile(rng)
    soft = rng.random() < SOFT_TILES
    radius = float(rng.uniform(*SOFT_RADIUS)) if soft else 0.0
    return inks, radius


def render(index: int, seed: int, tile: int) -> Image.Image:
    """Tile `index`: lines and shapes, text, both (each over a random background with
    translucent shapes), or pixel art; the kind cycles with the index. Any kind may be faint;
    drawn kinds may be softened."""
    inks, radius = tile_style(index, seed)
    if index % 4 == 3:
        return pixel_art(inks, tile)
    size = tile * SUPERSAMPLE
    canvas = translucent_shapes(background(inks, size), inks)
    draw = ImageDraw.Draw(canvas)
    if index % 4 in (0, 2):
        lines_and_shapes(draw, inks, size)
    if index % 4 in (1, 2):
        text(draw, inks, size)
    if radius:
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius * SUPERSAMPLE))
    return canvas.resize((tile, tile), Image.BOX)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    written = 0
    for index in range(args.count):
        path = args.output / f"synthetic-{args.seed}-{index:05d}.png"
        if path.exists():
            continue
        with atomic.replacing(path) as partial:  # a killed run leaves no half-written tile
            render(index, args.seed, args.tile).save(partial)
        written += 1
    print(f"{written} tiles written, {args.count - written} already there: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
