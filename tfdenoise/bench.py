"""The measurements behind `tfdenoise bench`: input cost and model cost, seen apart.

Like nanoGPT's benchmark, every figure is taken after a warm-up, and the model is timed both
on a constant in-memory batch (synthetic: model cost only) and fed by the real pipeline, so
the difference is what the input pipeline costs the model. Comparisons are meant as ratios
of figures from the same run: the machine this runs on is shared and absolute numbers drift.

Figures (JSON keys, dotted = nested):
  pipeline.prototype_generator_img_s   the prototype's Python generator (cv2 or PIL, NumPy noise)
  pipeline.files_img_s            our folder pipeline, same 224x224 output (headline)
  pipeline.tfrecords_img_s        our TFRecord pipeline, same output (headline)
  pipeline.decode_ceiling_img_s   every core decoding the same JPEGs, nothing else
  train.synthetic_img_s / pipeline_img_s / float32_img_s / auto_precision_img_s /
  xla_on_img_s / xla_off_img_s    training steps, images (patches) per second
  predict.megapixels_per_s        full-size images through the model
"""

from __future__ import annotations

import contextlib
import dataclasses
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
    """Sizes of one benchmark run; `quick()` is the ~4-minute variant."""

    # Existing image folder to measure on; None = generate `images` images from the sample photos.
    corpus: str | None = None
    # Images of the corpus used (the train split of its first `images` files, sorted by name).
    images: int = 600
    # Seconds each pipeline figure is timed for, after its warm-up.
    pipeline_seconds: float = 10.0
    pipeline_warmup_batches: int = 5
    # Training: timed for `train_seconds` but at least `train_min_steps`, after warm-up steps.
    train_seconds: float = 30.0
    train_min_steps: int = 5
    train_warmup_steps: int = 3
    # Alternating synthetic/pipeline-fed rounds (median of each), to cancel drifting load.
    train_rounds: int = 2
    # XLA on CPU is slow and its compile takes ~40 s: fewer timed steps.
    xla_min_steps: int = 3
    # Model and batch: FitConfig's defaults unless overridden (tests use a tiny U-Net).
    widths: tuple[int, ...] = config_module.FitConfig.widths
    batch_size: int = config_module.FitConfig.batch_size
    patch_size: int = config_module.FitConfig.patch_size
    patches_per_image: int = config_module.FitConfig.patches_per_image
    resize: int = 224  # the prototype's input size: output of the pipeline comparisons
    # Prediction: up to this many corpus images (largest first), each capped in size.
    predict_images: int = 4
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
            train_rounds=1,
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
            (self.train_rounds >= 1, "train_rounds must be >= 1"),
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


def measure_pipelines(
    config: BenchConfig, feeds: Feeds, jpeg_feeds: Feeds | None, log: Log
) -> dict:
    """All pipeline figures, in images (resize mode) or patches (patch mode) per second.

    Headline: resize mode on the whole corpus (the prototype's output: 224x224 images).
    `jpeg_only` repeats the resize figures on the corpus's JPEGs alone, the very files the
    decode ceiling decodes, so that ratio compares like with like.
    """
    seconds, warmup, batch = (
        config.pipeline_seconds,
        config.pipeline_warmup_batches,
        config.batch_size,
    )
    files = feeds.files
    result: dict = {"reader": prototype_reader_name(), "images": len(files)}
    specs = pipeline_specs(config)

    def resize_figures(subject: Feeds, label: str) -> dict:
        figures = {}
        log(f"pipeline{label}: prototype generator ({result['reader']}, one thread) ...")
        generator = prototype_generator(
            [f.path for f in subject.files], batch, config.resize, config.seed
        )
        figures["prototype_generator_img_s"] = measure_rate(
            lambda: len(next(generator)[0]), warmup, seconds
        )
        log(f"pipeline{label}: folder, resize mode ...")
        figures["files_img_s"] = dataset_rate(
            subject.folder(specs["resize"]), batch, warmup, seconds
        )
        log(f"pipeline{label}: TFRecords, resize mode ...")
        figures["tfrecords_img_s"] = dataset_rate(
            subject.tfrecords(specs["resize"]), batch, warmup, seconds
        )
        return figures

    result.update(resize_figures(feeds, ""))
    log("pipeline: folder, patch mode ...")
    result["files_patch_img_s"] = dataset_rate(feeds.folder(specs["patch"]), batch, warmup, seconds)
    log("pipeline: TFRecords, patch mode ...")
    result["tfrecords_patch_img_s"] = dataset_rate(
        feeds.tfrecords(specs["patch"]), batch, warmup, seconds
    )

    jpegs = [Path(f.path).read_bytes() for f in files if f.info.decoder == image_files.Decoder.JPEG]
    result["decode_ceiling_img_s"] = None
    if jpegs:
        log(f"pipeline: decode ceiling ({len(jpegs)} JPEGs in memory, all cores) ...")
        result["decode_ceiling_img_s"] = dataset_rate(decode_ceiling(jpegs), 32, 2, seconds)
    log("pipeline: decode ceiling, every format ...")
    result["decode_ceiling_mixed_img_s"] = dataset_rate(mixed_decode_ceiling(files), 32, 2, seconds)
    if jpeg_feeds is not None:
        result["jpeg_only"] = resize_figures(jpeg_feeds, " (JPEGs only)")
    result["jpeg_share"] = round(len(jpegs) / len(files), 3)
    result["mean_megapixels"] = round(
        float(np.mean([f.info.width * f.info.height for f in files])) / 1e6, 3
    )
    result["patch_mode"] = {
        "patch_size": config.patch_size,
        "patches_per_image": config.patches_per_image,
    }
    return result


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


