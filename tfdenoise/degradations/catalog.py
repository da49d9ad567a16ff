"""Degradations by name: what `fit --noise NAME` trains on and the fixed conditions that
`evaluate` and the test split are scored under.

Evaluation conditions are seeded by their place in `ALL_CONDITIONS`, so new ones are only ever
appended: every earlier condition keeps seeing exactly the same noisy images, run after run.
The realistic conditions compress with real libjpeg (`tf.io.encode_jpeg`, as files are
written), not with the training simulation: the score must not depend on how faithful the
simulation is.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfdenoise.config import DEGRADATIONS, PROTOTYPE_ALIASES, WEIGHTED_NOISES
from tfdenoise.degradations.noise import (
    Gaussian,
    Mixture,
    NoiseModel,
    PoissonGaussian,
    SaltPepper,
    UniformAmplitude,
)
from tfdenoise.degradations.practical import CorrelatedGaussian, Practical, SpatiallyCorrelated


def practical_field(degradation: str) -> str:
    """The Practical field holding a degradation's probability: "second-round" ->
    "p_second_round"."""
    return "p_" + degradation.replace("-", "_")


def white_gaussian(sigma_range: tuple[float, float] = (0.0, 55.0)) -> Practical:
    """Blind white Gaussian noise as the papers add it: a `p_unclipped` half left unclipped
    floats (their protocol), the other half clipped and rounded to 8 bits (a stored file)."""
    return Practical(
        p_clean=0.0,
        p_gaussian=1.0,
        p_spatial=0.0,
        p_poisson=0.0,
        p_grain=0.0,
        p_uniform=0.0,
        p_jpeg=0.0,
        p_second_round=0.0,
        p_unclipped=0.5,
        p_compressed=0.0,
        gaussian=CorrelatedGaussian(sigma_range=sigma_range, p_white=1.0, p_gray=0.0),
    )


def build_noise(
    name: str,
    sigma_range: tuple[float, float] = (0.0, 55.0),
    sigma_sampling: str = "uniform",
    weights: dict[str, float] | None = None,
) -> NoiseModel:
    """The noise model behind a `--noise` name; `weights` set Practical's probabilities (for
    "blind": those of its practical half)."""
    name = PROTOTYPE_ALIASES.get(name, name)
    if weights and name not in WEIGHTED_NOISES:
        raise ValueError(f"degradation weights apply to --noise practical or blind, not {name!r}")
    gaussian = Gaussian(*sigma_range, sampling=sigma_sampling)
    if name == "prototype":
        return UniformAmplitude()
    if name == "gaussian":
        return gaussian
    if name == "white":
        return white_gaussian(sigma_range)
    if name == "poisson-gaussian":
        return PoissonGaussian()
    if name == "salt-pepper":
        return SaltPepper()
    if name == "mix":
        return Mixture(
            components=((0.5, gaussian), (0.2, UniformAmplitude()), (0.2, PoissonGaussian())),
            clean=0.1,
        )
    if name in WEIGHTED_NOISES:
        unknown = set(weights or {}) - set(DEGRADATIONS)
        if unknown:
            raise ValueError(
                f"unknown degradation(s) {sorted(unknown)}; choose from {', '.join(DEGRADATIONS)}"
            )
        fields = {practical_field(key): float(value) for key, value in (weights or {}).items()}
        practical = Practical(**fields)
        if name == "blind":
            return Mixture(components=((0.5, white_gaussian(sigma_range)), (0.5, practical)))
        return practical
    raise ValueError(f"unknown noise model {name!r}")


@dataclasses.dataclass(frozen=True)
class LibJpeg:
    """Real libjpeg compression at a fixed quality (4:2:0, as cameras and most tools write),
    after an optional noise model: the stored-file condition the simulation is trained for."""

    quality: int
    before: NoiseModel | None = None

    def __call__(self, clean: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        images = clean if self.before is None else self.before(clean, seed)
        pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)

        def compress(image: tf.Tensor) -> tf.Tensor:
            encoded = tf.io.encode_jpeg(image, quality=self.quality)
            return tf.io.decode_jpeg(encoded, channels=3)

        decoded = tf.map_fn(compress, pixels, fn_output_signature=tf.uint8)
        return tf.cast(decoded, tf.float32) / 255.0


# The fixed conditions the test split of every run is scored on (kept short: fit scores them
# at its end on CPU too).
EVAL_CONDITIONS: dict[str, NoiseModel] = {
    "gaussian-15": Gaussian(15.0, 15.0),
    "gaussian-25": Gaussian(25.0, 25.0),
    "gaussian-50": Gaussian(50.0, 50.0),
    "prototype": UniformAmplitude(),  # the prototype's noise
}

# What users' photos carry: noise saved as JPEG, compression alone, correlated colour noise,
# faint noise saved as JPEG. New conditions are appended: each one's seed is its place.
REALISTIC_CONDITIONS: dict[str, NoiseModel] = {
    "jpeg-noise": LibJpeg(80, Gaussian(15.0, 15.0)),
    "jpeg-30": LibJpeg(30),
    "correlated": SpatiallyCorrelated(
        colour=CorrelatedGaussian(sigma_range=(15.0, 15.0), p_white=0.0, p_gray=0.0),
        blur_sigma=(0.8, 0.8),
        p_resize=0.0,
    ),
    # faint noise as a good camera stores it: what most real noisy photos are, and where a model
    # that must keep clean and compressed photos as they are is most tempted to keep it too
    "jpeg-mild": LibJpeg(90, Gaussian(5.0, 5.0)),
}

# Every condition `evaluate` knows, in the order that fixes each one's seed.
ALL_CONDITIONS: dict[str, NoiseModel] = {**EVAL_CONDITIONS, **REALISTIC_CONDITIONS}
# Each condition's seed number: its place in ALL_CONDITIONS, whatever subset is scored.
CONDITION_NUMBERS: dict[str, int] = {name: number for number, name in enumerate(ALL_CONDITIONS)}
