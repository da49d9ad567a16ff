"""Export a denoiser as a TF SavedModel for TF Serving: encoded image bytes in, PNG bytes out.

The serving signature `serving_default(image_bytes: scalar tf.string) -> {"png": tf.string}`
decodes JPEG/PNG/GIF/BMP with `tf.io.decode_image` (3 channels, first GIF frame), runs the
model on the whole image and encodes the rounded uint8 result as PNG. Differences from
`predict`: no tiling (memory grows with the image; a server should cap request size), no EXIF
orientation, and grayscale or alpha inputs come back as RGB.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from tfdenoise import models
from tfdenoise.config import EXPORT_FORMATS


class PngDenoiser(tf.Module):
    """A tf.Module wrapping a Keras denoiser with a bytes -> PNG bytes signature."""

    def __init__(self, model):
        super().__init__(name="png_denoiser")
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="image_bytes")])
    def serve(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
        image = tf.ensure_shape(image, [None, None, 3])
        denoised = self.model(models.to_unit_float(image[None]), training=False)
        scaled = tf.round(tf.clip_by_value(denoised[0], 0.0, 1.0) * 255.0)
        return {"png": tf.io.encode_png(tf.cast(scaled, tf.uint8))}


def export_saved_model(model, output_dir: str | Path) -> Path:
    """Write the SavedModel; refuses to overwrite an existing non-empty folder."""
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise ValueError(f"output folder {output_dir} exists and is not empty")
    module = PngDenoiser(model)
    tf.saved_model.save(
        module,
        str(output_dir),
        signatures={"serving_default": module.serve.get_concrete_function()},
    )
    return output_dir


def export(model, output_dir: str | Path, format: str = "saved_model") -> Path:
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose {', '.join(EXPORT_FORMATS)}")
    return export_saved_model(model, output_dir)
