"""The input-pipeline figures: the corpus they read, our folder and TFRecord pipelines over
it, beside the prototype's generator and the decode ceilings on the same files."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfdenoise.bench.ceilings import (
    crop_decode_ceiling,
    decode_ceiling,
    jpeg_bytes,
    mixed_decode_ceiling,
)
from tfdenoise.bench.config import BenchConfig
from tfdenoise.bench.prototype import prototype_generator, prototype_reader_name
from tfdenoise.bench.rounds import BenchFigure, Log, dataset_rate, measure_rate
from tfdenoise.data import corpus, pipeline, samples, sources
from tfdenoise.io import files as image_files
from tfdenoise.io.encoding import DEFAULT_LOSSLESS
from tfdenoise.io.records.convert import convert_folder

# --- corpus ----------------------------------------------------------------------------------


@contextlib.contextmanager
def corpus_folder(config: BenchConfig, log: Log) -> Iterator[Path]:
    """The corpus to measure on: the given folder, or one generated in a temporary folder."""
    if config.corpus is not None:
        yield Path(config.corpus)
        return
    with tempfile.TemporaryDirectory(prefix="tfdenoise-bench-") as folder:
        spec = corpus.CorpusSpec(count=config.images, seed=config.seed)
        log(f"generating a corpus of {config.images} images from the sample photos ...")
        corpus.make_corpus(samples.sample_photo_dir(), folder, spec, samples.sample_photo_paths())
        yield Path(folder)


def corpus_files(root: Path, count: int) -> list[image_files.ImageFile]:
    """The train split of the first `count` image files: what every figure reads (the TFRecord
    writer splits the same relative paths the same way, so both sources hold these files)."""
    paths = image_files.list_image_files(root)[:count]
    files = image_files.scan(root, paths).split("train")
    if len(files) < 2:
        raise ValueError(f"too few usable training images in {root} (need 2, found {len(files)})")
    return files


# --- pipeline figures ------------------------------------------------------------------------


def pipeline_specs(config: BenchConfig) -> dict[str, pipeline.PipelineSpec]:
    """The two output modes compared: the prototype's resized images, and our training patches."""
    return {
        "resize": pipeline.PipelineSpec(batch_size=config.batch_size, resize=config.resize),
        "patch": pipeline.PipelineSpec(
            batch_size=config.batch_size,
            patch_size=config.patch_size,
            patches_per_image=config.patches_per_image,
        ),
    }


def records_source(root: Path, work: Path, log: Log, lossless: str = DEFAULT_LOSSLESS):
    """A RecordSource over the TFRecords of the images under root, written into `work`, with
    images other than JPEGs stored as `lossless` ("png", the default, or "raw" pixels)."""
    log(f"writing TFRecords of {root.name} (non-JPEGs as {lossless}) ...")
    convert_folder(root, work, lossless=lossless)
    return sources.RecordSource(work)


@dataclasses.dataclass
class Feeds:
    """The measured file set as a folder source and as a TFRecord source (same train split)."""

    files: list[image_files.ImageFile]
    records: sources.RecordSource
    # The same files with non-JPEGs as raw pixels (`make-tfrecords --lossless raw`); None when
    # not asked for or when every file is a JPEG (the records would be the same).
    raw_records: sources.RecordSource | None = None

    def folder(self, spec: pipeline.PipelineSpec) -> tf.data.Dataset:
        return pipeline.training_pipeline(pipeline.encoded_files(self.files, True, True), spec)

    def tfrecords(self, spec: pipeline.PipelineSpec, raw: bool = False) -> tf.data.Dataset:
        records = self.raw_records if raw else self.records
        if records is None:
            raise ValueError("these feeds hold no raw-pixel records")
        return pipeline.training_pipeline(
            records.encoded("train", training=True), spec, allow_pil=records.allow_pil
        )


def make_feeds(
    files: Sequence[image_files.ImageFile], work: Path, name: str, log: Log, raw: bool = False
) -> Feeds:
    """The files as a folder source and as TFRecords; `raw` also writes them with non-JPEGs as
    raw pixels (skipped when all are JPEGs)."""
    folder = _subset_folder(files, work / f"{name}-files")
    raw_records = None
    if raw and any(f.info.decoder != image_files.Decoder.JPEG for f in files):
        raw_records = records_source(folder, work / f"{name}-records-raw", log, lossless="raw")
    return Feeds(list(files), records_source(folder, work / f"{name}-records", log), raw_records)


def _subset_folder(files: Sequence[image_files.ImageFile], folder: Path) -> Path:
    """A folder of symlinks to exactly the measured files, for the TFRecord writer.

    Relative paths are kept, so each file lands in the same split as in the folder pipeline.
    """
    for image_file in files:
        link = folder / image_file.relpath
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(image_file.path).resolve())
    return folder


def _generator_figure(
    key: str, label: str, paths: Sequence[str], config: BenchConfig
) -> BenchFigure:
    """The prototype generator as a figure; one generator serves every round (no threads)."""
    generator = prototype_generator(paths, config.batch_size, config.resize, config.seed)
    return BenchFigure(
        key,
        label,
        lambda: measure_rate(
            lambda: len(next(generator)[0]),
            config.pipeline_warmup_batches,
            config.pipeline_seconds,
        ),
    )


