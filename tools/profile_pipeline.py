#!/usr/bin/env python3
"""Per-stage costs of the JPEG input paths (resize mode and patch mode), side by side.

    python tools/profile_pipeline.py [FOLDER] [--images 200] [--size 224] [--patch 128]
                                     [--rounds 3] [--seconds 3] [--json FILE]

The JPEGs among the train split of FOLDER's first IMAGES images (what `tfdenoise bench --corpus`
reads; default folder: the sample photos) are read into memory once, so no figure pays for the disk.
Each figure is one tf.data chain over those bytes (parallel map, AUTOTUNE, the training
pipeline's options), one scalar per image leaving it, so the figures differ only in the stage
they name:

  decode full            tf.io.decode_jpeg at full size: the decode ceiling of the bench
  decode 1/2, 1/4, 1/8   decode at a forced DCT scale (libjpeg skips the IDCT work): what each
                         scale costs, whatever the size
  decode scaled          the scale chosen per image (pipeline.decode_jpeg_at_least)
  + fast IDCT            the same with dct_method="INTEGER_FAST"
  + resize (area)        decode scaled then pipeline.resize_to: what resize mode does per image
  + resize (bilinear)    decode scaled then a plain bilinear resize (no antialiasing)
  whole pipeline         pipeline.training_pipeline in resize mode (batches of 16, flips,
                         prefetch) over the same bytes: the per-element overhead on top

and, in patches per second (4 patches of PATCH^2 per image, training's default):

  crop-decode ceiling    bench.ceilings.crop_decode_ceiling: only the windows decoded, nothing else
  patches                pipeline.decode_random_patches
  + flips                the same with pipeline.random_flips in the map (what training maps)
  whole patch pipeline   pipeline.training_pipeline in patch mode (unbatch, shuffle, batches
                         of 16, prefetch)

Figures are measured in interleaved rounds (A B C ... A B C ...): a slow minute on a shared
machine costs one round of each figure, not all rounds of one. Ratios to the full decode (resize
mode) and to the crop-decode ceiling (patch mode) are computed per round, then the median is
shown. The pixel columns give the mean and 99th
percentile absolute difference (8-bit levels) of each resized output to the exact area average
of the full decode, on the first 32 images. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout, uninstalled
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdenoise.bench.ceilings import crop_decode_ceiling  # noqa: E402
from tfdenoise.bench.inputs import corpus_files  # noqa: E402
from tfdenoise.bench.rounds import BenchFigure, dataset_rate, measure_rounds  # noqa: E402
from tfdenoise.data import pipeline, samples  # noqa: E402
from tfdenoise.io import files as image_files  # noqa: E402

PATCHES, BATCH = 4, 16  # training's defaults (PipelineSpec)


def jpeg_bytes(folder: Path, count: int) -> list[bytes]:
    """The JPEGs among the train split of the first `count` images (what the bench reads)."""
    files = corpus_files(folder, count)
    return [Path(f.path).read_bytes() for f in files if f.info.decoder == image_files.Decoder.JPEG]


def per_image(jpegs: list[bytes], stage: Callable[[tf.Tensor], tf.Tensor]) -> tf.data.Dataset:
    """One stage over the in-memory JPEGs, every core busy, one scalar per image out: a pixel,
    not the shape, which a resize to a fixed size would let the graph know without running."""
    return (
        tf.data.Dataset.from_tensor_slices(jpegs)
        .repeat()
        .map(
            lambda jpeg: tf.cast(stage(jpeg)[0, 0, 0], tf.int32),
            num_parallel_calls=pipeline.AUTOTUNE,
            deterministic=False,
        )
        .batch(32)
        .with_options(pipeline._options(training=True))
    )


def bilinear_to(image: tf.Tensor, size: int) -> tf.Tensor:
    resized = tf.image.resize(image, [size, size], method="bilinear", antialias=False)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def stages(size: int) -> dict[str, Callable[[tf.Tensor], tf.Tensor]]:
    def forced(ratio: int) -> Callable[[tf.Tensor], tf.Tensor]:
        return lambda jpeg: tf.io.decode_jpeg(jpeg, channels=3, ratio=ratio)

    def fast_idct(jpeg: tf.Tensor) -> tf.Tensor:
        index = pipeline.jpeg_scale_index(jpeg, size)
        branches = [
            lambda ratio=ratio: tf.io.decode_jpeg(
                jpeg, channels=3, ratio=ratio, dct_method="INTEGER_FAST"
            )
            for ratio in pipeline.JPEG_SCALES
        ]
        return tf.switch_case(index, branches)

    return {
        "decode full": forced(1),
        "decode 1/2": forced(2),
        "decode 1/4": forced(4),
        "decode 1/8": forced(8),
        "decode scaled": lambda jpeg: pipeline.decode_jpeg_at_least(jpeg, size),
        "+ fast IDCT": fast_idct,
        "+ resize (area)": lambda jpeg: pipeline.resize_to(
            pipeline.decode_jpeg_at_least(jpeg, size), size
        ),
        "+ resize (bilinear)": lambda jpeg: bilinear_to(
            pipeline.decode_jpeg_at_least(jpeg, size), size
        ),
    }


def patch_stages(patch: int) -> dict[str, Callable[[tf.Tensor], tf.Tensor]]:
    decoder = tf.constant(int(image_files.Decoder.JPEG))
    return {
        "patches": lambda jpeg: pipeline.decode_random_patches(jpeg, decoder, patch, PATCHES)[0],
        "+ flips": lambda jpeg: pipeline.random_flips(
            pipeline.decode_random_patches(jpeg, decoder, patch, PATCHES)
        )[0],
    }


def whole_pipeline(jpegs: list[bytes], spec: pipeline.PipelineSpec) -> tf.data.Dataset:
    decoder = tf.constant(int(image_files.Decoder.JPEG))
    encoded = tf.data.Dataset.from_tensor_slices(jpegs).repeat().map(lambda b: (b, decoder))
    return pipeline.training_pipeline(encoded, spec)


RESIZED = ("+ resize (area)", "+ resize (bilinear)")  # the stages whose pixels are compared


def pixel_differences(
    jpegs: list[bytes], size: int, resizes: dict[str, Callable[[tf.Tensor], tf.Tensor]]
) -> dict[str, tuple[float, float]]:
    """Mean and 99th-percentile |difference| of each resize stage's output to the exact area
    average of the full decode."""
    candidates = {name: resizes[name] for name in RESIZED}
    errors: dict[str, list[np.ndarray]] = {name: [] for name in candidates}
    for jpeg in jpegs[:32]:
        full = tf.io.decode_jpeg(jpeg, channels=3)
        reference = tf.image.resize(full, [size, size], method="area").numpy()
        for name, candidate in candidates.items():
            errors[name].append(np.abs(candidate(tf.constant(jpeg)).numpy() - reference).ravel())
    return {
        name: (float(np.mean(np.concatenate(e))), float(np.percentile(np.concatenate(e), 99)))
        for name, e in errors.items()
    }


def print_table(title: str, rounds: dict[str, list[float]], reference: str, differences) -> dict:
    """A Markdown table of one mode's figures, each ratio to `reference` taken per round."""
    print(f"\n{title}\n")
    print(f"| stage | median | min-max | x {reference} | mean / p99 diff |")
    print("|---|---:|---|---:|---|")
    table = {}
    for name, values in rounds.items():
        ratio = statistics.median(v / r for v, r in zip(values, rounds[reference]))
        diff = differences.get(name)
        diff_text = f"{diff[0]:.2f} / {diff[1]:.0f}" if diff else ""
        print(
            f"| {name} | {statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f} "
            f"| {ratio:.2f} | {diff_text} |"
        )
        table[name] = {"rounds": values, "ratio": ratio, "versus": reference, "difference": diff}
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=None)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=224, help="resize mode's output side")
    parser.add_argument("--patch", type=int, default=128, help="patch mode's patch side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    folder = args.folder or samples.sample_photo_dir()
    jpegs = jpeg_bytes(folder, args.images)
    if not jpegs:
        parser.error(f"no JPEGs under {folder}")
    pixels = [tf.io.extract_jpeg_shape(j).numpy() for j in jpegs]
    megapixels = statistics.mean(int(s[0]) * int(s[1]) for s in pixels) / 1e6
    print(f"{len(jpegs)} JPEGs from {folder}, {megapixels:.2f} MP mean")

    def figure(name: str, dataset: tf.data.Dataset, per_element: int) -> BenchFigure:
        def measure() -> float:
            return dataset_rate(dataset, per_element, warmup=3, seconds=args.seconds)

        return BenchFigure(name, name, measure)

    resize_figures = [figure(n, per_image(jpegs, s), 32) for n, s in stages(args.size).items()]
    resize_spec = pipeline.PipelineSpec(batch_size=BATCH, resize=args.size)
    resize_figures.append(figure("whole pipeline", whole_pipeline(jpegs, resize_spec), BATCH))
    ceiling = crop_decode_ceiling(jpegs, args.patch, PATCHES)
    patch_figures = [figure("crop-decode ceiling", ceiling, 32 * PATCHES)]
    patch_figures += [
        figure(n, per_image(jpegs, s), 32 * PATCHES) for n, s in patch_stages(args.patch).items()
    ]
    patch_spec = pipeline.PipelineSpec(
        batch_size=BATCH, patch_size=args.patch, patches_per_image=PATCHES
    )
    patch_figures.append(figure("whole patch pipeline", whole_pipeline(jpegs, patch_spec), BATCH))
    rounds = measure_rounds(resize_figures + patch_figures, args.rounds, lambda _: None)

    def part(figures: list[BenchFigure]) -> dict[str, list[float]]:
        return {f.key: rounds[f.key] for f in figures}

    results = {
        "images": len(jpegs),
        "megapixels": megapixels,
        "resize": print_table(
            f"Resize mode ({args.size}^2), img/s",
            part(resize_figures),
            "decode full",
            pixel_differences(jpegs, args.size, stages(args.size)),
        ),
        "patch": print_table(
            f"Patch mode ({PATCHES} x {args.patch}^2 per image), patches/s",
            part(patch_figures),
            "crop-decode ceiling",
            {},
        ),
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
