"""A killed `evaluate --json` resumes from its per-image journal (tfdenoise.evaluate_journal)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import photo_like, save

from tfdenoise import cli, evaluate, inference
from tfdenoise.degradations import catalog
from tfdenoise.evaluate_journal import Journal, journal_path

CONDITIONS = {name: catalog.ALL_CONDITIONS[name] for name in ("gaussian-25", "jpeg-noise")}
SETTINGS = {"images": ["a", "b", "c"], "crop": None, "conditions": list(CONDITIONS)}


def images(count: int = 3) -> list[np.ndarray]:
    return [photo_like(24, 32, seed=60 + index, noise=0) for index in range(count)]


def blur(image: np.ndarray) -> np.ndarray:
    """A stand-in denoiser whose output depends on its input (so scores differ per image)."""
    smooth = (image[:-1].astype(np.int16) + image[1:]) // 2
    return np.concatenate([smooth, image[-1:]]).astype(np.uint8)


def run(loaders, journal=None, denoise=blur):
    return evaluate.evaluate_images(
        denoise,
        loaders,
        conditions=CONDITIONS,
        done=journal.done if journal else None,
        on_image=journal.record if journal else None,
    )


def as_json(scores) -> dict:
    return {
        condition: {method: (s.images, s.per_image_psnr, s.ssim_sum) for method, s in m.items()}
        for condition, m in scores.items()
    }


def test_a_killed_evaluation_resumes_and_scores_only_the_rest(tmp_path):
    pictures = images()
    expected, _, _ = run([lambda p=p: p for p in pictures])

    path = tmp_path / "scores.json.partial.jsonl"

    def killed():
        raise KeyboardInterrupt  # the session ends while the third image is scored

    with pytest.raises(KeyboardInterrupt):
        run([lambda: pictures[0], lambda: pictures[1], killed], Journal(path, SETTINGS, print))
    with path.open("a") as stream:
        stream.write('{"index": 2, "scores": {"gaus')  # a line torn by the kill

    notes, calls = [], []

    def counted(image):
        calls.append(image.shape)
        return blur(image)

    resumed = Journal(path, SETTINGS, notes.append)
    assert sorted(resumed.done) == [0, 1] and "resuming: 2 images" in notes[0]
    scores, grid, _ = run([lambda p=p: p for p in pictures], resumed, counted)
    assert len(calls) == 1 + len(CONDITIONS)  # the third image only: clean + each condition
    assert as_json(scores) == as_json(expected)  # the same per-image scores, in order
    assert len(grid) == 1  # the grid shows what this run scored


def test_a_journal_of_other_settings_is_started_over(tmp_path):
    path = tmp_path / "scores.json.partial.jsonl"
    run([lambda p=p: p for p in images(2)], Journal(path, SETTINGS, print))
    notes = []
    other = Journal(path, {**SETTINGS, "crop": 512}, notes.append)
    assert other.done == {} and "other settings: starting over" in notes[0]
    assert json.loads(path.read_text().splitlines()[0])["settings"]["crop"] == 512


def kill_and_check_journal(args: list[str], json_file, monkeypatch) -> None:
    """Runs the command, killed on the third image's first model call (two calls per image),
    and checks it left no results but a journal of the settings and the first two images."""
    real, calls = inference.denoise_rgb8, []

    def dies_on_the_third_image(model, image, *rest):
        calls.append(1)
        if len(calls) > 4:
            raise KeyboardInterrupt
        return real(model, image, *rest)

    monkeypatch.setattr(inference, "denoise_rgb8", dies_on_the_third_image)
    killed = CliRunner().invoke(cli.main, args)
    assert killed.exit_code != 0 and not json_file.exists()
    assert len(journal_path(json_file).read_text().splitlines()) == 3
    monkeypatch.setattr(inference, "denoise_rgb8", real)


def test_the_cli_resumes_a_killed_run_and_removes_the_journal_when_done(
    identity_model_path, tmp_path, monkeypatch
):
    root = tmp_path / "photos"
    for index in range(3):
        save(root / f"p{index}.png", photo_like(40, 48, 70 + index, noise=0))
    json_file = tmp_path / "scores.json"
    args = [
        "evaluate", str(root), "--all", "--model", str(identity_model_path), "--baselines",
        "none", "--ensemble", "1", "--conditions", "gaussian-25", "--json", str(json_file),
    ]  # fmt: skip
    complete = CliRunner().invoke(cli.main, args)
    assert complete.exit_code == 0, complete.output
    expected = json.loads(json_file.read_text())["scores"]
    assert not journal_path(json_file).exists()
    json_file.unlink()

    kill_and_check_journal(args, json_file, monkeypatch)  # clean + gaussian-25 per image

    resumed = CliRunner().invoke(cli.main, args)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming: 2 images already scored" in resumed.output
    scores = json.loads(json_file.read_text())["scores"]
    for condition in ("gaussian-25", "clean"):
        for method in scores[condition]:
            assert scores[condition][method]["per_image_psnr"] == pytest.approx(
                expected[condition][method]["per_image_psnr"]
            )
    assert not journal_path(json_file).exists()


def test_a_killed_reference_evaluation_resumes_too(identity_model_path, tmp_path, monkeypatch):
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    for index in range(3):
        picture = photo_like(40, 48, 80 + index, noise=0)
        save(clean / f"p{index}.png", picture)
        save(noisy / f"p{index}.png", photo_like(40, 48, 80 + index))
    (noisy / "broken.png").write_bytes(b"not an image")
    save(clean / "broken.png", photo_like(40, 48, 90, noise=0))
    json_file = tmp_path / "real.json"
    args = [
        "evaluate", str(noisy), "--reference", str(clean), "--model", str(identity_model_path),
        "--baselines", "none", "--ensemble", "1", "--json", str(json_file),
    ]  # fmt: skip
    complete = CliRunner().invoke(cli.main, args)
    assert complete.exit_code == 0, complete.output
    expected = json.loads(json_file.read_text())
    json_file.unlink()

    kill_and_check_journal(args, json_file, monkeypatch)  # noisy photo + reference per pair

    resumed = CliRunner().invoke(cli.main, args)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming: 2 images already scored" in resumed.output
    result = json.loads(json_file.read_text())
    assert result["images"] == expected["images"]
    assert any("broken.png" in note for note in result["notes"])  # still skipped, and said
    for condition in ("real", "clean"):
        for method in expected["scores"][condition]:
            assert result["scores"][condition][method]["per_image_psnr"] == pytest.approx(
                expected["scores"][condition][method]["per_image_psnr"]
            )
    assert not journal_path(json_file).exists()
