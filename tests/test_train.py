"""`tfdenoise fit` end to end on generated images with corrupt files, resume, and `runs`."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import load_tool, photo_like, quick_fit_args, save

from tfdenoise import checkpoints, cli, losses, models, runs
from tfdenoise.config import FitConfig
from tfdenoise.train import callbacks as cb
from tfdenoise.train import fit as fit_module
from tfdenoise.train.fit import fit

pytestmark = pytest.mark.slow

QUICK = quick_fit_args(epochs=2, steps=3)


def quick_config(data, runs_dir, **overrides) -> FitConfig:
    values = dict(
        data=str(data),
        runs_dir=str(runs_dir),
        epochs=3,
        steps_per_epoch=3,
        batch_size=4,
        patch_size=32,
        eval_size=32,
        precision="float32",
        widths=(8, 16),
        patience=10,
        noise="gaussian",  # quick_fit_args says why
    )
    values.update(overrides)
    return FitConfig(**values)


def test_fit_cli_writes_a_complete_run_dir_and_skips_corrupt_files(image_folder, tmp_path):
    runs_dir = tmp_path / "runs"
    (image_folder / "shoot.CR2").write_bytes(b"II*\x00")  # a camera RAW: named, not read
    result = CliRunner().invoke(
        cli.main,
        [
            "fit",
            str(image_folder),
            *quick_fit_args(epochs=2, steps=3, noise=None),  # fit's defaults, as users run it
            "--name",
            "smoke",
            "--runs-dir",
            str(runs_dir),
            "--sigma-sampling",
            "low",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 skipped" in result.output
    assert "notes.jpg: not an image" in result.output
    assert "not read: 1 file under" in result.output and "(.cr2 1)" in result.output
    (run_dir,) = runs.all_runs(runs_dir)
    assert run_dir.name.endswith("-smoke")
    for name in ("config.json", "history.json", "best.keras", "metrics.json", "grid.png"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(row["steps_per_second"] > 0 and "val_loss" in row for row in history)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"gaussian-15", "gaussian-25", "gaussian-50", "prototype"}
    sigma15, sigma50 = metrics["test"]["gaussian-15"], metrics["test"]["gaussian-50"]
    assert abs(sigma15["psnr_noisy"] - 24.6) < 1.0  # sigma 15 on 8-bit: 20 log10(255/15)
    assert sigma50["psnr_noisy"] < sigma15["psnr_noisy"]
    assert len(metrics["skipped_files"]) == 3
    saved = FitConfig.load(run_dir / "config.json")
    assert (saved.patch_size, saved.sigma_sampling) == (32, "low")
    assert saved.noise == "blind"  # by default users' models learn realistic noise, not only white


def test_fit_reproduces_the_prototype_in_resize_mode(image_folder, tmp_path):
    config = quick_config(
        image_folder, tmp_path / "runs", model="seed", noise="seed", loss="mse", resize=32, epochs=1
    )
    result = fit(config, log=lambda message: None)
    assert result.metrics["parameters"] > 0
    assert (result.run_dir / "best.keras").is_file()


class CrashAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated crash")


def test_resume_continues_from_the_last_epoch_without_losing_history(image_folder, tmp_path):
    uninterrupted = fit(quick_config(image_folder, tmp_path / "a"), log=lambda m: None)

    runs_dir = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        fit(
            quick_config(image_folder, runs_dir),
            extra_callbacks=[CrashAtEpoch(2)],
            log=lambda m: None,
        )
    (run_dir,) = runs.all_runs(runs_dir)
    assert not (run_dir / "metrics.json").exists()
    assert len(json.loads((run_dir / "history.json").read_text())) == 2

    resumed = fit(quick_config(image_folder, runs_dir), resume=run_dir, log=lambda m: None)
    assert resumed.run_dir == run_dir
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    # the optimizer state came back: the schedule continues where it stopped
    np.testing.assert_allclose(
        [r["learning_rate"] for r in resumed.history],
        [r["learning_rate"] for r in uninterrupted.history],
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="already finished"):
        fit(quick_config(image_folder, runs_dir), resume=run_dir, log=lambda m: None)


def test_runs_lists_best_first_and_predict_uses_best(image_folder, tmp_path):
    runs_dir = tmp_path / "runs"
    for name in ("first", "second"):
        fit(quick_config(image_folder, runs_dir, name=name, epochs=1), log=lambda m: None)
    ranked = runs.ranked_runs(runs_dir)
    assert ranked[0].best_val_loss <= ranked[1].best_val_loss
    result = CliRunner().invoke(cli.main, ["runs", "--runs-dir", str(runs_dir)])
    assert result.exit_code == 0
    assert result.output.index(ranked[0].path.name) < result.output.index(ranked[1].path.name)

    inputs = tmp_path / "scans"
    save(inputs / "x.jpg", photo_like(50, 70))
    result = CliRunner().invoke(
        cli.predict_command, [str(inputs), "--model", "best", "--runs-dir", str(runs_dir)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "scans_denoised" / "x.png").is_file()


def test_too_few_images_borrow_a_split_with_a_note(tmp_path):
    folder = tmp_path / "few"
    for index in range(3):
        save(folder / f"{index}.png", photo_like(40, 40, seed=index))
    messages = []
    result = fit(quick_config(folder, tmp_path / "runs", epochs=1), log=messages.append)
    assert result.metrics["test_images"] >= 1
    assert any("too few images" in m for m in messages)


def test_a_folder_without_images_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        cli.main, ["fit", str(tmp_path / "empty"), *QUICK, "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 2
    assert "no usable training images" in result.output


def test_cli_resume_keeps_the_runs_own_epochs_unless_asked_to_extend(image_folder, tmp_path):
    # `fit --resume RUN` once took fit's default --epochs (12) for an extension: a 2-epoch run
    # became 12, and its cosine schedule, set by the epoch count, changed mid-run.
    uninterrupted = fit(quick_config(image_folder, tmp_path / "a", epochs=2), log=lambda m: None)
    runs_dir = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        fit(
            quick_config(image_folder, runs_dir, epochs=2),
            extra_callbacks=[CrashAtEpoch(1)],
            log=lambda m: None,
        )
    (run_dir,) = runs.all_runs(runs_dir)
    result = CliRunner().invoke(cli.main, ["fit", "--resume", str(run_dir), "--lr", "0.5"])
    assert result.exit_code == 0, result.output
    assert "2 epochs in all" in result.output
    assert "ignored with --resume (the run keeps the options it started with): --lr" in (
        result.output
    )
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    np.testing.assert_allclose(
        [r["learning_rate"] for r in history],
        [r["learning_rate"] for r in uninterrupted.history],
        rtol=1e-5,
    )

    with pytest.raises(KeyboardInterrupt):
        fit(
            quick_config(image_folder, tmp_path / "c", epochs=2),
            extra_callbacks=[CrashAtEpoch(1)],
            log=lambda m: None,
        )
    (run_dir,) = runs.all_runs(tmp_path / "c")
    result = CliRunner().invoke(cli.main, ["fit", "--resume", str(run_dir), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert FitConfig.load(run_dir / "config.json").epochs == 3


def test_resume_re_runs_an_epoch_logged_after_the_last_backup(image_folder, tmp_path):
    runs_dir = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        fit(
            quick_config(image_folder, runs_dir),
            extra_callbacks=[CrashAtEpoch(2)],
            log=lambda m: None,
        )
    (run_dir,) = runs.all_runs(runs_dir)
    # a kill after history.json got epoch 3's row but before the backup of epoch 3
    history = json.loads((run_dir / "history.json").read_text())
    history.append({**history[-1], "epoch": 3, "val_loss": 1e-9, "marker": "never backed up"})
    (run_dir / "history.json").write_text(json.dumps(history))
    resumed = fit(quick_config(image_folder, runs_dir), resume=run_dir, log=lambda m: None)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert all("marker" not in row for row in resumed.history)  # re-run, not kept
    assert resumed.metrics["best_val_loss"] > 1e-9  # the phantom loss is not the best


class FirstWeights(keras.callbacks.Callback):
    """Records the model's weights when training starts."""

    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()
        self.loss = self.model.loss


