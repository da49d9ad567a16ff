"""JPEG's lossy core as TensorFlow ops, so "JPEG after the noise" can be drawn in train_step.

Why: a denoiser for real scans and photos must also clean up compression artefacts, and the
degradation has to be drawn per step on the accelerator, next to the model, with a per-image
quality. `tf.io.encode_jpeg`/`decode_jpeg` run on the host CPU, one image at a time, and cannot be
XLA-compiled; this module is plain tensor ops (graph- and XLA-compatible, dynamic H and W).

What it simulates, step for step as libjpeg(-turbo) does for a baseline 4:2:0 JPEG with the
standard (Annex K) tables, decoded with libjpeg-turbo's defaults: 8-bit RGB -> YCbCr (JFIF,
jccolor.c's fixed-point arithmetic, bit-exact), edge replication up to whole 16x16 MCUs, 2x2
chroma averaging (with h2v2_downsample's alternating 1, 2 rounding bias), level shift, 8x8 DCT,
quantisation with the quality-scaled tables, dequantisation, inverse DCT, range limiting,
"fancy" (triangular, 3/4 + 1/4) chroma upsampling with its integer rounding, and YCbCr -> RGB
(jdcolor.c's arithmetic, bit-exact).

What it leaves out: Huffman coding (lossless, so it does not change the decoded image), and
libjpeg's fixed-point DCTs. This float DCT differs from the encoder's accurate integer DCT by a
fraction of a unit per coefficient, so a few coefficients near a rounding boundary quantise the
other way (a few grey levels over one block); TF's decoder defaults to the fast integer IDCT,
which by itself moves the decoded image by 39-46 dB PSNR from the accurate one. Measured on
small photos: ~48-56 dB PSNR to libjpeg with the accurate IDCT, ~39-45 dB to TF's default.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

BLOCK = 8
MCU = 16  # 4:2:0: one MCU is 16x16 luma pixels, 8x8 pixels of each chroma plane

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), in natural (row-major) order.
LUMA_BASE_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float32,
)
CHROMA_BASE_TABLE = np.array(
    [
        [17, 18, 24, 47, 99, 99, 99, 99],
        [18, 21, 26, 66, 99, 99, 99, 99],
        [24, 26, 56, 99, 99, 99, 99, 99],
        [47, 66, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
    ],
    dtype=np.float32,
)


def _dct_factors() -> tuple[np.ndarray, np.ndarray]:
    """The orthonormal 8-point DCT-II matrix D split as diag(s) @ B, with rows 0 and 4 of B
    exactly 1 and +-1, and the 2-D scale grid s s^T with its (0|4, 0|4) entries exactly 1/8.

    Coefficients (0|4, 0|4) of integer samples are then exact multiples of 1/8 (as in libjpeg's
    integer DCT), so their quantisation ties (e.g. a DC of 8 with a table entry of 16) round the
    same way every time, in eager mode and under XLA alike, instead of by float noise.
    """
    k = np.arange(BLOCK)[:, None]
    n = np.arange(BLOCK)[None, :]
    scale = np.where(np.arange(BLOCK) % 4 == 0, 1 / math.sqrt(8), 1.0)
    basis = np.cos((2 * n + 1) * k * math.pi / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    basis /= scale[:, None]
    basis[0], basis[4] = 1.0, np.sign(basis[4])
    grid = np.outer(scale, scale)
    grid[np.ix_([0, 4], [0, 4])] = 1 / 8
    return basis.astype(np.float32), grid.astype(np.float32)


DCT_BASIS, DCT_GRID = _dct_factors()


def quantisation_tables(quality: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Luma and chroma tables [N, 8, 8] float32 for qualities [N] in 1..100, as libjpeg builds
    them (jpeg_quality_scaling, then jpeg_add_quant_table with force_baseline)."""
    quality = tf.clip_by_value(tf.round(tf.cast(quality, tf.float32)), 1.0, 100.0)
    # libjpeg works in integers: 5000 / quality is an integer division.
    scale = tf.where(quality < 50.0, tf.math.floordiv(5000.0, quality), 200.0 - 2.0 * quality)
    scale = scale[:, None, None]

    def scaled(base: np.ndarray) -> tf.Tensor:
        entries = tf.math.floordiv(tf.constant(base) * scale + 50.0, 100.0)
        return tf.clip_by_value(entries, 1.0, 255.0)

    return scaled(LUMA_BASE_TABLE), scaled(CHROMA_BASE_TABLE)


