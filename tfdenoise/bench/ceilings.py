"""Decode ceilings: every core decoding the corpus's bytes from memory and nothing else,
the most an input pipeline over the same files could deliver."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from tfdenoise.data import pipeline
from tfdenoise.io import files as image_files


def jpeg_bytes(files: Sequence[image_files.ImageFile]) -> list[bytes]:
    """The JPEG files' bytes, in memory: what the decode ceilings decode."""
    return [Path(f.path).read_bytes() for f in files if f.info.decoder == image_files.Decoder.JPEG]


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
