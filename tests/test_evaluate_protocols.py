"""`evaluate --protocol paper`, the realistic conditions, and `fit --noise practical`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import photo_like, save

from tfdenoise import cli, config, evaluate, models
from tfdenoise.config import FitConfig
from tfdenoise.degradations import catalog
from tfdenoise.degradations.practical import Practical
from tfdenoise.io import files


@pytest.fixture(scope="module")
def identity_path(tmp_path_factory):
    """A U-Net whose noise head is zero: it returns its input exactly (unclipped floats too)."""
    model = models.built(models.UNet(widths=(4, 8), name="identity"))
    model.head.set_weights([np.zeros_like(w) for w in model.head.get_weights()])
    path = tmp_path_factory.mktemp("model") / "identity.keras"
    model.save(path)
    return path


def run_evaluate(root, model_path, tmp_path, *extra):
    json_file = tmp_path / "scores.json"
    args = ["evaluate", str(root), "--all", "--model", str(model_path), "--baselines", "none"]
    result = CliRunner().invoke(cli.main, [*args, "--ensemble", "1", *extra, "--json", json_file])
    assert result.exit_code == 0, result.output
    return json.loads(json_file.read_text()), result.output


def test_paper_protocol_matches_an_independent_computation(identity_path, tmp_path):
    """The papers' way, written out here with numpy alone: float32 image / 255, plus
    N(0, sigma/255) from RandomState(image index), then the output clipped and rounded to
    uint8 and PSNR over RGB with no border. An identity model's output is that noisy image."""
    root = tmp_path / "photos"
    clean = [photo_like(37, 45, 4 + index, noise=0) for index in range(2)]
    for index, image in enumerate(clean):
        save(root / f"p{index}.png", image)
    (root / "README.txt").write_text("where these photos come from")
    scores, output = run_evaluate(
        root, identity_path, tmp_path, "--protocol", "paper", "--conditions", "gaussian-50"
    )
    assert scores["protocol"] == "paper" and scores["crop"] is None  # full images
    assert "paper protocol" in output
    assert "not read: 1 file under" in output and "(.txt 1)" in output
    expected = []
    for index, image in enumerate(clean):
        noisy = image.astype(np.float32) / 255.0
        noisy += np.random.RandomState(index).normal(0.0, 50 / 255.0, noisy.shape)
        assert noisy.min() < 0.0 or noisy.max() > 1.0  # the noise really is unclipped
        restored = np.clip(np.round(noisy * 255.0), 0, 255)
        mse = np.mean((restored - image.astype(np.float64)) ** 2)
        expected.append(10 * np.log10(255.0**2 / mse))
    got = scores["scores"]["gaussian-50"]["model"]["per_image_psnr"]
    assert got == pytest.approx(expected, abs=1e-3)


def test_paper_protocol_feeds_the_model_unclipped_noise(tmp_path):
    """A model that clips its input differs from one that does not only if the input holds
    values outside [0, 1]: under the papers' protocol it does, under the stored one it
    cannot (8-bit files hold no negative light)."""
    clean = photo_like(24, 24, 1, noise=0)
    seen = []

    def record(image):
        seen.append((float(np.min(image)), image.dtype))
        return np.clip(np.round(np.asarray(image, np.float64) * 255), 0, 255).astype(np.uint8)

    conditions = {"gaussian-50": catalog.ALL_CONDITIONS["gaussian-50"]}
    evaluate.evaluate_images(record, [lambda: clean], conditions=conditions, protocol="paper")
    assert seen[1][0] < 0 and seen[1][1] == np.float32  # [0] is the clean pass
    seen.clear()
    evaluate.evaluate_images(lambda image: image, [lambda: clean], conditions=conditions)
    assert seen == [] or seen[1][0] >= 0


def test_realistic_conditions_are_scored_and_fixed(identity_path, tmp_path):
    root = tmp_path / "photos"
    for index in range(2):
        save(root / f"p{index}.png", photo_like(40, 48, 30 + index, noise=0))
    names = "jpeg-noise,jpeg-30,correlated"
    first, output = run_evaluate(root, identity_path, tmp_path, "--conditions", names)
    second, _ = run_evaluate(root, identity_path, tmp_path, "--conditions", names)
    for name in names.split(","):
        assert name in output
        noisy = first["scores"][name]["noisy"]
        # the identity model returns the degraded input: same scores as the noisy column
        assert first["scores"][name]["model"]["psnr"] == pytest.approx(noisy["psnr"], abs=1e-6)
        assert first["scores"][name]["noisy"] == second["scores"][name]["noisy"]  # seeded
    jpeg30, jpeg_noise = first["scores"]["jpeg-30"], first["scores"]["jpeg-noise"]
    assert 25 < jpeg30["noisy"]["psnr"] < 45  # compression only: mild but lossy
    assert jpeg_noise["noisy"]["psnr"] < jpeg30["noisy"]["psnr"]


def test_libjpeg_condition_is_real_libjpeg():
    clean = tf.constant(photo_like(32, 40, 2, noise=0)[None], tf.float32) / 255.0
    degraded = catalog.LibJpeg(30)(clean, tf.constant([0, 0]))
    pixels = tf.cast(tf.round(clean[0] * 255), tf.uint8)
    expected = tf.io.decode_jpeg(tf.io.encode_jpeg(pixels, quality=30))
    np.testing.assert_array_equal(
        np.round(degraded[0].numpy() * 255).astype(np.uint8), expected.numpy()
    )


