"""Every command over the fault corpus, and kill -9 in the middle of training.

Each test asserts the contract: good files processed, every bad one skipped with its one-line
reason and counted, no traceback; a killed job resumes without losing earlier work.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import quick_fit_args
from faults import make_fault_corpus

from tfdenoise import checkpoints, cli, models, runs
from tfdenoise.io import files as image_files
from tfdenoise.io.records.folder import read_manifest
from tfdenoise.io.records.schema import parse_features
from tfdenoise.predict import folder

REPO = Path(__file__).resolve().parent.parent
QUICK_FIT = quick_fit_args(epochs=1, steps=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    return root, make_fault_corpus(root)


def test_scan_keeps_every_usable_file_and_explains_every_skip(corpus):
    root, faults = corpus
    scan = image_files.scan(root)
    found = {f.relpath for f in scan.files}
    reasons = {Path(s.path).relative_to(root).as_posix(): s.reason for s in scan.skipped}
    assert found == {f.relpath for f in faults if f.usable}
    for fault in faults:
        if not fault.usable:
            assert fault.reason in reasons[fault.relpath], fault.name
    assert all("\n" not in reason for reason in reasons.values())


@pytest.mark.slow
def test_fit_over_the_fault_corpus(corpus, tmp_path):
    root, faults = corpus
    result = CliRunner().invoke(
        cli.main, ["fit", str(root), *QUICK_FIT, "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    bad = [f for f in faults if not f.usable]
    assert f"{len(bad)} skipped" in result.output
    for fault in bad:
        assert f"{fault.relpath}: {fault.reason}" in result.output, fault.name


def test_predict_over_the_fault_corpus(corpus, tmp_path):
    root, faults = corpus
    model = tmp_path / "tiny.keras"
    models.built(models.UNet(widths=(4, 8))).save(model)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli.predict_command, [str(root), "-o", str(out), "--model", str(model)]
    )
    assert result.exit_code == 1  # some inputs failed
    assert "Traceback" not in result.output
    for fault in faults:
        target = (out / fault.relpath).with_suffix(".png")
        if fault.pages > 1:  # one file per page, the first one NAME.p001.png
            target = folder.page_output_path(target, 0)
        assert target.is_file() == fault.usable, fault.name
        if not fault.usable:
            assert fault.reason in result.output, fault.name


def _fit_process(data: Path, runs_dir: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "tfdenoise",
        "fit",
        str(data),
        *quick_fit_args(epochs=6, steps=4),
        "--patience",
        "100",
        "--runs-dir",
        str(runs_dir),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _epochs_logged(runs_dir: Path) -> int:
    histories = list(runs_dir.glob("*/history.json"))
    return len(json.loads(histories[0].read_text())) if histories else 0


@pytest.mark.slow
def test_fit_survives_kill_9_and_resumes_without_losing_history(corpus, tmp_path):
    root, _ = corpus
    runs_dir = tmp_path / "runs"
    rng = random.Random(0)
    kills = 0
    for attempt in range(3):
        process = _fit_process(root, runs_dir, *(["--resume"] if attempt else []))
        before = _epochs_logged(runs_dir)
        deadline = time.monotonic() + 240
        # kill at a random moment after at least one more epoch was logged
        while _epochs_logged(runs_dir) <= before and process.poll() is None:
            assert time.monotonic() < deadline, "training made no progress"
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.5))
        if process.poll() is not None:
            assert process.returncode == 0, process.stdout.read()
            break
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        kills += 1
        (run_dir,) = runs.all_runs(runs_dir)
        history = json.loads((run_dir / "history.json").read_text())  # still valid JSON
        assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    assert kills >= 1
    (run_dir,) = runs.all_runs(runs_dir)
    if not (run_dir / "metrics.json").exists():  # the last attempt may have finished already
        final = _fit_process(root, runs_dir, "--resume")
        output, _ = final.communicate(timeout=300)
        assert final.returncode == 0, output
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    assert (run_dir / "metrics.json").is_file()
    checkpoints.load_model(run_dir / "best.keras")  # never left truncated


def test_make_tfrecords_over_the_fault_corpus(corpus, tmp_path):
    import tensorflow as tf

    root, faults = corpus
    out = tmp_path / "records"
    result = CliRunner().invoke(
        cli.main, ["make-tfrecords", str(root), str(out), "--shard-mb", "0.01", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    manifest = read_manifest(out)
    stored = set()
    for shard in manifest["shards"]:
        for serialized in tf.data.TFRecordDataset(str(out / shard["name"])):
            stored.add(parse_features(serialized)["source"].numpy().decode())
    assert stored == {f.relpath for f in faults if f.usable}
    skipped = {s["path"]: s["reason"] for s in manifest["skipped"]}  # relative to SRC
    for fault in faults:
        if not fault.usable:
            assert fault.reason in skipped[fault.relpath], fault.name
            assert fault.relpath in result.output