def _fixed(weight: float) -> float:
    """libjpeg's FIX(): a weight in 16-bit fixed point (an integer, exact in float32)."""
    return float(round(weight * 65536))


def rgb_to_ycbcr(rgb: tf.Tensor) -> tf.Tensor:
    """8-bit RGB [..., 3] (integer-valued floats) -> integer YCbCr, bit-exact with libjpeg's
    jccolor.c: 16-bit fixed-point weights, rounding offsets, shift right by 16. Every partial
    sum stays below 2^24, so float32 computes it exactly in any order."""
    r, g, b = tf.unstack(rgb, axis=-1)
    half, offset = 32768.0, 128.0 * 65536.0
    y = _fixed(0.29900) * r + _fixed(0.58700) * g + _fixed(0.11400) * b + half
    cb = -_fixed(0.16874) * r - _fixed(0.33126) * g + half * b + offset + half - 1.0
    cr = half * r - _fixed(0.41869) * g - _fixed(0.08131) * b + offset + half - 1.0
    return tf.floor(tf.stack([y, cb, cr], axis=-1) / 65536.0)


def ycbcr_to_rgb(ycbcr: tf.Tensor) -> tf.Tensor:
    """Integer YCbCr [..., 3] -> RGB clipped to 0..255, bit-exact with libjpeg's jdcolor.c
    (rounded fixed-point chroma terms added to the integer luma)."""
    y, cb, cr = tf.unstack(ycbcr, axis=-1)
    cb = cb - 128.0
    cr = cr - 128.0
    half = 32768.0
    r = y + tf.floor((_fixed(1.40200) * cr + half) / 65536.0)
    g = y + tf.floor((-_fixed(0.34414) * cb - _fixed(0.71414) * cr + half) / 65536.0)
    b = y + tf.floor((_fixed(1.77200) * cb + half) / 65536.0)
    return tf.clip_by_value(tf.stack([r, g, b], axis=-1), 0.0, 255.0)


