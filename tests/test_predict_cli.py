"""The predict contract: layout, exit codes 0/1/2, inputs untouched, no overwrite."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import photo_like, save, write_bad_files
from PIL import Image

from tfdenoise import cli, models


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "tiny.keras"
    models.built(models.UNet(widths=(4, 8))).save(path)
    return path


def digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_outputs_mirror_the_input_tree_at_full_size(tmp_path, model_path):
    inputs = tmp_path / "scans"
    save(inputs / "a.jpg", photo_like(37, 53))
    save(inputs / "sub" / "b.PNG", photo_like(20, 90))
    before = digest(inputs)
    result = CliRunner().invoke(cli.predict_command, [str(inputs), "--model", str(model_path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "scans_denoised"
    assert sorted(digest(out)) == ["a.png", "sub/b.png"]
    assert Image.open(out / "a.png").size == (53, 37)
    assert Image.open(out / "sub" / "b.png").size == (90, 20)
    assert digest(inputs) == before


def test_failures_are_listed_and_exit_1(tmp_path, model_path):
    inputs = tmp_path / "scans"
    save(inputs / "ok.jpg", photo_like(16, 16))
    write_bad_files(inputs)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli.predict_command, [str(inputs), "-o", str(out), "--model", str(model_path)]
    )
    assert result.exit_code == 1
    assert "3 failed" in result.output and "truncated.jpg" in result.output
    assert (out / "ok.png").is_file()


def test_files_not_read_are_counted_not_failed(tmp_path, model_path):
    inputs = tmp_path / "scans"
    save(inputs / "a.jpg", photo_like(16, 16))
    for name in ("contract.pdf", "page2.pdf", "raw.CR2"):
        (inputs / name).write_bytes(b"%PDF-1.4")
    result = CliRunner().invoke(
        cli.predict_command, [str(inputs), "-o", str(tmp_path / "out"), "--model", str(model_path)]
    )
    assert result.exit_code == 0, result.output
    assert "not read: 3 files under" in result.output and "(.pdf 2, .cr2 1)" in result.output
    assert "0 failed" in result.output


def test_max_pixels_bounds_what_is_decoded(tmp_path, model_path):
    inputs = tmp_path / "scans"
    save(inputs / "big.png", photo_like(40, 50))
    save(inputs / "small.png", photo_like(20, 20))
    args = [str(inputs), "--model", str(model_path), "--max-pixels", "1999"]
    result = CliRunner().invoke(cli.predict_command, [*args, "-o", str(tmp_path / "a")])
    assert result.exit_code == 1
    reason = "big.png: too large: 50x40 = 2000 pixels exceeds the limit of 1999 pixels"
    assert reason in result.output
    assert (tmp_path / "a" / "small.png").is_file() and not (tmp_path / "a" / "big.png").exists()
    args[-1] = "2000"
    result = CliRunner().invoke(cli.predict_command, [*args, "-o", str(tmp_path / "b")])
    assert result.exit_code == 0 and (tmp_path / "b" / "big.png").is_file()


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, model_path):
    inputs, out = tmp_path / "scans", tmp_path / "out"
    save(inputs / "a.png", photo_like(16, 16))
    save(out / "a.png", np.zeros((4, 4, 3), np.uint8))
    args = [str(inputs), "-o", str(out), "--model", str(model_path)]
    assert CliRunner().invoke(cli.predict_command, args).exit_code == 0
    assert Image.open(out / "a.png").size == (4, 4)
    assert CliRunner().invoke(cli.predict_command, [*args, "--overwrite"]).exit_code == 0
    assert Image.open(out / "a.png").size == (16, 16)


def test_usage_errors_exit_2(tmp_path, model_path):
    runner = CliRunner()
    assert runner.invoke(cli.predict_command, [str(tmp_path / "missing")]).exit_code == 2
    (tmp_path / "in").mkdir()
    bad_model = runner.invoke(
        cli.predict_command, [str(tmp_path / "in"), "--model", str(tmp_path / "nope.keras")]
    )
    assert bad_model.exit_code == 2 and "not found" in bad_model.output


def test_reduced_precision_inference_stays_within_a_few_grey_levels(tmp_path, model_path):
    inputs = tmp_path / "scans"
    save(inputs / "a.png", photo_like(64, 96))
    outputs = {}
    for precision in ("float32", "mixed_bfloat16"):
        out = tmp_path / precision
        result = CliRunner().invoke(
            cli.predict_command,
            [str(inputs), "-o", str(out), "--model", str(model_path), "--precision", precision],
        )
        assert result.exit_code == 0, result.output
        assert f"precision: {precision}" in result.output
        outputs[precision] = np.asarray(Image.open(out / "a.png"), dtype=int)
    difference = np.abs(outputs["float32"] - outputs["mixed_bfloat16"])
    assert difference.max() <= 4 and difference.mean() < 1.0


def test_one_image_instead_of_a_folder(tmp_path, model_path):
    inputs = tmp_path / "scans"
    save(inputs / "a.jpg", photo_like(16, 16))
    save(inputs / "b.jpg", photo_like(16, 16))
    save(inputs / "b.png", photo_like(16, 16))
    (inputs / "notes.txt").write_text("x")
    run = CliRunner().invoke
    result = run(cli.predict_command, [str(inputs / "a.jpg"), "--model", str(model_path)])
    assert result.exit_code == 0, result.output
    assert digest(tmp_path / "scans_denoised").keys() == {"a.png"}  # as in the folder's run
    result = run(cli.predict_command, [str(inputs / "b.jpg"), "--model", str(model_path)])
    assert result.exit_code == 1 and "its output b.png is b.png's" in result.output
    for args in (["notes.txt"], ["a.jpg", "--shard", "0/2"]):
        result = run(cli.predict_command, [str(inputs / args[0]), *args[1:]])
        assert result.exit_code == 2, result.output
    assert (
        "not an image by its suffix (.txt)"
        in run(cli.predict_command, [str(inputs / "notes.txt")]).output
    )


@pytest.mark.parametrize("option", ["-h", "--help"])
def test_every_command_takes_h_and_help(option):
    """`python -m tfdenoise.predict -h` was refused while every `tfdenoise` command took it."""
    runner = CliRunner()
    standalone = runner.invoke(
        cli.predict_command, [option], prog_name="python -m tfdenoise.predict"
    )
    assert standalone.exit_code == 0, standalone.output
    assert standalone.output.startswith("Usage: python -m tfdenoise.predict [OPTIONS] DIR")
    for name in cli.main.list_commands(None):
        result = runner.invoke(cli.main, [name, option])
        assert result.exit_code == 0, (name, result.output)
        assert result.output.startswith(f"Usage: main {name}"), (name, result.output[:80])


REPO = Path(__file__).resolve().parent.parent
# `python -m tfdenoise.predict` with Ctrl-C as at a terminal: a shell starts background jobs
# with SIGINT ignored, and so may whatever runs these tests
PREDICT_AT_A_TERMINAL = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('tfdenoise.predict', run_name='__main__')"
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_with_the_summary_and_no_temp_files(tmp_path, model_path, signum):
    """A real process, a real signal: Ctrl-C ended with click's "Aborted!" and exit 1, SIGTERM
    killed the process mid-write (temp files left, no summary). Both now stop cleanly: the
    summary of the images finished, exit 128 + N, only complete outputs in OUT."""
    inputs, out = tmp_path / "scans", tmp_path / "out"
    for index in range(40):
        save(inputs / f"s{index:02d}.png", photo_like(300, 400, seed=index))
    args = [str(inputs), "-o", str(out), "--model", str(model_path), "--ensemble", "1"]
    process = subprocess.Popen(
        [sys.executable, "-c", PREDICT_AT_A_TERMINAL, *args, "--precision", "float32"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (out.is_dir() and len(list(out.glob("*.png"))) >= 2):
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.02)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, output
    assert "Aborted" not in output and "Traceback" not in output
    written = sorted(out.iterdir())  # no temp file beside them
    assert all(path.suffix == ".png" and not path.name.startswith(".") for path in written)
    assert 2 <= len(written) < 40
    for path in written:
        Image.open(path).load()  # complete
    assert f"{len(written)} images: {len(written)} denoised" in output
    assert f"stopped by {name} after {len(written)} of 40 images" in output
    again = CliRunner().invoke(
        cli.predict_command, [str(inputs), "-o", str(out), "--model", str(model_path)]
    )
    assert again.exit_code == 0 and f"{len(written)} kept" in again.output


def test_a_stop_before_the_job_starts_exits_130(tmp_path, model_path, monkeypatch):
    from tfdenoise import checkpoints
    from tfdenoise.predict import stopping

    def interrupted(*args, **kwargs):
        raise stopping.Interrupted(signal.SIGINT)  # Ctrl-C while the model loads

    monkeypatch.setattr(checkpoints, "load_denoiser", interrupted)
    save(tmp_path / "scans" / "a.png", photo_like(16, 16))
    handlers = [signal.getsignal(signum) for signum in stopping.STOP_SIGNALS]
    result = CliRunner().invoke(cli.predict_command, [str(tmp_path / "scans")])
    assert result.exit_code == 130 and "stopped by SIGINT" in result.output
    assert "Aborted" not in result.output
    assert [signal.getsignal(signum) for signum in stopping.STOP_SIGNALS] == handlers
