"""TFRecords: schema round trip, validation, resumable sharded writing, training from records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import (  # noqa: E402
    photo_like,
    quick_fit_args,
    save,
    write_bad_files,
    write_mode_zoo,
)

from tfdenoise.cli import main  # noqa: E402
from tfdenoise.data import (
    pipeline,  # noqa: E402
    sources,  # noqa: E402
)
from tfdenoise.io import atomic, encoding  # noqa: E402
from tfdenoise.io import files as image_files  # noqa: E402
from tfdenoise.io.records import convert  # noqa: E402
from tfdenoise.io.records.convert import convert_folder  # noqa: E402
from tfdenoise.io.records.folder import MANIFEST, count_records, read_manifest  # noqa: E402
from tfdenoise.io.records.plan import PLAN, PlannedFile, cut_into_shards, make_plan  # noqa: E402
from tfdenoise.io.records.schema import (  # noqa: E402
    RAW_DECODER,
    encode_example,
    parse_example,
    parse_features,
    with_raw_shape,
)

REPO = Path(__file__).resolve().parents[1]


# --- small generated images ---------------------------------------------------------------


def write_good_zoo(folder: Path) -> dict[str, Path]:
    """conftest's mode zoo keyed by file name (records are keyed by relative path)."""
    return {path.name: path for path in write_mode_zoo(folder).values()}


def write_photos(folder: Path, count: int, start: int = 0) -> list[Path]:
    """JPEGs and RGB PNGs of a few sizes in two subfolders."""
    paths = []
    for index in range(start, start + count):
        array = photo_like(40 + 8 * (index % 3), 56 + 8 * (index % 2), seed=index)
        sub = folder / ("a" if index % 2 else "b")
        if index % 3 == 0:
            paths.append(save(sub / f"img{index:03d}.png", array))
        else:
            paths.append(save(sub / f"img{index:03d}.jpg", array, quality=90))
    return paths


