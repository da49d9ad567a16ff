"""Record format version 2: raw 8-bit RGB records (or PNG by choice), versioned plans and
manifests, version-1 record sets still read, corrupt raw records reported, not fatal."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import load_tool, photo_like, save, write_mode_zoo  # noqa: E402

from tfdenoise.cli import main  # noqa: E402
from tfdenoise.data import pipeline, sources  # noqa: E402
from tfdenoise.io import atomic, encoding  # noqa: E402
from tfdenoise.io import files as image_files  # noqa: E402
from tfdenoise.io.records.convert import convert_folder  # noqa: E402
from tfdenoise.io.records.folder import FORMAT_VERSION, MANIFEST, read_manifest  # noqa: E402
from tfdenoise.io.records.plan import PLAN, ConversionPlan, make_plan  # noqa: E402
from tfdenoise.io.records.schema import encode_example, parse_example, parse_features  # noqa: E402

NON_JPEG = ("rgb.png", "rgba.PNG", "gray16.png", "palette.png", "image.bmp", "image.webp")


def zoo(folder: Path) -> dict[str, Path]:
    return {path.name: path for path in write_mode_zoo(folder).values()}


def raw_example(name: str, path: Path) -> bytes:
    stored = encoding.encode_for_storage(path, image_files.probe(path), lossless="raw")
    return encode_example(stored, name)


def expected_pixels(path: Path) -> np.ndarray:
    return image_files.load_rgb8(path, apply_orientation=False)


def decode_record(serialized) -> tf.Tensor:
    data, decoder = parse_example(serialized)
    return pipeline.decode_full(data, decoder, allow_pil=False)


def every_record(out: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(out.glob("*.tfrecord")):
        for serialized in tf.data.TFRecordDataset(str(path)):
            features = {k: v.numpy() for k, v in parse_features(serialized).items()}
            found[features["source"].decode()] = features
    return found


def mixed_folder(root: Path, count: int = 12) -> Path:
    """JPEG, PNG, WebP and BMP photos of a few sizes (some smaller than the patches)."""
    suffixes = (".jpg", ".png", ".webp", ".bmp")
    for index in range(count):
        array = photo_like(30 + 12 * (index % 3), 44 + 10 * (index % 4), seed=index)
        suffix = suffixes[index % len(suffixes)]
        options = {"quality": 90} if suffix == ".jpg" else {}
        if suffix == ".webp":
            options = {"lossless": True}
        save(root / ("a" if index % 2 else "b") / f"img{index:02d}{suffix}", array, **options)
    return root


# --- one raw example ------------------------------------------------------------------------


def test_raw_example_round_trips_eagerly_and_in_tf_data(tmp_path):
    files = zoo(tmp_path)
    names = [*NON_JPEG, "cmyk.jpeg"]  # CMYK: TF's JPEG decoder cannot read it
    serialized = []
    for name in names:
        example = raw_example(name, files[name])
        features = parse_features(tf.constant(example))
        expected = expected_pixels(files[name])
        assert features["format"].numpy() == b"raw"
        assert features["image"].numpy() == expected.tobytes()  # exactly H * W * 3 bytes
        assert (features["height"].numpy(), features["width"].numpy()) == expected.shape[:2]
        np.testing.assert_array_equal(decode_record(tf.constant(example)).numpy(), expected)
        serialized.append(example)
    dataset = tf.data.Dataset.from_tensor_slices(serialized).map(
        decode_record, num_parallel_calls=pipeline.AUTOTUNE, deterministic=True
    )
    for name, pixels in zip(names, dataset):
        np.testing.assert_array_equal(pixels.numpy(), expected_pixels(files[name]), name)
    crops = tf.data.Dataset.from_tensor_slices(serialized[:1]).map(
        lambda s: pipeline.decode_center_crop(*parse_example(s), 32, allow_pil=False)
    )
    full = expected_pixels(files[names[0]])
    top, left = (full.shape[0] - 32) // 2, (full.shape[1] - 32) // 2
    np.testing.assert_array_equal(next(iter(crops)).numpy(), full[top : top + 32, left : left + 32])


def test_jpegs_stay_byte_identical_with_either_lossless_choice(tmp_path):
    files = zoo(tmp_path)
    for lossless in encoding.LOSSLESS_FORMATS:
        for name in ("rgb.jpg", "gray.JPG"):
            info = image_files.probe(files[name])
            stored = encoding.encode_for_storage(files[name], info, lossless=lossless)
            assert stored.format == "jpeg" and stored.data == files[name].read_bytes()
    with pytest.raises(ValueError, match="lossless"):
        encoding.encode_for_storage(files["rgb.png"], image_files.probe(files["rgb.png"]), 0, "x")


def _tampered(example: bytes, **changes) -> bytes:
    parsed = tf.train.Example.FromString(example)
    for key, value in changes.items():
        feature = parsed.features.feature[key]
        if isinstance(value, int):
            feature.int64_list.value[0] = value
        else:
            feature.bytes_list.value[0] = value
    return parsed.SerializeToString()


def test_corrupt_raw_record_is_reported_not_a_crash(tmp_path):
    files = zoo(tmp_path)
    good = raw_example("rgb.png", files["rgb.png"])
    height, width, _ = expected_pixels(files["rgb.png"]).shape
    pixels = parse_features(tf.constant(good))["image"].numpy()
    corrupt = [
        _tampered(good, height=height + 1),  # byte count no longer h * w * 3
        _tampered(good, image=pixels[:-7]),  # truncated pixels
        _tampered(good, width=0),
        _tampered(good, height=-3),
        _tampered(good, width=2**40),  # beyond the shape trailer's digits
        _tampered(good, image=b""),
    ]
    for example in corrupt:
        with pytest.raises(tf.errors.InvalidArgumentError):
            decode_record(tf.constant(example))
    # In the pipeline: dropped (and logged) like a corrupt PNG; the good records go on.
    shard = tmp_path / "train-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for example in [good, *corrupt, good]:
            writer.write(example)
    spec = pipeline.PipelineSpec(batch_size=1, eval_size=16)
    encoded = pipeline.encoded_records([str(shard)], shuffle=False, repeat=False)
    batches = list(pipeline.eval_pipeline(encoded, spec, allow_pil=False))
    assert len(batches) == 2
    training = pipeline.training_pipeline(
        pipeline.encoded_records([str(shard)], shuffle=True, repeat=True),
        pipeline.PipelineSpec(batch_size=8, patch_size=16, patches_per_image=2),
        allow_pil=False,
    )
    assert next(iter(training))["clean"].shape == (8, 16, 16, 3)


# --- plans and manifests --------------------------------------------------------------------


def test_plan_carries_the_version_and_the_lossless_choice(tmp_path):
    mixed_folder(tmp_path / "src", 4)
    plan = make_plan(tmp_path / "src", shard_mb=1, lossless="png")
    stored = plan.to_json()
    assert stored["format_version"] == FORMAT_VERSION == 2
    assert stored["lossless"] == "png"
    assert ConversionPlan.from_json(json.loads(json.dumps(stored))) == plan
    for broken in (
        {k: v for k, v in stored.items() if k != "lossless"},
        {**stored, "lossless": "webp"},
        {**stored, "format_version": 3},
        {**stored, "format_version": True},
    ):
        with pytest.raises(ValueError):
            ConversionPlan.from_json(broken)
    old = dataclasses.replace(plan, format_version=1)
    assert "lossless" not in old.to_json()  # as version 1 wrote it
    assert ConversionPlan.from_json(old.to_json()) == old
    with pytest.raises(ValueError, match="lossless"):
        make_plan(tmp_path / "src", lossless="jpeg")


def test_unfinished_version_1_conversion_resumes_as_version_1(tmp_path):
    mixed_folder(tmp_path / "src", 8)
    out = tmp_path / "out"
    out.mkdir()
    plan = make_plan(tmp_path / "src", shard_mb=0.005)
    version_1 = dataclasses.replace(plan, lossless="png", format_version=1).to_json()
    atomic.write_json(out / PLAN, version_1)
    with pytest.raises(ValueError, match="other options"):  # raw asked for: refused
        convert_folder(tmp_path / "src", out, shard_mb=0.005, lossless="raw")
    manifest = convert_folder(tmp_path / "src", out, shard_mb=0.005).manifest
    assert manifest["format_version"] == 1 and "lossless" not in manifest
    assert manifest["features"]["format"] == "bytes: jpeg | png"
    formats = {r["format"] for r in every_record(out).values()}
    assert formats == {b"jpeg", b"png"} and len(every_record(out)) == 8


def test_png_choice_stores_png_and_is_recorded(tmp_path):
    files = zoo(tmp_path / "src")
    out = tmp_path / "out"
    manifest = convert_folder(
        tmp_path / "src", out, fractions=(1, 0, 0), workers=1, lossless="png"
    ).manifest
    assert manifest["format_version"] == 2 and manifest["lossless"] == "png"
    found = every_record(out)
    assert found["rgb.png"]["format"] == b"png"
    assert found["rgb.png"]["image"] == files["rgb.png"].read_bytes()  # kept as it is
    assert {r["format"] for r in found.values()} == {b"jpeg", b"png"}


def _write_version_1_records(source: Path, out: Path) -> None:
    """A record set as format version 1 wrote it (PNG for every non-JPEG), by hand."""
    out.mkdir()
    shard = "train-00000-of-00001.tfrecord"
    count = 0
    with tf.io.TFRecordWriter(str(out / shard)) as writer:
        for path in sorted(source.rglob("*.*")):
            relpath = path.relative_to(source).as_posix()
            if path.suffix == ".jpg":
                data, format_ = path.read_bytes(), b"jpeg"
            else:
                data, format_ = encoding.png_bytes(expected_pixels(path)), b"png"
            height, width = expected_pixels(path).shape[:2]
            feature = {
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[height])),
                "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[width])),
                "format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[format_])),
                "source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[relpath.encode()])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
            count += 1
    manifest = {
        "format_version": 1,
        "created_by": "tfdenoise 0.1.0",
        "source": str(source),
        "split_fractions": [1.0, 0.0, 0.0],
        "shard_bytes": 134217728,
        "max_pixels": 100000000,
        "features": {
            "image": "bytes (JPEG as in the source file, else 8-bit RGB PNG)",
            "height": "int64",
            "width": "int64",
            "format": "bytes: jpeg | png",
            "source": "bytes: path relative to the source folder",
        },
        "counts": {"train": count, "val": 0, "test": 0},
        "total_records": count,
        "shards": [{"name": shard, "split": "train", "records": count, "bytes": 1}],
        "skipped": [],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))


def test_version_1_records_still_read(tmp_path):
    source = mixed_folder(tmp_path / "src", 8)
    out = tmp_path / "v1"
    _write_version_1_records(source, out)
    opened = sources.open_source(out)
    assert isinstance(opened, sources.RecordSource) and opened.count("train") == 8
    spec = pipeline.PipelineSpec(batch_size=4, patch_size=16, eval_size=24)
    training = pipeline.training_pipeline(opened.encoded("train", True), spec, allow_pil=False)
    assert next(iter(training))["clean"].shape == (4, 16, 16, 3)
    # The same crops as from the folder itself, in the same (relative-path) order.
    scan = image_files.scan(source)
    folder = pipeline.encoded_files(sorted(scan.files, key=lambda f: f.relpath), False, False)
    got = pipeline.eval_pipeline(opened.encoded("train", False), spec, allow_pil=False)
    want = pipeline.eval_pipeline(folder, spec)
    got, want = [b["clean"].numpy() for b in got], [b["clean"].numpy() for b in want]
    assert len(got) == len(want) == 2
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_read_manifest_refuses_unknown_versions(tmp_path):
    for version in (0, 3, "2", None):
        (tmp_path / MANIFEST).write_text(json.dumps({"format_version": version}))
        with pytest.raises(ValueError, match="format version"):
            read_manifest(tmp_path)


# --- make-tfrecords end to end --------------------------------------------------------------


def test_make_tfrecords_on_a_mixed_folder_feeds_fits_pipeline(tmp_path):
    source = mixed_folder(tmp_path / "src", 12)
    out = tmp_path / "out"
    command = ["make-tfrecords", str(source), str(out), "--workers", "2", "--lossless", "raw"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format_version"] == 2 and manifest["lossless"] == "raw"
    found = every_record(out)
    assert len(found) == 12
    for relpath, record in found.items():
        path = source / relpath
        if path.suffix == ".jpg":
            assert record["format"] == b"jpeg" and record["image"] == path.read_bytes()
        else:
            assert record["format"] == b"raw", relpath
            assert record["image"] == expected_pixels(path).tobytes(), relpath

    # fit's reading: the records source and the shared pipeline, no PIL in the graph; the
    # evaluation crops are the folder's, pixel for pixel.
    records_source = sources.open_source(out)
    folder_source = sources.open_source(source)
    spec = pipeline.PipelineSpec(batch_size=2, patch_size=32, eval_size=32)
    train = records_source.encoded("train", training=True)
    batch = next(iter(pipeline.training_pipeline(train, spec, allow_pil=False)))["clean"]
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == tf.uint8
    for split in image_files.SPLITS:
        assert records_source.count(split) == folder_source.count(split)
        got = pipeline.eval_pipeline(records_source.encoded(split, False), spec, allow_pil=False)
        want = pipeline.eval_pipeline(folder_source.encoded(split, False), spec)
        got, want = [b["clean"].numpy() for b in got], [b["clean"].numpy() for b in want]
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)

    png_out = tmp_path / "png"
    result = CliRunner().invoke(
        main, ["make-tfrecords", str(source), str(png_out), "--lossless", "png"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((png_out / MANIFEST).read_text())["lossless"] == "png"
    assert {r["format"] for r in every_record(png_out).values()} == {b"jpeg", b"png"}


# --- the measuring tool ---------------------------------------------------------------------


def test_record_formats_tool_prints_a_row_per_candidate(tmp_path, capsys):
    tool = load_tool("record_formats")
    for index in range(2):
        save(tmp_path / f"p{index}.png", photo_like(40, 48, seed=index))
    save(tmp_path / "skipped.jpg", photo_like(40, 48), quality=90)
    args = [str(tmp_path), "--rounds", "1", "--seconds", "0.02", "--warmup", "0"]
    assert tool.main([*args, "--json", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    for candidate in tool.CANDIDATES:
        assert f"| {candidate.name} |" in table
    assert json.loads((tmp_path / "r.json").read_text())["images"] == 2
