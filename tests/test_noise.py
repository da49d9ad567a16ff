"""Noise statistics, determinism of evaluation noise, and freshness of training noise."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfdenoise.degradations import catalog, noise

GRAY = tf.fill([64, 32, 32, 3], 0.5)  # mid-grey: no clipping for moderate noise


def seed(value: int = 1) -> tf.Tensor:
    return tf.constant([value, 7], tf.int32)


def test_seed_model_amplitude_is_uniform_per_image_and_bounded():
    noisy = noise.UniformAmplitude()(GRAY, seed()).numpy()
    deviation = np.abs(noisy - 0.5).reshape(64, -1)
    amplitude = deviation.max(axis=1)  # with 3072 U(-a, a) draws the max is ~a
    assert amplitude.max() <= 0.5 + 1e-6
    assert amplitude.min() < 0.1 and amplitude.max() > 0.4  # spans U(0, 0.5)
    assert abs(amplitude.mean() - 0.25) < 0.06
    # within an image, noise is uniform: std of U(-a, a) is a / sqrt(3)
    std = (noisy - 0.5).reshape(64, -1).std(axis=1)
    np.testing.assert_allclose(std, amplitude / np.sqrt(3), rtol=0.08, atol=1e-3)


@pytest.mark.parametrize("sigma", [15.0, 25.0, 50.0])
def test_gaussian_std_matches_sigma(sigma):
    noisy = noise.Gaussian(sigma, sigma)(GRAY, seed()).numpy()
    assert abs((noisy - 0.5).std() * 255 - sigma) < 0.02 * sigma
    assert abs((noisy - 0.5).mean()) < 0.005


def test_gaussian_sigma_range_per_image():
    noisy = noise.Gaussian(0.0, 55.0)(GRAY, seed()).numpy()
    stds = (noisy - 0.5).reshape(64, -1).std(axis=1) * 255
    assert stds.min() < 8 and 45 < stds.max() < 56.5


def test_low_sigma_sampling_favours_mild_noise_but_covers_the_range():
    """Density 2(1 - x) on the range: P(sigma < half the range) = 3/4, not 1/2."""
    sigmas = {}
    for sampling in ("uniform", "low"):
        model = noise.Gaussian(10.0, 50.0, sampling=sampling)
        sigmas[sampling] = model._sigma(tf.zeros([20000, 1, 1, 1]), seed()).numpy().ravel()
    for values in sigmas.values():
        assert values.min() >= 10.0 and values.max() <= 50.0
    assert abs((sigmas["uniform"] < 30).mean() - 0.5) < 0.02
    assert abs((sigmas["low"] < 30).mean() - 0.75) < 0.02
    assert sigmas["low"].max() > 45  # heavy noise still trained, only less often
    with pytest.raises(ValueError, match="sampling"):
        noise.Gaussian(0.0, 55.0, sampling="log")


def test_poisson_gaussian_noise_grows_with_brightness():
    dark, bright = tf.fill([16, 32, 32, 3], 0.1), tf.fill([16, 32, 32, 3], 0.8)
    model = noise.PoissonGaussian(peak_min=30, peak_max=30, read_sigma_max=0.0)
    dark_std = (model(dark, seed()).numpy() - 0.1).std()
    bright_std = (model(bright, seed()).numpy() - 0.8).std()
    np.testing.assert_allclose([dark_std, bright_std], np.sqrt([0.1 / 30, 0.8 / 30]), rtol=0.1)


def test_salt_pepper_sets_pixels_to_black_or_white():
    noisy = noise.SaltPepper(max_fraction=0.1)(GRAY, seed()).numpy()
    changed = noisy != 0.5
    assert set(np.unique(noisy[changed])) <= {0.0, 1.0}
    assert 0.01 < changed.mean() < 0.1
    assert np.all(changed.all(axis=3) == changed.any(axis=3))  # whole pixels, all channels


@pytest.mark.parametrize(
    "name", ["mix", "prototype", "seed", "gaussian", "poisson-gaussian", "salt-pepper"]
)
def test_outputs_are_clipped_and_deterministic_per_seed(name):
    model = catalog.build_noise(name)
    clean = tf.random.stateless_uniform([8, 16, 16, 3], [3, 4])
    first, again = model(clean, seed(5)).numpy(), model(clean, seed(5)).numpy()
    other = model(clean, seed(6)).numpy()
    assert first.min() >= 0.0 and first.max() <= 1.0
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_mixture_leaves_about_a_tenth_of_images_clean():
    clean = tf.random.stateless_uniform([400, 8, 8, 3], [1, 2], 0.2, 0.8)
    noisy = catalog.build_noise("mix")(clean, seed()).numpy()
    untouched = np.all(noisy == clean.numpy(), axis=(1, 2, 3))
    assert 0.05 < untouched.mean() < 0.16


def test_noise_runs_inside_tf_function_with_fresh_seeds():
    model = catalog.build_noise("gaussian")
    generator = tf.random.Generator.from_seed(1)

    @tf.function
    def step(images):
        return model(images, generator.make_seeds(1)[:, 0])

    first, second = step(GRAY).numpy(), step(GRAY).numpy()
    assert not np.array_equal(first, second)


def test_unknown_noise_is_refused():
    with pytest.raises(ValueError, match="unknown noise"):
        catalog.build_noise("speckle")


def test_identical_images_score_a_finite_capped_psnr():
    from tfdenoise import metrics

    image = tf.fill([2, 16, 16, 3], 0.5)
    psnr, _ = metrics.scores(image, image)
    assert np.all(psnr.numpy() == metrics.PSNR_CAP)


def test_blind_is_half_papers_white_gaussian_half_practical():
    """--noise blind: the white half is unclipped, channel-independent Gaussian for about half
    of its images (the papers' protocol) and 8-bit for the rest; no image is left clean by it."""
    white = catalog.white_gaussian((25.0, 25.0))
    clean = tf.fill([200, 32, 32, 3], 0.5)
    noisy = white(clean, seed(3)).numpy()
    residual = noisy - 0.5
    eight_bit = np.all(np.abs(noisy * 255 - np.round(noisy * 255)) < 1e-4, axis=(1, 2, 3))
    assert 0.35 < eight_bit.mean() < 0.65
    np.testing.assert_allclose(residual[~eight_bit].std(), 25 / 255, rtol=0.03)
    channels = residual[~eight_bit].reshape(-1, 3)
    assert abs(np.corrcoef(channels.T)[0, 1]) < 0.02  # white: no colour correlation
    assert not np.any(np.all(residual == 0, axis=(1, 2, 3)))

    named = catalog.build_noise("white", sigma_range=(25.0, 25.0))  # fit --noise white
    np.testing.assert_array_equal(named(clean, seed(3)).numpy(), noisy)

    blind = catalog.build_noise("blind")
    photos = tf.random.stateless_uniform([64, 24, 24, 3], [1, 2], 0.2, 0.8)
    first, again = blind(photos, seed(5)).numpy(), blind(photos, seed(5)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, blind(photos, seed(6)).numpy())


def test_degradation_weights_set_the_practical_half_of_blind():
    """`--noise blind --degradation clean 0.2`: a fifth of the practical half stays clean, so
    about a tenth of all images."""
    photos = tf.random.stateless_uniform([600, 8, 8, 3], [1, 2], 0.2, 0.8)
    noisy = catalog.build_noise("blind", weights={"clean": 0.2})(photos, seed(4)).numpy()
    untouched = np.all(noisy == photos.numpy(), axis=(1, 2, 3)).mean()
    assert 0.06 < untouched < 0.14
    default = catalog.build_noise("blind")(photos, seed(4)).numpy()
    assert np.all(default == photos.numpy(), axis=(1, 2, 3)).mean() < 0.05
    with pytest.raises(ValueError, match="practical or blind"):
        catalog.build_noise("mix", weights={"clean": 0.2})