def read_records(out: Path) -> dict[str, dict]:
    """Every record in OUT by source path, with the shard it came from; fails on duplicates."""
    found = {}
    for path in sorted(out.glob("*.tfrecord")):
        for serialized in tf.data.TFRecordDataset(str(path)):
            features = parse_features(serialized)
            source = features["source"].numpy().decode()
            assert source not in found, f"duplicate record {source}"
            found[source] = {key: value.numpy() for key, value in features.items()}
            found[source]["shard"] = path.name
    return found


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def decode(image_bytes: bytes, format_: bytes, shape: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Pixels of a record's image bytes (raw records need their (height, width))."""
    data = tf.constant(image_bytes)
    if format_ == b"raw":
        data, decoder = with_raw_shape(data, *shape), RAW_DECODER
    elif format_ == b"jpeg":
        decoder = image_files.Decoder.JPEG
    else:
        decoder = image_files.Decoder.TF_IMAGE
    return pipeline.decode_full(data, tf.constant(int(decoder)), allow_pil=False).numpy()


# --- one example ----------------------------------------------------------------------------


def test_png_stored_example_round_trips_losslessly(tmp_path):
    files = write_good_zoo(tmp_path)
    for name in ("rgba.PNG", "gray16.png", "cmyk.jpeg", "image.webp", "palette.png"):
        info = image_files.probe(files[name])
        stored = encoding.encode_for_storage(files[name], info, lossless="png")
        assert stored.format == "png", name
        parsed = parse_features(encode_example(stored, name))
        assert parsed["format"].numpy() == b"png"
        assert parsed["source"].numpy().decode() == name
        pixels = decode(parsed["image"].numpy(), b"png")
        expected = image_files.load_rgb8(files[name], apply_orientation=False)
        np.testing.assert_array_equal(pixels, expected, err_msg=name)
        assert (parsed["height"].numpy(), parsed["width"].numpy()) == expected.shape[:2]


def test_jpeg_example_keeps_the_file_bytes(tmp_path):
    files = write_good_zoo(tmp_path)
    for name in ("rgb.jpg", "gray.JPG"):
        stored = encoding.encode_for_storage(files[name], image_files.probe(files[name]))
        serialized = encode_example(stored, name)
        data_bytes, decoder = parse_example(tf.constant(serialized))
        assert data_bytes.numpy() == files[name].read_bytes()
        assert int(decoder) == image_files.Decoder.JPEG
        reference = tf.io.decode_jpeg(files[name].read_bytes(), channels=3).numpy()
        np.testing.assert_array_equal(decode(data_bytes.numpy(), b"jpeg"), reference)


def test_encode_example_rejects_other_formats():
    with pytest.raises(ValueError, match="not 'webp'"):
        encode_example(encoding.EncodedImage(b"x", "webp", 1, 1), "a.webp")
    with pytest.raises(ValueError, match="not 5"):  # raw: the byte count must match the shape
        encode_example(encoding.EncodedImage(b"x" * 5, "raw", 1, 2), "a.png")


def test_count_records_matches_tf_and_detects_truncation(tmp_path):
    path = tmp_path / "x.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for size in (0, 5, 1000):
            writer.write(b"z" * size)
    assert count_records(path) == 3 == sum(1 for _ in tf.data.TFRecordDataset(str(path)))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        count_records(path)


# --- planning -------------------------------------------------------------------------------


def test_shards_cut_by_source_bytes_in_order():
    planned = [
        PlannedFile(f"f{i}", "JPEG", "RGB", 1, 1, size)
        for i, size in enumerate([40, 40, 40, 150, 10, 10])
    ]
    shards = cut_into_shards("train", planned, shard_bytes=100)
    assert [[f.relpath for f in s.files] for s in shards] == [
        ["f0", "f1"],
        ["f2"],
        ["f3"],
        ["f4", "f5"],
    ]
    assert [s.name for s in shards][0] == "train-00000-of-00004.tfrecord"
    assert shards[-1].name == "train-00003-of-00004.tfrecord"


# --- a folder of good and bad files ---------------------------------------------------------


def test_records_hold_exactly_the_good_images(tmp_path):
    good = write_good_zoo(tmp_path / "src" / "zoo")
    bad = write_bad_files(tmp_path / "src" / "bad")
    out = tmp_path / "out"
    report = convert_folder(tmp_path / "src", out, fractions=(1, 0, 0), workers=2, lossless="raw")
    found = read_records(out)
    assert set(found) == {f"zoo/{name}" for name in good}
    for name, path in good.items():
        record = found[f"zoo/{name}"]
        pixels = decode(record["image"], record["format"], (record["height"], record["width"]))
        if name in ("rgb.jpg", "gray.JPG"):
            assert record["format"] == b"jpeg" and record["image"] == path.read_bytes()
            expected = tf.io.decode_jpeg(path.read_bytes(), channels=3).numpy()
        else:  # 8-bit RGB PNG and CMYK JPEG included: raw pixels (--lossless raw)
            assert record["format"] == b"raw", name
            expected = image_files.load_rgb8(path, apply_orientation=False)
            assert record["image"] == expected.tobytes(), name
        np.testing.assert_array_equal(pixels, expected, err_msg=name)
        assert (record["height"], record["width"]) == pixels.shape[:2]
    skipped = {entry["path"]: entry["reason"] for entry in report.manifest["skipped"]}
    assert skipped.keys() == {f"bad/{path.name}" for path in bad.values()}
    assert "empty" in skipped["bad/empty.png"]
    assert "not an image" in skipped["bad/notes.jpg"]
    assert "truncated" in skipped["bad/truncated.jpg"]
    assert report.manifest["counts"] == {"train": len(good), "val": 0, "test": 0}


def test_manifest_counts_equal_records_read(tmp_path):
    write_photos(tmp_path / "src", 30)
    out = tmp_path / "out"
    manifest = convert_folder(tmp_path / "src", out, shard_mb=0.02, workers=2).manifest
    found = read_records(out)
    assert len(found) == 30 == manifest["total_records"] == sum(manifest["counts"].values())
    for shard in manifest["shards"]:
        assert sum(1 for r in found.values() if r["shard"] == shard["name"]) == shard["records"]
        assert (out / shard["name"]).stat().st_size == shard["bytes"]
        assert shard["name"].startswith(shard["split"] + "-")
    assert len([s for s in manifest["shards"] if s["split"] == "train"]) > 1
    for source, record in found.items():
        assert record["shard"].startswith(image_files.split_of(source) + "-")
    by_split = {}
    for source, _record in sorted(found.items(), key=lambda item: item[1]["shard"]):
        by_split.setdefault(image_files.split_of(source), []).append(source)
    for names in by_split.values():  # shards in name order hold files in relative-path order
        assert names == sorted(names)
    assert {p.name for p in out.iterdir()} == {"manifest.json"} | {
        s["name"] for s in manifest["shards"]
    }


def test_thread_and_process_workers_write_identical_records(tmp_path):
    write_photos(tmp_path / "src", 8)
    write_good_zoo(tmp_path / "src" / "zoo")
    a = convert_folder(tmp_path / "src", tmp_path / "a", shard_mb=0.01, workers=2)
    convert_folder(tmp_path / "src", tmp_path / "b", shard_mb=0.01, workers=2, executor="process")
    assert a.manifest["total_records"] == 19
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


# --- safety: resume, no-op, overwrite --------------------------------------------------------


class Crash(Exception):
    pass


def test_interrupted_run_finishes_with_the_same_records(tmp_path, monkeypatch):
    write_photos(tmp_path / "src", 24)
    reference = tmp_path / "reference"
    convert_folder(tmp_path / "src", reference, shard_mb=0.01, workers=2)

    out = tmp_path / "out"
    real_encode, calls = encode_example, []

    def crash_on_the_tenth(image, source):
        calls.append(source)
        if len(calls) == 10:
            raise Crash()
        return real_encode(image, source)

    monkeypatch.setattr(convert, "encode_example", crash_on_the_tenth)
    with pytest.raises(Crash):
        convert_folder(tmp_path / "src", out, shard_mb=0.01, workers=2)
    monkeypatch.setattr(convert, "encode_example", real_encode)
    assert not (out / MANIFEST).exists() and (out / PLAN).exists()
    finished = sorted(p.name for p in out.glob("[!.]*.tfrecord"))
    assert finished and not list(out.glob(".*.tmp*"))  # some shards done; the crash cleaned up
    (out / finished[0]).write_bytes((out / finished[0]).read_bytes()[:-10])  # torn shard too
    (out / f".{finished[-1][:-9]}.tmp.tfrecord").write_bytes(b"left by kill -9")

    write_photos(tmp_path / "src", 3, start=100)  # added after the plan: not in this run
    report = convert_folder(tmp_path / "src", out, shard_mb=0.01, workers=2)
    assert 0 < report.images_written < 24  # finished shards were kept, not rewritten
    assert snapshot(out) == snapshot(reference)


def test_killed_process_finishes_on_rerun(tmp_path):
    write_photos(tmp_path / "src", 160)
    reference = tmp_path / "reference"
    convert_folder(tmp_path / "src", reference, shard_mb=0.005, workers=1)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "tfdenoise",
        "make-tfrecords",
        str(tmp_path / "src"),
        str(out),
        "--shard-mb",
        "0.005",
        "--workers",
        "1",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(out.glob("*.tfrecord"))) >= 3:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / MANIFEST).exists(), "finished before the kill: use more files"
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert snapshot(out) == snapshot(reference)


