"""The measurements behind `tfdenoise bench`: input cost and model cost, seen apart.

Like nanoGPT's benchmark, every figure is taken after a warm-up, and the model is timed both
on a constant in-memory batch (synthetic: model cost only) and fed by the real pipeline, so
the difference is what the input pipeline costs the model. Comparisons are meant as ratios
of figures from the same run: the machine this runs on is shared and absolute numbers drift.

Rounds: every figure is measured once per round, in the same order each round (A B C A B C
...), so a neighbour's busy minute lands on one round of every figure instead of on every
round of one. Each figure is reported as its median over rounds with its spread (min-max);
each ratio is computed per round, from two figures measured side by side in that round, and
reported as the median of those per-round ratios. The JSON keeps every round's raw figures.
One round (`--quick`) gives single noisy measurements: smoke tests, not conclusions.

Figures (JSON keys, dotted = nested; each the median over rounds):
  pipeline.prototype_generator_img_s   the prototype's Python generator (cv2 or PIL, NumPy noise)
  pipeline.files_img_s            our folder pipeline, same 224x224 output (headline)
  pipeline.tfrecords_img_s        our TFRecord pipeline, same output (headline)
  pipeline.decode_ceiling_img_s   every core decoding the same JPEGs, nothing else
  pipeline.crop_decode_ceiling_patches_s  every core decoding only patch-sized JPEG windows
  train.synthetic_img_s / pipeline_img_s / float32_img_s / auto_precision_img_s /
  xla_on_img_s / xla_off_img_s    training steps, images (patches) per second
  predict.megapixels_per_s        full-size images through the model
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfdenoise import config as config_module
from tfdenoise import hardware, inference, models
from tfdenoise.data import corpus, pipeline, samples, sources
from tfdenoise.ensemble import with_passes
from tfdenoise.io import files as image_files
from tfdenoise.io import records
from tfdenoise.predict import folder, pipelined
from tfdenoise.train.fit import compile_denoiser

Log = Callable[[str], None]


@dataclasses.dataclass
class BenchConfig:
    """Sizes of one benchmark run; `quick()` is the ~4-minute, single-round variant."""

    # Existing image folder to measure on; None = generate `images` images from the sample photos.
    corpus: str | None = None
    # Images of the corpus used (the train split of its first `images` files, sorted by name).
    images: int = 600
    # Rounds: every figure once per round, interleaved (A B C A B C ...); medians over rounds.
    # 1 round = single noisy measurements (quick mode).
    rounds: int = 5
    # Seconds each pipeline figure is timed for per round, after its warm-up.
    pipeline_seconds: float = 5.0
    pipeline_warmup_batches: int = 5
    # Training: timed for `train_seconds` per round but at least `train_min_steps`, after
    # warm-up steps.
    train_seconds: float = 15.0
    train_min_steps: int = 5
    train_warmup_steps: int = 3
    # XLA on CPU is slow and its compile takes ~40 s: fewer timed steps.
    xla_min_steps: int = 3
    # Model and batch: FitConfig's defaults unless overridden (tests use a tiny U-Net).
    widths: tuple[int, ...] = config_module.FitConfig.widths
    batch_size: int = config_module.FitConfig.batch_size
    patch_size: int = config_module.FitConfig.patch_size
    patches_per_image: int = config_module.FitConfig.patches_per_image
    resize: int = 224  # the prototype's input size: output of the pipeline comparisons
    # Prediction: up to this many corpus images (largest first), each capped in size; every
    # round denoises them three times (1 pass, 2 passes, the whole folder job).
    predict_images: int = 2
    predict_max_megapixels: float = 4.0
    seed: int = 0

    @classmethod
    def quick(cls, **overrides) -> BenchConfig:
        values = dict(
            images=200,
            pipeline_seconds=3.0,
            pipeline_warmup_batches=3,
            train_seconds=8.0,
            train_min_steps=3,
            train_warmup_steps=2,
            rounds=1,
            xla_min_steps=2,
            predict_images=2,
            predict_max_megapixels=1.5,
        )
        values.update(overrides)
        return cls(**values)

    def validate(self) -> None:
        checks = [
            (self.images >= 2, "images must be >= 2"),
            (self.pipeline_seconds > 0 and self.train_seconds > 0, "seconds must be > 0"),
            (self.train_min_steps >= 1 and self.xla_min_steps >= 1, "min steps must be >= 1"),
            (self.rounds >= 1, "rounds must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.patch_size >= 8 and self.resize >= 8, "patch_size and resize must be >= 8"),
            (self.predict_images >= 1, "predict_images must be >= 1"),
            (len(self.widths) >= 1 and min(self.widths) >= 1, "widths must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# --- timing --------------------------------------------------------------------------------


def measure_rate(step: Callable[[], int], warmup: int, seconds: float, min_steps: int = 1) -> float:
    """Items per second of `step` (returns the items it produced), after `warmup` calls."""
    for _ in range(warmup):
        step()
    items, steps = 0, 0
    started = time.perf_counter()
    while steps < min_steps or time.perf_counter() - started < seconds:
        items += step()
        steps += 1
    return items / (time.perf_counter() - started)


def dataset_rate(
    dataset: tf.data.Dataset, items_per_element: int, warmup: int, seconds: float
) -> float:
    """Elements per second pulled from a dataset by a Python loop (what Keras' fit does)."""
    iterator = iter(dataset)

    def step() -> int:
        next(iterator)
        return items_per_element

    return measure_rate(step, warmup, seconds)


class _StepTimer(keras.callbacks.Callback):
    """Times training steps after a warm-up and stops `fit` once enough were timed."""

    def __init__(self, warmup: int, seconds: float, min_steps: int):
        super().__init__()
        self.warmup, self.seconds, self.min_steps = warmup, seconds, min_steps
        self.times: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())
        timed = len(self.times) - self.warmup
        if timed >= self.min_steps and self.times[-1] - self.times[self.warmup - 1] >= self.seconds:
            self.model.stop_training = True

    def steps_per_second(self) -> float:
        timed = len(self.times) - self.warmup
        return timed / (self.times[-1] - self.times[self.warmup - 1])


