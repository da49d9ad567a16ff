"""Training losses. Registered under the package name, so a `.keras` file that names one loads."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import tensorflow as tf

from tfdenoise.config import DEFAULT_PSNR_CAP_DB
from tfdenoise.models import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
def charbonnier(clean: tf.Tensor, denoised: tf.Tensor) -> tf.Tensor:
    """Smooth L1: sqrt(d^2 + eps^2); robust like L1, differentiable at zero."""
    diff = tf.cast(denoised, tf.float32) - tf.cast(clean, tf.float32)
    return tf.reduce_mean(tf.sqrt(diff * diff + 1e-6), axis=[1, 2, 3])


# The default cap of the -PSNR loss: the MSE of a 50 dB image is its floor, so below it an image
# adds (almost) no gradient and clean training patches, restored near-perfectly, cannot dominate
# the batch with a huge 1/MSE weight.
PSNR_LOSS_CAP_DB = DEFAULT_PSNR_CAP_DB


def psnr_floor(cap_db: float) -> float:
    """The MSE added inside the -PSNR loss's logarithm so that it saturates at `cap_db`."""
    return 10.0 ** (-cap_db / 10.0)


PSNR_LOSS_FLOOR = psnr_floor(PSNR_LOSS_CAP_DB)


def _negative_psnr(clean: tf.Tensor, denoised: tf.Tensor, floor: float) -> tf.Tensor:
    diff = tf.cast(denoised, tf.float32) - tf.cast(clean, tf.float32)
    mse = tf.reduce_mean(diff * diff, axis=[1, 2, 3])
    return (10.0 / math.log(10.0)) * tf.math.log(mse + floor)


@keras.saving.register_keras_serializable(package=PACKAGE)
def negative_psnr(clean: tf.Tensor, denoised: tf.Tensor) -> tf.Tensor:
    """Per-image -PSNR in dB (floored at 50 dB): minimising it maximises the mean PSNR.

    An L1 or MSE batch mean is dominated by the noisiest images; on a log scale every image's
    error counts relative to its own size (the gradient weighs each image by 1 / its MSE), so
    a blind denoiser does not trade faint-noise quality for heavy-noise quality.
    """
    return _negative_psnr(clean, denoised, PSNR_LOSS_FLOOR)


@keras.saving.register_keras_serializable(package=PACKAGE)
class NegativePSNR(keras.losses.Loss):
    """`negative_psnr` saturating at `cap_db` instead of 50 dB.

    Why a lower cap: the gradient weighs each image by 1 / (MSE + floor), so with a 50 dB cap a
    clean training patch weighs ~100x a noisy one restored to 30 dB. A model trained so learns
    to pass anything that looks clean through untouched, clean JPEGs included: real-stage5
    (bundled until 2026-12-06) leaves quality-30 JPEGs exactly as they are (its last feature
    map is the same constant for a clean and a compressed patch), because deblocking would
    cost more on the clean patches it cannot tell apart than it gains. A 40 dB cap still keeps
    clean photos above 40 dB (the target) and leaves room to learn the compression artefacts:
    the bundled real-stage9, trained from before real-stage5's loss with a 40 dB cap, does.
    """

    def __init__(self, cap_db: float = PSNR_LOSS_CAP_DB, name: str = "negative_psnr", **kwargs):
        super().__init__(name=name, **kwargs)
        self.cap_db = float(cap_db)

    def call(self, y_true, y_pred):
        return _negative_psnr(y_true, y_pred, psnr_floor(self.cap_db))

    def get_config(self):
        return {**super().get_config(), "cap_db": self.cap_db}


def build_loss(name: str, psnr_cap_db: float = PSNR_LOSS_CAP_DB) -> keras.losses.Loss | Callable:
    """The loss behind `fit --loss NAME`; `psnr_cap_db` only applies to "psnr"."""
    if name == "psnr":
        return negative_psnr if psnr_cap_db == PSNR_LOSS_CAP_DB else NegativePSNR(psnr_cap_db)
    losses = {
        "l1": keras.losses.MeanAbsoluteError,
        "mse": keras.losses.MeanSquaredError,
    }
    if name == "charbonnier":
        return charbonnier
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose l1, mse, charbonnier or psnr")
    return losses[name]()