def test_init_from_fine_tunes_a_trained_model_with_the_psnr_loss(image_folder, tmp_path):
    runs_dir = tmp_path / "runs"
    first = fit(quick_config(image_folder, runs_dir, name="first", epochs=1), log=lambda m: None)
    trained = checkpoints.load_model(first.run_dir / "best.keras").get_weights()

    seen = FirstWeights()
    messages = []
    tuned = fit(
        quick_config(
            image_folder,
            runs_dir,
            name="tuned",
            epochs=1,
            loss="psnr",
            psnr_cap=40.0,
            init_from=str(first.run_dir),
        ),
        extra_callbacks=[seen],
        log=messages.append,
    )
    assert len(seen.weights) == len(trained)
    for got, want in zip(seen.weights, trained):
        np.testing.assert_array_equal(got, want)
    assert any("initial weights:" in m and "best.keras" in m for m in messages)
    # the psnr loss is -PSNR in dB: negative, and it tracks the logged PSNR
    assert [row["epoch"] for row in tuned.history] == [0, 1]  # 0: the model it started from
    row = tuned.history[1]
    assert row["loss"] < 0 and abs(row["loss"] + row["psnr"]) < 3.0
    assert isinstance(seen.loss, losses.NegativePSNR) and seen.loss.cap_db == 40.0
    assert FitConfig.load(tuned.run_dir / "config.json").psnr_cap == 40.0  # --resume keeps it

    with pytest.raises(ValueError, match="--init-from .*architecture"):
        fit(
            quick_config(
                image_folder,
                runs_dir,
                widths=(8, 16, 32),
                init_from=str(first.run_dir / "best.keras"),
            ),
            log=lambda m: None,
        )

    # more residual blocks: the run grows the model, every trained weight carried over
    seen = FirstWeights()
    grown = fit(
        quick_config(
            image_folder,
            runs_dir,
            name="grown",
            epochs=1,
            blocks=(0, 1),
            init_from=str(first.run_dir),
        ),
        extra_callbacks=[seen],
        log=lambda m: None,
    )
    assert len(seen.weights) == len(trained) + 4
    for got, want in zip(seen.weights, trained):
        np.testing.assert_array_equal(got, want)
    assert json.loads((grown.run_dir / "config.json").read_text())["blocks"] == [0, 1]
    assert checkpoints.load_model(grown.run_dir / "best.keras").blocks == (0, 1)

    # the top level dropped for a 2x2 pixel unshuffle: every weight below it carried over
    seen = FirstWeights()
    unshuffled = fit(
        quick_config(
            image_folder,
            runs_dir,
            name="unshuffled",
            epochs=1,
            widths=(16,),
            unshuffle=2,
            init_from=str(first.run_dir),
        ),
        extra_callbacks=[seen],
        log=lambda m: None,
    )
    first_model = checkpoints.load_model(first.run_dir / "best.keras")
    kept = first_model.encoder_blocks[1].layers[1].get_weights()
    np.testing.assert_array_equal(seen.weights[2], kept[0])  # level 0's second conv
    assert seen.weights[0].shape == (3, 3, 12, 16)
    saved = checkpoints.load_model(unshuffled.run_dir / "best.keras")
    assert (saved.unshuffle, saved.widths) == (2, (16,))
    assert FitConfig.load(unshuffled.run_dir / "config.json").unshuffle == 2


