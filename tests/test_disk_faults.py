"""Disk full and read-only outputs, on real tiny file systems (tmpfs mounts).

Mounting needs root (CI and development machines run as root); elsewhere these tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import photo_like, quick_fit_args, save
from PIL import Image

from tfdenoise import cli

REPO = Path(__file__).resolve().parent.parent
QUICK_FIT = quick_fit_args(epochs=2, steps=2)


def _mount(path: Path, size: str, read_only: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): needs root")


@pytest.fixture
def mounts():
    mounted = []

    def mount(path: Path, size: str = "1m", read_only: bool = False) -> Path:
        _mount(path, size, read_only)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    for index in range(12):
        save(root / f"{index}.png", photo_like(48, 48, seed=index))
    return root


def run_fit(folder: Path, runs_dir: Path) -> subprocess.CompletedProcess:
    """`fit` as users run it: a process of its own, so its exit status is the real one."""
    command = [
        sys.executable,
        "-m",
        "tfdenoise",
        "fit",
        str(folder),
        *QUICK_FIT,
        "--runs-dir",
        str(runs_dir),
    ]
    return subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_fit_into_a_read_only_runs_dir_is_a_clear_error(folder, tmp_path, mounts):
    runs_dir = mounts(tmp_path / "ro", read_only=True)
    result = run_fit(folder, runs_dir)
    assert result.returncode == 1, result.stderr
    assert "Read-only file system" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_fit_on_a_full_disk_fails_clearly_and_leaves_valid_files(folder, tmp_path, mounts):
    runs_dir = mounts(tmp_path / "full", size="300k")  # fits config + history, not the model
    result = run_fit(folder, runs_dir)
    assert result.returncode == 1, result.stderr  # a clean exit, not a crash (139)
    assert "No space left on device" in result.stderr
    assert "cannot write the run" in result.stderr
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    json.loads((run_dir / "config.json").read_text())
    if (run_dir / "history.json").exists():
        json.loads((run_dir / "history.json").read_text())  # atomic: never half-written
    assert not (run_dir / "best.keras").exists()  # atomic: absent rather than truncated


@pytest.fixture
def tiny_model(tmp_path):
    from tfdenoise import models

    path = tmp_path / "tiny.keras"
    models.built(models.UNet(widths=(4, 8))).save(path)
    return path


def test_predict_onto_a_full_disk_stops_and_keeps_complete_outputs(
    folder, tmp_path, mounts, tiny_model
):
    out = mounts(tmp_path / "full", size="40k")  # room for a few 48x48 PNGs, not twelve
    args = [str(folder), "-o", str(out), "--model", str(tiny_model), "--precision", "float32"]
    result = CliRunner().invoke(cli.predict_command, args)
    assert result.exit_code == 1
    assert "No space left on device" in result.output and "stopped early" in result.output
    assert "Traceback" not in result.output
    written = sorted(out.rglob("*.png"))
    assert 0 < len(written) < 12
    for path in written:
        Image.open(path).load()  # every output present is a complete PNG
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no temp debris


def test_predict_onto_a_read_only_disk_is_a_clear_error(folder, tmp_path, mounts, tiny_model):
    out = mounts(tmp_path / "ro", read_only=True)
    result = CliRunner().invoke(
        cli.predict_command, [str(folder), "-o", str(out), "--model", str(tiny_model)]
    )
    assert result.exit_code == 1
    assert "Read-only file system" in result.output and "Traceback" not in result.output
    assert result.output.count("failed ") <= 1  # stopped at the first refusal, not 12 times
