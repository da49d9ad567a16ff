"""`evaluate --reference`: real noisy photos scored against their clean references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import photo_like, save

from tfdenoise import checkpoints, cli
from tfdenoise.evaluate_pairs import REAL, evaluate_pairs, find_pairs


def noisy_copy(clean: np.ndarray, seed: int, sigma: float = 15.0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, clean.shape)
    return np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)


@pytest.fixture
def pairs_folders(tmp_path: Path) -> tuple[Path, Path]:
    """Noisy JPEG-free photos (PNG, lossless) and references named as in real sets: the same
    path, or the same stem with another suffix; plus photos that cannot be scored."""
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    for name, reference_name, seed in [
        ("a.png", "a.png", 1),
        ("sub/b.png", "sub/b.tif", 2),  # another suffix, in a subfolder
    ]:
        picture = photo_like(48, 64, seed=seed, noise=0)
        save(clean / reference_name, picture)
        save(noisy / name, noisy_copy(picture, seed))
    save(noisy / "orphan.png", photo_like(48, 64, seed=3))  # no reference
    save(noisy / "c.png", photo_like(48, 64, seed=4))
    save(clean / "c.png", photo_like(40, 64, seed=4, noise=0))  # another size
    save(noisy / "d.bmp", photo_like(48, 64, seed=5))
    save(clean / "d.png", photo_like(48, 64, seed=5))
    save(clean / "d.jpg", photo_like(48, 64, seed=5))  # two candidates, neither exact
    (noisy / "e.png").write_bytes(b"not an image")
    save(clean / "e.png", photo_like(48, 64, seed=6))
    return noisy, clean


def test_pairs_are_found_by_path_then_by_stem_and_the_rest_is_skipped_with_reasons(
    pairs_folders,
):
    noisy, clean = pairs_folders
    pairs, skipped = find_pairs(noisy, clean)
    assert {p.name: p.clean.relative_to(clean).as_posix() for p in pairs} == {
        "a.png": "a.png",
        "c.png": "c.png",
        "e.png": "e.png",
        "sub/b.png": "sub/b.tif",
    }
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons["orphan.png"].startswith("no reference orphan.*")
    assert reasons["d.bmp"] == "several references (d.jpg, d.png)"


def test_references_kept_inside_the_noisy_folder_are_not_scored_as_noisy(tmp_path):
    picture = photo_like(32, 32, seed=1, noise=0)
    save(tmp_path / "x.png", noisy_copy(picture, 1))
    save(tmp_path / "clean" / "x.png", picture)
    pairs, skipped = find_pairs(tmp_path, tmp_path / "clean")
    assert [p.name for p in pairs] == ["x.png"] and skipped == []
    with pytest.raises(ValueError, match="reference folder not found"):
        find_pairs(tmp_path, tmp_path / "missing")
    with pytest.raises(ValueError, match="the noisy folder itself"):
        find_pairs(tmp_path, tmp_path / "clean" / "..")
    save(tmp_path / "others" / "y.png", picture)
    with pytest.raises(ValueError, match="no image .* has a reference"):
        find_pairs(tmp_path / "clean", tmp_path / "others")


def test_the_bundled_model_cleans_real_looking_pairs_and_bad_pairs_are_noted(pairs_folders):
    noisy, clean = pairs_folders
    model = checkpoints.load_denoiser(None, precision="float32")
    result, grid = evaluate_pairs(model, noisy, clean, baseline_names=[])
    assert result.images == ["a.png", "sub/b.png"]  # c: another size, e: unreadable
    scores = result.scores[REAL]
    assert scores["model"].images == 2
    assert scores["model"].psnr > scores["noisy"].psnr + 3.0  # sigma 15 on smooth photos
    # The references stay clean. These are 64x48 generated pictures, all border and fine
    # texture: real-stage17 returned them at 40.2 / 44.2 dB, real-stage18 (bundled since
    # 2026-12-06) at 39.8 / 39.4; clean Kodak24 photos come back at 54.7 dB (README), and
    # test_pretrained holds a real photo crop to the same 38 dB.
    assert result.scores["clean"]["model"].psnr > 38.0
    notes = "\n".join(result.notes)
    assert "c.png: 64x48, its reference 64x40" in notes
    assert "e.png: not an image" in notes
    assert "orphan.png: no reference" in notes
    assert len(grid) == 2 and grid[0][0].shape == (48, 64, 3)


def test_evaluate_cli_scores_pairs_and_refuses_synthetic_options(pairs_folders, tmp_path):
    noisy, clean = pairs_folders
    out = tmp_path / "pairs.json"
    args = ["evaluate", str(noisy), "--reference", str(clean), "--baselines", "none"]
    result = CliRunner().invoke(cli.main, [*args, "--json", str(out), "--precision", "float32"])
    assert result.exit_code == 0, result.output
    assert "real noise against clean references" in result.output
    saved = json.loads(out.read_text())
    assert saved["protocol"] == "paired" and saved["crop"] is None  # full images by default
    assert saved["scores"][REAL]["model"]["images"] == 2
    for extra in (["--protocol", "paper"], ["--conditions", "gaussian-25"], ["--all"]):
        refused = CliRunner().invoke(cli.main, [*args, *extra])
        assert refused.exit_code != 0 and "do not apply" in refused.output
