"""Scores of a denoiser, shared by training, its callbacks and `tfdenoise evaluate`: PSNR/SSIM,
colour shift (CIEDE2000), the seeded scoring step and the original/noisy/denoised grid.

Noise here is stateless and seeded by each batch's first element index plus the condition, so
every model and every run is scored on exactly the same noisy images.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tfdenoise.degradations.catalog import EVAL_CONDITIONS
from tfdenoise.degradations.noise import NoiseModel
from tfdenoise.io import atomic
from tfdenoise.models import EVAL_SEED_SALT, PACKAGE, to_unit_float

# Identical images have infinite PSNR (a flat patch under near-zero noise, restored exactly);
# one such image would make a batch's or an epoch's mean infinite, so each counts at most this.
PSNR_CAP = 100.0


@keras.saving.register_keras_serializable(package=PACKAGE)
def psnr(clean: tf.Tensor, denoised: tf.Tensor) -> tf.Tensor:
    """Per-image PSNR in dB of the clipped output, for images in [0, 1], capped at PSNR_CAP."""
    denoised = tf.clip_by_value(tf.cast(denoised, tf.float32), 0.0, 1.0)
    return tf.minimum(tf.image.psnr(tf.cast(clean, tf.float32), denoised, max_val=1.0), PSNR_CAP)


@dataclasses.dataclass
class ConditionScore:
    """Mean scores over the images of one noise condition."""

    images: int
    psnr_noisy: float
    psnr_denoised: float
    ssim_noisy: float
    ssim_denoised: float


def condition_seed(index: tf.Tensor, condition_number: int | tf.Tensor) -> tf.Tensor:
    """The fixed seed of a batch under a condition."""
    salt = tf.cast(condition_number, tf.int32) + (EVAL_SEED_SALT + 1)
    return tf.stack([tf.cast(index, tf.int32), salt])


def scores(clean: tf.Tensor, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-image (PSNR, SSIM) of images in [0, 1] against the clean ones."""
    return psnr(clean, image), tf.image.ssim(clean, tf.clip_by_value(image, 0.0, 1.0), max_val=1.0)


def scoring_step(model, conditions: Sequence[NoiseModel]):
    """A compiled step scoring one batch under one of `conditions`, picked by its place.

    One trace serves every condition and batch shape: the condition is a tensor argument that
    selects its noise in the graph (`tf.switch_case`), and the signature leaves batch and image
    sizes open. A step per condition would trace the whole model once per condition, and TF
    counts those traces together (they share this code) and warns about retracing.
    """

    @tf.function(
        input_signature=(
            tf.TensorSpec([None, None, None, 3], tf.uint8),  # clean images
            tf.TensorSpec([], tf.int64),  # the batch's first element index: seeds its noise
            tf.TensorSpec([], tf.int32),  # the condition's place in `conditions`
            tf.TensorSpec([], tf.int32),  # the condition's number: seeds its noise
        )
    )
    def step(clean, first_index, place, number):
        clean = to_unit_float(clean)
        seed = condition_seed(first_index, number)
        branches = [functools.partial(condition, clean, seed) for condition in conditions]
        noisy = tf.switch_case(place, branches)
        denoised = tf.clip_by_value(model(noisy, training=False), 0.0, 1.0)
        (psnr_noisy, ssim_noisy), (psnr_denoised, ssim_denoised) = (
            scores(clean, noisy),
            scores(clean, denoised),
        )
        return psnr_noisy, psnr_denoised, ssim_noisy, ssim_denoised

    return step


class ConditionScorer:
    """Mean PSNR/SSIM of the noisy input and of a model's output, per condition.

    Keeps one compiled step for the model's life: fit scores the validation images every
    epoch, and new steps each time would trace the whole model again per condition and epoch.
    The step reads the model's variables, so weights swapped in between calls (the --ema
    average) are what get scored.

    Each condition's noise is seeded by its number in `numbers` (default: its place in
    `conditions`), so a condition scored alone can see the same noise as in a longer list.
    """

    def __init__(
        self,
        model,
        conditions: Mapping[str, NoiseModel] = EVAL_CONDITIONS,
        numbers: Mapping[str, int] | None = None,
    ):
        self.model = model
        self.numbers = {
            name: place if numbers is None else numbers[name]
            for place, name in enumerate(conditions)
        }
        self.step = scoring_step(model, tuple(conditions.values()))

    def __call__(self, dataset: tf.data.Dataset) -> dict[str, ConditionScore]:
        """`dataset` yields {"clean": uint8 batch, "index": element indices}, as eval_pipeline
        does."""
        results = {}
        for place, (name, number) in enumerate(self.numbers.items()):
            sums = np.zeros(4)
            count = 0
            for batch in dataset:
                outputs = self.step(
                    batch["clean"],
                    tf.cast(batch["index"][0], tf.int64),
                    tf.constant(place, tf.int32),
                    tf.constant(number, tf.int32),
                )
                values = [v.numpy() for v in outputs]
                sums += [v.sum() for v in values]
                count += len(values[0])
            if count == 0:
                raise ValueError("no images to evaluate")
            results[name] = ConditionScore(count, *map(float, sums / count))
        return results