def test_rerun_on_finished_output_is_a_no_op(tmp_path):
    write_photos(tmp_path / "src", 6)
    out = tmp_path / "out"
    convert_folder(tmp_path / "src", out, workers=1)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    write_photos(tmp_path / "src", 2, start=50)
    report = convert_folder(tmp_path / "src", out, workers=1)
    assert report.already_done and report.images_written == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    report = convert_folder(tmp_path / "src", out, workers=1, overwrite=True)
    assert report.manifest["total_records"] == 8


def test_resume_with_other_options_is_refused(tmp_path):
    write_photos(tmp_path / "src", 4)
    out = tmp_path / "out"
    out.mkdir()
    plan = make_plan(tmp_path / "src", shard_mb=1)
    atomic.write_json(out / PLAN, plan.to_json())
    with pytest.raises(ValueError, match="other options"):
        convert_folder(tmp_path / "src", out, shard_mb=2)


def test_split_is_stable_when_files_are_added(tmp_path):
    write_photos(tmp_path / "src", 20)
    convert_folder(tmp_path / "src", tmp_path / "before", workers=1)
    write_photos(tmp_path / "src", 20, start=20)
    convert_folder(tmp_path / "src", tmp_path / "after", workers=1)

    def split_by_source(out: Path) -> dict[str, str]:
        return {
            source: record["shard"].split("-")[0] for source, record in read_records(out).items()
        }

    before, after = split_by_source(tmp_path / "before"), split_by_source(tmp_path / "after")
    assert len(before) == 20 and len(after) == 40
    assert {source: after[source] for source in before} == before


# --- reading records for training -----------------------------------------------------------


def _uses_py_func(dataset: tf.data.Dataset) -> bool:
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    return any("PyFunc" in op for op in ops)


def test_record_source_feeds_the_shared_pipeline(tmp_path):
    write_photos(tmp_path / "src", 30)
    out = tmp_path / "out"
    convert_folder(tmp_path / "src", out, shard_mb=0.02, workers=2)
    source = sources.open_source(out)
    folder = sources.open_source(tmp_path / "src")
    assert isinstance(source, sources.RecordSource) and not source.allow_pil
    assert [source.count(s) for s in image_files.SPLITS] == [
        folder.count(s) for s in image_files.SPLITS
    ]

    spec = pipeline.PipelineSpec(batch_size=4, patch_size=32, eval_size=32)
    train = pipeline.training_pipeline(
        source.encoded("train", training=True), spec, allow_pil=False
    )
    batch = next(iter(train))["clean"]
    assert batch.shape == (4, 32, 32, 3) and batch.dtype == tf.uint8
    assert not _uses_py_func(train)
    assert _uses_py_func(pipeline.training_pipeline(folder.encoded("train", True), spec))

    # Same images in the same (relative-path) order as the folder: identical evaluation data.
    from_records = pipeline.eval_pipeline(
        source.encoded("test", training=False), spec, allow_pil=False
    )
    from_folder = pipeline.eval_pipeline(folder.encoded("test", training=False), spec)
    records_batches = [b["clean"].numpy() for b in from_records]
    folder_batches = [b["clean"].numpy() for b in from_folder]
    assert len(records_batches) == len(folder_batches) > 0
    for got, expected in zip(records_batches, folder_batches):
        np.testing.assert_array_equal(got, expected)