def measure_training(
    config: BenchConfig, feed: Callable[[], tf.data.Dataset], feed_name: str, log: Log
) -> dict:
    """Synthetic vs pipeline-fed (alternating rounds), float32 vs auto precision, XLA on vs off."""
    plan = hardware.plan()
    result: dict = {
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

    with hardware.precision_policy(plan.precision):
        model = compiled_model(config, plan.precision, plan.xla)
        synthetic, fed = [], []
        for round_index in range(config.train_rounds):
            log(f"train: synthetic batch, round {round_index + 1} ({plan.precision}) ...")
            synthetic.append(train_rate(model, synthetic_batches(config), **timing))
            log(f"train: fed by the {feed_name} pipeline, round {round_index + 1} ...")
            fed.append(train_rate(model, feed(), **timing))
    result["synthetic_img_s"] = float(np.median(synthetic))
    result["pipeline_img_s"] = float(np.median(fed))
    result["rounds"] = {"synthetic": synthetic, "pipeline": fed}
    # `auto` is the synthetic run itself (same precision, same XLA setting).
    result["auto_precision_img_s"] = result["synthetic_img_s"]

    log("train: float32 ...")
    with hardware.precision_policy("float32"):
        model = compiled_model(config, "float32", plan.xla)
        result["float32_img_s"] = train_rate(model, synthetic_batches(config), **timing)

    other_xla = not plan.xla
    log(f"train: XLA {'on' if other_xla else 'off'} ({plan.precision}) ...")
    with hardware.precision_policy(plan.precision):
        model = compiled_model(config, plan.precision, other_xla)
        xla_timing = dict(timing, min_steps=config.xla_min_steps, warmup=1)
        other = train_rate(model, synthetic_batches(config), **xla_timing)
    key_auto, key_other = (
        ("xla_on_img_s", "xla_off_img_s") if plan.xla else ("xla_off_img_s", "xla_on_img_s")
    )
    result[key_auto] = result["synthetic_img_s"]
    result[key_other] = other
    return result


# --- prediction --------------------------------------------------------------------------------


def measure_predict(config: BenchConfig, files: Sequence[image_files.ImageFile], log: Log) -> dict:
    """Megapixels per second denoising full-size corpus images (largest first, capped)."""
    cap = config.predict_max_megapixels * 1e6
    candidates = sorted(
        (f for f in files if f.info.width * f.info.height <= cap),
        key=lambda f: f.info.width * f.info.height,
        reverse=True,
    )
    chosen = candidates[: config.predict_images] or [
        min(files, key=lambda f: f.info.width * f.info.height)
    ]
    arrays = [image_files.load_rgb8(f.path) for f in chosen]
    plan = hardware.plan()
    log(f"predict: {len(arrays)} full-size images ({plan.precision}) ...")
    with hardware.precision_policy(plan.precision):
        model = models.built(models.UNet(widths=config.widths, name="unet"))
        inference.denoise_rgb8(model, arrays[-1])  # warm-up: first call builds kernels
        started = time.perf_counter()
        for array in arrays:
            inference.denoise_rgb8(model, array)
        seconds = time.perf_counter() - started
        megapixels = sum(a.shape[0] * a.shape[1] for a in arrays) / 1e6
        model_only, whole = measure_whole_predict(model, arrays, log)
    return {
        "megapixels_per_s": megapixels / seconds,
        "images": len(arrays),
        "megapixels": round(megapixels, 3),
        "precision": plan.precision,
        "passes": PREDICT_PASSES,
        "model_only_mp_s": model_only,
        "whole_mp_s": whole,
        "whole_vs_model_only": whole / model_only if model_only else None,
    }


PREDICT_PASSES = 2  # predict's default --ensemble


def measure_whole_predict(model, arrays: Sequence[np.ndarray], log: Log) -> tuple[float, float]:
    """(model only, whole predict) in MP/s with predict's defaults (2 passes, tiles): the model
    on the images in memory, then the pipelined folder job over the same images as JPEG files
    writing PNGs (start-up and the model's first call excluded from both)."""
    passes = with_passes(model, PREDICT_PASSES)
    megapixels = sum(a.shape[0] * a.shape[1] for a in arrays) / 1e6
    inference.denoise_rgb8(passes, arrays[-1])  # warm-up of the 2-pass graph
    started = time.perf_counter()
    for array in arrays:
        inference.denoise_rgb8(passes, array)
    model_only = megapixels / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory(prefix="tfdenoise-bench-predict-") as work:
        source = Path(work) / "photos"
        source.mkdir()
        for index, array in enumerate(arrays):
            keras.utils.array_to_img(array, scale=False).save(source / f"{index}.jpg", quality=92)
        log(f"predict: whole pipelined run over {len(arrays)} JPEGs -> PNG ...")
        report = pipelined.predict_folder_pipelined(
            passes, source, Path(work) / "out", folder.PredictOptions()
        )
    whole = report.megapixels_per_second if len(report.written) == len(arrays) else 0.0
    return model_only, whole


# --- the whole run --------------------------------------------------------------------------


def ratios(results: dict) -> dict:
    """The comparisons the targets are stated in (None where a figure is missing)."""
    pipeline, train = results["pipeline"], results["train"]

    def ratio(numerator, denominator):
        if numerator is None or not denominator:
            return None
        return numerator / denominator

    jpeg_only = pipeline.get("jpeg_only") or {}
    return {
        "tfrecords_vs_prototype_generator": ratio(
            pipeline["tfrecords_img_s"], pipeline["prototype_generator_img_s"]
        ),
        "files_vs_prototype_generator": ratio(
            pipeline["files_img_s"], pipeline["prototype_generator_img_s"]
        ),
        # Same JPEGs on both sides: the pipeline on the corpus's JPEGs vs decoding them in full.
        "tfrecords_vs_decode_ceiling": ratio(
            jpeg_only.get("tfrecords_img_s"), pipeline["decode_ceiling_img_s"]
        ),
        "files_vs_decode_ceiling": ratio(
            jpeg_only.get("files_img_s"), pipeline["decode_ceiling_img_s"]
        ),
        # Whole corpus vs decoding every one of its files in full (PNG and WebP included).
        "tfrecords_vs_mixed_decode_ceiling": ratio(
            pipeline["tfrecords_img_s"], pipeline["decode_ceiling_mixed_img_s"]
        ),
        "jpeg_only_tfrecords_vs_prototype_generator": ratio(
            jpeg_only.get("tfrecords_img_s"), jpeg_only.get("prototype_generator_img_s")
        ),
        "tfrecords_patch_vs_files_patch": ratio(
            pipeline["tfrecords_patch_img_s"], pipeline["files_patch_img_s"]
        ),
        "pipeline_fed_vs_synthetic_training": ratio(
            train["pipeline_img_s"], train["synthetic_img_s"]
        ),
        "auto_vs_float32_precision": ratio(train["auto_precision_img_s"], train["float32_img_s"]),
        "xla_on_vs_off": ratio(train["xla_on_img_s"], train["xla_off_img_s"]),
        "predict_whole_vs_model_only": ratio(
            results["predict"].get("whole_mp_s"), results["predict"].get("model_only_mp_s")
        ),
    }


TARGETS = {
    "tfrecords_vs_prototype_generator": 3.0,
    "tfrecords_vs_decode_ceiling": 0.9,
    "pipeline_fed_vs_synthetic_training": 0.9,
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
    """Every figure in one process and run; returns the JSON-ready results."""
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
        pipeline = measure_pipelines(config, feeds, jpeg_feeds, log)
        patch_spec = pipeline_specs(config)["patch"]
        train = measure_training(config, lambda: feeds.tfrecords(patch_spec), "tfrecords", log)
        prediction = measure_predict(config, files, log)
        results = {
            "pipeline": pipeline,
            "train": train,
            "predict": prediction,
            "corpus": {
                "path": config.corpus or "generated from the sample photos",
                "images_used": len(files),
            },
        }
    results["ratios"] = ratios(results)
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
    """One row of the bench table: a figure, and the ratio it is judged by with its target."""

    figure: str
    value: float | None
    unit: str
    ratio: float | None = None
    versus: str = ""
    target: float | None = None

    @property
    def met(self) -> bool | None:
        """Whether the ratio meets its target; None where there is no target or no ratio."""
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target


def table_rows(results: dict) -> list[BenchRow]:
    """The rows `tfdenoise bench` prints, from the results of one run (ratios from it only)."""
    pipe, train, ratio_values = results["pipeline"], results["train"], results["ratios"]
    rows: list[BenchRow] = []

    def row(figure, value, unit, ratio_key=None, versus=""):
        rows.append(
            BenchRow(
                figure,
                value,
                unit,
                ratio_values.get(ratio_key) if ratio_key else None,
                versus,
                TARGETS.get(ratio_key),
            )
        )

    jpeg = pipe.get("jpeg_only") or {}
    row(
        f"pipeline.prototype_generator ({pipe['reader']}, 1 thread)",
        pipe["prototype_generator_img_s"],
        "img/s",
    )
    row(
        "pipeline.files (224 resize)",
        pipe["files_img_s"],
        "img/s",
        "files_vs_prototype_generator",
        "prototype generator",
    )
    row(
        "pipeline.tfrecords (224 resize) [headline]",
        pipe["tfrecords_img_s"],
        "img/s",
        "tfrecords_vs_prototype_generator",
        "prototype generator",
    )
    row("", None, "", "tfrecords_vs_mixed_decode_ceiling", "all-format ceiling")
    row("pipeline.decode_ceiling (all formats)", pipe["decode_ceiling_mixed_img_s"], "img/s")
    row("pipeline.files (patches)", pipe["files_patch_img_s"], "patch/s")
    row(
        "pipeline.tfrecords (patches)",
        pipe["tfrecords_patch_img_s"],
        "patch/s",
        "tfrecords_patch_vs_files_patch",
        "files (patches)",
    )
    row("pipeline.decode_ceiling (JPEGs)", pipe["decode_ceiling_img_s"], "img/s")
    row("JPEGs only: prototype_generator", jpeg.get("prototype_generator_img_s"), "img/s")
    row(
        "JPEGs only: files (224 resize)",
        jpeg.get("files_img_s"),
        "img/s",
        "files_vs_decode_ceiling",
        "decode ceiling",
    )
    row(
        "JPEGs only: tfrecords (224 resize)",
        jpeg.get("tfrecords_img_s"),
        "img/s",
        "tfrecords_vs_decode_ceiling",
        "decode ceiling",
    )
    row("", None, "", "jpeg_only_tfrecords_vs_prototype_generator", "prototype generator")
    row("train.synthetic", train["synthetic_img_s"], "img/s")
    row(
        f"train.pipeline ({train['pipeline_source']})",
        train["pipeline_img_s"],
        "img/s",
        "pipeline_fed_vs_synthetic_training",
        "synthetic",
    )
    row("train.float32", train["float32_img_s"], "img/s")
    row(
        f"train.auto_precision ({train['precision_auto']})",
        train["auto_precision_img_s"],
        "img/s",
        "auto_vs_float32_precision",
        "float32",
    )
    row("train.xla_off", train["xla_off_img_s"], "img/s")
    row("train.xla_on", train["xla_on_img_s"], "img/s", "xla_on_vs_off", "XLA off")
    row("predict (full-size images)", results["predict"]["megapixels_per_s"], "MP/s")
    prediction = results["predict"]
    passes = prediction["passes"]
    row(f"predict.model_only ({passes} passes)", prediction["model_only_mp_s"], "MP/s")
    row(
        "predict.whole (JPEG -> PNG files)",
        prediction["whole_mp_s"],
        "MP/s",
        "predict_whole_vs_model_only",
        "model only",
    )
    return rows
