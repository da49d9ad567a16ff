"""Keras callbacks for run directories: durable history, atomic best model, image grids,
validation scores under fixed conditions.

They are written to survive `kill -9`: every file is replaced atomically, and on `--resume`
they pick up the state of the earlier part of the run from the files it left. What "best"
means is a Monitor: the lowest validation loss, or the highest validation PSNR under one
condition (`fit --select-by`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfdenoise import runs
from tfdenoise.degradations.noise import NoiseModel
from tfdenoise.io import atomic
from tfdenoise.metrics import ConditionScorer, comparison_grid, denoise_examples

VAL_PSNR_PREFIX = "val_psnr_"  # history key of a condition's validation PSNR: val_psnr_<name>


@dataclasses.dataclass(frozen=True)
class Monitor:
    """A history key and whether lower or higher is better."""

    key: str = "val_loss"
    mode: str = "min"  # "min" | "max"

    def better(self, value: float, best: float) -> bool:
        return value < best if self.mode == "min" else value > best

    @property
    def worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def best_of(self, values: list[float]) -> float:
        if not values:
            return self.worst
        return min(values) if self.mode == "min" else max(values)


LOWEST_VAL_LOSS = Monitor()


def condition_monitor(condition: str) -> Monitor:
    """Select by the validation PSNR under one condition (logged by ConditionScores)."""
    return Monitor(VAL_PSNR_PREFIX + condition, "max")


class ConditionScores(keras.callbacks.Callback):
    """Scores the validation images under fixed conditions each epoch, into the epoch's logs.

    Must come before the callbacks that read the logs (history, best model, early stopping,
    TensorBoard): Keras hands every callback the same logs dict. Every worker scores the whole
    validation split the same way, so all reach the same early-stopping decision.
    """

    def __init__(
        self,
        dataset: tf.data.Dataset,
        conditions: Mapping[str, NoiseModel],
        numbers: Mapping[str, int],
    ):
        super().__init__()
        self.dataset = dataset
        self.conditions = dict(conditions)
        self.numbers = dict(numbers)
        self.scorer: ConditionScorer | None = None  # built for the first model it scores

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self.scorer is None or self.scorer.model is not self.model:
            self.scorer = ConditionScorer(self.model, self.conditions, self.numbers)
        scores = self.scorer(self.dataset)
        for name, score in scores.items():
            logs[VAL_PSNR_PREFIX + name] = score.psnr_denoised


class HistoryFile(keras.callbacks.Callback):
    """Appends each epoch's logs (and its training time, validation excluded) to history.json.

    On resume the earlier epochs are kept; an epoch that was logged but not backed up before a
    crash is re-run and its row replaced, never duplicated.
    """

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict] = runs.read_json(self.path, default=[]) or []
        self._epoch_start = 0.0
        self._train_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        # History is written before the backup (see train/fit.py), so after a kill it may hold
        # rows of epochs that the restored backup will re-run: drop them, never duplicate.
        self.rows = self.rows_until(epoch)
        self._epoch_start = time.perf_counter()
        self._train_seconds = 0.0

    def on_test_begin(self, logs=None):
        if not self._train_seconds:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch, logs=None):
        train_seconds = self._train_seconds or time.perf_counter() - self._epoch_start
        steps = self.params.get("steps") or 0
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["train_seconds"] = round(train_seconds, 3)
        row["steps_per_second"] = (
            round(steps / train_seconds, 3) if steps and train_seconds else None
        )
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        runs.write_json(self.path, self.rows)

    def record_initial(self, logs: Mapping[str, float]) -> None:
        """Row 0: the --init-from model's validation scores, before any training."""
        self.rows = [{"epoch": 0, **{k: float(v) for k, v in logs.items()}}]
        runs.write_json(self.path, self.rows)

    @property
    def trained_rows(self) -> list[dict]:
        """The rows of trained epochs (row 0, the initial model, left out)."""
        return runs.trained_rows(self.rows)

    def best_epoch(self, monitor: Monitor = LOWEST_VAL_LOSS) -> int | None:
        """The epoch of the best value of `monitor` (0: the initial model; None: no value)."""
        best = self.best(monitor)
        return next((r["epoch"] for r in self.rows if r.get(monitor.key) == best), None)

    def rows_until(self, epochs: int) -> list[dict]:
        """The rows of the first `epochs` epochs."""
        return [r for r in self.rows if r["epoch"] <= epochs]

    def best(self, monitor: Monitor = LOWEST_VAL_LOSS, epochs: int | None = None) -> float:
        """The best value of `monitor` over the first `epochs` epochs (all: None)."""
        rows = self.rows if epochs is None else self.rows_until(epochs)
        return monitor.best_of([r[monitor.key] for r in rows if r.get(monitor.key) is not None])

    def best_val_loss(self, epochs: int | None = None) -> float:
        return self.best(LOWEST_VAL_LOSS, epochs)

    def epochs_since_best(
        self, monitor: Monitor = LOWEST_VAL_LOSS, epochs: int | None = None
    ) -> int:
        rows = self.rows if epochs is None else self.rows_until(epochs)
        values = [r.get(monitor.key, monitor.worst) for r in rows]
        if not values:
            return 0
        best = np.argmin(values) if monitor.mode == "min" else np.argmax(values)
        return len(values) - 1 - int(best)