# --- rounds ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BenchFigure:
    """One throughput figure: its dotted JSON key, a label for the log, and `measure`, which
    takes one timed measurement (warm-up included, so each round stands on its own)."""

    key: str
    label: str
    measure: Callable[[], float]


@dataclasses.dataclass
class FigureGroup:
    """One section of the results ("pipeline", "train", "predict"): its figures in round order,
    the facts that are not timed (sizes, precision), and aliases: figures that are another
    figure's measurement under a second name (same settings), so they share its rounds."""

    name: str
    figures: list[BenchFigure]
    info: dict
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)


def measure_rounds(figures: Sequence[BenchFigure], rounds: int, log: Log) -> dict[str, list[float]]:
    """Every figure once per round, in the same order each round (A B C A B C ...): a slow
    minute then costs one round of every figure instead of all rounds of one figure."""
    values: dict[str, list[float]] = {figure.key: [] for figure in figures}
    for round_index in range(rounds):
        for figure in figures:
            log(f"round {round_index + 1}/{rounds}: {figure.label} ...")
            values[figure.key].append(float(figure.measure()))
    return values


def summarize(values: Sequence[float | None]) -> dict:
    """Median and spread (min and max) over rounds; rounds without a value are left out, and a
    figure with no value at all summarises to None throughout."""
    present = [value for value in values if value is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "rounds": 0}
    return {
        "median": float(np.median(present)),
        "min": float(min(present)),
        "max": float(max(present)),
        "rounds": len(present),
    }


def per_round_ratios(
    figure_rounds: dict[str, list[float]], pairs: dict[str, tuple[str, str]]
) -> dict[str, list[float | None]]:
    """Each ratio once per round, from its two figures measured side by side in that round
    (a ratio of medians would pair figures from different minutes). None where a figure is
    missing or the denominator is 0."""
    result: dict[str, list[float | None]] = {}
    for name, (numerator, denominator) in pairs.items():
        tops, bottoms = figure_rounds.get(numerator), figure_rounds.get(denominator)
        if not tops or not bottoms:
            result[name] = []
            continue
        result[name] = [top / bottom if bottom else None for top, bottom in zip(tops, bottoms)]
    return result


def _set_dotted(results: dict, key: str, value) -> None:
    """results["a"]["b"]["c"] = value for key "a.b.c", creating the sections on the way."""
    *sections, last = key.split(".")
    for section in sections:
        results = results.setdefault(section, {})
    results[last] = value


def measurement_note(rounds: int) -> dict:
    """How the figures were taken, written into the JSON and shown under the table."""
    return {
        "rounds": rounds,
        "order": "interleaved: every figure once per round, in the same order each round",
        "value": "median over rounds",
        "spread": "min-max over rounds",
        "ratios": "computed per round from that round's two figures; median over rounds",
        "single_noisy_measurements": rounds == 1,
    }