def evaluate_conditions(
    model,
    dataset: tf.data.Dataset,
    conditions: Mapping[str, NoiseModel] = EVAL_CONDITIONS,
    numbers: Mapping[str, int] | None = None,
) -> dict[str, ConditionScore]:
    """ConditionScorer's scores, once (for a model scored once: fit's test split)."""
    return ConditionScorer(model, conditions, numbers)(dataset)


def denoise_examples(
    model, clean_uint8: tf.Tensor, condition: NoiseModel, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, noisy, denoised) float arrays in [0, 1] for a small batch, with fixed noise."""
    clean = to_unit_float(clean_uint8)
    noisy = condition(clean, tf.constant([seed, EVAL_SEED_SALT], tf.int32))
    denoised = tf.clip_by_value(model(noisy, training=False), 0.0, 1.0)
    return clean.numpy(), noisy.numpy(), denoised.numpy()


def comparison_grid(
    clean: np.ndarray, noisy: np.ndarray, denoised: np.ndarray, gap: int = 4
) -> np.ndarray:
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


def save_grid(grid: np.ndarray, path: str | Path) -> None:
    """Write a uint8 grid image as PNG atomically (temp file then rename)."""
    atomic.write_with(
        Path(path), lambda temporary: Image.fromarray(grid).save(temporary, format="PNG")
    )


COLOUR_SIGMA = 2.0  # px: the low-pass before Delta E; removes sigma-25 noise, keeps colour areas
COLOUR_STRIPE_ROWS = 256  # rows per stripe: Lab float64 temporaries stay small on any image


def _low_pass_lab(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-blurred (per channel, edges replicated) uint8 sRGB -> CIELAB (D65)."""
    from skimage.color import rgb2lab
    from skimage.filters import gaussian

    blurred = gaussian(
        rgb.astype(np.float32) / 255.0,
        sigma=sigma,
        mode="nearest",
        channel_axis=-1,
        preserve_range=True,
    )
    return rgb2lab(np.clip(blurred, 0.0, 1.0))


def colour_shift(clean: np.ndarray, result: np.ndarray, sigma: float = COLOUR_SIGMA) -> float:
    """Mean CIEDE2000 Delta E between low-passed uint8 RGB images.

    The low-pass averages zero-mean noise (and residual grain) away, so what remains is a
    shift of colour over areas -- what a viewer of a restored archive would see as "the
    colours changed". Delta E 1 is about the smallest difference a person notices. Computed in
    stripes with 4 sigma of real context above and below, so the result equals the
    whole-image computation while memory stays a few MB for any image size.
    """
    from skimage.color import deltaE_ciede2000

    if clean.shape != result.shape:
        raise ValueError(f"shapes differ: {clean.shape} vs {result.shape}")
    height = clean.shape[0]
    margin = int(np.ceil(4 * sigma))
    total = 0.0
    for top in range(0, height, COLOUR_STRIPE_ROWS):
        start, stop = max(0, top - margin), min(height, top + COLOUR_STRIPE_ROWS + margin)
        keep = slice(top - start, min(height, top + COLOUR_STRIPE_ROWS) - start)
        lab_clean = _low_pass_lab(clean[start:stop], sigma)[keep]
        lab_result = _low_pass_lab(result[start:stop], sigma)[keep]
        total += float(deltaE_ciede2000(lab_clean, lab_result, channel_axis=-1).sum())
    return total / (clean.shape[0] * clean.shape[1])


def image_scores(clean: np.ndarray, result: np.ndarray) -> tuple[float, float, float]:
    """PSNR (dB), SSIM and colour shift (Delta E) of a uint8 result against the clean image."""
    clean_f, result_f = to_unit_float(tf.constant(clean)), to_unit_float(tf.constant(result))
    psnr_value, ssim = scores(clean_f, result_f)
    return float(psnr_value), float(ssim), colour_shift(clean, result)
