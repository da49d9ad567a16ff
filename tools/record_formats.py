#!/usr/bin/env python3
"""How to store non-JPEG images in TFRecords: decode speed in tf.data vs bytes on disk.

    python tools/record_formats.py [FOLDER] [--images 24] [--rounds 3] [--seconds 2]
                                   [--json FILE]

Every non-JPEG image under FOLDER (default: the sample photos) is decoded to 8-bit RGB once and
stored in one TFRecord file per candidate format:

  jpeg q90        the same pixels as a JPEG (quality 90, 4:2:0): the reference cost
  png (v1)        what format version 1 stores: the file's bytes for 8-bit RGB PNGs, else
                  PNG at level 3 (the current --lossless png)
  png level 1/0   PNG at a fast compression level (0 = stored, no deflate)
  webp lossless   lossless WebP (TF decodes it in-graph: tf.io.decode_image / decode_webp)
  raw             the pixels as they are, H * W * 3 bytes (format version 2, --lossless raw)
  raw + zlib file raw records in a ZLIB-compressed TFRecord file (compression_type="ZLIB")
  raw direct      raw records decoded by decode_raw straight from the parsed features: what
                  the pipeline's shape trailer costs (diagnostic)

Each is read the way training reads records: TFRecordDataset -> schema.parse_example ->
the pipeline's decode stage (parallel map, AUTOTUNE, non-deterministic), in two modes:
"full" decodes each whole image (pipeline.decode_full), "patches" is training's patch mode
(pipeline.decode_random_patches, 4 x 128^2 per image; JPEGs decode only the windows). Figures
are measured in interleaved rounds (A B C ... A B C ...); each ratio is computed per round from
figures measured side by side, then its median is reported. Keep runs short on a busy machine:
the ratios are what count. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout, uninstalled
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from tfdenoise.data import pipeline, samples  # noqa: E402
from tfdenoise.io import encoding  # noqa: E402
from tfdenoise.io import files as image_files  # noqa: E402
from tfdenoise.io.records import schema  # noqa: E402

PATCH_SIZE, PATCHES_PER_IMAGE = 128, 4  # training's defaults (PipelineSpec)
MODES = ("full", "patches")


# --- candidates -------------------------------------------------------------------------------


def _pil_bytes(pixels: np.ndarray, format_: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format_, **options)
    return buffer.getvalue()


class Candidate:
    """One way to store an image: its encoder, its record file, and how it is decoded."""

    def __init__(
        self,
        name: str,
        encode: Callable[[image_files.ImageFile, np.ndarray], tuple[bytes, str]],
        compression: str = "",
        direct_raw: bool = False,
    ):
        self.name, self.encode, self.compression = name, encode, compression
        self.direct_raw = direct_raw  # decode raw pixels from the features (no pipeline stage)

    def stage(self, mode: str) -> Callable[[tf.Tensor], tf.Tensor]:
        """serialized example -> decoded output of `mode` (small, so the consumer costs little)."""

        def decode(serialized):
            if self.direct_raw:
                features = schema.parse_features(serialized)
                pixels = tf.io.decode_raw(features["image"], tf.uint8)
                shape = tf.stack([features["height"], features["width"], 3])
                image = tf.reshape(pixels, tf.cast(shape, tf.int32))
                if mode == "full":
                    return image[-1:, -1:]
                return pipeline.random_crops(image, PATCH_SIZE, PATCHES_PER_IMAGE)
            data, decoder = schema.parse_example(serialized)
            if mode == "full":  # one pixel out: the whole decode still runs
                return pipeline.decode_full(data, decoder, allow_pil=False)[-1:, -1:]
            return pipeline.decode_random_patches(
                data, decoder, PATCH_SIZE, PATCHES_PER_IMAGE, allow_pil=False
            )

        return decode


def _v1_png(file: image_files.ImageFile, pixels: np.ndarray) -> tuple[bytes, str]:
    stored = encoding.encode_for_storage(file.path, file.info, lossless="png")
    return stored.data, "png"


CANDIDATES = (
    Candidate("jpeg q90", lambda f, p: (_pil_bytes(p, "JPEG", quality=90), "jpeg")),
    Candidate("png (v1)", _v1_png),
    Candidate("png level 1", lambda f, p: (_pil_bytes(p, "PNG", compress_level=1), "png")),
    Candidate("png level 0", lambda f, p: (_pil_bytes(p, "PNG", compress_level=0), "png")),
    Candidate("webp lossless", lambda f, p: (_pil_bytes(p, "WEBP", lossless=True), "webp")),
    Candidate("raw", lambda f, p: (encoding.raw_bytes(p), "raw")),
    Candidate("raw + zlib file", lambda f, p: (encoding.raw_bytes(p), "raw"), "ZLIB"),
    Candidate("raw direct", lambda f, p: (encoding.raw_bytes(p), "raw"), direct_raw=True),
)


def _example(data: bytes, format_: str, height: int, width: int, source: str) -> bytes:
    """A record of schema.FEATURES; "webp" too (parse_example sends formats other
    than jpeg/raw to tf.io.decode_image, which reads WebP)."""
    if format_ in schema.RECORD_FORMATS:
        image = encoding.EncodedImage(data, format_, height, width)
        return schema.encode_example(image, source)
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
        "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[height])),
        "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[width])),
        "format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[format_.encode()])),
        "source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[source.encode()])),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def write_candidates(
    images: list[tuple[image_files.ImageFile, np.ndarray]], folder: Path
) -> dict[str, dict]:
    """One TFRecord file per candidate; its bytes on disk, image bytes, and the seconds spent
    encoding and writing (from decoded pixels; "png (v1)" keeps 8-bit RGB PNG files as they
    are, so it costs only their reading there)."""
    written = {}
    for candidate in CANDIDATES:
        path = folder / f"{candidate.name.replace(' ', '_')}.tfrecord"
        options = tf.io.TFRecordOptions(compression_type=candidate.compression)
        payload, started = 0, time.perf_counter()
        with tf.io.TFRecordWriter(str(path), options) as writer:  # ZLIB compresses in write
            for file, pixels in images:
                data, format_ = candidate.encode(file, pixels)
                payload += len(data)
                height, width = pixels.shape[:2]
                writer.write(_example(data, format_, height, width, file.path))
        encode_seconds = time.perf_counter() - started  # what make-tfrecords would spend
        written[candidate.name] = {
            "path": str(path),
            "file_bytes": path.stat().st_size,
            "payload_bytes": payload,
            "encode_seconds": encode_seconds,
        }
    return written


# --- measuring --------------------------------------------------------------------------------


def decode_dataset(candidate: Candidate, path: str, mode: str) -> tf.data.Dataset:
    """Like the training pipeline: records read, then parsed and decoded by a parallel map."""
    dataset = tf.data.TFRecordDataset(path, compression_type=candidate.compression).repeat()
    dataset = dataset.map(
        candidate.stage(mode), num_parallel_calls=tf.data.AUTOTUNE, deterministic=False
    )
    dataset = dataset.batch(8).prefetch(tf.data.AUTOTUNE)  # a Python step per 8 images
    options = tf.data.Options()
    options.deterministic = False
    options.autotune.enabled = True
    return dataset.with_options(options)


def images_per_second(dataset: tf.data.Dataset, seconds: float, warmup: float) -> float:
    """Images per second pulled from the dataset (batches of 8) for `seconds` after a warm-up."""
    iterator = iter(dataset)
    started = time.perf_counter()
    while time.perf_counter() - started < warmup:
        next(iterator)
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        images += int(tf.shape(next(iterator))[0])
    return images / (time.perf_counter() - started)


def measure(written: dict[str, dict], rounds: int, seconds: float, warmup: float, log) -> dict:
    """{mode: {candidate: [img/s per round]}}, every figure once per round, interleaved."""
    rates = {mode: {c.name: [] for c in CANDIDATES} for mode in MODES}
    for round_index in range(rounds):
        for mode in MODES:
            for candidate in CANDIDATES:
                dataset = decode_dataset(candidate, written[candidate.name]["path"], mode)
                rate = images_per_second(dataset, seconds, warmup)
                rates[mode][candidate.name].append(rate)
                log(f"round {round_index + 1}/{rounds} {mode:7s} {candidate.name:16s} {rate:8.1f}")
    return rates


def per_round_median(tops: list[float], bottoms: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(tops, bottoms))


# --- report -----------------------------------------------------------------------------------


def load_images(folder: Path | None, limit: int) -> list[tuple[image_files.ImageFile, np.ndarray]]:
    """The first `limit` non-JPEG images (by relative path) and their 8-bit RGB pixels."""
    if folder is None:
        scan = image_files.scan(samples.sample_photo_dir(), samples.sample_photo_paths())
    else:
        scan = image_files.scan(folder)
    chosen = [f for f in sorted(scan.files, key=lambda f: f.relpath) if f.info.format != "JPEG"]
    if not chosen:
        raise SystemExit("no non-JPEG images found")
    return [(f, image_files.load_rgb8(f.path, apply_orientation=False)) for f in chosen[:limit]]


def table(images, written: dict, rates: dict) -> str:
    pixels = sum(p.shape[0] * p.shape[1] for _, p in images)
    reference, current = "jpeg q90", "png (v1)"
    lines = [
        "| format | bytes/pixel | disk vs png (v1) | encode ms/MP | "
        + " | ".join(
            f"{mode} img/s | {mode} cost vs JPEG | {mode} speed vs png (v1)" for mode in MODES
        )
        + " |",
        "|---" * (4 + 3 * len(MODES)) + "|",
    ]
    for candidate in CANDIDATES:
        facts = written[candidate.name]
        cells = [
            candidate.name,
            f"{facts['file_bytes'] / pixels:.2f}",
            f"{facts['file_bytes'] / written[current]['file_bytes']:.2f}x",
            f"{facts['encode_seconds'] * 1e3 / (pixels / 1e6):.0f}",
        ]
        for mode in MODES:
            own = rates[mode][candidate.name]
            cells += [
                f"{statistics.median(own):.0f}",
                f"{per_round_median(rates[mode][reference], own):.2f}x",
                f"{per_round_median(own, rates[mode][current]):.2f}x",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, help="image folder (default: samples)")
    parser.add_argument("--images", type=int, default=24, help="at most this many images")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per figure")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per figure")
    parser.add_argument("--json", type=Path, help="also write every round's figures here")
    args = parser.parse_args(argv)
    if args.images < 1 or args.rounds < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--images and --rounds must be >= 1, --seconds > 0, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    images = load_images(args.folder, args.images)
    megapixels = sum(p.shape[0] * p.shape[1] for _, p in images) / 1e6
    log(f"{len(images)} non-JPEG images, {megapixels / len(images):.2f} MP on average")
    with tempfile.TemporaryDirectory(prefix="record-formats-") as folder:
        written = write_candidates(images, Path(folder))
        rates = measure(written, args.rounds, args.seconds, args.warmup, log)
    print(
        f"{len(images)} images, {megapixels / len(images):.2f} MP mean; "
        f"medians of {args.rounds} interleaved rounds of {args.seconds:g} s; "
        f"{os.cpu_count()} CPUs, TF {tf.__version__}\n"
    )
    print(table(images, written, rates))
    if args.json:
        for facts in written.values():
            facts.pop("path")
        result = {"images": len(images), "megapixels": megapixels, "written": written}
        args.json.write_text(json.dumps({**result, "rounds": rates}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
