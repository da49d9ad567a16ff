"""tools/predict_scores.py: the files it writes are the noisy images `evaluate` scores."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from conftest import load_tool, photo_like
from PIL import Image

from tfdenoise import evaluate
from tfdenoise.degradations import catalog

tool = load_tool("predict_scores")


@pytest.mark.parametrize("name", ["jpeg-noise", "jpeg-30", "jpeg-mild", "correlated"])
def test_stored_file_decodes_to_evaluates_noisy_image(name):
    """JPEG conditions become the JPEG file their libjpeg round trip decoded (any quality, so a
    new JPEG condition needs no table of its own), the others an 8-bit PNG of the same noise.
    Decoded as evaluate decodes (TensorFlow's libjpeg) the pixels are evaluate's exactly; Pillow,
    which predict reads with, rounds its IDCT differently by a level or few."""
    clean = photo_like(48, 64, seed=3)
    number = catalog.CONDITION_NUMBERS[name]
    data, suffix = tool.stored_noisy(clean, name, index=5)
    expected = evaluate.add_noise_uint8(clean, catalog.ALL_CONDITIONS[name], 5, number)
    assert suffix == (".jpg" if name.startswith("jpeg") else ".png")
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == ("JPEG" if suffix == ".jpg" else "PNG")
        read_by_predict = np.asarray(image.convert("RGB")).astype(int)
    np.testing.assert_array_equal(tf.io.decode_image(data, channels=3).numpy(), expected)
    assert np.abs(read_by_predict - expected).max() <= 4