def summarize_rounds(groups: Sequence[FigureGroup], figure_rounds: dict[str, list[float]]) -> dict:
    """The results of measured rounds: each figure's median in its section (where the table
    and older readers look), every round's raw figures and ratios, and their summaries."""
    figure_rounds = dict(figure_rounds)
    for group in groups:
        for alias, source in group.aliases.items():
            figure_rounds[alias] = list(figure_rounds[source])
    rounds = max((len(values) for values in figure_rounds.values()), default=0)
    ratio_rounds = per_round_ratios(figure_rounds, RATIO_PAIRS)
    results: dict = {group.name: dict(group.info) for group in groups}
    figure_summary = {key: summarize(values) for key, values in figure_rounds.items()}
    for key, summary in figure_summary.items():
        _set_dotted(results, key, summary["median"])
    ratio_summary = {name: summarize(values) for name, values in ratio_rounds.items()}
    results["ratios"] = {name: summary["median"] for name, summary in ratio_summary.items()}
    results["summary"] = {"figures": figure_summary, "ratios": ratio_summary}
    aliases = {alias: source for group in groups for alias, source in group.aliases.items()}
    results["rounds"] = {
        "count": rounds,
        "figures": figure_rounds,
        "ratios": ratio_rounds,
        "aliases": aliases,  # figures that are another figure's rounds under a second name
    }
    results["measurement"] = measurement_note(rounds)
    return results


def collect(groups: Sequence[FigureGroup], rounds: int, log: Log) -> dict:
    """Measure every group's figures in interleaved rounds, then summarise them."""
    figures = [figure for group in groups for figure in group.figures]
    return summarize_rounds(groups, measure_rounds(figures, rounds, log))


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


def _cv2_reader(size: int) -> Callable[[str], np.ndarray] | None:
    try:
        import cv2
    except ImportError:
        return None

    def read(path: str) -> np.ndarray:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cv2 cannot read {path}")
        return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (size, size))

    return read


def _pil_reader(size: int) -> Callable[[str], np.ndarray]:
    from PIL import Image

    def read(path: str) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))

    return read


