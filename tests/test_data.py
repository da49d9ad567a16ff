"""Pipeline stages eagerly and inside tf.data, and the folder pipelines end to end."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import photo_like, save, write_mode_zoo

from tfdenoise import padding
from tfdenoise.data import pipeline
from tfdenoise.io import files as image_files


def encoded(path):
    info = image_files.probe(path)
    return tf.constant(path.read_bytes()), tf.constant(int(info.decoder))


def test_mirror_pad_handles_images_smaller_than_the_padding():
    tiny = tf.constant([[[1], [2]]], tf.uint8)  # 1 x 2
    padded = padding.mirror_pad_to(tiny, 3, 5).numpy()[..., 0]
    np.testing.assert_array_equal(padded, [[1, 2, 2, 1, 1]] * 3)
    batch = tf.zeros([2, 5, 7, 3])
    assert padding.pad_to_multiple(batch, 8).shape == (2, 8, 8, 3)


@pytest.mark.parametrize(
    "kind",
    [
        "rgb_jpeg",
        "gray_jpeg",
        "cmyk_jpeg",
        "rgb_png",
        "rgba_png",
        "gray16_png",
        "gif",
        "bmp",
        "webp",
        "palette_png",
    ],
)
def test_decode_full_matches_pil_reference(tmp_path, kind):
    path = write_mode_zoo(tmp_path)[kind]
    decoded = pipeline.decode_full(*encoded(path)).numpy()
    reference = image_files.load_rgb8(path)
    assert decoded.shape == reference.shape
    difference = np.abs(decoded.astype(int) - reference.astype(int))
    if kind.endswith("jpeg"):
        # TF's and PIL's JPEG decoders differ in IDCT rounding and chroma upsampling
        assert difference.mean() < 1.5 and difference.max() <= 8
    else:
        assert difference.max() == 0  # lossless formats must decode identically


def test_jpeg_window_decode_equals_crop_of_full_decode(tmp_path):
    # 4:4:4 sampling: without chroma upsampling, window and full decodes are bit-identical
    path = save(tmp_path / "big.jpg", photo_like(200, 240), quality=90, subsampling=0)
    full = pipeline.decode_full(*encoded(path)).numpy()
    patches = pipeline.decode_random_patches(*encoded(path), size=64, count=5).numpy()
    assert patches.shape == (5, 64, 64, 3) and patches.dtype == np.uint8
    for patch in patches:  # each patch is exactly some window of the full image
        candidates = zip(*np.nonzero(np.all(full[:137, :177] == patch[0, 0], axis=-1)))
        assert any(np.array_equal(full[t : t + 64, x : x + 64], patch) for t, x in candidates)


def test_images_smaller_than_the_patch_are_mirror_padded(tmp_path):
    path = save(tmp_path / "small.png", photo_like(20, 30))
    patches = pipeline.decode_random_patches(*encoded(path), size=64, count=2).numpy()
    assert patches.shape == (2, 64, 64, 3)
    one_pixel = save(tmp_path / "pixel.jpg", np.full((1, 1, 3), 77, np.uint8))
    patches = pipeline.decode_random_patches(*encoded(one_pixel), size=16, count=1).numpy()
    assert np.abs(patches.astype(int) - 77).max() <= 2


def test_center_crop_is_deterministic_and_centred(tmp_path):
    array = photo_like(100, 140)
    path = save(tmp_path / "c.png", array)
    crop = pipeline.decode_center_crop(*encoded(path), size=40).numpy()
    np.testing.assert_array_equal(crop, array[30:70, 50:90])
    jpeg = save(tmp_path / "c.jpg", array, quality=95)
    first = pipeline.decode_center_crop(*encoded(jpeg), size=40).numpy()
    np.testing.assert_array_equal(
        first, pipeline.decode_center_crop(*encoded(jpeg), size=40).numpy()
    )


def test_stages_work_inside_tf_data(tmp_path):
    paths = [save(tmp_path / f"{i}.jpg", photo_like(90, 70, seed=i)) for i in range(3)]
    dataset = tf.data.Dataset.from_tensor_slices(([p.read_bytes() for p in paths], [0, 0, 0])).map(
        lambda d, k: pipeline.decode_random_patches(d, k, 32, 2), num_parallel_calls=2
    )
    shapes = [batch.shape for batch in dataset]
    assert shapes == [(2, 32, 32, 3)] * 3


def test_resize_mode_gives_whole_image_squares(tmp_path):
    path = save(tmp_path / "r.png", photo_like(50, 100))
    resized = pipeline.decode_resized(*encoded(path), size=32).numpy()
    assert resized.shape == (32, 32, 3) and resized.dtype == np.uint8


def test_jpeg_scale_index_keeps_both_sides_at_least_the_size(tmp_path):
    # 1/2, 1/4, 1/8 scale-downs are allowed while the short side stays >= the size
    for (height, width), size, expected in [
        ((100, 300), 50, 1),
        ((100, 300), 51, 0),
        ((400, 200), 25, 3),
        ((400, 200), 24, 3),
        ((64, 64), 16, 2),
    ]:
        path = save(tmp_path / f"{height}x{width}.jpg", photo_like(height, width))
        index = int(pipeline.jpeg_scale_index(tf.constant(path.read_bytes()), size))
        assert index == expected, (height, width, size)
        decoded = pipeline.decode_jpeg_at_least(tf.constant(path.read_bytes()), size)
        assert min(decoded.shape[:2]) >= size


def test_resize_mode_training_batches_are_whole_images_in_random_orientations(tmp_path):
    source = photo_like(48, 64, seed=3)
    path = save(tmp_path / "only.png", source)
    scan = image_files.scan(tmp_path)
    spec = pipeline.PipelineSpec(batch_size=8, resize=24)
    dataset = pipeline.training_pipeline(pipeline.encoded_files(scan.files, True, True), spec)
    upright = pipeline.decode_resized(*encoded(path), size=24).numpy()
    orientations = {
        "upright": upright,
        "left-right": upright[:, ::-1],
        "up-down": upright[::-1],
        "both": upright[::-1, ::-1],
    }
    seen = set()
    for batch in dataset.take(4):
        images = batch["clean"].numpy()
        assert images.shape == (8, 24, 24, 3) and images.dtype == np.uint8
        for image in images:
            matches = [name for name, view in orientations.items() if np.array_equal(image, view)]
            assert matches, "every element is the whole image, flipped or not"
            seen.update(matches)
    assert seen == set(orientations)  # 32 draws: each of the four orientations shows up


def test_random_flips_flip_each_patch_on_its_own_eagerly_and_in_tf_data():
    patch = tf.constant(photo_like(8, 8, seed=5))
    views = [patch, patch[:, ::-1], patch[::-1], patch[::-1, ::-1]]
    stacked = tf.stack([patch] * 8)

    def orientations(batches) -> list[int]:
        found = []
        for flipped in np.concatenate(batches):
            matches = [i for i, view in enumerate(views) if np.array_equal(flipped, view)]
            assert len(matches) == 1  # a flip of the patch, never anything else
            found.append(matches[0])
        return found

    eager = orientations([pipeline.random_flips(stacked).numpy() for _ in range(10)])
    mapped = tf.data.Dataset.from_tensors(stacked).repeat(10).map(pipeline.random_flips)
    in_data = orientations([batch.numpy() for batch in mapped])
    for found in (eager, in_data):  # 80 draws each
        counts = np.bincount(found, minlength=4)
        assert (counts > 0).all() and counts.max() < 45  # each of the four, none dominating


def test_training_pipeline_batches_uint8_and_skips_bad_files(image_folder):
    scan = image_files.scan(image_folder)
    spec = pipeline.PipelineSpec(batch_size=6, patch_size=32, patches_per_image=2)
    batches = list(
        pipeline.training_pipeline(pipeline.encoded_files(scan.files, True, True), spec).take(5)
    )
    for batch in batches:
        assert batch["clean"].dtype == tf.uint8 and batch["clean"].shape == (6, 32, 32, 3)
    assert len(scan.skipped) == 3  # the bad files never reach the pipeline


def test_training_pipeline_survives_a_file_that_breaks_after_the_scan(tmp_path):
    good = [save(tmp_path / f"g{i}.png", photo_like(40, 40, seed=i)) for i in range(3)]
    scan = image_files.scan(tmp_path)
    good[0].write_bytes(good[0].read_bytes()[:100])  # corrupted after scanning
    spec = pipeline.PipelineSpec(batch_size=4, patch_size=16, patches_per_image=1)
    batches = list(
        pipeline.training_pipeline(pipeline.encoded_files(scan.files, True, True), spec).take(3)
    )
    assert len(batches) == 3


def test_eval_pipeline_limit_keeps_the_first_images_that_decode(tmp_path, capfd):
    paths = [save(tmp_path / f"p{i}.png", photo_like(40, 40, seed=i)) for i in range(5)]
    files = image_files.scan(tmp_path).files
    paths[0].write_bytes(paths[0].read_bytes()[:100])  # broken after the scan: not counted
    spec = pipeline.PipelineSpec(batch_size=4, eval_size=32)
    encoded = pipeline.encoded_files(files, False, False)
    full = np.concatenate([b["clean"] for b in pipeline.eval_pipeline(encoded, spec)])
    limited = list(pipeline.eval_pipeline(encoded, spec, limit=2))
    grid = np.concatenate([b["clean"] for b in limited])
    assert full.shape[0] == 4 and grid.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(grid, full[:2])
    assert "did not fully read the dataset being cached" not in capfd.readouterr().err


def test_eval_pipeline_is_deterministic_with_indices(image_folder):
    files = image_files.scan(image_folder).files[:7]
    spec = pipeline.PipelineSpec(batch_size=4, eval_size=48)
    first = list(
        pipeline.eval_pipeline(pipeline.encoded_files(files, False, False), spec, repeats=2)
    )
    second = list(
        pipeline.eval_pipeline(pipeline.encoded_files(files, False, False), spec, repeats=2)
    )
    assert [b["clean"].shape[0] for b in first] == [4, 4, 4, 2]
    indices = np.concatenate([b["index"].numpy() for b in first])
    np.testing.assert_array_equal(indices, np.arange(14))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["clean"].numpy(), b["clean"].numpy())