class AveragedWeights:
    """Puts the optimizer's moving average of the weights (Adam(use_ema=True), `fit --ema`) into
    the model or takes it out again, swapping the two in place.

    Keras' SwapEMAWeights swaps around evaluation, or for whole epochs, which would put the
    average in the backup as if it were the trained weights. Here it goes in for validation and
    the epoch-end callbacks that judge the model (condition scores, history, best model, grid)
    and out before the backup, which keeps the trained weights as the model's and the average
    in its optimizer state, so a resumed run continues both. The swap itself is Keras' (it
    handles distribution strategies and LossScaleOptimizer): `_swap_variables` is private, so
    tests/test_train.py checks its effect.
    """

    def __init__(self):
        self._swapper = keras.callbacks.SwapEMAWeights()
        self.in_model = False

    def put(self, model: keras.Model, average: bool) -> None:
        if self.in_model != average:
            self._swapper.set_model(model)
            self._swapper._swap_variables()
            self.in_model = average

    def callbacks(self) -> tuple[keras.callbacks.Callback, keras.callbacks.Callback]:
        """(in, out): `in` goes first in the callback list, `out` just before the backup."""
        return _AverageIn(self), _AverageOut(self)


class _AverageIn(keras.callbacks.Callback):
    def __init__(self, weights: AveragedWeights):
        super().__init__()
        self.weights = weights

    def on_test_begin(self, logs=None):
        self.weights.put(self.model, True)

    def on_epoch_end(self, epoch, logs=None):
        self.weights.put(self.model, True)


class _AverageOut(keras.callbacks.Callback):
    def __init__(self, weights: AveragedWeights):
        super().__init__()
        self.weights = weights

    def on_epoch_end(self, epoch, logs=None):
        self.weights.put(self.model, False)

    def on_train_end(self, logs=None):
        self.weights.put(self.model, False)


BACKUP_WEIGHTS = "latest.weights.h5"  # keras.callbacks.BackupAndRestore's names
BACKUP_METADATA = "training_metadata.json"


def backed_up_epoch(run_dir: str | Path) -> int:
    """How many epochs the run's backup holds (0: none yet, or already removed)."""
    metadata = Path(run_dir) / runs.BACKUP / BACKUP_METADATA
    return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0


class SharedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that restores from the chief's backup and saves to `backup_dir`.

    On the chief both are the same directory. A non-chief worker saves into its own throw-away
    directory (the save is a collective every worker joins) but restores from the chief's,
    so a restarted cluster resumes every worker at the same epoch with the same weights
    (multi-host: the run directory must be on a filesystem every worker can read).
    """

    def __init__(self, backup_dir: str, restore_dir: str, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.restore = _TornBackupFallsBack(restore_dir, **kwargs)

    def on_train_begin(self, logs=None):
        self.restore.set_model(self.model)
        self.restore.on_train_begin(logs)


class _TornBackupFallsBack(keras.callbacks.BackupAndRestore):
    """Keras falls back to the previous backup (double_checkpoint) when the latest one raises
    OSError; h5py reports some files cut short by a kill during the save as RuntimeError
    ("address of object past end of allocation", seen in the kill -9 test), and KeyError for
    objects never written: those are torn backups too."""

    def _load_model(self):
        try:
            super()._load_model()
        except (RuntimeError, KeyError) as error:
            raise OSError(f"torn backup {self._weights_path}: {error}") from error


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model as best.keras whenever the monitored value improves, atomically.

    Like keras.callbacks.ModelCheckpoint(save_best_only=True), but writes a temp file and
    renames it, so a kill during the save never leaves a truncated best model; a resumed run
    starts from the best value of its earlier epochs.
    """

    def __init__(self, path: str | Path, history: HistoryFile, monitor: Monitor = LOWEST_VAL_LOSS):
        super().__init__()
        self.path = Path(path)
        self.history = history
        self.monitor = monitor
        self.best = monitor.worst

    def on_train_begin(self, logs=None):
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch:  # `epoch` is the restored one: resume from the same best value
            self.best = self.history.best(self.monitor, epoch)
            self._first_epoch = False

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor.key)
        if value is None or not self.monitor.better(value, self.best):
            return
        self.best = float(value)
        with atomic.replacing(self.path) as temporary:
            self.model.save(temporary)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that remembers the best value and patience used before a resume.

    It reads them from the HistoryFile at the first epoch (the restored one), so a resumed run
    stops exactly where an uninterrupted one would.
    """

    def __init__(self, history: HistoryFile, monitor: Monitor = LOWEST_VAL_LOSS, **kwargs):
        super().__init__(monitor=monitor.key, mode=monitor.mode, **kwargs)
        self.history = history
        self.selection = monitor

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch:  # `epoch` is the restored one, whatever the callback order
            best = self.history.best(self.selection, epoch)
            if math.isfinite(best):
                self.best = best
                self.wait = self.history.epochs_since_best(self.selection, epoch)
            self._first_epoch = False


class ImageGridLogger(keras.callbacks.Callback):
    """Logs an original / noisy / denoised grid of fixed images to TensorBoard each epoch."""

    def __init__(self, log_dir: str | Path, clean_uint8: tf.Tensor, condition):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "images"))
        self.clean = clean_uint8
        self.condition = condition

    def on_epoch_end(self, epoch, logs=None):
        grid = comparison_grid(*denoise_examples(self.model, self.clean, self.condition))
        with self.writer.as_default():
            tf.summary.image("original-noisy-denoised", grid[None], step=epoch + 1)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()
