"""The record schema: one tf.train.Example per image, its encode and parse, raw pixels with their
shape trailer. All the tf.data pipeline needs to read records, nothing of the writer.

Records hold JPEG bytes as in the source file, or 8-bit RGB stored losslessly: raw pixels
(format version 2) or PNG. Each record says its own format, so every version reads the same way.
"""

from __future__ import annotations

import os

import tensorflow as tf

from tfdenoise.io import files
from tfdenoise.io.encoding import EncodedImage

RECORD_FORMATS = ("jpeg", "png", "raw")  # the values of the `format` feature

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),  # JPEG or PNG bytes, or raw RGB pixels
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "format": tf.io.FixedLenFeature([], tf.string),  # b"jpeg", b"png" or b"raw" (version 2)
    "source": tf.io.FixedLenFeature([], tf.string),  # path relative to the converted folder
}

# Decoder id of raw records in the (bytes, decoder) pipeline stage, after files.Decoder's ids.
RAW_DECODER = max(files.Decoder) + 1
# A raw record's bytes in that stage: the pixels, then its shape as a fixed-width trailer
# (height and width, RAW_SHAPE_DIGITS decimal digits each), so the stage stays (bytes, decoder)
# for every source. A trailer, not a header: decode_raw(fixed_length=) then reads the pixels
# without another copy.
RAW_SHAPE_DIGITS = 10
RAW_TRAILER_BYTES = 2 * RAW_SHAPE_DIGITS


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def encode_example(image: EncodedImage, source: str) -> bytes:
    """One serialized tf.train.Example in the schema of FEATURES."""
    if image.format not in RECORD_FORMATS:
        raise ValueError(f"records store one of {RECORD_FORMATS}, not {image.format!r}")
    if image.format == "raw" and len(image.data) != image.height * image.width * 3:
        raise ValueError(
            f"raw pixels of {image.height} x {image.width} x 3 are "
            f"{image.height * image.width * 3} bytes, not {len(image.data)}"
        )
    features = tf.train.Features(
        feature={
            "image": _bytes_feature(image.data),
            "height": _int_feature(image.height),
            "width": _int_feature(image.width),
            "format": _bytes_feature(image.format.encode()),
            "source": _bytes_feature(os.fsencode(source)),  # the name's bytes, UTF-8 or not
        }
    )
    # deterministic: map keys sorted; otherwise the order varies between processes, and
    # a resumed run would not reproduce the bytes of an uninterrupted one.
    return tf.train.Example(features=features).SerializeToString(deterministic=True)


def parse_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """All features of one serialized example (eager or in a tf.data graph).

    Bad bytes raise tf.errors.InvalidArgumentError. Found by fuzzing, eagerly: TF 2.21's
    parser crashes the process (SIGSEGV) on some wire-corrupt examples, so eager bytes are
    checked with protobuf first; and TF quotes bad bytes in its message and fails to decode
    them (UnicodeDecodeError). In a tf.data graph neither guard can run: records are trusted
    there as make-tfrecords wrote them (every record's CRC is checked on reading).
    """
    message = "could not parse a tf.train.Example (corrupt record)"
    if tf.executing_eagerly():
        from google.protobuf.message import DecodeError

        data = serialized.numpy() if isinstance(serialized, tf.Tensor) else serialized
        try:
            tf.train.Example.FromString(data)
        except (DecodeError, TypeError):
            raise tf.errors.InvalidArgumentError(None, None, message) from None
    try:
        return tf.io.parse_single_example(serialized, FEATURES)
    except UnicodeDecodeError:
        raise tf.errors.InvalidArgumentError(None, None, message) from None


def parse_example(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(bytes, decoder id): the first pipeline stage, as for image folders.

    Records hold only JPEG (TF's JPEG decoder, crop windows), PNG (tf.io.decode_image) and raw
    pixels (RAW_DECODER; the bytes get their shape trailer, see with_raw_shape), so the PIL
    fallback is never needed. A raw record whose size does not match its shape fails in the
    decode stage (InvalidArgumentError), like a corrupt PNG.
    """
    features = parse_features(serialized)
    image, format_ = features["image"], features["format"]
    is_raw = tf.equal(format_, b"raw")
    decoder = tf.where(
        is_raw,
        RAW_DECODER,
        tf.where(tf.equal(format_, b"jpeg"), int(files.Decoder.JPEG), int(files.Decoder.TF_IMAGE)),
    )
    data = tf.cond(
        is_raw,
        lambda: with_raw_shape(image, features["height"], features["width"]),
        lambda: image,
    )
    return data, tf.cast(decoder, tf.int32)


def with_raw_shape(pixels: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Raw pixel bytes + their shape trailer: what the decode stage reads for RAW_DECODER."""
    limit = 10**RAW_SHAPE_DIGITS - 1  # out-of-range sizes are caught by the size check

    def digits(value):
        value = tf.clip_by_value(tf.cast(value, tf.int64), 0, limit)
        return tf.strings.as_string(value, width=RAW_SHAPE_DIGITS, fill="0")

    return tf.strings.join([pixels, digits(height), digits(width)])


def decode_raw_pixels(data: tf.Tensor) -> tf.Tensor:
    """[H, W, 3] uint8 from raw pixels + shape trailer (with_raw_shape); InvalidArgumentError
    when the byte count is not H * W * 3 (a corrupt record), never a crash."""
    pixel_bytes = tf.cast(tf.strings.length(data), tf.int64) - RAW_TRAILER_BYTES
    with tf.control_dependencies(
        [tf.debugging.assert_non_negative(pixel_bytes, message="raw record: no shape trailer")]
    ):
        trailer = tf.strings.substr(data, pixel_bytes, tf.constant(RAW_TRAILER_BYTES, tf.int64))
    digits = RAW_SHAPE_DIGITS
    height = tf.strings.to_number(tf.strings.substr(trailer, 0, digits), tf.int64)
    width = tf.strings.to_number(tf.strings.substr(trailer, digits, digits), tf.int64)
    expected = height * width * 3
    checks = [
        tf.debugging.assert_positive(
            tf.stack([height, width]), message="raw record: height and width must be > 0"
        ),
        tf.debugging.assert_equal(
            pixel_bytes,
            expected,
            message="raw record: byte count is not height * width * 3 (corrupt record)",
        ),
    ]
    with tf.control_dependencies(checks):
        # the first H * W * 3 bytes, one copy; a string tensor is < 2 GiB, so int32 holds it
        pixels = tf.io.decode_raw(data, tf.uint8, fixed_length=tf.cast(expected, tf.int32))
    return tf.reshape(pixels, tf.stack([height, width, 3]))
