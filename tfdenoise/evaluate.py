"""Scoring a denoiser: PSNR/SSIM per fixed noise condition, and original/noisy/denoised grids.

Noise here is stateless and seeded by each batch's first element index plus the condition, so
every model and every run is scored on exactly the same noisy images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from tfdenoise.models import EVAL_SEED_SALT, to_unit_float
from tfdenoise.noise import EVAL_CONDITIONS, NoiseModel


@dataclasses.dataclass
class ConditionScore:
    """Mean scores over the images of one noise condition."""

    images: int
    psnr_noisy: float
    psnr_denoised: float
    ssim_noisy: float
    ssim_denoised: float

    @property
    def psnr_gain(self) -> float:
        return self.psnr_denoised - self.psnr_noisy


def condition_seed(index: tf.Tensor, condition_number: int) -> tf.Tensor:
    """The fixed seed of a batch under a condition."""
    return tf.stack([tf.cast(index, tf.int32), tf.constant(EVAL_SEED_SALT + 1 + condition_number)])


def _scores(clean, image):
    return (tf.image.psnr(clean, image, max_val=1.0), tf.image.ssim(clean, image, max_val=1.0))


def evaluate_conditions(
    model,
    dataset: tf.data.Dataset,
    conditions: Mapping[str, NoiseModel] = EVAL_CONDITIONS,
) -> dict[str, ConditionScore]:
    """Mean PSNR/SSIM of the noisy input and of the model's output, per condition.

    `dataset` yields {"clean": uint8 batch, "index": element indices}, as eval_pipeline does.
    """
    results = {}
    for number, (name, condition) in enumerate(conditions.items()):

        @tf.function(reduce_retracing=True)
        def step(clean, index, condition=condition, number=number):
            clean = to_unit_float(clean)
            noisy = condition(clean, condition_seed(index[0], number))
            denoised = tf.clip_by_value(model(noisy, training=False), 0.0, 1.0)
            (psnr_noisy, ssim_noisy), (psnr_denoised, ssim_denoised) = (
                _scores(clean, noisy), _scores(clean, denoised))
            return psnr_noisy, psnr_denoised, ssim_noisy, ssim_denoised

        sums = np.zeros(4)
        count = 0
        for batch in dataset:
            values = [v.numpy() for v in step(batch["clean"], batch["index"])]
            sums += [v.sum() for v in values]
            count += len(values[0])
        if count == 0:
            raise ValueError("no images to evaluate")
        means = sums / count
        results[name] = ConditionScore(count, *map(float, means))
    return results


def denoise_examples(model, clean_uint8: tf.Tensor, condition: NoiseModel,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, noisy, denoised) float arrays in [0, 1] for a small batch, with fixed noise."""
    clean = to_unit_float(clean_uint8)
    noisy = condition(clean, tf.constant([seed, EVAL_SEED_SALT], tf.int32))
    denoised = tf.clip_by_value(model(noisy, training=False), 0.0, 1.0)
    return clean.numpy(), noisy.numpy(), denoised.numpy()


def comparison_grid(clean: np.ndarray, noisy: np.ndarray, denoised: np.ndarray,
                    gap: int = 4) -> np.ndarray:
    """One uint8 image: originals on the top row, noisy in the middle, denoised at the bottom."""
    rows = []
    for batch in (clean, noisy, denoised):
        tiles = []
        for image in batch:
            tiles += [image, np.ones((image.shape[0], gap, 3), image.dtype)]
        rows += [np.concatenate(tiles[:-1], axis=1)]
        rows += [np.ones((gap, rows[-1].shape[1], 3), rows[-1].dtype)]
    grid = np.concatenate(rows[:-1], axis=0)
    return np.round(np.clip(grid, 0.0, 1.0) * 255).astype(np.uint8)


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write a uint8 image atomically (temp file then rename)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image).save(temporary, format="PNG")
    temporary.replace(path)