def replicate_edges(images: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Crop or extend [N, H, W, C] to [N, height, width, C], repeating the last row and column."""
    rows = tf.minimum(tf.range(height), tf.shape(images)[1] - 1)
    cols = tf.minimum(tf.range(width), tf.shape(images)[2] - 1)
    return tf.gather(tf.gather(images, rows, axis=1), cols, axis=2)


def downsample_chroma(chroma: tf.Tensor) -> tf.Tensor:
    """2x2 box average of [N, H, W, C] (H, W even), libjpeg's h2v2_downsample: the integer sum
    of four samples plus a bias alternating 1, 2 along each row, divided by 4 and floored."""
    shape = tf.shape(chroma)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    blocks = tf.reshape(chroma, [n, h // 2, 2, w // 2, 2, c])
    sums = tf.reduce_sum(blocks, axis=[2, 4])
    bias = 1.0 + tf.cast(tf.range(w // 2) % 2, tf.float32)
    return tf.floor((sums + bias[None, None, :, None]) / 4.0)


def _interleave(even: tf.Tensor, odd: tf.Tensor, axis: int) -> tf.Tensor:
    """Alternate slices of two equal-shape tensors along `axis` (1 or 2 of [N, H, W, C])."""
    shape = tf.shape(even)
    dims = [shape[i] for i in range(4)]
    dims[axis] = 2 * dims[axis]
    return tf.reshape(tf.stack([even, odd], axis=axis + 1), dims)


def _neighbours(planes: tf.Tensor, axis: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The previous and next sample along `axis`, repeating the edge samples (as libjpeg does)."""
    size = tf.shape(planes)[axis]
    index = tf.range(size)
    previous = tf.gather(planes, tf.maximum(index - 1, 0), axis=axis)
    following = tf.gather(planes, tf.minimum(index + 1, size - 1), axis=axis)
    return previous, following


def upsample_chroma(chroma: tf.Tensor) -> tf.Tensor:
    """2x upsampling of integer chroma [N, h, w, C] to [N, 2h, 2w, C] with libjpeg-turbo's
    h2v2_fancy_upsample: each output sample weighs its nearest input 3/4 and the next nearest
    1/4 in each direction (9/16, 3/16, 3/16, 1/16), with its integer rounding biases 8 and 7."""
    above, below = _neighbours(chroma, axis=1)
    column_sums = _interleave(3.0 * chroma + above, 3.0 * chroma + below, axis=1)
    left, right = _neighbours(column_sums, axis=2)
    even = tf.floor((3.0 * column_sums + left + 8.0) / 16.0)
    odd = tf.floor((3.0 * column_sums + right + 7.0) / 16.0)
    return _interleave(even, odd, axis=2)


def _to_blocks(planes: tf.Tensor) -> tf.Tensor:
    """[N, H, W, C] (H, W multiples of 8) -> [N, H/8, W/8, C, 8, 8]."""
    shape = tf.shape(planes)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    blocks = tf.reshape(planes, [n, h // BLOCK, BLOCK, w // BLOCK, BLOCK, c])
    return tf.transpose(blocks, [0, 1, 3, 5, 2, 4])


def _from_blocks(blocks: tf.Tensor) -> tf.Tensor:
    """[N, H/8, W/8, C, 8, 8] -> [N, H, W, C]."""
    shape = tf.shape(blocks)
    n, bh, bw, c = shape[0], shape[1], shape[2], shape[3]
    planes = tf.transpose(blocks, [0, 1, 4, 2, 5, 3])
    return tf.reshape(planes, [n, bh * BLOCK, bw * BLOCK, c])


def block_dct(planes: tf.Tensor) -> tf.Tensor:
    """Orthonormal 2-D DCT-II of each 8x8 block: [N, H, W, C] -> coefficients [N, H/8, W/8, C,
    8, 8]. The orthonormal scaling equals JPEG's (the DC of a flat block of value v is 8 v)."""
    basis = tf.constant(DCT_BASIS)
    return tf.einsum("ij,...jk,lk->...il", basis, _to_blocks(planes), basis) * DCT_GRID


def block_idct(coefficients: tf.Tensor) -> tf.Tensor:
    """Inverse of `block_dct`: coefficients [N, H/8, W/8, C, 8, 8] -> [N, H, W, C]."""
    basis = tf.constant(DCT_BASIS)
    return _from_blocks(tf.einsum("ji,...jk,kl->...il", basis, coefficients * DCT_GRID, basis))


def quantise_dequantise(coefficients: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
    """Round coefficients [N, ..., C, 8, 8] to multiples of the per-image table [N, 8, 8] (halves
    away from zero, like libjpeg's quantiser) and scale back, as the decoder sees them."""
    table = table[:, None, None, None, :, :]
    ratio = coefficients / table
    return tf.sign(ratio) * tf.floor(tf.abs(ratio) + 0.5) * table


def _code_planes(planes: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
    """Level shift, DCT, quantise, dequantise, inverse DCT and range-limit sample planes."""
    coefficients = quantise_dequantise(block_dct(planes - 128.0), table)
    return tf.clip_by_value(tf.floor(block_idct(coefficients) + 128.0 + 0.5), 0.0, 255.0)


def jpeg_compress(images: tf.Tensor, quality: tf.Tensor) -> tf.Tensor:
    """Decoded result of a baseline 4:2:0 JPEG of each image at its own quality.

    images: float32 [N, H, W, 3] in [0, 1]; quality: [N] (or a scalar for all) in 1..100.
    Returns float32 [N, H, W, 3] in [0, 1], quantised to 8 bits like a decoded file.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    quality = tf.broadcast_to(tf.cast(quality, tf.float32), [batch])
    luma_table, chroma_table = quantisation_tables(quality)

    rgb = tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0)
    padded_height = (height + MCU - 1) // MCU * MCU
    padded_width = (width + MCU - 1) // MCU * MCU
    ycbcr = replicate_edges(rgb_to_ycbcr(rgb), padded_height, padded_width)

    luma = _code_planes(ycbcr[..., :1], luma_table)
    chroma = _code_planes(downsample_chroma(ycbcr[..., 1:]), chroma_table)

    # The decoder upsamples only the chroma samples that cover the image, repeating its edges.
    chroma = replicate_edges(chroma, (height + 1) // 2, (width + 1) // 2)
    chroma = upsample_chroma(chroma)[:, :height, :width, :]
    rgb = ycbcr_to_rgb(tf.concat([luma[:, :height, :width, :], chroma], axis=-1))
    return rgb / 255.0