def prototype_generator(
    paths: Sequence[str], batch_size: int, size: int, seed: int = 0, prefer_cv2: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The prototype's input pipeline, re-implemented faithfully: one Python thread reads each
    file (cv2, else PIL), resizes it to size x size, scales to [0, 1] and adds uniform noise of
    a per-image amplitude a ~ U(0, 0.5) with NumPy; yields (noisy, clean) float32 batches."""
    read = (_cv2_reader(size) if prefer_cv2 else None) or _pil_reader(size)
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(paths))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            clean, noisy = [], []
            for index in order[start : start + batch_size]:
                image = read(paths[index]).astype(np.float32) / 255.0
                amplitude = rng.uniform(0.0, 0.5)
                noisy.append(np.clip(image + rng.uniform(-amplitude, amplitude, image.shape), 0, 1))
                clean.append(image)
            yield np.stack(noisy).astype(np.float32), np.stack(clean)


def prototype_reader_name() -> str:
    return "cv2" if _cv2_reader(8) is not None else "PIL"


def decode_ceiling(jpegs: Sequence[bytes], batch: int = 32) -> tf.data.Dataset:
    """Every core decoding the given JPEG bytes (held in memory) in full, nothing else.

    Only a scalar per image leaves the pipeline, batched, so the Python loop costs ~nothing.
    """
    return (
        tf.data.Dataset.from_tensor_slices(list(jpegs))
        .repeat()
        .map(
            lambda jpeg: tf.shape(tf.io.decode_jpeg(jpeg, channels=3))[0],
            num_parallel_calls=pipeline.AUTOTUNE,
            deterministic=False,
        )
        .batch(batch)
    )


def mixed_decode_ceiling(
    files: Sequence[image_files.ImageFile], batch: int = 32
) -> tf.data.Dataset:
    """Like decode_ceiling, but every file of the corpus (PNG, WebP, BMP too) from memory."""
    blobs = [Path(f.path).read_bytes() for f in files]
    decoders = [int(f.info.decoder) for f in files]
    return (
        tf.data.Dataset.from_tensor_slices((blobs, decoders))
        .repeat()
        .map(
            lambda blob, decoder: tf.shape(pipeline.decode_full(blob, decoder))[0],
            num_parallel_calls=pipeline.AUTOTUNE,
            deterministic=False,
        )
        .batch(batch)
    )


def crop_decode_ceiling(
    jpegs: Sequence[bytes], size: int, count: int, batch: int = 32
) -> tf.data.Dataset:
    """Every core decoding only `count` random size x size windows of each JPEG (in memory),
    nothing else: the least work patch mode can do per image, since decode_and_crop_jpeg skips
    the IDCT outside the window. Same parallelism and tf.data options as the training pipeline;
    a JPEG smaller than a window is decoded whole, as the pipeline does. One scalar per image
    leaves the pipeline, batched, so the Python loop costs ~nothing; rate = images x count.
    """

    def windows(jpeg: tf.Tensor) -> tf.Tensor:
        shape = tf.io.extract_jpeg_shape(jpeg, output_type=tf.int32)
        height, width = tf.minimum(shape[0], size), tf.minimum(shape[1], size)
        rows = tf.constant(0)
        for _ in range(count):
            top = tf.random.uniform([], 0, shape[0] - height + 1, dtype=tf.int32)
            left = tf.random.uniform([], 0, shape[1] - width + 1, dtype=tf.int32)
            window = tf.stack([top, left, height, width])
            rows += tf.shape(tf.image.decode_and_crop_jpeg(jpeg, window, channels=3))[0]
        return rows

    return (
        tf.data.Dataset.from_tensor_slices(list(jpegs))
        .repeat()
        .map(windows, num_parallel_calls=pipeline.AUTOTUNE, deterministic=False)
        .batch(batch)
        # the training pipeline's options, so the ceiling gets the same parallelism
        .with_options(pipeline._options(training=True))
    )


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


def records_source(root: Path, work: Path, log: Log):
    """A RecordSource over the TFRecords of the images under root, written into `work`."""
    log(f"writing TFRecords of {root.name} ...")
    records.convert_folder(root, work)
    return sources.RecordSource(work)


@dataclasses.dataclass
class Feeds:
    """The measured file set as a folder source and as a TFRecord source (same train split)."""

    files: list[image_files.ImageFile]
    records: object  # sources.RecordSource

    def folder(self, spec: pipeline.PipelineSpec) -> tf.data.Dataset:
        return pipeline.training_pipeline(pipeline.encoded_files(self.files, True, True), spec)

    def tfrecords(self, spec: pipeline.PipelineSpec) -> tf.data.Dataset:
        return pipeline.training_pipeline(
            self.records.encoded("train", training=True), spec, allow_pil=self.records.allow_pil
        )


def make_feeds(files: Sequence[image_files.ImageFile], work: Path, name: str, log: Log) -> Feeds:
    return Feeds(
        list(files),
        records_source(
            _subset_folder(files, work / f"{name}-files"), work / f"{name}-records", log
        ),
    )


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


def jpeg_bytes(files: Sequence[image_files.ImageFile]) -> list[bytes]:
    """The JPEG files' bytes, in memory: what the decode ceilings decode."""
    return [Path(f.path).read_bytes() for f in files if f.info.decoder == image_files.Decoder.JPEG]


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


# --- training figures ------------------------------------------------------------------------


def compiled_model(config: BenchConfig, precision: str, xla: bool) -> models.Denoiser:
    """The default U-Net compiled as `fit` compiles it (Adam, L1, blind noise mixture)."""
    keras.utils.set_random_seed(config.seed)
    model = models.built(models.UNet(widths=config.widths, name="unet"), config.patch_size)
    compile_denoiser(model, precision=precision, xla=xla)
    return model


def synthetic_batches(config: BenchConfig) -> tf.data.Dataset:
    """One constant uint8 batch, repeated: the model never waits and decodes nothing."""
    rng = np.random.default_rng(config.seed)
    shape = (config.batch_size, config.patch_size, config.patch_size, 3)
    batch = tf.constant(rng.integers(0, 256, shape, dtype=np.uint8))
    return tf.data.Dataset.from_tensors({"clean": batch}).repeat()


def train_rate(
    model: models.Denoiser,
    dataset: tf.data.Dataset,
    batch_size: int,
    warmup: int,
    seconds: float,
    min_steps: int,
) -> float:
    """Training images per second over timed steps of one `fit` call (warm-up steps excluded)."""
    timer = _StepTimer(warmup, seconds, min_steps)
    model.fit(
        dataset, epochs=1, steps_per_epoch=1_000_000, callbacks=[timer], verbose=0, shuffle=False
    )
    return timer.steps_per_second() * batch_size


def _training_figure(
    key: str,
    label: str,
    model: models.Denoiser,
    dataset: tf.data.Dataset,
    precision: str,
    timing: dict,
) -> BenchFigure:
    """Training steps of one compiled model as a figure, timed under its precision policy."""

    def measure() -> float:
        with hardware.precision_policy(precision):
            return train_rate(model, dataset, **timing)

    return BenchFigure(key, label, measure)


def _compiled_in_policy(config: BenchConfig, precision: str, xla: bool) -> models.Denoiser:
    with hardware.precision_policy(precision):
        return compiled_model(config, precision, xla)


def training_group(
    config: BenchConfig, feed: tf.data.Dataset, feed_name: str, log: Log
) -> FigureGroup:
    """Synthetic vs pipeline-fed, float32 vs auto precision, XLA on vs off: each model is
    compiled once and timed once per round (warm-up steps each time; XLA's compile happens in
    the first round's warm-up step). `auto` precision and the auto XLA setting are the synthetic
    figure itself (same settings), so they alias its rounds rather than being measured twice."""
    plan = hardware.plan()
    info = {
        "precision_auto": plan.precision,
        "xla_auto": plan.xla,
        "batch_size": config.batch_size,
        "patch_size": config.patch_size,
        "pipeline_source": feed_name,
    }
    timing = dict(
        batch_size=config.batch_size,
        warmup=config.train_warmup_steps,
        seconds=config.train_seconds,
        min_steps=config.train_min_steps,
    )
    other_xla = not plan.xla
    other_name = f"XLA {'on' if other_xla else 'off'}"
    log(f"train: compiling the U-Net ({plan.precision}, float32, {other_name}) ...")
    auto = _compiled_in_policy(config, plan.precision, plan.xla)
    float32 = _compiled_in_policy(config, "float32", plan.xla)
    xla_model = _compiled_in_policy(config, plan.precision, other_xla)
    synthetic = synthetic_batches(config)
    xla_timing = dict(timing, min_steps=config.xla_min_steps, warmup=1)
    key_auto, key_other = (
        ("train.xla_on_img_s", "train.xla_off_img_s")
        if plan.xla
        else ("train.xla_off_img_s", "train.xla_on_img_s")
    )
    figures = [
        _training_figure(
            "train.synthetic_img_s",
            f"train: synthetic batch ({plan.precision})",
            auto,
            synthetic,
            plan.precision,
            timing,
        ),
        _training_figure(
            "train.pipeline_img_s",
            f"train: fed by the {feed_name} pipeline",
            auto,
            feed,
            plan.precision,
            timing,
        ),
        _training_figure(
            "train.float32_img_s", "train: float32", float32, synthetic, "float32", timing
        ),
        _training_figure(
            key_other,
            f"train: {other_name} ({plan.precision})",
            xla_model,
            synthetic,
            plan.precision,
            xla_timing,
        ),
    ]
    aliases = {
        "train.auto_precision_img_s": "train.synthetic_img_s",
        key_auto: "train.synthetic_img_s",
    }
    return FigureGroup("train", figures, info, aliases)


# --- prediction --------------------------------------------------------------------------------


PREDICT_PASSES = 2  # predict's default --ensemble


def predict_arrays(config: BenchConfig, files: Sequence[image_files.ImageFile]) -> list[np.ndarray]:
    """The largest corpus images under the size cap (the smallest image if none is under it)."""
    cap = config.predict_max_megapixels * 1e6
    candidates = sorted(
        (f for f in files if f.info.width * f.info.height <= cap),
        key=lambda f: f.info.width * f.info.height,
        reverse=True,
    )
    chosen = candidates[: config.predict_images] or [
        min(files, key=lambda f: f.info.width * f.info.height)
    ]
    return [image_files.load_rgb8(f.path) for f in chosen]


def predict_group(
    config: BenchConfig, files: Sequence[image_files.ImageFile], work: Path, log: Log
) -> FigureGroup:
    """Megapixels per second denoising full-size corpus images: the model with 1 pass, the
    model with predict's defaults (2 passes, tiles) on the images in memory, and the whole
    pipelined folder job over the same images as JPEG files writing PNGs. Start-up and the
    models' first calls happen here, once, so no round includes them."""
    arrays = predict_arrays(config, files)
    megapixels = sum(a.shape[0] * a.shape[1] for a in arrays) / 1e6
    plan = hardware.plan()
    log(f"predict: {len(arrays)} full-size images ({plan.precision}), warming up ...")
    with hardware.precision_policy(plan.precision):
        model = models.built(models.UNet(widths=config.widths, name="unet"))
        passes = with_passes(model, PREDICT_PASSES)
        inference.denoise_rgb8(model, arrays[-1])  # first calls build the graphs
        inference.denoise_rgb8(passes, arrays[-1])
    source = work / "photos"
    source.mkdir(parents=True, exist_ok=True)
    for index, array in enumerate(arrays):
        keras.utils.array_to_img(array, scale=False).save(source / f"{index}.jpg", quality=92)

    def in_memory(denoiser) -> Callable[[], float]:
        def measure() -> float:
            with hardware.precision_policy(plan.precision):
                started = time.perf_counter()
                for array in arrays:
                    inference.denoise_rgb8(denoiser, array)
                return megapixels / (time.perf_counter() - started)

        return measure

    outputs = itertools.count()

    def whole() -> float:
        out = work / f"out-{next(outputs)}"  # a fresh output folder: nothing to skip
        with hardware.precision_policy(plan.precision):
            report = pipelined.predict_folder_pipelined(
                passes, source, out, folder.PredictOptions()
            )
        return report.megapixels_per_second if len(report.written) == len(arrays) else 0.0

    figures = [
        BenchFigure("predict.megapixels_per_s", "predict: model, 1 pass", in_memory(model)),
        BenchFigure(
            "predict.model_only_mp_s",
            f"predict: model, {PREDICT_PASSES} passes",
            in_memory(passes),
        ),
        BenchFigure(
            "predict.whole_mp_s", f"predict: whole pipelined run, {len(arrays)} JPEGs -> PNG", whole
        ),
    ]
    info = {
        "images": len(arrays),
        "megapixels": round(megapixels, 3),
        "precision": plan.precision,
        "passes": PREDICT_PASSES,
    }
    return FigureGroup("predict", figures, info)


def measure_predict(config: BenchConfig, files: Sequence[image_files.ImageFile], log: Log) -> dict:
    """The predict figures alone (`config.rounds` interleaved rounds): the "predict" section of
    the results, with the per-round figures and `whole_vs_model_only` (median per-round ratio)."""
    with tempfile.TemporaryDirectory(prefix="tfdenoise-bench-predict-") as work:
        group = predict_group(config, files, Path(work), log)
        results = collect([group], config.rounds, log)
    prediction = results["predict"]
    prediction["rounds"] = results["rounds"]["figures"]
    prediction["whole_vs_model_only"] = results["ratios"]["predict_whole_vs_model_only"]
    return prediction


# --- the whole run --------------------------------------------------------------------------


# The comparisons the targets are stated in: name -> (numerator, denominator) figure keys.
# Each is computed per round (see per_round_ratios); missing figures give None.
RATIO_PAIRS: dict[str, tuple[str, str]] = {
    "tfrecords_vs_prototype_generator": (
        "pipeline.tfrecords_img_s",
        "pipeline.prototype_generator_img_s",
    ),
    "files_vs_prototype_generator": ("pipeline.files_img_s", "pipeline.prototype_generator_img_s"),
    # Same JPEGs on both sides: the pipeline on the corpus's JPEGs vs decoding them in full.
    "tfrecords_vs_decode_ceiling": (
        "pipeline.jpeg_only.tfrecords_img_s",
        "pipeline.decode_ceiling_img_s",
    ),
    "files_vs_decode_ceiling": ("pipeline.jpeg_only.files_img_s", "pipeline.decode_ceiling_img_s"),
    # Whole corpus vs decoding every one of its files in full (PNG and WebP included).
    "tfrecords_vs_mixed_decode_ceiling": (
        "pipeline.tfrecords_img_s",
        "pipeline.decode_ceiling_mixed_img_s",
    ),
    "jpeg_only_tfrecords_vs_prototype_generator": (
        "pipeline.jpeg_only.tfrecords_img_s",
        "pipeline.jpeg_only.prototype_generator_img_s",
    ),
    "tfrecords_patch_vs_files_patch": (
        "pipeline.tfrecords_patch_img_s",
        "pipeline.files_patch_img_s",
    ),
    # Patch mode from TFRecords on the corpus's JPEGs vs decoding only their patch windows.
    "tfrecords_patch_vs_crop_decode_ceiling": (
        "pipeline.jpeg_only.tfrecords_patch_img_s",
        "pipeline.crop_decode_ceiling_patches_s",
    ),
    "pipeline_fed_vs_synthetic_training": ("train.pipeline_img_s", "train.synthetic_img_s"),
    "auto_vs_float32_precision": ("train.auto_precision_img_s", "train.float32_img_s"),
    "xla_on_vs_off": ("train.xla_on_img_s", "train.xla_off_img_s"),
    "predict_whole_vs_model_only": ("predict.whole_mp_s", "predict.model_only_mp_s"),
}


# The input-pipeline issue's targets (full, non-quick runs on a realistic corpus): 4x the
# prototype's generator on mixed formats, 1.5x a full JPEG decode for resize mode (DCT-scaled
# decoding does less work), 0.9x the crop-decode ceiling in patch mode, 0.95 for training fed
# by the pipeline vs on a constant batch.
TARGETS = {
    "tfrecords_vs_prototype_generator": 4.0,
    "tfrecords_vs_decode_ceiling": 1.5,
    "tfrecords_patch_vs_crop_decode_ceiling": 0.9,
    "pipeline_fed_vs_synthetic_training": 0.95,
    "auto_vs_float32_precision": 1.5,
    "predict_whole_vs_model_only": 0.85,
}


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "processor": platform.processor() or None,
        "gpus": hardware.gpu_count(),
        "cpu_bf16": sorted(hardware.cpu_flags() & hardware.BF16_CPU_FLAGS),
    }


