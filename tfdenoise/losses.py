"""Training losses. Registered under the package name, so a `.keras` file that names one loads."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import tensorflow as tf

from tfdenoise.models import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
def charbonnier(clean: tf.Tensor, denoised: tf.Tensor) -> tf.Tensor:
    """Smooth L1: sqrt(d^2 + eps^2); robust like L1, differentiable at zero."""
    diff = tf.cast(denoised, tf.float32) - tf.cast(clean, tf.float32)
    return tf.reduce_mean(tf.sqrt(diff * diff + 1e-6), axis=[1, 2, 3])


# MSE of a 50 dB image: below it an image adds (almost) no gradient, so clean training
# patches, restored near-perfectly, cannot dominate the batch with a huge 1/MSE weight.
PSNR_LOSS_FLOOR = 1e-5


@keras.saving.register_keras_serializable(package=PACKAGE)
def negative_psnr(clean: tf.Tensor, denoised: tf.Tensor) -> tf.Tensor:
    """Per-image -PSNR in dB (floored at 50 dB): minimising it maximises the mean PSNR.

    An L1 or MSE batch mean is dominated by the noisiest images; on a log scale every image's
    error counts relative to its own size (the gradient weighs each image by 1 / its MSE), so
    a blind denoiser does not trade faint-noise quality for heavy-noise quality.
    """
    diff = tf.cast(denoised, tf.float32) - tf.cast(clean, tf.float32)
    mse = tf.reduce_mean(diff * diff, axis=[1, 2, 3])
    return (10.0 / math.log(10.0)) * tf.math.log(mse + PSNR_LOSS_FLOOR)


def build_loss(name: str) -> keras.losses.Loss | Callable:
    if name == "psnr":
        return negative_psnr
    losses = {
        "l1": keras.losses.MeanAbsoluteError,
        "mse": keras.losses.MeanSquaredError,
    }
    if name == "charbonnier":
        return charbonnier
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose l1, mse, charbonnier or psnr")
    return losses[name]()
