"""tools/pooled_scores.py: per-image PSNRs of separate evaluate runs pooled, each image once."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import load_tool, photo_like, save

from tfdenoise import cli

pooled_scores = load_tool("pooled_scores")


def evaluate_json(folder, count, tiny_model_path, tmp_path):
    for index in range(count):
        save(folder / f"{folder.name}{index}.png", photo_like(40, 48, 30 + index, noise=0))
    out = tmp_path / f"{folder.name}.json"
    result = CliRunner().invoke(
        cli.main,
        [
            "evaluate",
            str(folder),
            "--all",
            "--model",
            str(tiny_model_path),
            "--crop",
            "32",
            "--baselines",
            "none",
            "--ensemble",
            "1",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_pooling_weighs_every_image_once(tiny_model_path, tmp_path, capsys, monkeypatch):
    first = evaluate_json(tmp_path / "a", 1, tiny_model_path, tmp_path)
    second = evaluate_json(tmp_path / "b", 3, tiny_model_path, tmp_path)
    runs = [json.loads(path.read_text()) for path in (first, second)]
    images, means = pooled_scores.pooled([(run, "model") for run in runs])
    assert len(images) == 4
    for condition in ("gaussian-15", "prototype", "clean"):
        per_image = [v for run in runs for v in run["scores"][condition]["model"]["per_image_psnr"]]
        assert means[condition] == pytest.approx(np.mean(per_image))
        set_means = [run["scores"][condition]["model"]["psnr"] for run in runs]
        assert means[condition] == pytest.approx((set_means[0] + 3 * set_means[1]) / 4)

    monkeypatch.setattr(
        "sys.argv",
        [
            "pooled_scores.py",
            f"model={first}:model,{second}:model",
            f"noisy={first}:noisy,{second}:noisy",
        ],
    )
    assert pooled_scores.main() == 0
    printed = capsys.readouterr().out
    assert "over 4 images" in printed
    row = next(line for line in printed.splitlines() if line.startswith("| gaussian-15"))
    assert f"{means['gaussian-15']:.2f}" in row


def test_a_column_may_not_count_an_image_twice(tiny_model_path, tmp_path):
    path = evaluate_json(tmp_path / "a", 1, tiny_model_path, tmp_path)
    run = json.loads(path.read_text())
    with pytest.raises(ValueError, match="same image"):
        pooled_scores.pooled([(run, "model"), (run, "model")])


def test_only_pools_the_named_images(tiny_model_path, tmp_path, capsys, monkeypatch):
    first = evaluate_json(tmp_path / "a", 2, tiny_model_path, tmp_path)
    second = evaluate_json(tmp_path / "b", 2, tiny_model_path, tmp_path)
    runs = [json.loads(path.read_text()) for path in (first, second)]
    images, means = pooled_scores.pooled([(run, "model") for run in runs], {"a1.png", "b0.png"})
    assert images == ["a1.png", "b0.png"]
    expected = [
        runs[0]["scores"]["prototype"]["model"]["per_image_psnr"][1],
        runs[1]["scores"]["prototype"]["model"]["per_image_psnr"][0],
    ]
    assert means["prototype"] == pytest.approx(np.mean(expected))

    names = tmp_path / "names.txt"
    names.write_text("# photographs\na1.png\nb0.png  # a comment\n\n")
    monkeypatch.setattr(
        "sys.argv",
        ["pooled_scores.py", "--only", str(names), f"model={first}:model,{second}:model"],
    )
    assert pooled_scores.main() == 0
    assert "over 2 images" in capsys.readouterr().out
    names.write_text("a1.png\nb9.png\n")  # b9.png was never scored: refused, not dropped
    with pytest.raises(SystemExit, match="b9.png"):
        pooled_scores.main()