def run(config: BenchConfig, log: Log = print) -> dict:
    """Every figure in one process, in `config.rounds` interleaved rounds; returns the
    JSON-ready results (medians in each section; rounds, summaries and the method beside)."""
    config.validate()
    started = time.perf_counter()
    with (
        corpus_folder(config, log) as root,
        tempfile.TemporaryDirectory(prefix="tfdenoise-bench-records-") as folder,
    ):
        work = Path(folder)
        files = corpus_files(root, config.images)
        feeds = make_feeds(files, work, "all", log)
        jpeg_files = [f for f in files if f.info.decoder == image_files.Decoder.JPEG]
        jpeg_feeds = None
        if 2 <= len(jpeg_files) < len(files):
            jpeg_feeds = make_feeds(jpeg_files, work, "jpeg", log)
        elif len(jpeg_files) == len(files):
            jpeg_feeds = feeds
        patch_spec = pipeline_specs(config)["patch"]
        pipe = pipeline_figures(config, feeds, jpeg_feeds)
        groups = [
            FigureGroup("pipeline", pipe, pipeline_info(config, files)),
            training_group(config, feeds.tfrecords(patch_spec), "tfrecords", log),
            predict_group(config, files, work / "predict", log),
        ]
        results = collect(groups, config.rounds, log)
        results["corpus"] = {
            "path": config.corpus or "generated from the sample photos",
            "images_used": len(files),
        }
    results["targets"] = TARGETS
    results["config"] = dataclasses.asdict(config)
    results["machine"] = machine()
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def _subset_folder(files: Sequence[image_files.ImageFile], folder: Path) -> Path:
    """A folder of symlinks to exactly the measured files, for the TFRecord writer.

    Relative paths are kept, so each file lands in the same split as in the folder pipeline.
    """
    for image_file in files:
        link = folder / image_file.relpath
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(image_file.path).resolve())
    return folder