def test_baselines_get_the_true_sigma_or_an_estimate():
    clean = photo_like(64, 64, 3, noise=0)
    gaussian = catalog.ALL_CONDITIONS["gaussian-25"]
    noisy = evaluate.add_noise_uint8(clean, gaussian, 0, 1)
    assert evaluate.baseline_sigma(gaussian, clean, noisy) == 25.0
    correlated = catalog.ALL_CONDITIONS["correlated"]
    noisy = evaluate.add_noise_uint8(clean, correlated, 0, 6)
    estimate = evaluate.baseline_sigma(correlated, clean, noisy)
    assert 3 < estimate < 30  # estimated from the pixels, not the noise actually added


def test_practical_noise_from_fit_options_and_config():
    model = catalog.build_noise("practical", weights={"jpeg": 1.0, "second-round": 0.0})
    assert isinstance(model, Practical) and model.p_jpeg == 1.0 and model.p_second_round == 0.0
    with pytest.raises(ValueError, match="unknown degradation"):
        catalog.build_noise("practical", weights={"speckle": 0.5})
    with pytest.raises(ValueError, match="practical"):
        catalog.build_noise("gaussian", weights={"jpeg": 0.5})
    config = FitConfig(noise="practical", degradation_weights={"jpeg": 0.9})
    config.validate()
    assert FitConfig.from_dict(json.loads(json.dumps(config.__dict__))) == config
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FitConfig(noise="practical", degradation_weights={"jpeg": 1.5}).validate()


@pytest.mark.slow
def test_fit_trains_on_practical_degradations_and_evaluate_reads_the_run(image_folder, tmp_path):
    runs_dir = tmp_path / "runs"
    result = CliRunner().invoke(
        cli.main,
        [
            "fit", str(image_folder), "--runs-dir", str(runs_dir), "--noise", "practical",
            "--degradation", "jpeg", "0.9", "--epochs", "2", "--steps-per-epoch", "10",
            "--batch-size", "4", "--patch-size", "32", "--eval-size", "32", "--widths", "8,16",
            "--precision", "float32", "--lr", "3e-3",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = runs_dir.iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["noise"] == "practical" and config["degradation_weights"] == {"jpeg": 0.9}
    history = json.loads((run / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    scores, _ = run_evaluate(image_folder, run, tmp_path, "--conditions", "jpeg-noise")
    assert scores["scores"]["jpeg-noise"]["model"]["images"] > 0


def test_the_condition_names_fit_accepts_are_the_conditions_evaluate_scores():
    assert config.CONDITIONS == tuple(catalog.ALL_CONDITIONS)


def test_evaluate_skips_what_it_cannot_score_with_a_reason_and_scores_the_rest(
    identity_path, tmp_path
):
    # A real folder holds icons, 1-pixel strips and broken files beside the photos: each is
    # named with its reason, the photos are scored, and nothing stops the run (SSIM's 11x11
    # window used to crash it on the first small image).
    root = tmp_path / "photos"
    for index in range(2):
        save(root / f"p{index}.png", photo_like(40, 48, 40 + index, noise=0))
    save(root / "icon.png", photo_like(8, 8, 1, noise=0))
    save(root / "strip.png", photo_like(1, 300, 2, noise=0))
    (root / "notes.jpg").write_text("not an image\n")
    scores, output = run_evaluate(root, identity_path, tmp_path, "--conditions", "gaussian-25")
    assert scores["images"] == ["p0.png", "p1.png"]
    assert scores["scores"]["gaussian-25"]["model"]["images"] == 2
    notes = "\n".join(scores["notes"])
    assert "icon.png: too small to score: 8x8" in notes
    assert "strip.png: too small to score: 300x1" in notes
    assert "notes.jpg: not an image" in notes
    assert "skipped" in output and "icon.png" in output


def test_evaluate_refuses_a_crop_smaller_than_ssims_window(identity_path, tmp_path):
    root = tmp_path / "photos"
    save(root / "p.png", photo_like(40, 48, 3, noise=0))
    args = ["evaluate", str(root), "--all", "--model", str(identity_path), "--crop", "8"]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2
    assert "at least 11 pixels" in result.output
    # and fit refuses validation crops it could not score, before training rather than after
    result = CliRunner().invoke(cli.main, ["fit", str(root), "--eval-size", "8"])
    assert result.exit_code == 2 and "--eval-size" in result.output
    with pytest.raises(ValueError, match="eval_size must be >= 11"):
        FitConfig(eval_size=10).validate()


def test_an_image_that_fails_to_load_mid_run_is_skipped_not_fatal():
    clean = photo_like(24, 24, 5, noise=0)

    def broken():
        raise files.ImageError("corrupt or truncated: decoding failed")

    conditions = {"gaussian-25": catalog.ALL_CONDITIONS["gaussian-25"]}
    scores, _, skipped = evaluate.evaluate_images(
        lambda image: image, [lambda: clean, broken, lambda: clean], conditions=conditions
    )
    assert skipped == {1: "corrupt or truncated: decoding failed"}
    assert scores["gaussian-25"]["model"].images == 2
