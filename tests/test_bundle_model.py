"""tools/bundle_model.py: what each training stage contributes to the bundled model's provenance."""

from __future__ import annotations

import json

import pytest
from conftest import load_tool

bundle_model = load_tool("bundle_model")


def run_dir(path, losses: list[float], steps_per_epoch: int = 10):
    path.mkdir()
    history = [
        {"epoch": epoch, "val_loss": loss, "val_psnr": 30.0 - loss, "train_seconds": 60.0}
        for epoch, loss in enumerate(losses, start=1)
    ]
    (path / "history.json").write_text(json.dumps(history))
    (path / "config.json").write_text(json.dumps({"steps_per_epoch": steps_per_epoch}))
    return path


def test_a_base_stage_counts_up_to_the_epoch_carried_on(tmp_path):
    base = run_dir(tmp_path / "base", [0.5, 0.3, 0.4, 0.2, 0.6])  # best: epoch 4
    carried = bundle_model.stage(base, "tfdenoise fit A", carried=2, machine="2-core AMX")
    assert carried["epochs_trained"] == 2 and carried["steps_trained"] == 20
    assert carried["train_seconds"] == 120 and carried["carried_epoch"] == 2
    assert carried["best_epoch"] == 4 and carried["machine"] == "2-core AMX"


def test_the_final_stage_counts_every_epoch_and_a_missing_epoch_is_refused(tmp_path):
    final = run_dir(tmp_path / "final", [0.5, 0.3, 0.4])
    whole = bundle_model.stage(final, "tfdenoise fit B", carried=None, machine=None)
    assert whole["epochs_trained"] == 3 and whole["carried_epoch"] is None
    with pytest.raises(ValueError, match="no epoch 7"):
        bundle_model.stage(final, "tfdenoise fit B", carried=7, machine=None)
