"""Mirror padding that works for any image size, even 1 x 1.

`tf.pad(mode="REFLECT")` needs the padding to be smaller than the image; tiny images and
patches larger than the photo need more, so we gather with indices mirrored periodically.
"""

from __future__ import annotations

import tensorflow as tf


def _mirror_indices(size: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Indices 0..size-1 then back down, repeated, to length target (symmetric reflection)."""
    period = 2 * size
    position = tf.range(target) % period
    return tf.where(position < size, position, period - 1 - position)


def mirror_pad_to(image: tf.Tensor, height, width) -> tf.Tensor:
    """Pad image ([..., H, W, C]) on the bottom and right to at least height x width."""
    shape = tf.shape(image)
    rank = image.shape.rank
    h, w = shape[rank - 3], shape[rank - 2]
    target_h = tf.maximum(h, tf.cast(height, h.dtype))
    target_w = tf.maximum(w, tf.cast(width, w.dtype))
    image = tf.gather(image, _mirror_indices(h, target_h), axis=rank - 3)
    return tf.gather(image, _mirror_indices(w, target_w), axis=rank - 2)


def pad_to_multiple(image: tf.Tensor, multiple: int) -> tf.Tensor:
    """Mirror-pad height and width (bottom/right) up to the next multiple of `multiple`."""
    shape = tf.shape(image)
    rank = image.shape.rank
    h, w = shape[rank - 3], shape[rank - 2]
    return mirror_pad_to(image, -(-h // multiple) * multiple, -(-w // multiple) * multiple)
