"""Geometric self-ensemble: average the model's outputs on flipped and transposed copies.

A denoiser's errors on an image and on its mirror image are partly independent, so their
mean is closer to the clean image: on held-out photos 2 passes (the image and its 180°
rotation) gained ~0.25 dB over one, and 4 passes ~0.4 dB, for 2x and 4x the compute (see
README, "The bundled model"). Noise has no orientation, so nothing is lost by it.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

Transform = Callable[[tf.Tensor], tf.Tensor]


# Named functions, not lambdas: AutoGraph cannot tell same-line lambdas apart and warns.
def identity(images: tf.Tensor) -> tf.Tensor:
    return images


def rotate_180(images: tf.Tensor) -> tf.Tensor:
    return tf.reverse(images, [1, 2])


def flip_left_right(images: tf.Tensor) -> tf.Tensor:
    return tf.reverse(images, [2])


def flip_up_down(images: tf.Tensor) -> tf.Tensor:
    return tf.reverse(images, [1])


def transpose(images: tf.Tensor) -> tf.Tensor:
    return tf.transpose(images, [0, 2, 1, 3])


def transpose_rotate_180(images: tf.Tensor) -> tf.Tensor:
    return rotate_180(transpose(images))


def rotate_180_transpose(images: tf.Tensor) -> tf.Tensor:
    return transpose(rotate_180(images))


def transpose_flip_left_right(images: tf.Tensor) -> tf.Tensor:
    return flip_left_right(transpose(images))


def flip_left_right_transpose(images: tf.Tensor) -> tf.Tensor:
    return transpose(flip_left_right(images))


def transpose_flip_up_down(images: tf.Tensor) -> tf.Tensor:
    return flip_up_down(transpose(images))


def flip_up_down_transpose(images: tf.Tensor) -> tf.Tensor:
    return transpose(flip_up_down(images))


# (forward, inverse) on NHWC batches; the first k of them make a k-pass ensemble. Pass 2 is
# the 180° rotation: it changes both axes, the most different view a second pass can give.
TRANSFORMS: tuple[tuple[Transform, Transform], ...] = (
    (identity, identity),
    (rotate_180, rotate_180),
    (flip_left_right, flip_left_right),
    (flip_up_down, flip_up_down),
    (transpose, transpose),
    (transpose_rotate_180, rotate_180_transpose),
    (transpose_flip_left_right, flip_left_right_transpose),
    (transpose_flip_up_down, flip_up_down_transpose),
)
PASSES = (1, 2, 4, 8)


class SelfEnsemble:
    """Callable like the model (same inputs, outputs and `stride`), averaging `passes` views.

    The passes run one after another (control dependencies), so peak memory stays that of a
    single pass on the same tile batch.
    """

    def __init__(self, model, passes: int):
        if passes not in PASSES:
            raise ValueError(f"ensemble passes must be one of {PASSES}, got {passes}")
        self.model = model
        self.passes = passes
        self.stride = getattr(model, "stride", 1)

    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        outputs: list[tf.Tensor] = []
        for forward, inverse in TRANSFORMS[: self.passes]:
            with tf.control_dependencies(outputs[-1:]):
                outputs.append(inverse(self.model(forward(images), training=training)))
        return tf.add_n(outputs) / float(len(outputs))


def with_passes(model, passes: int):
    """The model itself for one pass, else its self-ensemble."""
    return model if passes == 1 else SelfEnsemble(model, passes)
