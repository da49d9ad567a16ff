"""A model from a running (or killed) run's backup: its trained weights, or with `fit --ema`
their moving average, as of the last completed epoch.

Why: `best.keras` holds one epoch, picked by one score; judging every epoch by others
(Kodak24, real noise, held-out photos) while the run goes on needs each epoch's model, and the
backup is the only place it is. The backup is Keras' weights file of the model and its
optimizer; Keras loads its optimizer variables by position, and an optimizer with a different
set of variables (a constant learning rate, a loss scale, no moving average) takes them
shifted without a word. So the model is compiled as `fit` compiled it, from the run's
config.json, and the variable counts are checked before loading.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import keras

from tfdenoise import runs
from tfdenoise.config import FitConfig
from tfdenoise.train import fit
from tfdenoise.train.callbacks import BACKUP_METADATA as METADATA
from tfdenoise.train.callbacks import BACKUP_WEIGHTS as WEIGHTS
from tfdenoise.train.callbacks import backed_up_epoch

__all__ = ["METADATA", "WEIGHTS", "backed_up_epoch", "backed_up_model"]


def backed_up_model(run_dir: str | Path, average: bool = False) -> keras.Model:
    """The model of the run's last backed-up epoch: the trained weights, or their moving
    average (`average`, runs with --ema only). ValueError if there is none to read."""
    run_dir = Path(run_dir)
    weights = run_dir / runs.BACKUP / WEIGHTS
    if not weights.is_file():
        raise ValueError(f"no backup in {run_dir} (a finished run removes it: use best.keras)")
    config = FitConfig.load(run_dir / runs.CONFIG)
    if average and config.ema is None:
        raise ValueError(f"{run_dir} was not trained with --ema: it keeps no average")
    with h5py.File(weights, "r") as stream:
        saved = len(stream["optimizer/vars"]) if "optimizer/vars" in stream else None
    # float16 runs (GPUs) wrap Adam in a loss scale optimizer, with variables of its own
    for precision in ("float32", "mixed_float16"):
        model = _compiled_as_fit(config, precision)
        if len(model.optimizer.variables) == saved:
            break
    else:
        raise ValueError(f"{weights}: its optimizer state does not match {run_dir}'s config.json")
    model.load_weights(weights)
    if average:
        model.optimizer.finalize_variable_values(model.trainable_variables)
    return model


def _compiled_as_fit(config: FitConfig, precision: str) -> keras.Model:
    model = fit.configured_model(config)
    fit.compile_as_configured(model, config, precision, xla=False)
    model.optimizer.build(model.trainable_variables)
    return model
