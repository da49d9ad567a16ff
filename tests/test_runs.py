"""`tfdenoise runs` and `--model best` over run folders written by hand: damaged runs are
listed as unreadable and never stop the others from being listed or chosen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import photo_like, save

from tfdenoise import checkpoints, cli, runs


def make_run(runs_dir: Path, name: str, model: Path, history, val_loss: float = 0.1) -> Path:
    """A run directory as fit leaves it: config, best model and history (text or JSON value)."""
    run = runs_dir / name
    run.mkdir(parents=True)
    (run / runs.CONFIG).write_text("{}")
    shutil.copy(model, run / runs.BEST_MODEL)
    if history is None:
        history = [{"epoch": 1, "val_loss": val_loss, "val_psnr": 30.0}]
    text = history if isinstance(history, str) else json.dumps(history)
    (run / runs.HISTORY).write_text(text)
    return run


GOOD_HISTORY = json.dumps([{"epoch": e, "val_loss": 0.01, "val_psnr": 30.0} for e in range(1, 9)])
DAMAGED = {
    "truncated": GOOD_HISTORY[:100],
    "not-a-list": {"a": 1},
    "string-loss": [{"epoch": 1, "val_loss": "0.1"}],
}


@pytest.mark.parametrize("damage", DAMAGED)
def test_a_damaged_history_is_an_unreadable_run_left_out_of_best(tmp_path, tiny_model_path, damage):
    runs_dir = tmp_path / "runs"
    good = make_run(runs_dir, "20261207-000000-good", tiny_model_path, None, val_loss=0.5)
    bad = make_run(runs_dir, "20261207-000001-bad", tiny_model_path, DAMAGED[damage])

    result = CliRunner().invoke(cli.main, ["runs", "--runs-dir", str(runs_dir)])
    assert result.exit_code == 0, result.output
    assert good.name in result.output and bad.name in result.output
    assert "unreadable" in result.output
    assert f"run {bad.name} is unreadable (history.json: " in result.output

    (summary,) = [s for s in runs.ranked_runs(runs_dir) if s.path == bad]
    assert summary.problem.startswith("history.json: ")
    assert checkpoints.resolve_model_path("best", runs_dir) == good / runs.BEST_MODEL


def test_predict_with_model_best_skips_an_unreadable_run(tmp_path, tiny_model_path):
    runs_dir = tmp_path / "runs"
    make_run(runs_dir, "20261207-000000-good", tiny_model_path, None)
    make_run(runs_dir, "20261207-000001-bad", tiny_model_path, DAMAGED["truncated"])
    inputs = tmp_path / "scans"
    save(inputs / "x.png", photo_like(32, 32))
    result = CliRunner().invoke(
        cli.predict_command, [str(inputs), "--model", "best", "--runs-dir", str(runs_dir)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "scans_denoised" / "x.png").is_file()


def test_best_with_only_unreadable_runs_names_them(tmp_path, tiny_model_path):
    runs_dir = tmp_path / "runs"
    make_run(runs_dir, "20261207-000001-bad", tiny_model_path, DAMAGED["truncated"])
    with pytest.raises(ValueError, match=r"unreadable runs left out: 20261207-000001-bad \("):
        runs.best_run(runs_dir)


def test_a_damaged_metrics_file_is_named(tmp_path, tiny_model_path):
    runs_dir = tmp_path / "runs"
    run = make_run(runs_dir, "20261207-000000-run", tiny_model_path, None)
    (run / runs.METRICS).write_text(json.dumps({"test": {"gaussian-25": {"psnr_denoised": "x"}}}))
    (summary,) = runs.ranked_runs(runs_dir)
    assert summary.problem.startswith("metrics.json: ")


def test_runs_of_a_missing_folder_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli.main, ["runs", "--runs-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "runs folder does not exist" in result.output
