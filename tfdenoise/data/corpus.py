"""Synthetic-but-realistic image corpora: N photos of mixed sizes, formats and JPEG qualities.

The prototype trained on "several thousand photos of different sizes and quality". We have ~55
large source photos, so each corpus image is a random crop of a source, rescaled to a random
size (log-uniform megapixels) and saved in a random format. Everything is a function of
(seed, image index), so the same command always writes the same files. Used by
`tools/make_corpus.py` and by `tfdenoise bench` when it is not given a corpus.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from tfdenoise.io import files

# (format, weight): mostly JPEG like a photo collection, a few of everything else the
# pipeline must handle. "gray" is an 8-bit grayscale JPEG (one channel, decoded as RGB).
FORMAT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("jpeg", 0.76),
    ("png", 0.10),
    ("gray", 0.05),
    ("webp", 0.05),
    ("bmp", 0.04),
)
CORPUS_SUFFIXES = {"jpeg": ".jpg", "gray": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp"}
CORPUS_MANIFEST = "corpus.json"


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """What to generate; every field is recorded in OUT/corpus.json."""

    count: int = 3000
    seed: int = 0
    min_megapixels: float = 0.1
    max_megapixels: float = 4.0
    jpeg_quality: tuple[int, int] = (40, 95)
    # Sources whose split (files.split_of of the source's relative path) is listed here are
    # skipped, so a training corpus never contains crops of the evaluation photos.
    exclude_splits: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.count < 1:
            raise ValueError("count must be >= 1")
        if not 0 < self.min_megapixels <= self.max_megapixels:
            raise ValueError("need 0 < min_megapixels <= max_megapixels")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError("JPEG qualities must satisfy 1 <= low <= high <= 100")
        unknown = set(self.exclude_splits) - set(files.SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; choose from {files.SPLITS}")


@dataclasses.dataclass(frozen=True)
class ItemPlan:
    """How one corpus image is made from its source: all random choices, drawn up front."""

    index: int
    source: str
    crop_fraction: float  # share of the source's area kept by the crop
    aspect: float  # width / height of the crop
    crop_x: float  # crop position in [0, 1] of the free room
    crop_y: float
    megapixels: float  # target size (never upscaled)
    format: str
    quality: int

    @property
    def name(self) -> str:
        return f"img_{self.index:05d}{CORPUS_SUFFIXES[self.format]}"


def select_sources(root: Path, paths: Sequence[Path], exclude_splits: Sequence[str]) -> list[Path]:
    """Source photos minus those in held-out splits (split by path relative to root)."""
    kept = [
        p for p in paths if files.split_of(p.relative_to(root).as_posix()) not in exclude_splits
    ]
    if not kept:
        raise ValueError(f"no source photos left in {root} after excluding {list(exclude_splits)}")
    return kept


def plan_items(sources: Sequence[Path], spec: CorpusSpec) -> list[ItemPlan]:
    """All random choices for the corpus; image i depends only on (seed, i) and the sources."""
    names, weights = zip(*FORMAT_WEIGHTS)
    probabilities = np.asarray(weights) / sum(weights)
    plans = []
    for index in range(spec.count):
        rng = np.random.default_rng([spec.seed, index])
        log_low, log_high = math.log(spec.min_megapixels), math.log(spec.max_megapixels)
        plans.append(
            ItemPlan(
                index=index,
                source=str(sources[int(rng.integers(len(sources)))]),
                crop_fraction=float(rng.uniform(0.15, 1.0)),
                aspect=float(math.exp(rng.uniform(math.log(0.5), math.log(2.0)))),
                crop_x=float(rng.uniform()),
                crop_y=float(rng.uniform()),
                megapixels=float(math.exp(rng.uniform(log_low, log_high))),
                format=str(rng.choice(names, p=probabilities)),
                quality=int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1)),
            )
        )
    return plans


def crop_box(width: int, height: int, plan: ItemPlan) -> tuple[int, int, int, int]:
    """The crop of a width x height source: the planned area share and aspect, clamped to fit."""
    area = plan.crop_fraction * width * height
    crop_w = min(width, max(8, round(math.sqrt(area * plan.aspect))))
    crop_h = min(height, max(8, round(area / crop_w)))
    left = round(plan.crop_x * (width - crop_w))
    top = round(plan.crop_y * (height - crop_h))
    return left, top, left + crop_w, top + crop_h


def render(source: Image.Image, plan: ItemPlan) -> Image.Image:
    """Crop and downscale a (RGB) source image as planned."""
    image = source.crop(crop_box(source.width, source.height, plan))
    scale = math.sqrt(plan.megapixels * 1e6 / (image.width * image.height))
    if scale < 1.0:
        size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if plan.format == "gray":
        image = image.convert("L")
    return image


def encode(image: Image.Image, plan: ItemPlan) -> bytes:
    """Encoded file bytes in the planned format (JPEG with the planned quality)."""
    buffer = io.BytesIO()
    if plan.format in ("jpeg", "gray"):
        # Low qualities also use 4:2:0 chroma subsampling, as cameras and web images do.
        subsampling = 2 if plan.quality < 90 else 0
        image.save(buffer, "JPEG", quality=plan.quality, subsampling=subsampling)
    elif plan.format == "webp":
        image.save(buffer, "WEBP", quality=plan.quality, method=2)
    elif plan.format == "png":
        image.save(buffer, "PNG", compress_level=3)
    else:
        image.save(buffer, "BMP")
    return buffer.getvalue()


def _write_atomic(data: bytes, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _make_from_source(source: str, plans: Sequence[ItemPlan], out_dir: str) -> int:
    """Decode one source once and write every image planned from it; returns images written."""
    with Image.open(source) as opened:
        rgb = opened.convert("RGB")  # alpha dropped, palettes and grayscale expanded
    for plan in plans:
        _write_atomic(encode(render(rgb, plan), plan), Path(out_dir) / plan.name)
    return len(plans)


def make_corpus(
    source_root: str | Path,
    out_dir: str | Path,
    spec: CorpusSpec,
    source_paths: Sequence[Path] | None = None,
    workers: int = 1,
    on_source: Callable[[str, int], None] | None = None,
) -> dict:
    """Write spec.count images into out_dir and a manifest (corpus.json); returns the manifest.

    Work is grouped by source photo (each large source is decoded once) and spread over
    `workers` processes; the result does not depend on the number of workers.
    """
    spec.validate()
    root = Path(source_root)
    paths = list(source_paths) if source_paths is not None else files.list_image_files(root)
    if not paths:
        raise ValueError(f"no source photos in {root}")
    sources = select_sources(root, [Path(p) for p in paths], spec.exclude_splits)
    plans = plan_items(sources, spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, list[ItemPlan]] = {}
    for plan in plans:
        by_source.setdefault(plan.source, []).append(plan)
    jobs = sorted(by_source.items())
    if workers <= 1:
        for source, group in jobs:
            done = _make_from_source(source, group, str(out))
            if on_source:
                on_source(source, done)
    else:
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(_make_from_source, s, g, str(out)) for s, g in jobs]
            for (source, _), future in zip(jobs, futures):
                done = future.result()
                if on_source:
                    on_source(source, done)
    manifest = _manifest(root, sources, plans, spec)
    (out / CORPUS_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def _manifest(
    root: Path, sources: Sequence[Path], plans: Sequence[ItemPlan], spec: CorpusSpec
) -> dict:
    formats: dict[str, int] = {}
    for plan in plans:
        formats[plan.format] = formats.get(plan.format, 0) + 1
    return {
        "spec": dataclasses.asdict(spec),
        "source_root": str(root),
        "sources": [p.relative_to(root).as_posix() for p in sources],
        "formats": formats,
        "mean_megapixels_planned": round(float(np.mean([p.megapixels for p in plans])), 3),
    }
