"""Self-ensemble: exact inverses, and averaging really reduces a view-dependent error."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import photo_like, save

from tfdenoise import checkpoints, cli, ensemble, inference


def test_every_transform_is_undone_by_its_inverse():
    images = tf.random.stateless_uniform([2, 6, 9, 3], [1, 2])  # not square: transposes show
    views = set()
    for view in ensemble.VIEWS:
        np.testing.assert_array_equal(view.inverse(view.forward(images)).numpy(), images.numpy())
        views.add(view.forward(images).numpy().tobytes())
    assert len(views) == 8  # eight different views of the same images


class CornerBiased:
    """A fake model whose error depends on orientation: it brightens the top-left corner."""

    stride = 1

    def __call__(self, images, training=False):
        bump = np.zeros(images.shape[1:3], np.float32)
        bump[0, 0] = 0.4
        return images + tf.constant(bump)[None, :, :, None]


@pytest.mark.parametrize("passes", [2, 4, 8])
def test_averaging_views_dilutes_an_orientation_dependent_error(passes):
    images = tf.fill([1, 16, 16, 3], 0.5)  # a multiple of 16: no padding, every corner kept
    output = ensemble.SelfEnsemble(CornerBiased(), passes)(images).numpy()
    # each view's bump lands on a different corner (the transpose keeps top-left fixed)
    assert output[0, 0, 0, 0] == pytest.approx(0.5 + 0.4 * (1 + (passes == 8)) / passes)
    assert output.mean() == pytest.approx(0.5 + 0.4 / 256, rel=1e-5)


class BlockEdgeMarker:
    """A fake model that brightens the rows and columns on the edges of 8-pixel blocks of the
    image it is given, as a deblocker trained on JPEG's block grid acts where it sees edges."""

    stride = 8

    def __call__(self, images, training=False):
        height, width = images.shape[1], images.shape[2]
        rows = np.isin(np.arange(height) % 8, (0, 7)).astype(np.float32)
        cols = np.isin(np.arange(width) % 8, (0, 7)).astype(np.float32)
        marks = 0.1 * (rows[:, None] + cols[None, :])
        return images + tf.constant(marks)[None, :, :, None]


@pytest.mark.parametrize("passes", [2, 4, 8])
@pytest.mark.parametrize("shape", [(13, 21), (16, 24), (31, 9)])
def test_every_view_sees_the_jpeg_block_grid_where_the_image_has_it(passes, shape):
    # flipping a 13-row image would put the block edges on rows 4|5 instead of 7|8; the views
    # are taken of the image padded to a multiple of 16, so they all agree with one pass
    images = tf.fill([1, *shape, 3], 0.5)
    single = BlockEdgeMarker()(images).numpy()
    averaged = ensemble.SelfEnsemble(BlockEdgeMarker(), passes)(images).numpy()
    assert averaged.shape == single.shape
    np.testing.assert_allclose(averaged, single, atol=1e-6)


def test_with_passes_keeps_the_model_for_one_pass_and_refuses_odd_counts():
    model = CornerBiased()
    assert ensemble.with_passes(model, 1) is model
    assert ensemble.with_passes(model, 4).stride == 1
    with pytest.raises(ValueError, match="one of"):
        ensemble.SelfEnsemble(model, 3)


def test_tiled_ensemble_output_matches_the_whole_image(tiny_model_path):
    image = photo_like(150, 173, seed=5, noise=15)
    model = checkpoints.load_denoiser(str(tiny_model_path), ensemble=4)
    whole = inference.denoise_rgb8(model, image, tile=512).astype(int)
    tiled = inference.denoise_rgb8(model, image, tile=64, overlap=16).astype(int)
    assert np.abs(whole - tiled).mean() < 0.5
    single = inference.denoise_rgb8(
        checkpoints.load_denoiser(str(tiny_model_path)), image, tile=512
    )
    assert np.abs(whole - single.astype(int)).max() > 0  # the passes really ran


def test_predict_and_evaluate_take_ensemble(tiny_model_path, tmp_path):
    root = tmp_path / "in"
    save(root / "a.png", photo_like(40, 48, 1, noise=20))
    result = CliRunner().invoke(
        cli.predict_command, [str(root), "--model", str(tiny_model_path), "--ensemble", "8"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "in_denoised" / "a.png").is_file()
    json_file = tmp_path / "scores.json"
    result = CliRunner().invoke(
        cli.main,
        [
            "evaluate",
            str(root),
            "--all",
            "--model",
            str(tiny_model_path),
            "--baselines",
            "none",
            "--ensemble",
            "1",
            "--json",
            str(json_file),
        ],
    )
    assert result.exit_code == 0, result.output
    assert '"ensemble": 1' in json_file.read_text()
    result = CliRunner().invoke(cli.predict_command, [str(root), "--ensemble", "3"])
    assert result.exit_code == 2
