"""Keras callbacks for run directories: durable history, atomic best model, image grids.

They are written to survive `kill -9`: every file is replaced atomically, and on `--resume`
they pick up the state of the earlier part of the run from the files it left.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfdenoise import runs
from tfdenoise.io import atomic
from tfdenoise.metrics import comparison_grid, denoise_examples


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

    def rows_until(self, epochs: int) -> list[dict]:
        """The rows of the first `epochs` epochs."""
        return [r for r in self.rows if r["epoch"] <= epochs]

    def best_val_loss(self, epochs: int | None = None) -> float:
        rows = self.rows if epochs is None else self.rows_until(epochs)
        losses = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
        return min(losses) if losses else math.inf

    def epochs_since_best(self, epochs: int | None = None) -> int:
        rows = self.rows if epochs is None else self.rows_until(epochs)
        losses = [r.get("val_loss", math.inf) for r in rows]
        if not losses:
            return 0
        return len(losses) - 1 - int(np.argmin(losses))


class SharedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that restores from the chief's backup and saves to `backup_dir`.

    On the chief both are the same directory. A non-chief worker saves into its own throw-away
    directory (the save is a collective every worker joins) but restores from the chief's,
    so a restarted cluster resumes every worker at the same epoch with the same weights
    (multi-host: the run directory must be on a filesystem every worker can read).
    """

    def __init__(self, backup_dir: str, restore_dir: str, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.restore = keras.callbacks.BackupAndRestore(restore_dir, **kwargs)

    def on_train_begin(self, logs=None):
        self.restore.set_model(self.model)
        self.restore.on_train_begin(logs)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model as best.keras whenever val_loss improves, atomically.

    Like keras.callbacks.ModelCheckpoint(save_best_only=True), but writes a temp file and
    renames it, so a kill during the save never leaves a truncated best model; a resumed run
    starts from the best loss of its earlier epochs.
    """

    def __init__(self, path: str | Path, history: HistoryFile):
        super().__init__()
        self.path = Path(path)
        self.history = history
        self.best = math.inf

    def on_train_begin(self, logs=None):
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch:  # `epoch` is the restored one: resume from the same best loss
            self.best = self.history.best_val_loss(epoch)
            self._first_epoch = False

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        if loss is None or not loss < self.best:
            return
        self.best = float(loss)
        with atomic.replacing(self.path) as temporary:
            self.model.save(temporary)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that remembers the best loss and patience used before a resume.

    It reads them from the HistoryFile at the first epoch (the restored one), so a resumed run
    stops exactly where an uninterrupted one would.
    """

    def __init__(self, history: HistoryFile, **kwargs):
        super().__init__(**kwargs)
        self.history = history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch:  # `epoch` is the restored one, whatever the callback order
            best = self.history.best_val_loss(epoch)
            if math.isfinite(best):
                self.best = best
                self.wait = self.history.epochs_since_best(epoch)
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
