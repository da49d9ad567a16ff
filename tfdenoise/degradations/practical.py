"""Blind "practical" degradations: the noise users' photographs actually carry.

White Gaussian noise is a poor model of a phone picture or a scan. Their noise is correlated
across channels (demosaicking and colour conversion mix the colour samples), correlated across
pixels (demosaicking interpolates, scanner optics blur, resizing spreads each sample), signal
dependent (photon shot noise), sometimes film grain, and usually JPEG compressed afterwards.
BSRGAN (Zhang et al., 2021) and SCUNet (Zhang et al., 2023) train blind models on such a mix:
each image gets a random subset of degradations in a random order, then compression. A model
trained only on white noise leaves the blotchy, compressed noise of real photos in place.

The pieces, each a frozen dataclass called as `model(clean, seed) -> degraded` like noise.py:

- `CorrelatedGaussian`: colour noise with a random per-image channel covariance, including
  SCUNet's special cases: channel-independent (white RGB) and gray (luminance-only) noise.
- `SpatiallyCorrelated`: the same colour noise blurred by a small per-image Gaussian (demosaicking,
  scanner optics) or drawn at a lower resolution and upsampled (resized photos).
- `PoissonGaussian` (noise.py): sensor shot noise plus read noise, which grows with brightness.
- `FilmGrain`: luminance grain of scanned film, a pixel or two wide, optionally mid-tone heavy.
- `UniformAmplitude` (noise.py): the prototype's noise, so the blind model still covers it.
- `Jpeg`: compression after the noise, at a per-image quality (`jpeg.jpeg_compress`).
- `Practical`: the blind pipeline over all of them.

Same conventions as noise.py: float32 [N, H, W, 3] in [0, 1], a shape-[2] integer seed,
`tf.random.stateless_*` ops only, per-image parameters. Per-image choices are made by computing
each candidate on the whole batch and selecting with `tf.where`, so the pipeline is one graph of
tensor ops (no Python callbacks) that runs eagerly, in tf.data and in train_step, under XLA too.
Our own draws name the Philox algorithm: XLA on CPU otherwise picks ThreeFry, ~10x slower.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import tensorflow as tf

from tfdenoise.degradations.jpeg import jpeg_compress
from tfdenoise.degradations.noise import NoiseModel, PoissonGaussian, UniformAmplitude

_ALGORITHM = "philox"
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as JPEG's YCbCr


def _split_seed(seed: tf.Tensor, count: int) -> list[tf.Tensor]:
    """Independent stateless seeds derived from one."""
    split = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=count)
    return [split[i] for i in range(count)]


def _uniform(shape, seed: tf.Tensor, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, low, high, tf.float32, alg=_ALGORITHM)


def _normal(shape, seed: tf.Tensor) -> tf.Tensor:
    return tf.random.stateless_normal(shape, seed, dtype=tf.float32, alg=_ALGORITHM)


def _per_image(batch: tf.Tensor, seed: tf.Tensor, low: float, high: float) -> tf.Tensor:
    """One uniform draw per image, shaped [N, 1, 1, 1] to broadcast over its pixels."""
    return _uniform([batch, 1, 1, 1], seed, low, high)


def _chance(batch: tf.Tensor, seed: tf.Tensor, probability: float) -> tf.Tensor:
    """A per-image coin, bool [N, 1, 1, 1], True with `probability`."""
    return _per_image(batch, seed, 0.0, 1.0) < probability


def quantise(images: tf.Tensor) -> tf.Tensor:
    """Clip to [0, 1] and round to 8 bits, as a stored PNG or JPEG file holds them."""
    return tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0) / 255.0


def _unit_rms(noise: tf.Tensor) -> tf.Tensor:
    """Noise rescaled to root-mean-square 1 per image, so shaping never changes its strength."""
    power = tf.reduce_mean(tf.square(noise), axis=[1, 2, 3], keepdims=True)
    return noise * tf.math.rsqrt(power + 1e-12)


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if not low <= bounds[0] <= bounds[1] <= high:
        raise ValueError(f"{name} must be an increasing pair within [{low}, {high}], got {bounds}")


def _check_probabilities(**probabilities: float) -> None:
    for name, value in probabilities.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def _finish(degraded: tf.Tensor, clip: bool) -> tf.Tensor:
    return tf.clip_by_value(degraded, 0.0, 1.0) if clip else degraded


# --- colour (cross-channel) correlation ---------------------------------------------------------


class ColourDraw(NamedTuple):
    """Per-image parameters of colour noise: noise = sigma * mixing @ white."""

    sigma: tf.Tensor  # [N, 1, 1, 1], 0-1 scale: root of the mean per-channel variance
    mixing: tf.Tensor  # [N, 3, 3]; mixing mixing^T is the channel covariance, mean diagonal 1


def _random_rotation(batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Rotations [N, 3, 3], uniform over SO(3): from unit quaternions, no QR decomposition."""
    quaternion = tf.math.l2_normalize(_normal([batch, 4], seed), axis=1)
    w, x, y, z = tf.unstack(quaternion, axis=1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return tf.stack([tf.stack(row, axis=1) for row in rows], axis=1)


def _general_mixing(batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Q diag(sqrt(s)) for a random rotation Q and spectrum s ~ U(0, 1)^3 scaled to mean 1: a
    random covariance Q diag(s) Q^T whose mean per-channel variance is 1."""
    rotation_seed, spectrum_seed = _split_seed(seed, 2)
    spectrum = _uniform([batch, 3], spectrum_seed)
    spectrum = spectrum / (tf.reduce_mean(spectrum, axis=1, keepdims=True) + 1e-6)
    return _random_rotation(batch, rotation_seed) * tf.sqrt(spectrum)[:, None, :]


def _mix_channels(unit: tf.Tensor, mixing: tf.Tensor) -> tf.Tensor:
    """Channel d of the result is sum_c mixing[n, d, c] * unit[..., c]."""
    return tf.einsum("nhwc,ndc->nhwd", unit, mixing)


@dataclasses.dataclass(frozen=True)
class CorrelatedGaussian:
    """Gaussian noise with a random per-image sigma and a random 3x3 channel covariance.

    Demosaicking and colour conversion turn a sensor's independent noise into colour blotches
    or, after luma-chroma processing, mostly luminance noise. SCUNet draws one of three kinds per
    image; so do we: channel-independent, gray (the same noise on all channels, luminance
    only) and a general covariance. Every kind has mean per-channel variance sigma^2.
    """

    sigma_range: tuple[float, float] = (1.0, 50.0)  # 0-255 scale
    p_white: float = 0.2  # channel-independent RGB noise
    p_gray: float = 0.4  # luminance-only noise
    # the rest (default 0.4): a random colour covariance
    clip: bool = True  # standalone output clipped like noise.py's; Practical clips at its end

    def __post_init__(self) -> None:
        _check_range("sigma_range", self.sigma_range, 0.0, 255.0)
        _check_probabilities(p_white=self.p_white, p_gray=self.p_gray)
        if self.p_white + self.p_gray > 1.0:
            raise ValueError("p_white + p_gray must not exceed 1")

    def draw(self, batch: tf.Tensor, seed: tf.Tensor) -> ColourDraw:
        """The per-image sigma and channel mixing that a call with `seed` uses."""
        draw_seed, _ = _split_seed(seed, 2)
        sigma_seed, kind_seed, general_seed = _split_seed(draw_seed, 3)
        sigma = _per_image(batch, sigma_seed, *self.sigma_range) / 255.0
        kind = _uniform([batch, 1, 1], kind_seed)
        white = tf.eye(3, batch_shape=[1])
        gray = tf.constant([[[1.0, 0.0, 0.0]] * 3])  # every channel copies one white channel
        mixing = tf.where(
            kind < self.p_white,
            white,
            tf.where(kind < self.p_white + self.p_gray, gray, _general_mixing(batch, general_seed)),
        )
        return ColourDraw(sigma, mixing)

    def noise(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """The additive noise alone (independent of the pixel values)."""
        _, pixel_seed = _split_seed(seed, 2)
        colour = self.draw(tf.shape(clean)[0], seed)
        return colour.sigma * _mix_channels(_normal(tf.shape(clean), pixel_seed), colour.mixing)

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return _finish(clean + self.noise(clean, seed), self.clip)


# --- spatial correlation ------------------------------------------------------------------------


def _blur_matrices(size: tf.Tensor, sigma: tf.Tensor, radius: int) -> tf.Tensor:
    """Per-image Gaussian blur along one axis as matrices [N, size, size + 2 radius].

    Output sample i reads input samples i .. i + 2 radius (a 'valid' filter: the input has a
    margin of `radius` on each side, so stationary noise gets no border effects). sigma: [N].
    """
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps[None, :] / sigma[:, None]))
    kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)  # [N, taps]
    offset = tf.range(size + 2 * radius)[None, :] - tf.range(size)[:, None]  # input - output
    inside = (offset >= 0) & (offset <= 2 * radius)
    weights = tf.gather(kernel, tf.clip_by_value(offset, 0, 2 * radius), axis=1)
    return tf.where(inside[None], weights, 0.0)


def _resize_matrices(
    size: tf.Tensor, source_size: tf.Tensor, factor: tf.Tensor, cubic: tf.Tensor
) -> tf.Tensor:
    """Per-image upsampling along one axis by `factor` [N, 1] (>= 1) as matrices [N, size,
    source_size]: bicubic (Keys, a = -0.5) where `cubic` [N, 1], else bilinear; half-pixel
    centres as tf.image.resize, which takes only one size per batch. The source must hold about
    size / factor + 4 samples: reading starts 2 samples in, so tap -1 is always inside."""
    position = (tf.cast(tf.range(size), tf.float32)[None, :] + 0.5) / factor + 1.5
    start = tf.floor(position)
    t = position - start
    t2, t3 = t * t, t * t * t
    cubic_weights = (
        0.5 * (-t3 + 2 * t2 - t),
        0.5 * (3 * t3 - 5 * t2 + 2),
        0.5 * (-3 * t3 + 4 * t2 + t),
        0.5 * (t3 - t2),
    )
    linear_weights = (tf.zeros_like(t), 1 - t, t, tf.zeros_like(t))
    start = tf.cast(start, tf.int32)
    taps = []
    for shift, cubic_weight, linear_weight in zip((-1, 0, 1, 2), cubic_weights, linear_weights):
        weight = tf.where(cubic, cubic_weight, linear_weight)
        taps.append(weight[:, :, None] * tf.one_hot(start + shift, source_size))
    return tf.add_n(taps)


def _filter_separably(canvas: tf.Tensor, rows: tf.Tensor, columns: tf.Tensor) -> tf.Tensor:
    """Apply per-image linear filters [N, H, Hc] and [N, W, Wc] to canvas [N, Hc, Wc, C].

    Matrix products: one code path for blur and resize kernels that differ per image, and fast
    under XLA too (depthwise convolutions with the batch folded into the channels took 20x longer
    there on CPU)."""
    filtered = tf.einsum("nij,njwc->niwc", rows, canvas)
    return tf.einsum("nkw,nhwc->nhkc", columns, filtered)


@dataclasses.dataclass(frozen=True)
class SpatiallyCorrelated:
    """Colour noise spread over neighbouring pixels, then rescaled to keep its drawn sigma.

    Demosaicking interpolates each colour from its neighbours and scanner optics blur the grain
    of the original: modelled by a per-image Gaussian blur of white noise. Resized photographs
    carry noise drawn at a lower resolution and interpolated: modelled by upsampling white noise
    by a per-image factor, bilinearly or bicubically. Both are separable linear filters: each image
    picks its pair of filter matrices, and one pair of matrix products applies them all.
    """

    # sigma range and channel correlation (its `clip` is not used)
    colour: CorrelatedGaussian = dataclasses.field(default_factory=CorrelatedGaussian)
    blur_sigma: tuple[float, float] = (0.3, 1.5)  # Gaussian kernel std, pixels
    resize_factor: tuple[float, float] = (1.5, 3.0)  # noise resolution / image resolution
    p_resize: float = 0.5  # images shaped by resizing (the rest by blur)
    p_bicubic: float = 0.5  # resized images interpolated bicubically (the rest bilinearly)
    clip: bool = True  # standalone output clipped like noise.py's; Practical clips at its end

    def __post_init__(self) -> None:
        _check_range("blur_sigma", self.blur_sigma, 0.1, 10.0)
        _check_range("resize_factor", self.resize_factor, 1.0, 16.0)
        _check_probabilities(p_resize=self.p_resize, p_bicubic=self.p_bicubic)

    @property
    def _margin(self) -> int:
        """Canvas margin: the blur's radius, and at least the 2 samples resizing skips."""
        return max(2, math.ceil(3.0 * self.blur_sigma[1]))

    def unit_noise(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Spatially correlated, channel-independent noise with RMS 1 per image."""
        choice_seed, blur_seed, factor_seed, cubic_seed, pixel_seed = _split_seed(seed, 5)
        shape = tf.shape(clean)
        batch, height, width = shape[0], shape[1], shape[2]
        margin = self._margin
        canvas = _normal([batch, height + 2 * margin, width + 2 * margin, shape[3]], pixel_seed)

        blur_sigma = _uniform([batch], blur_seed, *self.blur_sigma)
        factor = _uniform([batch, 1], factor_seed, *self.resize_factor)
        cubic = _uniform([batch, 1], cubic_seed) < self.p_bicubic
        resize = _chance(batch, choice_seed, self.p_resize)[:, :, :, 0]  # [N, 1, 1]

        def filters(size: tf.Tensor) -> tf.Tensor:
            blur = _blur_matrices(size, blur_sigma, margin)
            return tf.where(resize, _resize_matrices(size, size + 2 * margin, factor, cubic), blur)

        return _unit_rms(_filter_separably(canvas, filters(height), filters(width)))

    def noise(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """The additive noise alone (independent of the pixel values)."""
        colour_seed, shape_seed = _split_seed(seed, 2)
        colour = self.colour.draw(tf.shape(clean)[0], colour_seed)
        return colour.sigma * _mix_channels(self.unit_noise(clean, shape_seed), colour.mixing)

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return _finish(clean + self.noise(clean, seed), self.clip)


# --- film grain ---------------------------------------------------------------------------------


class GrainDraw(NamedTuple):
    grain: tf.Tensor  # [N, H, W, 1], std sigma (0-1 scale) at full strength
    modulated: tf.Tensor  # [N, 1, 1, 1] float 0/1: strength follows intensity


@dataclasses.dataclass(frozen=True)
class FilmGrain:
    """Luminance grain of scanned film: one noise field on all three channels, blurred so grains
    span a pixel or two, and in some images strongest in the mid-tones (silver grains show
    least in clear highlights and dense shadows): strength 2 sqrt(Y (1 - Y)), 1 at Y = 0.5.
    """

    sigma_range: tuple[float, float] = (2.0, 20.0)  # grain std at full strength, 0-255 scale
    size: tuple[float, float] = (0.4, 0.8)  # grain blur std, pixels
    p_modulated: float = 0.5  # images whose grain follows intensity
    clip: bool = True  # standalone output clipped like noise.py's; Practical clips at its end

    def __post_init__(self) -> None:
        _check_range("sigma_range", self.sigma_range, 0.0, 255.0)
        _check_range("size", self.size, 0.1, 10.0)
        _check_probabilities(p_modulated=self.p_modulated)

    def draw(self, clean: tf.Tensor, seed: tf.Tensor) -> GrainDraw:
        """The grain field and modulation switch; the pixel values enter only in `apply`."""
        sigma_seed, size_seed, modulated_seed, pixel_seed = _split_seed(seed, 4)
        shape = tf.shape(clean)
        batch = shape[0]
        radius = max(1, math.ceil(3.0 * self.size[1]))
        canvas = _normal([batch, shape[1] + 2 * radius, shape[2] + 2 * radius, 1], pixel_seed)
        size = _uniform([batch], size_seed, *self.size)
        rows = _blur_matrices(shape[1], size, radius)
        columns = _blur_matrices(shape[2], size, radius)
        unit = _unit_rms(_filter_separably(canvas, rows, columns))
        sigma = _per_image(batch, sigma_seed, *self.sigma_range) / 255.0
        modulated = tf.cast(_chance(batch, modulated_seed, self.p_modulated), tf.float32)
        return GrainDraw(sigma * unit, modulated)

    @staticmethod
    def apply(signal: tf.Tensor, grain: GrainDraw) -> tf.Tensor:
        """The grain to add to `signal` [N, H, W, 3]: identical on its three channels."""
        luma = tf.clip_by_value(
            tf.reduce_sum(signal * tf.constant(_LUMA_WEIGHTS), axis=-1, keepdims=True), 0.0, 1.0
        )
        midtones = 2.0 * tf.sqrt(luma * (1.0 - luma))
        strength = 1.0 + grain.modulated * (midtones - 1.0)
        return tf.tile(strength * grain.grain, [1, 1, 1, 3])

    def noise(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return self.apply(clean, self.draw(clean, seed))

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return _finish(clean + self.noise(clean, seed), self.clip)


# --- compression --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Jpeg:
    """JPEG encode+decode at a per-image quality: users' photos are stored compressed, so
    block artefacts and smeared chroma arrive on top of the noise. Output is 8-bit, in [0, 1]."""

    quality_range: tuple[float, float] = (30.0, 95.0)

    def __post_init__(self) -> None:
        _check_range("quality_range", self.quality_range, 1.0, 100.0)

    def quality(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """The per-image qualities [N] that a call with `seed` uses."""
        return _uniform([tf.shape(clean)[0]], seed, *self.quality_range)

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        compressed = jpeg_compress(tf.clip_by_value(clean, 0.0, 1.0), self.quality(clean, seed))
        return tf.cast(compressed, tf.float32)


# --- the blind pipeline -------------------------------------------------------------------------


def _added_noise(model: NoiseModel, signal: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """What a noise.py model adds to `signal`, drawn on its clipped values (those models expect
    [0, 1] and clip), so it can be added to an unclipped image and composed with others."""
    clipped = tf.clip_by_value(signal, 0.0, 1.0)
    return model(clipped, seed) - clipped


_GAUSSIAN, _SPATIAL, _UNIFORM, _POISSON, _GRAIN = range(5)  # noise stages, in `_probabilities`


@dataclasses.dataclass(frozen=True)
class Practical:
    """Blind degradation in the spirit of BSRGAN/SCUNet: each image draws its own degradations.

    Per image: with probability `p_clean` it stays exactly as it is (a blind denoiser must leave
    clean photos alone); with probability `p_compressed` it is only JPEG compressed, no noise (a
    clean photo saved at a low quality: a model that never saw one treats its block edges as
    texture and leaves them, or smears them). Otherwise a round of noise: each noise stage is
    applied with its own probability, in a random per-image order (an image that draws none gets
    the stage it came closest to drawing, so every image outside those shares gets noise), then
    JPEG with probability `p_jpeg`, after the noise as in a camera or on upload. With
    probability `p_second_round` a second round of noise + JPEG follows (re-saved, re-shared
    pictures). Finally a `p_unclipped` share keeps unclipped floats (the papers' protocol:
    Gaussian noise neither clipped nor rounded); the rest is clipped and rounded to 8 bits like
    a stored file. JPEG output is always 8-bit.

    Order matters only where a stage reads the pixel values. The additive stages commute, so
    each is drawn once: Gaussian, spatial, and uniform (whose only use of the pixels is
    noise.py's clipping, taken at the round's input). Poisson and grain see the round's input
    plus every stage before them in the image's order: computed exactly with one Poisson
    evaluation and two cheap grain evaluations (grain, Poisson, grain covers both orders).
    Every candidate is computed for the whole batch, so a second round doubles the cost; stages
    with probability 0 are not computed at all.
    """

    # Per-image probabilities.
    p_clean: float = 0.05  # left untouched
    p_gaussian: float = 0.6  # CorrelatedGaussian: colour noise of demosaicked photos
    p_spatial: float = 0.3  # SpatiallyCorrelated: blotchy noise of demosaicking, optics, resizing
    p_poisson: float = 0.3  # PoissonGaussian: shot + read noise, grows with brightness
    p_grain: float = 0.1  # FilmGrain: scanned film
    p_uniform: float = 0.1  # UniformAmplitude: the prototype's noise
    p_jpeg: float = 0.7  # JPEG after each round's noise
    p_second_round: float = 0.2  # a second round of noise + JPEG
    p_unclipped: float = 0.3  # output kept as unclipped floats (the rest: clipped, 8-bit)
    p_compressed: float = 0.1  # JPEG alone, no noise (`compression`'s quality range)
    p_mild: float = 0.0  # a round's noise scaled down to faint (`mild_scale`)
    # Factor on a mild round's noise, drawn log-uniformly: x0.05-0.4 turns the stages' sigmas
    # of up to 50 into the 0.5-20 of a good camera's or a flatbed scanner's photos.
    mild_scale: tuple[float, float] = (0.05, 0.4)
    # The degradations.
    gaussian: CorrelatedGaussian = dataclasses.field(default_factory=CorrelatedGaussian)
    spatial: SpatiallyCorrelated = dataclasses.field(default_factory=SpatiallyCorrelated)
    poisson: PoissonGaussian = dataclasses.field(default_factory=PoissonGaussian)
    grain: FilmGrain = dataclasses.field(default_factory=FilmGrain)
    uniform: UniformAmplitude = dataclasses.field(default_factory=UniformAmplitude)
    jpeg: Jpeg = dataclasses.field(default_factory=Jpeg)
    # Compression alone reaches lower qualities than after noise (noise already costs the
    # dBs there); above ~90 its artefacts are below what p_clean already teaches to keep.
    compression: Jpeg = dataclasses.field(default_factory=lambda: Jpeg(quality_range=(20.0, 90.0)))

    def __post_init__(self) -> None:
        _check_probabilities(
            p_clean=self.p_clean,
            p_compressed=self.p_compressed,
            p_jpeg=self.p_jpeg,
            p_second_round=self.p_second_round,
            p_unclipped=self.p_unclipped,
            p_mild=self.p_mild,
            **dict(
                zip(
                    ("p_gaussian", "p_spatial", "p_uniform", "p_poisson", "p_grain"),
                    self._probabilities,
                )
            ),
        )
        _check_range("mild_scale", self.mild_scale, 1e-3, 1.0)

    @property
    def _probabilities(self) -> tuple[float, ...]:
        """Noise stage probabilities in stage-index order."""
        return (self.p_gaussian, self.p_spatial, self.p_uniform, self.p_poisson, self.p_grain)

    def _fired(self, batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Which noise stages each image gets: float 0/1 [N, stages], at least one per image."""
        probabilities = self._probabilities
        draws = _uniform([batch, len(probabilities)], seed)
        fired = draws < tf.constant(probabilities)
        if max(probabilities) > 0.0:
            # draw / p is < 1 exactly when a stage fires; the smallest is the nearest miss.
            scale = tf.constant([1.0 / p if p > 0.0 else 1e9 for p in probabilities])
            nearest = tf.one_hot(tf.argmin(draws * scale, axis=1), len(probabilities)) > 0.5
            none = tf.logical_not(tf.reduce_any(fired, axis=1, keepdims=True))
            fired = fired | (none & nearest)
        return tf.cast(fired, tf.float32)

    def _noise_round(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """`image` plus its drawn noise stages in its drawn order, unclipped."""
        (
            fire_seed,
            order_seed,
            gaussian_seed,
            spatial_seed,
            uniform_seed,
            poisson_seed,
            grain_seed,
        ) = _split_seed(seed, 7)
        batch = tf.shape(image)[0]
        fired = self._fired(batch, fire_seed)[:, :, None, None, None]  # [N, stages, 1, 1, 1]
        order = _uniform([batch, fired.shape[1]], order_seed)[:, :, None, None, None]

        def mask(stage: int, residual: tf.Tensor) -> tf.Tensor:
            return fired[:, stage] * residual

        def seen_by(stage: int, residuals: dict[int, tf.Tensor]) -> tf.Tensor:
            """The image as `stage` receives it: plus every stage placed before it."""
            earlier = [
                tf.cast(order[:, other] < order[:, stage], tf.float32) * residual
                for other, residual in residuals.items()
                if other != stage
            ]
            return image + tf.add_n(earlier) if earlier else image

        additive = (
            (_GAUSSIAN, lambda: self.gaussian.noise(image, gaussian_seed)),
            (_SPATIAL, lambda: self.spatial.noise(image, spatial_seed)),
            (_UNIFORM, lambda: _added_noise(self.uniform, image, uniform_seed)),
        )
        probabilities = self._probabilities
        residuals = {
            stage: mask(stage, draw()) for stage, draw in additive if probabilities[stage] > 0.0
        }  # stages that never fire are not computed
        grain = self.grain.draw(image, grain_seed) if probabilities[_GRAIN] > 0.0 else None
        if grain is not None:  # right for images whose grain precedes Poisson: all Poisson needs
            residuals[_GRAIN] = mask(_GRAIN, self.grain.apply(seen_by(_GRAIN, residuals), grain))
        if probabilities[_POISSON] > 0.0:
            poisson = _added_noise(self.poisson, seen_by(_POISSON, residuals), poisson_seed)
            residuals[_POISSON] = mask(_POISSON, poisson)
        if grain is not None:  # now right for every image: grain after Poisson sees its noise
            residuals[_GRAIN] = mask(_GRAIN, self.grain.apply(seen_by(_GRAIN, residuals), grain))
        if not residuals:
            return image
        return image + tf.add_n(list(residuals.values()))

    def _mild(self, image: tf.Tensor, noisy: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """A `p_mild` share of the images with their round's noise scaled down.

        Every stage's noise at a fraction of its strength: Poisson noise so scaled is that of
        a brighter exposure, grain a finer film. Without it faint noise is rare in the mix (the
        stages draw sigmas up to 50 and add up), and a model that rarely saw faint noise after
        JPEG keeps it as texture, as it must keep clean and compressed photos.
        """
        choice_seed, factor_seed = _split_seed(seed, 2)
        batch = tf.shape(image)[0]
        low, high = self.mild_scale
        factor = tf.exp(_per_image(batch, factor_seed, math.log(low), math.log(high)))
        mild = _chance(batch, choice_seed, self.p_mild)
        return tf.where(mild, image + factor * (noisy - image), noisy)

    def _round(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """One round: noise (faint for a `p_mild` share), then JPEG for a `p_jpeg` share."""
        noise_seed, jpeg_choice_seed, jpeg_seed = _split_seed(seed, 3)
        noisy = self._noise_round(image, noise_seed)
        if self.p_mild > 0.0:  # seeds derived, not split anew: the other draws stay put
            noisy = self._mild(image, noisy, jpeg_choice_seed)
        if self.p_jpeg == 0.0:
            return noisy
        compress = _chance(tf.shape(image)[0], jpeg_choice_seed, self.p_jpeg)
        return tf.where(compress, self.jpeg(noisy, jpeg_seed), noisy)

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        clean = tf.cast(clean, tf.float32)
        batch = tf.shape(clean)[0]
        clean_seed, unclipped_seed, twice_seed, first_seed, second_seed = _split_seed(seed, 5)
        degraded = self._round(clean, first_seed)
        if self.p_second_round > 0.0:
            twice = _chance(batch, twice_seed, self.p_second_round)
            degraded = tf.where(twice, self._round(degraded, second_seed), degraded)
        unclipped = _chance(batch, unclipped_seed, self.p_unclipped)
        degraded = tf.where(unclipped, degraded, quantise(degraded))
        if self.p_compressed > 0.0:  # seeds derived, not split anew: the other draws stay put
            choice_seed, quality_seed = _split_seed(clean_seed, 2)
            compressed = self.compression(clean, quality_seed)
            chosen = _chance(batch, choice_seed, self.p_compressed)
            degraded = tf.where(chosen, compressed, degraded)
        return tf.where(_chance(batch, clean_seed, self.p_clean), clean, degraded)