def test_fit_cli_fine_tunes_the_bundled_model_taking_its_architecture(image_folder, tmp_path):
    runs_dir = tmp_path / "runs"
    args = ["fit", str(image_folder), *quick_fit_args(epochs=1, steps=1), "--runs-dir"]
    result = CliRunner().invoke(
        cli.main, [*args, str(runs_dir), "--init-from", "bundled", "--name", "tuned"]
    )
    assert result.exit_code == 0, result.output
    bundled = checkpoints.load_model(checkpoints.PRETRAINED)
    blocks = ",".join(map(str, bundled.blocks))
    assert f"architecture of --init-from: widths 32,64,128,256, blocks {blocks}" in result.output
    assert "initial weights:" in result.output and "denoiser.keras" in result.output
    saved = FitConfig.load(runs.all_runs(runs_dir)[0] / "config.json")
    assert (saved.widths, saved.blocks, saved.unshuffle) == (
        bundled.widths,
        bundled.blocks,
        bundled.unshuffle,
    )
    assert saved.init_from == "bundled"

    # flags given on the command line win: these refuse the bundled model's weights
    result = CliRunner().invoke(
        cli.main, [*args, str(runs_dir), "--init-from", "bundled", "--widths", "8,16,32,64"]
    )
    assert result.exit_code != 0 and "architecture" in result.output
    result = CliRunner().invoke(cli.main, [*args, str(runs_dir), "--init-from", "nowhere.keras"])
    assert result.exit_code != 0 and "--init-from: model not found" in result.output


def test_unet_architecture_is_read_from_the_file_alone(tmp_path):
    loaded = checkpoints.load_model(checkpoints.PRETRAINED)  # the slow way, for comparison
    assert checkpoints.unet_architecture(checkpoints.PRETRAINED)["blocks"] == tuple(loaded.blocks)
    assert tuple(loaded.blocks) != (0, 0, 0, 0)  # the bundled model has residual blocks
    (tmp_path / "not-a-zip.keras").write_bytes(b"junk")
    assert checkpoints.unet_architecture(tmp_path / "not-a-zip.keras") is None
    prototype = tmp_path / "prototype.keras"
    models.built(models.build_model("prototype")).save(prototype)
    assert checkpoints.unet_architecture(prototype) is None


