"""`tfdenoise bench` end to end on a tiny corpus, the corpus tool, and bench stages: the
interleaved rounds, their medians, spreads and per-round ratios, and the crop-decode ceiling."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import load_tool, photo_like, save
from PIL import Image
from rich.console import Console

from tfdenoise import cli
from tfdenoise.bench.ceilings import crop_decode_ceiling
from tfdenoise.bench.config import BenchConfig
from tfdenoise.bench.inputs import corpus_files, make_feeds, pipeline_figures, pipeline_info
from tfdenoise.bench.prototype import prototype_generator
from tfdenoise.bench.ratios import RATIO_PAIRS, TARGETS
from tfdenoise.bench.rounds import (
    BenchFigure,
    FigureGroup,
    collect,
    dataset_rate,
    measure_rounds,
    per_round_ratios,
    summarize,
)
from tfdenoise.bench.table import table_rows
from tfdenoise.cli.bench import _bench_table
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
        noisy, clean = next(prototype_generator(paths, 4, 32, prefer_cv2=prefer_cv2))
        assert noisy.shape == clean.shape == (4, 32, 32, 3)
        assert noisy.dtype == clean.dtype == np.float32
        assert 0.0 <= noisy.min() and noisy.max() <= 1.0


PIPELINE_KEYS = (
    "prototype_generator_img_s",
    "files_img_s",
    "tfrecords_img_s",
    "decode_ceiling_img_s",
    "crop_decode_ceiling_patches_s",
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
    """The whole `bench --quick` on a tiny generated corpus and model, in 2 rounds so that every
    figure is measured again after the others (fresh iterators, fits, predict outputs)."""
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "--quick",
        "--rounds",
        "2",
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
    assert results["ratios"]["tfrecords_patch_vs_crop_decode_ceiling"] > 0
    assert "command" in results and "ratios" in results
    assert (
        results["rounds"]["count"] == 2 and not results["measurement"]["single_noisy_measurements"]
    )
    for key, values in results["rounds"]["figures"].items():
        assert len(values) == 2 and all(value > 0 for value in values), key
    assert "median over 2 interleaved rounds" in result.output


# --- rounds: order, summaries, per-round ratios, the JSON, quick mode ------------------------


def recorded_figure(key: str, values: list[float], calls: list[str]) -> BenchFigure:
    """A fake figure returning `values` one round after the other and logging each call."""
    rounds = iter(values)

    def measure() -> float:
        calls.append(key)
        return next(rounds)

    return BenchFigure(key, f"fake {key}", measure)


def test_rounds_interleave_every_figure():
    calls: list[str] = []
    figures = [recorded_figure(key, [1.0, 2.0, 3.0], calls) for key in ("a", "b", "c")]
    logged: list[str] = []
    values = measure_rounds(figures, 3, logged.append)
    assert calls == ["a", "b", "c"] * 3  # A B C A B C A B C, never A A A B B B
    assert values == {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0], "c": [1.0, 2.0, 3.0]}
    assert logged[0].startswith("round 1/3: fake a") and logged[-1].startswith("round 3/3: fake c")


def test_summary_is_median_and_min_max_over_rounds():
    assert summarize([3.0, 1.0, 10.0, 2.0, 4.0]) == {
        "median": 3.0,
        "min": 1.0,
        "max": 10.0,
        "rounds": 5,
    }
    assert summarize([4.0, 1.0])["median"] == 2.5  # even count: mean of the middle two
    assert summarize([None, 2.0, 6.0]) == {"median": 4.0, "min": 2.0, "max": 6.0, "rounds": 2}
    assert summarize([])["median"] is None and summarize([None])["rounds"] == 0


def test_ratios_are_per_round_not_ratios_of_medians():
    pairs = {"fed_vs_synthetic": ("fed", "synthetic"), "missing": ("fed", "absent")}
    ratios = per_round_ratios({"fed": [5.0, 40.0, 9.0], "synthetic": [10.0, 20.0, 0.0]}, pairs)
    assert ratios == {"fed_vs_synthetic": [0.5, 2.0, None], "missing": []}


FAKE_INFO = {
    "pipeline": {
        "reader": "cv2",
        "images": 5,
        "mean_megapixels": 0.01,
        "patch_mode": {"patch_size": 16, "patches_per_image": 2},
    },
    "train": {"pipeline_source": "tfrecords", "precision_auto": "float32"},
    "predict": {"passes": 2},
}
ALIASES = {
    "train.auto_precision_img_s": "train.synthetic_img_s",
    "train.xla_off_img_s": "train.synthetic_img_s",
}


def fake_groups(rounds: list[dict[str, float]], calls: list[str]) -> list[FigureGroup]:
    """Groups holding every figure the ratios and the table use, each returning the given
    per-round values (default 1.0 per round)."""
    keys = {key for pair in RATIO_PAIRS.values() for key in pair}
    keys = sorted((keys | {"predict.megapixels_per_s"}) - set(ALIASES))
    groups = []
    for name, info in FAKE_INFO.items():
        figures = [
            recorded_figure(key, [values.get(key, 1.0) for values in rounds], calls)
            for key in keys
            if key.startswith(name + ".")
        ]
        aliases = ALIASES if name == "train" else {}
        groups.append(FigureGroup(name, figures, dict(info), aliases))
    return groups


def rendered(results: dict) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=250).print(_bench_table(dict(results, machine={"cpus": 2})))
    return buffer.getvalue()


def test_results_keep_every_round_and_use_per_round_ratios():
    rounds = [
        {"train.synthetic_img_s": 10.0, "train.pipeline_img_s": 5.0},
        {"train.synthetic_img_s": 20.0, "train.pipeline_img_s": 40.0},
        {"train.synthetic_img_s": 30.0, "train.pipeline_img_s": 33.0},
    ]
    calls: list[str] = []
    results = json.loads(json.dumps(collect(fake_groups(rounds, calls), 3, lambda _: None)))
    # JSON keeps every round's raw figures, and each section holds the medians.
    figures = results["rounds"]["figures"]
    assert figures["train.synthetic_img_s"] == [10.0, 20.0, 30.0]
    assert figures["train.pipeline_img_s"] == [5.0, 40.0, 33.0]
    assert figures["train.auto_precision_img_s"] == [10.0, 20.0, 30.0]  # an alias: same rounds
    assert results["rounds"]["aliases"] == ALIASES and results["rounds"]["count"] == 3
    assert (
        results["train"]["synthetic_img_s"] == 20.0 and results["train"]["pipeline_img_s"] == 33.0
    )
    summary = results["summary"]["figures"]["train.pipeline_img_s"]
    assert (summary["min"], summary["max"]) == (5.0, 40.0)
    # The ratio is the median of per-round ratios (0.5, 2.0, 1.1) = 1.1, not 33 / 20 = 1.65.
    assert results["rounds"]["ratios"]["pipeline_fed_vs_synthetic_training"] == [0.5, 2.0, 1.1]
    assert results["ratios"]["pipeline_fed_vs_synthetic_training"] == pytest.approx(1.1)
    assert results["summary"]["ratios"]["pipeline_fed_vs_synthetic_training"]["max"] == 2.0
    assert results["measurement"]["single_noisy_measurements"] is False
    # Rounds interleave across sections too: every figure once before any figure again.
    per_round = len(calls) // 3
    assert calls[:per_round] == calls[per_round : 2 * per_round] == calls[2 * per_round :]
    assert len(set(calls[:per_round])) == per_round
    # The table: medians, spreads (min-max), per-round ratio medians, targets kept.
    rows = {row.figure: row for row in table_rows(results)}
    fed = rows["train.pipeline (tfrecords)"]
    assert fed.value == 33.0 and fed.spread == (5.0, 40.0)
    assert fed.ratio == pytest.approx(1.1) and fed.ratio_spread == (0.5, 2.0)
    assert fed.target == TARGETS["pipeline_fed_vs_synthetic_training"] and fed.met
    ceiling = rows["JPEGs only: tfrecords (patches) [patch mode]"]
    assert ceiling.versus == "crop-decode ceiling" and ceiling.target == 0.9
    text = rendered(results)
    assert "median over 3 interleaved rounds" in text and "min–max" in text
    assert "5.0–40.0" in text and "0.50–2.00" in text
    assert "[headline]" in text and "[patch mode]" in text  # labels, not rich markup


def test_quick_is_one_round_flagged_as_noisy():
    assert BenchConfig.quick().rounds == 1
    assert BenchConfig().rounds >= 3
    assert BenchConfig.quick(rounds=2).rounds == 2
    with pytest.raises(ValueError, match="rounds"):
        BenchConfig(rounds=0).validate()
    results = collect(fake_groups([{}], []), 1, lambda _: None)
    assert results["measurement"]["single_noisy_measurements"] is True
    assert all(row.spread is None for row in table_rows(results))  # no spread of 1
    assert "single noisy measurement" in rendered(results)


# --- the crop-decode ceiling and the pipeline figures ----------------------------------------


def jpeg_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_crop_decode_ceiling_decodes_patch_windows_of_each_jpeg():
    sizes = [(64, 80), (48, 40), (12, 20)]  # the last is smaller than a window: decoded whole
    jpegs = [jpeg_of(photo_like(h, w, seed=i)) for i, (h, w) in enumerate(sizes)]
    dataset = crop_decode_ceiling(jpegs, size=16, count=3, batch=6)
    rows = next(iter(dataset)).numpy()
    assert rows.shape == (6,)
    assert set(rows.tolist()) <= {3 * 16, 3 * 12}  # 3 windows per image, rows of each summed
    assert 3 * 12 in rows.tolist()
    assert dataset_rate(dataset, 6 * 3, warmup=1, seconds=0.2) > 0


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """Five train-split images (four JPEGs, a PNG) of ~0.005 MP; img03 is in the test split."""
    root = tmp_path / "corpus"
    for index in range(6):
        suffix = ".png" if index % 3 == 0 else ".jpg"
        save(root / f"img{index:02d}{suffix}", photo_like(56 + 4 * index, 72, seed=index))
    return root


def test_pipeline_figures_measure_the_crop_ceiling_beside_patch_mode(tmp_path, small_corpus):
    config = BenchConfig.quick(
        pipeline_seconds=0.05,
        pipeline_warmup_batches=1,
        batch_size=2,
        patch_size=16,
        patches_per_image=2,
        resize=16,
    )
    files = corpus_files(small_corpus, 6)
    jpeg_files = [f for f in files if f.info.decoder == image_files.Decoder.JPEG]
    assert len(files) == 5 and len(jpeg_files) == 4
    log = lambda _: None  # noqa: E731
    feeds = make_feeds(files, tmp_path / "work", "all", log, raw=True)
    jpeg_feeds = make_feeds(jpeg_files, tmp_path / "work", "jpeg", log, raw=True)
    # Raw-pixel records only where there are non-JPEGs to store differently.
    assert jpeg_feeds.raw_records is None and feeds.raw_records is not None
    manifests = {
        name: json.loads((tmp_path / "work" / name / "manifest.json").read_text())
        for name in ("all-records", "all-records-raw")
    }
    assert manifests["all-records"]["lossless"] == "png"
    assert manifests["all-records-raw"]["lossless"] == "raw"
    figures = pipeline_figures(config, feeds, jpeg_feeds)
    keys = [figure.key for figure in figures]
    # The patch-mode ratio's two figures are measured one right after the other.
    assert keys[-2:] == [
        "pipeline.crop_decode_ceiling_patches_s",
        "pipeline.jpeg_only.tfrecords_patch_img_s",
    ]
    for numerator, denominator in RATIO_PAIRS.values():
        if numerator.startswith("pipeline."):
            assert numerator in keys and denominator in keys
    group = FigureGroup("pipeline", figures, pipeline_info(config, files))
    results = collect([group], 1, log)
    assert results["pipeline"]["crop_decode_ceiling_patches_s"] > 0
    assert results["pipeline"]["jpeg_only"]["tfrecords_patch_img_s"] > 0
    assert results["ratios"]["tfrecords_patch_vs_crop_decode_ceiling"] > 0
    assert results["ratios"]["tfrecords_raw_vs_prototype_generator"] > 0
    assert results["pipeline"]["patch_mode"] == {"patch_size": 16, "patches_per_image": 2}