# --- command line ---------------------------------------------------------------------------


def test_cli_converts_and_reports(tmp_path):
    write_photos(tmp_path / "src", 6)
    write_bad_files(tmp_path / "src" / "bad")
    (tmp_path / "src" / "scans.pdf").write_bytes(b"%PDF-1.4")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "make-tfrecords",
            str(tmp_path / "src"),
            str(out),
            "--split",
            "0.5,0.25,0.25",
            "--workers",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split_fractions"] == [0.5, 0.25, 0.25]
    assert "images/s" in result.output and "truncated.jpg" in result.output
    assert "not read: 1 file under" in result.output and "(.pdf 1)" in result.output
    again = CliRunner().invoke(main, ["make-tfrecords", str(tmp_path / "src"), str(out)])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_cli_exit_status_1_when_nothing_is_usable(tmp_path):
    write_bad_files(tmp_path / "src")
    result = CliRunner().invoke(
        main, ["make-tfrecords", str(tmp_path / "src"), str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert "no usable images" in result.output and "notes.jpg" in result.output
    assert not list((tmp_path / "out").iterdir())


def test_cli_rejects_bad_split(tmp_path):
    write_photos(tmp_path / "src", 2)
    result = CliRunner().invoke(
        main, ["make-tfrecords", str(tmp_path / "src"), str(tmp_path / "out"), "--split", "0.7,0.3"]
    )
    assert result.exit_code == 2 and "three" in result.output


@pytest.mark.slow
def test_fit_trains_from_records(tmp_path):
    write_photos(tmp_path / "src", 24)
    out = tmp_path / "records"
    convert_folder(tmp_path / "src", out, workers=2)
    result = CliRunner().invoke(
        main,
        [
            "fit",
            str(out),
            *quick_fit_args(),
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    assert "TFRecords" in result.output
    assert (run_dir / "best.keras").exists()


def test_a_name_that_is_not_utf8_is_converted_with_its_bytes(tmp_path):
    source = tmp_path / "src"
    save(Path(os.fsdecode(bytes(source) + b"/caf\xe9.jpg")), photo_like(32, 32), quality=90)
    report = convert_folder(source, tmp_path / "out", (1, 0, 0), workers=1)
    assert report.images_written == 1 and report.manifest["skipped"] == []
    serialized = next(
        iter(tf.data.TFRecordDataset(str(next((tmp_path / "out").glob("*.tfrecord")))))
    )
    assert parse_features(serialized)["source"].numpy() == b"caf\xe9.jpg"
    assert read_manifest(tmp_path / "out")["counts"]["train"] == 1


# --- training reads of small record splits ---------------------------------------------------


def _take_bytes(iterator, count: int) -> list[bytes]:
    return [next(iterator)[0].numpy() for _ in range(count)]


@pytest.mark.parametrize("case", ["small", "over the limit", "not asked"])
def test_training_keeps_a_small_split_in_memory_and_reshuffles_it_whole(
    tmp_path, monkeypatch, case
):
    source_dir = tmp_path / "src"
    for index in range(12):
        save(source_dir / f"img{index:02d}.png", photo_like(20 + index, 24, seed=index))
    convert_folder(source_dir, tmp_path / "records", fractions=(1.0, 0.0, 0.0))
    source = sources.RecordSource(tmp_path / "records")
    count = source.count("train")
    split_bytes = sum(shard["bytes"] for shard in source.manifest["shards"])
    assert count == 12 and 0 < split_bytes < 10**6
    if case == "over the limit":
        monkeypatch.setattr(sources, "RECORD_CACHE_BYTES", split_bytes - 1)
    iterator = iter(source.encoded("train", training=True, keep_small=case != "not asked"))
    first = _take_bytes(iterator, count)
    for path in (tmp_path / "records").glob("*.tfrecord"):
        path.unlink()
    if case != "small":  # streamed: the next epoch reads the shard again, and it is gone
        with pytest.raises(tf.errors.NotFoundError):
            _take_bytes(iterator, 6 * count)
        return
    # Kept: later epochs read no file, each is the whole split again, in a new order (a
    # streamed split mixes neighbouring epochs in its small record buffer).
    assert len(set(first)) == count
    epochs = [first] + [_take_bytes(iterator, count) for _ in range(3)]
    assert all(sorted(epoch) == sorted(first) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) > 1