def test_a_fine_tuning_run_resumes_without_its_source_model(image_folder, tmp_path):
    runs_dir = tmp_path / "runs"
    first = fit(quick_config(image_folder, runs_dir, name="first", epochs=1), log=lambda m: None)
    source = tmp_path / "source.keras"
    source.write_bytes((first.run_dir / "best.keras").read_bytes())
    config = dict(name="tuned", init_from=str(source), loss="psnr")
    with pytest.raises(KeyboardInterrupt):
        fit(
            quick_config(image_folder, runs_dir, **config),
            extra_callbacks=[CrashAtEpoch(2)],
            log=lambda m: None,
        )
    source.unlink()  # e.g. resumed on another machine
    (run_dir,) = [r for r in runs.all_runs(runs_dir) if r.name.endswith("-tuned")]
    initial = json.loads((run_dir / "history.json").read_text())[0]
    messages = []
    resumed = fit(
        quick_config(image_folder, runs_dir, **config), resume=run_dir, log=messages.append
    )
    # row 0 (the source model's scores) is kept from before the kill, not scored again
    assert [row["epoch"] for row in resumed.history] == [0, 1, 2, 3]
    assert resumed.history[0] == initial
    assert not any(m.startswith("initial model:") for m in messages)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--blocks", "0,-1"], "must be >= 0"),
        (["--widths", "8,x"], "not comma-separated integers"),
        (["--widths", "8,16", "--blocks", "0,1,1"], "one count >= 0 per width"),
    ],
)
def test_fit_cli_refuses_bad_widths_and_blocks(image_folder, tmp_path, args, message):
    result = CliRunner().invoke(
        cli.main, ["fit", str(image_folder), *QUICK, *args, "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_gradients_are_clipped_to_the_configured_global_norm():
    """--clip-norm: Adam clips the gradients' global norm (a loss spike once killed a U-Net at
    lr 1e-3); 0 on the command line means no clipping; old configs get the default."""
    from tfdenoise import models
    from tfdenoise.config import DEFAULT_CLIP_NORM
    from tfdenoise.train.fit import compile_denoiser

    model = models.built(models.build_model("unet", (4, 8)), 16)
    compile_denoiser(model, precision="float32", xla=False, clip_norm=0.5)
    spike = [keras.ops.ones(v.shape) * 100.0 for v in model.trainable_variables]
    clipped = model.optimizer._clip_gradients(spike)
    assert float(keras.ops.sqrt(sum(keras.ops.sum(g * g) for g in clipped))) == pytest.approx(0.5)
    compile_denoiser(model, precision="float32", xla=False, clip_norm=None)
    assert model.optimizer.global_clipnorm is None
    assert FitConfig.from_dict({"lr": 1e-3}).clip_norm == DEFAULT_CLIP_NORM
    with pytest.raises(ValueError, match="clip_norm"):
        FitConfig(clip_norm=-1.0).validate()


def test_fit_cli_clip_norm_zero_turns_clipping_off(image_folder, tmp_path):
    result = CliRunner().invoke(
        cli.main,
        [
            "fit",
            str(image_folder),
            "--runs-dir",
            str(tmp_path),
            "--clip-norm",
            "0",
            "--widths",
            "4,8",
        ]
        + QUICK,
    )
    assert result.exit_code == 0, result.output
    (config_file,) = tmp_path.glob(f"*/{runs.CONFIG}")
    assert json.loads(config_file.read_text())["clip_norm"] is None


def test_a_runs_folder_inside_the_data_is_not_training_data(tmp_path, monkeypatch):
    """`cd photos && tfdenoise fit .`: the runs folder's preview grids are PNGs."""
    data = tmp_path / "photos"
    for index in range(6):
        save(data / f"p{index}.jpg", photo_like(48, 48, seed=index), quality=90)
    save(data / "runs" / "20260101-000000" / "grid.png", photo_like(48, 96))
    monkeypatch.chdir(data)
    lines = []
    config = FitConfig(data=".", runs_dir="runs")
    source, *_ = fit_module.open_data(config, lines.append)
    assert sum(source.count(split) for split in ("train", "val", "test")) == 6
    elsewhere = FitConfig(data=".", runs_dir=str(tmp_path / "runs"))
    source, *_ = fit_module.open_data(elsewhere, lines.append)
    assert sum(source.count(split) for split in ("train", "val", "test")) == 7


def test_select_by_a_condition_scores_it_every_epoch_and_keeps_its_best_epoch(
    image_folder, tmp_path
):
    runs_dir = tmp_path / "runs"
    result = CliRunner().invoke(
        cli.main,
        [
            "fit",
            str(image_folder),
            *quick_fit_args(epochs=3, steps=3),
            "--runs-dir",
            str(runs_dir),
            "--val-condition",
            "gaussian-25",
            "--select-by",
            "correlated",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "correlated" in result.output and "gaussian-25" in result.output  # per-epoch line
    (run_dir,) = runs.all_runs(runs_dir)
    history = json.loads((run_dir / "history.json").read_text())
    scores = [row["val_psnr_correlated"] for row in history]
    assert all(10.0 < score < 60.0 for score in scores)
    assert all("val_psnr_gaussian-25" in row for row in history)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["selected_by"], metrics["best_selection"]) == ("correlated", max(scores))
    assert FitConfig.load(run_dir / "config.json").scored_conditions == (
        "gaussian-25",
        "correlated",
    )
    # best.keras is the model of that epoch: scored again on the same images, the same PSNR
    config = FitConfig.load(run_dir / "config.json")
    source, _, val_split, _ = fit_module.open_data(config, log=lambda message: None)
    val_clean = fit_module.pipeline.eval_pipeline(
        source.encoded(val_split, training=False), fit_module.pipeline_spec(config)
    )
    (callback,) = fit_module.condition_scores(config, val_clean)
    callback.set_model(checkpoints.load_model(run_dir / "best.keras"))
    logs = {}
    callback.on_epoch_end(0, logs)
    assert logs["val_psnr_correlated"] == pytest.approx(max(scores), abs=0.01)
    scorer, again = callback.scorer, {}
    callback.on_epoch_end(1, again)  # the next epoch reuses the compiled steps
    assert callback.scorer is scorer and again == logs


def test_a_condition_selection_resumes_with_its_best_and_patience(tmp_path):
    history = cb.HistoryFile(tmp_path / "history.json")
    history.rows = [
        {"epoch": 1, "val_loss": 0.3, "val_psnr_correlated": 25.0},
        {"epoch": 2, "val_loss": 0.1, "val_psnr_correlated": 27.0},
        {"epoch": 3, "val_loss": 0.2, "val_psnr_correlated": 26.0},
        {"epoch": 4, "val_loss": 0.05, "val_psnr_correlated": 24.0},
    ]
    monitor = cb.condition_monitor("correlated")
    assert (history.best(monitor, 3), history.epochs_since_best(monitor, 3)) == (27.0, 1)
    assert (history.best_val_loss(3), history.epochs_since_best(cb.LOWEST_VAL_LOSS, 3)) == (0.1, 1)
    stopping = cb.ResumableEarlyStopping(history, monitor, patience=2)
    stopping.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    stopping.on_train_begin()
    stopping.on_epoch_begin(3)  # resumed after epoch 3 (epoch 4's row was never backed up)
    assert (stopping.best, stopping.wait) == (27.0, 1)
    stopping.on_epoch_end(3, {"val_psnr_correlated": 26.5})  # worse again: patience runs out
    assert stopping.model.stop_training


def test_best_model_checkpoint_saves_only_a_higher_condition_score(tmp_path):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    path = tmp_path / "best.keras"
    checkpoint = cb.BestModelCheckpoint(
        path, cb.HistoryFile(tmp_path / "history.json"), cb.condition_monitor("jpeg-30")
    )
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    saved = []
    for epoch, score in enumerate([30.1, 29.0, 30.4, 30.4]):
        path.unlink(missing_ok=True)
        checkpoint.on_epoch_begin(epoch)
        checkpoint.on_epoch_end(epoch, {"val_loss": 1.0 / (epoch + 1), "val_psnr_jpeg-30": score})
        saved.append(path.is_file())
    assert saved == [True, False, True, False]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--select-by", "sharpness"], "Invalid value for '--select-by'"),
        (["--val-condition", "blur"], "Invalid value for '--val-condition'"),
    ],
)
def test_fit_cli_refuses_unknown_conditions(image_folder, tmp_path, args, message):
    result = CliRunner().invoke(cli.main, ["fit", str(image_folder), *args])
    assert result.exit_code == 2 and message in result.output


def test_val_data_validates_on_every_image_of_another_folder(image_folder, tmp_path):
    held_out = tmp_path / "held-out"
    for index in range(3):  # whole photos kept out of DATA, of their own sizes
        save(held_out / f"whole{index}.png", photo_like(48 + 16 * index, 64, seed=50 + index))
    (held_out / "broken.jpg").write_text("not an image")
    messages = []
    config = quick_config(
        image_folder, tmp_path / "runs", epochs=1, val_data=str(held_out), select_by="gaussian-25"
    )
    result = fit(config, log=messages.append)
    assert any("every image of image folder" in m and "(3; 1 skipped)" in m for m in messages)
    assert any("broken.jpg: not an image" in m for m in messages)
    assert result.metrics["test_split"] == "test"  # DATA's test split is still the test
    # the epoch's validation score is the model's score on those three photos
    source, val_source, val_split, _ = fit_module.open_data(
        FitConfig.load(result.run_dir / "config.json"), log=lambda message: None
    )
    assert val_source is not source and val_source.count(val_split) == 3
    val_clean = fit_module.pipeline.eval_pipeline(
        val_source.encoded(val_split, training=False), fit_module.pipeline_spec(config)
    )
    (callback,) = fit_module.condition_scores(config, val_clean)
    callback.set_model(checkpoints.load_model(result.run_dir / "best.keras"))
    logs = {}
    callback.on_epoch_end(0, logs)
    (row,) = result.history
    assert logs["val_psnr_gaussian-25"] == pytest.approx(row["val_psnr_gaussian-25"], abs=0.01)


def test_val_data_holding_a_training_image_is_refused(image_folder, tmp_path):
    config = quick_config(image_folder, tmp_path / "runs")
    source, *_ = fit_module.open_data(config, log=lambda message: None)
    training_image = source.scan.split("train")[0]
    held_out = tmp_path / "held-out"
    save(held_out / "own.png", photo_like(40, 40, seed=99))
    copy = held_out / "renamed" / Path(training_image.path).name
    copy.parent.mkdir()
    copy.write_bytes(Path(training_image.path).read_bytes())
    config.val_data = str(held_out)
    with pytest.raises(ValueError, match="1 --val-data image.* also training images"):
        fit_module.open_data(config, log=lambda message: None)
    copy.unlink()  # the same folder without it is accepted
    _, val_source, _, _ = fit_module.open_data(config, log=lambda message: None)
    assert val_source.count("val") == 1


class TrainedAndAverage(keras.callbacks.Callback):
    """Records the model's weights and the optimizer's moving average of them (--ema) when
    training starts and after each epoch's callbacks (this one runs after the backup)."""

    def __init__(self):
        super().__init__()
        self.start: tuple[list, list] | None = None
        self.epochs: list[tuple[list, list]] = []

    def _now(self) -> tuple[list, list]:
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        return (
            [v.numpy() for v in self.model.trainable_variables],
            [v.numpy() for v in optimizer._model_variables_moving_average],
        )

    def on_train_begin(self, logs=None):
        self.start = self._now()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self._now())


