"""`evaluate` leaves the runs folder inside DATA out, as fit does: its grid.png previews are
not benchmark images, and the test split stays the one fit used."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import photo_like, save

from tfdenoise import cli

QUICK = ["--baselines", "none", "--conditions", "gaussian-25", "--crop", "0", "--ensemble", "1"]


def evaluated_images(model, data, *extra) -> list[str]:
    json_file = data.parent / "scores.json"
    args = ["evaluate", str(data), "--model", str(model), *QUICK, *extra, "--json", json_file]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    return json.loads(json_file.read_text())["images"]


def test_evaluate_leaves_the_runs_folder_inside_data_out(tmp_path, tiny_model_path, monkeypatch):
    data = tmp_path / "photos"
    for index in range(12):
        save(data / f"p{index:02d}.png", photo_like(24, 24, seed=index))
    before_all = evaluated_images(tiny_model_path, data, "--all")
    before_test = evaluated_images(tiny_model_path, data)
    assert before_test  # 12 photos: some hash into the test split

    # `cd photos && tfdenoise fit .` leaves runs/<id>/grid.png under DATA; enough runs that
    # some of their grids hash into the test split
    for index in range(20):
        save(data / "runs" / f"20261207-0000{index:02d}" / "grid.png", photo_like(24, 24, index))
    monkeypatch.chdir(data)  # the default --runs-dir, "runs", is this folder's
    assert evaluated_images(tiny_model_path, data, "--all") == before_all
    assert evaluated_images(tiny_model_path, data) == before_test
    elsewhere = tmp_path / "elsewhere"
    assert any(
        name.startswith("runs/")
        for name in evaluated_images(tiny_model_path, data, "--all", "--runs-dir", str(elsewhere))
    )


def test_the_table_title_says_smaller_images_are_scored_whole(tmp_path, tiny_model_path):
    data = tmp_path / "small"
    for index in range(3):
        save(data / f"s{index}.png", photo_like(24, 24, seed=index))
    args = ["evaluate", str(data), "--model", str(tiny_model_path), "--all", "--crop", "512"]
    result = CliRunner().invoke(
        cli.main, [*args, "--baselines", "none", "--conditions", "gaussian-25"]
    )
    assert result.exit_code == 0, result.output
    assert "up to 512x512 (smaller images whole)" in result.output
