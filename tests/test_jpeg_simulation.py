"""The JPEG simulation in TF ops against libjpeg itself (tf.io.encode_jpeg / decode_jpeg)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from skimage.transform import resize

from tfdenoise.degradations.jpeg import (
    CHROMA_BASE_TABLE,
    LUMA_BASE_TABLE,
    jpeg_compress,
    quantisation_tables,
)

# Margins of PSNR(simulation, libjpeg) over PSNR(libjpeg, original), in dB, per image and quality.
# libjpeg's accurate integer IDCT ("INTEGER_ACCURATE", libjpeg's own default) is what the float
# DCT models; TF's default decoder uses the fast integer IDCT, which alone moves the decoded
# image by 39-46 dB PSNR, so the margin against it is smaller, mostly at quality 95.
ACCURATE_DECODER_MARGIN_DB = 10.0
DEFAULT_DECODER_MARGIN_DB = 4.0


def photo(name: str, height: int, width: int) -> np.ndarray:
    """One of scikit-image's bundled photos, centre-cropped to the aspect and resized, uint8."""
    image = getattr(skimage.data, name)().astype(np.float64) / 255.0
    rows, cols = image.shape[:2]
    if rows * width > cols * height:
        keep = cols * height // width
        image = image[(rows - keep) // 2 : (rows - keep) // 2 + keep]
    else:
        keep = rows * width // height
        image = image[:, (cols - keep) // 2 : (cols - keep) // 2 + keep]
    small = resize(image, (height, width), anti_aliasing=True)
    return np.round(np.clip(small, 0.0, 1.0) * 255.0).astype(np.uint8)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """64x64, a non-multiple of 16 (72x56) and an odd size (37x51, odd chroma planes)."""
    return {
        "astronaut 64x64": photo("astronaut", 64, 64),
        "chelsea 72x56": photo("chelsea", 72, 56),
        "coffee 37x51": photo("coffee", 37, 51),
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two images on the 0-255 scale."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10.0 * np.log10(255.0**2 / mse))


def simulate(image: np.ndarray, quality: float) -> np.ndarray:
    """The simulation on one uint8 image, back on the 0-255 scale."""
    batch = tf.constant(image[None].astype(np.float32) / 255.0)
    return jpeg_compress(batch, tf.constant([quality], tf.float32))[0].numpy() * 255.0


def libjpeg(image: np.ndarray, quality: int, dct_method: str = "") -> np.ndarray:
    """A real encode and decode with TF's libjpeg-turbo (4:2:0 by default)."""
    encoded = tf.io.encode_jpeg(tf.constant(image), quality=quality)
    return tf.io.decode_jpeg(encoded, dct_method=dct_method).numpy()


def zigzag_order() -> list[tuple[int, int]]:
    """(row, column) of the 64 zigzag positions in which a DQT segment lists a table."""
    cells = [(row, col) for row in range(8) for col in range(8)]
    # Odd anti-diagonals run down-left (row rising), even ones up-right (row falling).
    return sorted(cells, key=lambda c: (c[0] + c[1], c[0] if (c[0] + c[1]) % 2 else -c[0]))


def tables_in_file(encoded: bytes) -> dict[int, np.ndarray]:
    """The 8-bit quantisation tables a JPEG file defines, by table id, in natural order."""
    tables = {}
    position = 2  # after SOI
    while position < len(encoded) and encoded[position : position + 2] != b"\xff\xda":
        marker = encoded[position + 1]
        length = int.from_bytes(encoded[position + 2 : position + 4], "big")
        if marker == 0xDB:
            segment = encoded[position + 4 : position + 2 + length]
            while segment:
                precision, table_id = segment[0] >> 4, segment[0] & 15
                assert precision == 0, "baseline tables are 8-bit"
                table = np.zeros((8, 8), np.float32)
                for value, (row, col) in zip(segment[1:65], zigzag_order()):
                    table[row, col] = value
                tables[table_id] = table
                segment = segment[65:]
        position += 2 + length
    return tables


def test_tables_match_annex_k_and_hand_computed_entries():
    luma, chroma = quantisation_tables(tf.constant([50.0, 100.0, 10.0, 30.0]))
    luma, chroma = luma.numpy(), chroma.numpy()
    assert luma.shape == chroma.shape == (4, 8, 8) and luma.dtype == np.float32
    np.testing.assert_array_equal(luma[0], LUMA_BASE_TABLE)
    np.testing.assert_array_equal(chroma[0], CHROMA_BASE_TABLE)
    assert LUMA_BASE_TABLE[0, :4].tolist() == [16, 11, 10, 16]
    assert CHROMA_BASE_TABLE[7, 7] == 99
    np.testing.assert_array_equal(luma[1], np.ones((8, 8)))
    np.testing.assert_array_equal(chroma[1], np.ones((8, 8)))
    # Quality 10: scale 5000 / 10 = 500 %; (16 * 500 + 50) // 100 = 80, (17 * 500 + 50) // 100
    # = 85, and 99 -> 495, clamped to 255 for baseline.
    assert luma[2, 0, 0] == 80
    assert chroma[2, 0, 0] == 85
    assert luma[2, 7, 7] == 255
    # Quality 30: the scale is the integer 5000 // 30 = 166 (not 166.7), so 99 -> (99 * 166 + 50)
    # // 100 = 164, where an unrounded scale would give 165.
    assert luma[3, 7, 7] == 164


def test_tables_equal_the_ones_libjpeg_writes():
    qualities = [1, 5, 10, 25, 30, 33, 49, 50, 51, 75, 90, 97, 100]
    luma, chroma = quantisation_tables(tf.constant(qualities, tf.int32))
    image = np.full((8, 8, 3), 128, np.uint8)
    for index, quality in enumerate(qualities):
        written = tables_in_file(tf.io.encode_jpeg(image, quality=quality).numpy())
        np.testing.assert_array_equal(luma[index].numpy(), written[0], err_msg=f"q={quality}")
        np.testing.assert_array_equal(chroma[index].numpy(), written[1], err_msg=f"q={quality}")
    # Fractional qualities round to libjpeg's integer ones.
    fractional, _ = quantisation_tables(tf.constant([49.6]))
    np.testing.assert_array_equal(fractional[0].numpy(), LUMA_BASE_TABLE)


@pytest.mark.parametrize("quality", [30, 50, 80, 95])
def test_simulation_is_much_closer_to_libjpeg_than_libjpeg_to_the_original(photos, quality):
    for name, image in photos.items():
        simulated = simulate(image, quality)
        accurate = libjpeg(image, quality, dct_method="INTEGER_ACCURATE")
        default = libjpeg(image, quality)
        sim_accurate = psnr(simulated, accurate)
        sim_default = psnr(simulated, default)
        accurate_original = psnr(accurate, image)
        default_original = psnr(default, image)
        print(
            f"\nq={quality} {name}: PSNR(sim, libjpeg accurate IDCT) {sim_accurate:.2f} dB, "
            f"PSNR(libjpeg accurate, original) {accurate_original:.2f} dB; "
            f"PSNR(sim, libjpeg TF default) {sim_default:.2f} dB, "
            f"PSNR(libjpeg TF default, original) {default_original:.2f} dB"
        )
        assert sim_accurate >= accurate_original + ACCURATE_DECODER_MARGIN_DB, name
        assert sim_default >= default_original + DEFAULT_DECODER_MARGIN_DB, name


def test_graph_is_pure_tf_with_dynamic_shapes_and_compiles_with_xla(photos):
    signature = [
        tf.TensorSpec([None, None, None, 3], tf.float32),
        tf.TensorSpec([None], tf.float32),
    ]
    graph_function = tf.function(jpeg_compress, input_signature=signature)
    concrete = graph_function.get_concrete_function()
    op_types = {op.type for op in concrete.graph.get_operations()}
    forbidden = {
        "PyFunc",
        "PyFuncStateless",
        "EagerPyFunc",
        "NumpyFunction",
        "EncodeJpeg",
        "DecodeJpeg",
        "EncodeJpegVariableQuality",
        "DecodeAndCropJpeg",
        "DecodeImage",
    }
    assert not op_types & forbidden, op_types & forbidden
    assert not [op for op in op_types if "Jpeg" in op or "PyFunc" in op], op_types

    xla_function = tf.function(jpeg_compress, jit_compile=True)
    for image, quality in [(photos["chelsea 72x56"], 30.0), (photos["coffee 37x51"], 80.0)]:
        batch = tf.constant(image[None].astype(np.float32) / 255.0)
        qualities = tf.constant([quality])
        eager = jpeg_compress(batch, qualities).numpy()
        traced = concrete(batch, qualities).numpy()
        compiled = xla_function(batch, qualities).numpy()
        assert traced.shape == compiled.shape == batch.shape
        np.testing.assert_allclose(traced, eager, atol=1 / 255 + 1e-6)
        np.testing.assert_allclose(compiled, eager, atol=1 / 255 + 1e-6)


def test_each_image_gets_its_own_quality(photos):
    first = photos["astronaut 64x64"]
    second = photo("coffee", 64, 64)
    batch = tf.constant(np.stack([first, second]).astype(np.float32) / 255.0)
    together = jpeg_compress(batch, tf.constant([30.0, 95.0])).numpy()
    alone = [
        jpeg_compress(batch[i : i + 1], tf.constant([q])).numpy()[0]
        for i, q in enumerate([30.0, 95.0])
    ]
    np.testing.assert_allclose(together[0], alone[0], atol=1 / 255 + 1e-6)
    np.testing.assert_allclose(together[1], alone[1], atol=1 / 255 + 1e-6)
    swapped = jpeg_compress(batch, tf.constant([95.0, 30.0])).numpy()
    assert np.abs(swapped - together).max() > 10 / 255


def test_error_falls_as_quality_rises(photos):
    for name, image in photos.items():
        scores = [psnr(simulate(image, quality), image) for quality in (30, 60, 90)]
        print(
            f"\n{name}: PSNR to the original at q=30, 60, 90: "
            + ", ".join(f"{score:.2f}" for score in scores)
        )
        assert scores[0] < scores[1] < scores[2], (name, scores)


def test_output_range_shape_and_dtype():
    rng = np.random.default_rng(0)
    images = np.stack(
        [
            rng.uniform(0.0, 1.0, (21, 35, 3)),  # noise: large coefficients, overshoot at q=5
            np.broadcast_to([1.0, 0.0, 0.0], (21, 35, 3)),  # saturated red: chroma at its limits
            np.zeros((21, 35, 3)),
            np.ones((21, 35, 3)),
        ]
    ).astype(np.float32)
    output = jpeg_compress(tf.constant(images), tf.constant([5.0, 5.0, 50.0, 100.0]))
    assert output.dtype == tf.float32
    assert output.shape == images.shape
    values = output.numpy()
    assert values.min() >= 0.0 and values.max() <= 1.0
    np.testing.assert_array_equal(values[2], 0.0)
    np.testing.assert_array_equal(values[3], 1.0)
    np.testing.assert_allclose(values * 255.0, np.round(values * 255.0), atol=1e-3)