def assert_weights_close(actual: list, expected: list) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)  # swaps add and subtract


def test_ema_judges_and_saves_the_average_and_a_resumed_run_continues_both(
    image_folder, tmp_path, monkeypatch
):
    runs_dir = tmp_path / "runs"
    config = quick_config(image_folder, runs_dir, ema=0.5, select_by="gaussian-25", epochs=3)
    seen = TrainedAndAverage()
    with pytest.raises(KeyboardInterrupt):
        fit(config, extra_callbacks=[seen, CrashAtEpoch(2)], log=lambda m: None)
    (run_dir,) = runs.all_runs(runs_dir)
    history = json.loads((run_dir / "history.json").read_text())
    best_index = int(np.argmax([row["val_psnr_gaussian-25"] for row in history]))
    trained, average = seen.epochs[best_index]
    assert not all(np.allclose(t, a) for t, a in zip(trained, average))  # they differ
    # best.keras holds the average of the epoch it was picked at ...
    best = checkpoints.load_model(run_dir / "best.keras")
    assert_weights_close([v.numpy() for v in best.trainable_variables], average)
    # ... and that epoch's score is the average's: best.keras re-scored gives it
    source, val_source, val_split, _ = fit_module.open_data(config, log=lambda m: None)
    val_clean = fit_module.pipeline.eval_pipeline(
        val_source.encoded(val_split, training=False), fit_module.pipeline_spec(config)
    )
    (scores,) = fit_module.condition_scores(config, val_clean)
    scores.set_model(best)
    logs = {}
    scores.on_epoch_end(0, logs)
    assert logs["val_psnr_gaussian-25"] == pytest.approx(
        history[best_index]["val_psnr_gaussian-25"], abs=0.01
    )
    # each epoch's model can be read back from the backup while the run goes on
    from tfdenoise.train import backup

    assert backup.backed_up_epoch(run_dir) == 2
    for average, recorded in ((False, seen.epochs[1][0]), (True, seen.epochs[1][1])):
        model = backup.backed_up_model(run_dir, average=average)
        assert_weights_close([v.numpy() for v in model.trainable_variables], recorded)
    snapshot = load_tool("snapshot_epoch")
    monkeypatch.setattr("sys.argv", ["x", str(run_dir), str(tmp_path / "e2.keras"), "--average"])
    assert snapshot.main() == 0
    written = checkpoints.load_model(tmp_path / "e2.keras")
    assert_weights_close([v.numpy() for v in written.trainable_variables], seen.epochs[1][1])
    with zipfile.ZipFile(tmp_path / "e2.keras") as archive:  # weights only, no optimizer state
        stored = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(stored, "r") as weights:
        assert "layers" in weights and "optimizer" not in weights
    saved = (run_dir / "config.json").read_text()  # a config that does not match the backup
    (run_dir / "config.json").write_text(json.dumps({**json.loads(saved), "ema": None}))
    with pytest.raises(ValueError, match="does not match"):
        backup.backed_up_model(run_dir)
    (run_dir / "config.json").write_text(saved)
    # the resumed run starts from the trained weights and the average the backup kept
    resumed = TrainedAndAverage()
    result = fit(config, resume=run_dir, extra_callbacks=[resumed], log=lambda m: None)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert_weights_close(resumed.start[0], seen.epochs[1][0])
    assert_weights_close(resumed.start[1], seen.epochs[1][1])
    assert FitConfig.load(run_dir / "config.json").ema == 0.5