@dataclasses.dataclass(frozen=True)
class BenchRow:
    """One row of the bench table: a figure (median over rounds, with its min-max spread), and
    the ratio it is judged by (median of per-round ratios, with its spread) and its target."""

    figure: str
    value: float | None
    unit: str
    ratio: float | None = None
    versus: str = ""
    target: float | None = None
    spread: tuple[float, float] | None = None  # (min, max) over rounds; None for one round
    ratio_spread: tuple[float, float] | None = None

    @property
    def met(self) -> bool | None:
        """Whether the ratio meets its target; None where there is no target or no ratio."""
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target


def _spread(summary: dict | None) -> tuple[float, float] | None:
    """(min, max) of a summary taken over two rounds or more; one round has no spread."""
    if not summary or summary["rounds"] < 2:
        return None
    return summary["min"], summary["max"]


def table_rows(results: dict) -> list[BenchRow]:
    """The rows `tfdenoise bench` prints, from the results of one run (ratios from it only)."""
    pipe, train, prediction = results["pipeline"], results["train"], results["predict"]
    figures, ratio_summary = results["summary"]["figures"], results["summary"]["ratios"]
    rows: list[BenchRow] = []

    def row(figure: str, key: str | None, unit: str, ratio_key=None, versus="") -> None:
        summary = figures.get(key) if key else None
        ratio = ratio_summary.get(ratio_key) if ratio_key else None
        rows.append(
            BenchRow(
                figure,
                summary["median"] if summary else None,
                unit if key else "",
                ratio["median"] if ratio else None,
                versus,
                TARGETS.get(ratio_key),
                _spread(summary),
                _spread(ratio),
            )
        )

    patches = (
        f"{pipe['patch_mode']['patch_size']}², {pipe['patch_mode']['patches_per_image']}/image"
    )
    row(
        f"pipeline.prototype_generator ({pipe['reader']}, 1 thread)",
        "pipeline.prototype_generator_img_s",
        "img/s",
    )
    row(
        "pipeline.files (224 resize)",
        "pipeline.files_img_s",
        "img/s",
        "files_vs_prototype_generator",
        "prototype generator",
    )
    row(
        "pipeline.tfrecords (224 resize) [headline]",
        "pipeline.tfrecords_img_s",
        "img/s",
        "tfrecords_vs_prototype_generator",
        "prototype generator",
    )
    row("", None, "", "tfrecords_vs_mixed_decode_ceiling", "all-format ceiling")
    row("pipeline.decode_ceiling (all formats)", "pipeline.decode_ceiling_mixed_img_s", "img/s")
    row(f"pipeline.files (patches {patches})", "pipeline.files_patch_img_s", "patch/s")
    row(
        "pipeline.tfrecords (patches)",
        "pipeline.tfrecords_patch_img_s",
        "patch/s",
        "tfrecords_patch_vs_files_patch",
        "files (patches)",
    )
    row("pipeline.decode_ceiling (JPEGs)", "pipeline.decode_ceiling_img_s", "img/s")
    row(
        "JPEGs only: prototype_generator",
        "pipeline.jpeg_only.prototype_generator_img_s",
        "img/s",
    )
    row(
        "JPEGs only: files (224 resize)",
        "pipeline.jpeg_only.files_img_s",
        "img/s",
        "files_vs_decode_ceiling",
        "decode ceiling",
    )
    row(
        "JPEGs only: tfrecords (224 resize)",
        "pipeline.jpeg_only.tfrecords_img_s",
        "img/s",
        "tfrecords_vs_decode_ceiling",
        "decode ceiling",
    )
    row("", None, "", "jpeg_only_tfrecords_vs_prototype_generator", "prototype generator")
    row(
        "pipeline.crop_decode_ceiling (JPEG windows)",
        "pipeline.crop_decode_ceiling_patches_s",
        "patch/s",
    )
    row(
        "JPEGs only: tfrecords (patches) [patch mode]",
        "pipeline.jpeg_only.tfrecords_patch_img_s",
        "patch/s",
        "tfrecords_patch_vs_crop_decode_ceiling",
        "crop-decode ceiling",
    )
    row("train.synthetic", "train.synthetic_img_s", "img/s")
    row(
        f"train.pipeline ({train['pipeline_source']})",
        "train.pipeline_img_s",
        "img/s",
        "pipeline_fed_vs_synthetic_training",
        "synthetic",
    )
    row("train.float32", "train.float32_img_s", "img/s")
    row(
        f"train.auto_precision ({train['precision_auto']})",
        "train.auto_precision_img_s",
        "img/s",
        "auto_vs_float32_precision",
        "float32",
    )
    row("train.xla_off", "train.xla_off_img_s", "img/s")
    row("train.xla_on", "train.xla_on_img_s", "img/s", "xla_on_vs_off", "XLA off")
    row("predict (full-size images, 1 pass)", "predict.megapixels_per_s", "MP/s")
    passes = prediction["passes"]
    row(f"predict.model_only ({passes} passes)", "predict.model_only_mp_s", "MP/s")
    row(
        "predict.whole (JPEG -> PNG files)",
        "predict.whole_mp_s",
        "MP/s",
        "predict_whole_vs_model_only",
        "model only",
    )
    return rows
