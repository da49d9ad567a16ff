"""`tfdenoise bench --quick` end to end on a tiny corpus, the corpus tool, and bench stages."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import load_tool, photo_like, save
from PIL import Image

from tfdenoise import bench, cli
from tfdenoise.data import corpus, pipeline
from tfdenoise.io import files as image_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """Six photo-like sources of ~0.1-0.2 MP, JPEG and PNG."""
    root = tmp_path / "sources"
    for index in range(6):
        array = photo_like(300 + 20 * index, 420 - 10 * index, seed=index)
        suffix = ".png" if index % 3 == 0 else ".jpg"
        save(root / f"source{index}{suffix}", array)
    return root


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.name != corpus.CORPUS_MANIFEST
    }


def test_corpus_tool_makes_n_mixed_images_deterministically(tmp_path, sources):
    tool = load_tool("make_corpus")
    args = [str(sources), "-n", "40", "--min-mp", "0.01", "--max-mp", "0.1", "--workers", "1"]
    assert tool.main([*args, str(tmp_path / "a"), "--seed", "3"]) == 0
    assert tool.main([*args, str(tmp_path / "b"), "--seed", "3"]) == 0
    assert tool.main([*args, str(tmp_path / "c"), "--seed", "4"]) == 0
    first = digests(tmp_path / "a")
    assert len(first) == 40
    assert first == digests(tmp_path / "b")
    assert first != digests(tmp_path / "c")
    formats, modes, sizes = set(), set(), set()
    for path in (tmp_path / "a").iterdir():
        if path.name == corpus.CORPUS_MANIFEST:
            continue
        with Image.open(path) as image:
            formats.add(image.format)
            modes.add(image.mode)
            sizes.add(image.size)
            assert image.width * image.height <= 0.1e6 * 1.01
    assert "JPEG" in formats and len(formats) >= 3
    assert len(sizes) > 20  # random crops and scales: images differ
    manifest = json.loads((tmp_path / "a" / corpus.CORPUS_MANIFEST).read_text())
    assert manifest["spec"]["seed"] == 3 and sum(manifest["formats"].values()) == 40


def test_corpus_excludes_held_out_sources(sources):
    paths = image_files.list_image_files(sources)
    kept = corpus.select_sources(sources, paths, ("test",))
    assert all(image_files.split_of(p.relative_to(sources).as_posix()) != "test" for p in kept)
    assert len(kept) == sum(image_files.split_of(p.name) != "test" for p in paths)
    with pytest.raises(ValueError):
        corpus.CorpusSpec(count=0).validate()


def test_decode_resized_uses_dct_scaling_eagerly_and_in_tf_data():
    encoded = Image.fromarray(photo_like(600, 500, seed=1))
    import io

    buffer = io.BytesIO()
    encoded.save(buffer, "JPEG", quality=90)
    jpeg = tf.constant(buffer.getvalue())
    scaled = pipeline.decode_jpeg_at_least(jpeg, 100)
    assert scaled.shape[:2] == (150, 125)  # 1/4: the smallest scale with both sides >= 100
    eager = pipeline.decode_resized(jpeg, tf.constant(int(image_files.Decoder.JPEG)), 64)
    full = tf.image.resize(tf.io.decode_jpeg(jpeg, channels=3), [64, 64], antialias=True)
    assert eager.shape == (64, 64, 3) and eager.dtype == tf.uint8
    assert np.abs(eager.numpy().astype(float) - full.numpy()).mean() < 3.0
    dataset = tf.data.Dataset.from_tensors((jpeg, int(image_files.Decoder.JPEG))).map(
        lambda b, d: pipeline.decode_resized(b, d, 64), num_parallel_calls=pipeline.AUTOTUNE
    )
    assert np.array_equal(next(iter(dataset)).numpy(), eager.numpy())


def test_prototype_generator_yields_noisy_float_batches(sources):
    paths = [str(p) for p in image_files.list_image_files(sources)]
    for prefer_cv2 in (True, False):
        noisy, clean = next(bench.prototype_generator(paths, 4, 32, prefer_cv2=prefer_cv2))
        assert noisy.shape == clean.shape == (4, 32, 32, 3)
        assert noisy.dtype == clean.dtype == np.float32
        assert 0.0 <= noisy.min() and noisy.max() <= 1.0


PIPELINE_KEYS = (
    "prototype_generator_img_s",
    "files_img_s",
    "tfrecords_img_s",
    "decode_ceiling_img_s",
)
TRAIN_KEYS = (
    "synthetic_img_s",
    "pipeline_img_s",
    "float32_img_s",
    "auto_precision_img_s",
    "xla_on_img_s",
    "xla_off_img_s",
)


@pytest.mark.slow
def test_bench_quick_smoke(tmp_path):
    """The whole `bench --quick` on a tiny generated corpus and model; no thresholds."""
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "--quick",
        "--images",
        "16",
        "--seconds",
        "0.3",
        "--train-seconds",
        "0.3",
        "--train-steps",
        "1",
        "--widths",
        "4,8",
        "--batch-size",
        "2",
        "--patch-size",
        "16",
        "--resize",
        "32",
        "--predict-images",
        "1",
        "--json",
        str(out),
    ]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    for key in PIPELINE_KEYS:
        assert results["pipeline"][key] > 0, key
    for key in TRAIN_KEYS:
        assert results["train"][key] > 0, key
    assert results["predict"]["megapixels_per_s"] > 0
    assert results["predict"]["model_only_mp_s"] > 0 and results["predict"]["whole_mp_s"] > 0
    assert results["ratios"]["predict_whole_vs_model_only"] > 0
    assert "command" in results and "ratios" in results