def test_ema_under_float16_saves_the_average(image_folder, tmp_path):
    # the GPU's precision forced on the CPU: the average sits in the LossScaleOptimizer's
    # inner optimizer
    seen = TrainedAndAverage()
    config = quick_config(
        image_folder, tmp_path / "runs", ema=0.5, epochs=1, precision="mixed_float16"
    )
    result = fit(config, extra_callbacks=[seen], log=lambda m: None)
    best = checkpoints.load_model(result.run_dir / "best.keras")
    ((_, average),) = seen.epochs
    assert_weights_close([v.numpy() for v in best.trainable_variables], average)


def test_ema_out_of_range_is_refused(image_folder, tmp_path):
    with pytest.raises(ValueError, match="ema"):
        FitConfig(ema=1.0).validate()
    result = CliRunner().invoke(
        cli.main, ["fit", str(image_folder), *QUICK, "--ema", "0", "--runs-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--ema" in result.output


def test_shared_files_compares_bytes_and_hashes_each_training_file_once(tmp_path, monkeypatch):
    from tfdenoise.data import sources

    def ppm(path: Path, seed: int) -> None:  # same dimensions, so the same file size
        pixels = np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"P6\n16 12\n255\n" + pixels.tobytes())

    for index in range(4):
        ppm(tmp_path / "train" / f"t{index}.ppm", index)
    ppm(tmp_path / "val" / "own-a.ppm", 10)
    ppm(tmp_path / "val" / "own-b.ppm", 11)
    (tmp_path / "val" / "renamed.ppm").write_bytes((tmp_path / "train" / "t2.ppm").read_bytes())
    hashed = []
    digest = sources._sha256
    monkeypatch.setattr(sources, "_sha256", lambda path: hashed.append(path) or digest(path))
    training = sources.FolderSource(tmp_path / "train", None, (1.0, 0.0, 0.0))
    candidates = sources.FolderSource(tmp_path / "val", None, (0.0, 1.0, 0.0))
    assert sources.shared_files(candidates, training, "train") == ["renamed.ppm"]
    assert len(hashed) == 4 + 3  # every training file once, every candidate once


def test_a_fine_tune_that_makes_the_model_worse_keeps_the_initial_model(image_folder, tmp_path):
    runs_dir = tmp_path / "runs"
    first = fit(quick_config(image_folder, runs_dir, name="first", epochs=2), log=lambda m: None)
    start = checkpoints.load_model(first.run_dir / "best.keras")
    messages = []
    ruined = fit(  # a learning rate that wrecks any model in a few steps
        quick_config(
            image_folder,
            runs_dir,
            name="ruined",
            epochs=2,
            lr=1.0,
            clip_norm=None,
            init_from=str(first.run_dir),
            select_by="gaussian-25",
        ),  # fmt: skip
        log=messages.append,
    )
    rows = ruined.history
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert "loss" not in rows[0] and rows[0]["val_psnr_gaussian-25"] > max(
        row["val_psnr_gaussian-25"] for row in rows[1:]
    )
    kept = checkpoints.load_model(ruined.run_dir / "best.keras")  # the initial model, as it was
    for got, want in zip(kept.get_weights(), start.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert ruined.metrics["best_epoch"] == 0 and ruined.metrics["epochs_trained"] == 2
    assert any("no epoch beat the initial model" in m for m in messages)
    (initial,) = [m for m in messages if m.startswith("initial model:")]
    assert "val_loss" in initial and "val_psnr_gaussian-25" in initial
    assert runs.summarize(ruined.run_dir).epochs == 2


def test_a_backup_torn_by_a_kill_falls_back_to_the_one_before(image_folder, tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    config = quick_config(image_folder, runs_dir)
    with pytest.raises(KeyboardInterrupt):
        fit(config, extra_callbacks=[CrashAtEpoch(2)], log=lambda m: None)
    (run_dir,) = runs.all_runs(runs_dir)
    latest = run_dir / "backup" / "latest.weights.h5"
    assert latest.with_name(latest.name + ".bkp").is_file()  # epoch 1's, kept by the save
    # h5py's error for a file cut short mid-save (seen in the kill -9 test), once
    load_weights, torn = keras.Model.load_weights, []

    def raises_once(model, path, *args, **kwargs):
        if not torn:
            torn.append(path)
            raise RuntimeError("Unable to synchronously check link existence (address of object")
        return load_weights(model, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "load_weights", raises_once)
    resumed = fit(config, resume=run_dir, log=lambda m: None)
    assert torn and [row["epoch"] for row in resumed.history] == [1, 2, 3]


class CountEpochs(keras.callbacks.Callback):
    """Counts the epochs model.fit begins."""

    def __init__(self):
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def kill_during_scoring(config: FitConfig, monkeypatch) -> Path:
    """A run whose training ended and which was killed while its test split was scored."""
    from tfdenoise import metrics

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill during the final scoring")

    with monkeypatch.context() as patch:
        patch.setattr(metrics, "evaluate_conditions", killed)
        with pytest.raises(KeyboardInterrupt):
            fit(config, log=lambda m: None)
    (run_dir,) = runs.all_runs(config.runs_dir)
    assert not (run_dir / "metrics.json").exists()
    return run_dir


@pytest.mark.parametrize("backup_left", [True, False], ids=["backup", "older-version-no-backup"])
def test_a_run_killed_while_scoring_resumes_at_the_scoring_without_retraining(
    image_folder, tmp_path, monkeypatch, backup_left
):
    # Keras removed the backup at the end of training, before the test split was scored: a
    # kill then made --resume retrain from scratch and overwrite best.keras and the history.
    config = quick_config(image_folder, tmp_path / "runs")
    run_dir = kill_during_scoring(config, monkeypatch)
    if backup_left:
        assert (run_dir / "backup" / "latest.weights.h5").is_file()
    else:  # as versions before 2026-12-07 left such a run
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
    history = (run_dir / "history.json").read_bytes()
    best = (run_dir / "best.keras").read_bytes()
    counter = CountEpochs()
    messages: list[str] = []
    resumed = fit(config, resume=run_dir, extra_callbacks=[counter], log=messages.append)
    assert counter.epochs == []  # nothing trained again
    assert (run_dir / "history.json").read_bytes() == history
    assert (run_dir / "best.keras").read_bytes() == best
    assert resumed.metrics["epochs_trained"] == 3
    assert set(resumed.metrics["test"]) and (run_dir / "metrics.json").is_file()
    assert not (run_dir / "backup").exists()  # removed once the outputs are final
    assert any("training ended at epoch 3" in m for m in messages)


def test_a_run_with_history_but_no_backup_is_not_retrained_from_scratch(
    image_folder, tmp_path, monkeypatch
):
    config = quick_config(image_folder, tmp_path / "runs")
    run_dir = kill_during_scoring(config, monkeypatch)
    shutil.rmtree(run_dir / "backup", ignore_errors=True)  # as older versions left it
    history = (run_dir / "history.json").read_bytes()
    with pytest.raises(ValueError, match="3 epochs of history but no backup"):
        fit(config, resume=run_dir, extend_to=5, log=lambda m: None)
    assert (run_dir / "history.json").read_bytes() == history
    assert FitConfig.load(run_dir / "config.json").epochs == 3  # the refused extension not kept


def test_a_run_started_with_relative_paths_resumes_from_another_directory(
    image_folder, tmp_path, monkeypatch
):
    # config.json kept DATA and --runs-dir as typed: resumed from elsewhere, "photos" named
    # no folder (or another one of that name)
    monkeypatch.chdir(image_folder.parent)
    config = quick_config("photos", "runs")
    with pytest.raises(KeyboardInterrupt):
        fit(config, extra_callbacks=[CrashAtEpoch(2)], log=lambda m: None)
    (run_dir,) = runs.all_runs(image_folder.parent / "runs")
    saved = FitConfig.load(run_dir / "config.json")
    assert saved.data == str(image_folder) and saved.runs_dir == str(image_folder.parent / "runs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resumed = fit(config, resume=run_dir.resolve(), log=lambda m: None)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert not (elsewhere / "runs").exists()


class TriesTheRunLock(keras.callbacks.Callback):
    """Tries to take the run directory's lock, as a second fit would, while training runs."""

    def __init__(self, runs_dir: Path):
        super().__init__()
        self.runs_dir = runs_dir
        self.refusals: list[str] = []

    def on_epoch_begin(self, epoch, logs=None):
        (run_dir,) = runs.all_runs(self.runs_dir)
        try:
            with fit_module.run_lock(run_dir):
                pass
        except fit_module.RunBusy as error:
            self.refusals.append(str(error))


def test_a_second_fit_of_one_run_is_refused_while_the_first_runs(image_folder, tmp_path):
    # two `fit --resume` of one run both trained, interleaving history.json and best.keras
    runs_dir = tmp_path / "runs"
    config = quick_config(image_folder, runs_dir)
    with pytest.raises(KeyboardInterrupt):
        fit(config, extra_callbacks=[CrashAtEpoch(2)], log=lambda m: None)
    (run_dir,) = runs.all_runs(runs_dir)
    history = (run_dir / "history.json").read_bytes()
    with fit_module.run_lock(run_dir):  # a running fit holds it
        result = CliRunner().invoke(cli.main, ["fit", "--resume", str(run_dir)])
    assert result.exit_code == 2, result.output
    assert f"run {run_dir} is being trained by another fit" in result.output
    assert (run_dir / "history.json").read_bytes() == history  # nothing trained, nothing written
    probe = TriesTheRunLock(runs_dir)
    resumed = fit(config, resume=run_dir, extra_callbacks=[probe], log=lambda m: None)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert len(probe.refusals) == 1  # the resumed fit held the lock while it trained epoch 3
    assert not (run_dir / ".lock").exists()  # released and removed at the end


def test_a_new_run_holds_its_lock_while_it_trains(image_folder, tmp_path):
    runs_dir = tmp_path / "runs"
    probe = TriesTheRunLock(runs_dir)
    fit(quick_config(image_folder, runs_dir, epochs=2), extra_callbacks=[probe], log=lambda m: None)
    assert len(probe.refusals) == 2