def _dataset_figure(
    key: str, label: str, dataset: tf.data.Dataset, items: int, warmup: int, seconds: float
) -> BenchFigure:
    """A dataset as a figure: each round pulls from a fresh iterator (its own warm-up), so no
    idle iterator keeps decoding in the background while the other figures are timed."""
    return BenchFigure(key, label, lambda: dataset_rate(dataset, items, warmup, seconds))


def pipeline_figures(
    config: BenchConfig, feeds: Feeds, jpeg_feeds: Feeds | None
) -> list[BenchFigure]:
    """All pipeline figures, in images (resize mode) or patches (patch mode) per second, in
    round order: the two figures of each ratio are measured one after the other.

    Headline: resize mode on the whole corpus (the prototype's output: 224x224 images).
    `jpeg_only` repeats the resize figures and TFRecord patch mode on the corpus's JPEGs
    alone, the very files the decode ceilings decode, so those ratios compare like with like.
    """
    seconds, warmup, batch = (
        config.pipeline_seconds,
        config.pipeline_warmup_batches,
        config.batch_size,
    )
    specs = pipeline_specs(config)
    reader = prototype_reader_name()

    def resize_figures(subject: Feeds, prefix: str, label: str) -> list[BenchFigure]:
        paths = [f.path for f in subject.files]
        return [
            _generator_figure(
                f"{prefix}prototype_generator_img_s",
                f"pipeline{label}: prototype generator ({reader}, one thread)",
                paths,
                config,
            ),
            _dataset_figure(
                f"{prefix}files_img_s",
                f"pipeline{label}: folder, resize mode",
                subject.folder(specs["resize"]),
                batch,
                warmup,
                seconds,
            ),
            _dataset_figure(
                f"{prefix}tfrecords_img_s",
                f"pipeline{label}: TFRecords, resize mode",
                subject.tfrecords(specs["resize"]),
                batch,
                warmup,
                seconds,
            ),
        ]

    figures = resize_figures(feeds, "pipeline.", "")
    if feeds.raw_records is not None:
        figures.append(
            _dataset_figure(
                "pipeline.tfrecords_raw_img_s",
                "pipeline: TFRecords with non-JPEGs as raw pixels, resize mode",
                feeds.tfrecords(specs["resize"], raw=True),
                batch,
                warmup,
                seconds,
            )
        )
    figures.append(
        _dataset_figure(
            "pipeline.decode_ceiling_mixed_img_s",
            "pipeline: decode ceiling, every format",
            mixed_decode_ceiling(feeds.files),
            32,
            2,
            seconds,
        )
    )
    for key, label, source in (
        ("files_patch_img_s", "folder", feeds.folder),
        ("tfrecords_patch_img_s", "TFRecords", feeds.tfrecords),
    ):
        figures.append(
            _dataset_figure(
                f"pipeline.{key}",
                f"pipeline: {label}, patch mode",
                source(specs["patch"]),
                batch,
                warmup,
                seconds,
            )
        )
    jpegs = jpeg_bytes(feeds.files)
    if jpeg_feeds is not None:
        figures += resize_figures(jpeg_feeds, "pipeline.jpeg_only.", " (JPEGs only)")
    if jpegs:
        figures.append(
            _dataset_figure(
                "pipeline.decode_ceiling_img_s",
                f"pipeline: decode ceiling ({len(jpegs)} JPEGs in memory, all cores)",
                decode_ceiling(jpegs),
                32,
                2,
                seconds,
            )
        )
        count = config.patches_per_image
        figures.append(
            _dataset_figure(
                "pipeline.crop_decode_ceiling_patches_s",
                f"pipeline: crop-decode ceiling ({count} windows of {config.patch_size}² per JPEG)",
                crop_decode_ceiling(jpegs, config.patch_size, count),
                32 * count,
                2,
                seconds,
            )
        )
    if jpeg_feeds is not None:
        figures.append(
            _dataset_figure(
                "pipeline.jpeg_only.tfrecords_patch_img_s",
                "pipeline (JPEGs only): TFRecords, patch mode",
                jpeg_feeds.tfrecords(specs["patch"]),
                batch,
                warmup,
                seconds,
            )
        )
    return figures


def pipeline_info(config: BenchConfig, files: Sequence[image_files.ImageFile]) -> dict:
    """What the pipeline figures were measured on (not timed)."""
    jpegs = sum(f.info.decoder == image_files.Decoder.JPEG for f in files)
    return {
        "reader": prototype_reader_name(),
        "images": len(files),
        "jpeg_share": round(jpegs / len(files), 3),
        "mean_megapixels": round(
            float(np.mean([f.info.width * f.info.height for f in files])) / 1e6, 3
        ),
        "patch_mode": {
            "patch_size": config.patch_size,
            "patches_per_image": config.patches_per_image,
        },
    }
