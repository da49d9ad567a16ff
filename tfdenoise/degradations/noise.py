"""Noise models, drawn with TF ops so they run on the accelerator inside train/test steps.

Every model is a pure function of (clean images, seed): `tf.random.stateless_*` ops only.
Training passes a fresh seed each step (from the model's Keras SeedGenerator), so noise is
new every step; evaluation passes fixed seeds, so every run is scored on the same noisy images.
Images are float32 in [0, 1], shape [batch, height, width, channels]; outputs are clipped to
[0, 1] like a real sensor or scanner would.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import tensorflow as tf

from tfdenoise.config import SIGMA_SAMPLINGS


class NoiseModel(Protocol):
    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor: ...


def _seeds(seed: tf.Tensor, count: int) -> list[tf.Tensor]:
    """Independent stateless seeds derived from one."""
    split = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=count)
    return [split[i] for i in range(count)]


def _per_image(clean: tf.Tensor, seed, low, high) -> tf.Tensor:
    """One uniform draw per image, shaped to broadcast over its pixels."""
    batch = tf.shape(clean)[0]
    return tf.random.stateless_uniform([batch, 1, 1, 1], seed, low, high, dtype=tf.float32)


@dataclasses.dataclass(frozen=True)
class UniformAmplitude:
    """The prototype's noise: per-image amplitude a ~ U(0, max), per-pixel noise U(-a, a)."""

    max_amplitude: float = 0.5

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        amplitude_seed, pixel_seed = _seeds(seed, 2)
        amplitude = _per_image(clean, amplitude_seed, 0.0, self.max_amplitude)
        unit = tf.random.stateless_uniform(tf.shape(clean), pixel_seed, -1.0, 1.0)
        return tf.clip_by_value(clean + amplitude * unit, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """Additive white Gaussian noise with a per-image sigma in [sigma_min, sigma_max] (0-255).

    sampling "uniform" spreads sigma evenly; "low" gives it a density falling linearly to zero
    at sigma_max (half the images below ~29% of the range), for the mild noise scans mostly
    have: a blind model's capacity otherwise goes to heavy noise that scores the same dB.
    """

    sigma_min: float = 0.0
    sigma_max: float = 55.0
    sampling: str = "uniform"

    def __post_init__(self) -> None:
        if self.sampling not in SIGMA_SAMPLINGS:
            raise ValueError(
                f"sigma sampling must be one of {SIGMA_SAMPLINGS}, got {self.sampling!r}"
            )

    def _sigma(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        unit = _per_image(clean, seed, 0.0, 1.0)
        if self.sampling == "low":  # inverse CDF of the density 2 (1 - x) on [0, 1]
            unit = 1.0 - tf.sqrt(1.0 - unit)
        return self.sigma_min + (self.sigma_max - self.sigma_min) * unit

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        sigma_seed, pixel_seed = _seeds(seed, 2)
        sigma = self._sigma(clean, sigma_seed) / 255.0
        normal = tf.random.stateless_normal(tf.shape(clean), pixel_seed)
        return tf.clip_by_value(clean + sigma * normal, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class PoissonGaussian:
    """Sensor noise: shot noise with variance x / peak plus Gaussian read noise.

    `peak` is the photon count at full scale, log-uniform per image: low peaks are dim,
    grainy captures. Shot noise uses the Gaussian approximation of the Poisson law, which is
    accurate for the counts that matter and keeps the op differentiable and XLA-friendly.
    """

    peak_min: float = 10.0
    peak_max: float = 1000.0
    read_sigma_max: float = 10.0  # 0-255 scale

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        peak_seed, read_seed, shot_seed, pixel_seed = _seeds(seed, 4)
        log_peak = _per_image(clean, peak_seed, math.log(self.peak_min), math.log(self.peak_max))
        read_sigma = _per_image(clean, read_seed, 0.0, self.read_sigma_max) / 255.0
        shot = tf.sqrt(clean / tf.exp(log_peak)) * tf.random.stateless_normal(
            tf.shape(clean), shot_seed
        )
        read = read_sigma * tf.random.stateless_normal(tf.shape(clean), pixel_seed)
        return tf.clip_by_value(clean + shot + read, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class SaltPepper:
    """Impulse noise: a fraction p ~ U(0, max_fraction) of pixels set to black or white."""

    max_fraction: float = 0.1

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        fraction_seed, where_seed, value_seed = _seeds(seed, 3)
        fraction = _per_image(clean, fraction_seed, 0.0, self.max_fraction)
        pixel_shape = tf.concat([tf.shape(clean)[:3], [1]], axis=0)
        hit = tf.random.stateless_uniform(pixel_shape, where_seed) < fraction
        white = tf.random.stateless_uniform(pixel_shape, value_seed) < 0.5
        impulse = tf.cast(white, clean.dtype)
        return tf.where(hit, impulse, clean)


@dataclasses.dataclass(frozen=True)
class Mixture:
    """Blind training: each image gets one component, chosen with the given weights.

    "clean" images (weight `clean`) teach the model to leave noise-free photos untouched.
    """

    components: tuple[tuple[float, NoiseModel], ...]
    clean: float = 0.0

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        seeds = _seeds(seed, len(self.components) + 1)
        total = self.clean + sum(weight for weight, _ in self.components)
        choice = _per_image(clean, seeds[0], 0.0, total)
        result = clean
        edge = self.clean
        for (weight, model), component_seed in zip(self.components, seeds[1:]):
            chosen = (choice >= edge) & (choice < edge + weight)
            result = tf.where(chosen, model(clean, component_seed), result)
            edge += weight
        return result
