"""The training figures: the U-Net's steps on a constant batch (model cost only) and fed by
the pipeline, float32 vs auto precision, XLA on vs off."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from tfdenoise import hardware, models
from tfdenoise.bench.config import BenchConfig
from tfdenoise.bench.rounds import BenchFigure, FigureGroup, Log
from tfdenoise.train.fit import compile_denoiser


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
