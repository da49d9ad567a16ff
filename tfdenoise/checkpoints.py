"""Checkpoints: a `--model` value -> a `.keras` file -> a model loaded in Keras safe mode.

`--model` is a `.keras` file, a run directory (its best model), "best" (the run with the
lowest validation loss), "bundled" or nothing (the bundled model). Loading never runs code from
the file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras

from tfdenoise import models, runs
from tfdenoise.ensemble import with_passes
from tfdenoise.hardware import precision_policy

PRETRAINED = Path(__file__).parent / "pretrained" / "denoiser.keras"
BUNDLED = "bundled"  # the --model / --init-from name of PRETRAINED
REGISTERED = models.PACKAGE  # importing models registers the classes a .keras file names


class ModelLoadError(ValueError):
    """A model file that cannot be loaded safely; the message says why."""


def load_model(path: str | Path, policy: str | None = None) -> keras.Model:
    """Load a `.keras` file in Keras safe mode: no code from the file is ever executed.

    Lambda layers and classes that are not registered (ours or Keras's) are refused.
    `policy` (e.g. "mixed_bfloat16") sets the compute precision of the sublayers, which take
    the global policy when they are rebuilt; weights stay float32 and the output stays float32.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    if path.suffix != ".keras":
        raise ModelLoadError(f"not a Keras 3 model file (expected .keras): {path}")
    if not zipfile.is_zipfile(path):  # Keras would call it "File not found"
        raise ModelLoadError(
            f"cannot load model {path}: not a zip archive, as .keras files are "
            "(truncated, e.g. by an interrupted copy or download, or another format)"
        )
    try:
        with precision_policy(policy):
            return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, OSError, KeyError, zipfile.BadZipFile) as error:
        # BadZipFile: a member's bytes no longer match its CRC (a flipped bit on disk or in a
        # copy) while the zip directory is intact, so is_zipfile above passed.
        raise _load_error(path, error) from error
    except RuntimeError as error:
        if not _raised_by_h5py(error):  # h5py reports a corrupt weights file as RuntimeError
            raise
        raise _load_error(path, error) from error


def _load_error(path: Path, error: Exception) -> ModelLoadError:
    """The one-line reason a model file could not be loaded."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "lambda" in message.lower() or "safe_mode" in message:
        message = f"refused in safe mode (it would run code from the file): {message}"
    return ModelLoadError(f"cannot load model {path}: {message}")


def _raised_by_h5py(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is in h5py (a RuntimeError from
    anywhere else is a bug to show, not a damaged file)."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and "h5py" in Path(frame.tb_frame.f_code.co_filename).parts


def resolve_model_path(spec: str | None, runs_dir: str | Path = "runs") -> Path:
    """A `--model` value -> .keras file: a path, a run directory, "best", or "bundled" / None
    (the bundled model)."""
    if spec is None or spec == BUNDLED:
        if not PRETRAINED.is_file():
            raise ValueError(
                "no bundled model in this install; pass --model PATH, a run directory, or 'best'"
            )
        return PRETRAINED
    if spec == "best":
        return runs.best_run(runs_dir) / runs.BEST_MODEL
    path = Path(spec)
    if path.is_dir():
        candidate = path / runs.BEST_MODEL
        if not candidate.is_file():
            raise ValueError(f"run directory {path} has no {runs.BEST_MODEL}")
        return candidate
    if not path.exists():
        raise ValueError(f"model not found: {spec}")
    return path


def load_denoiser(
    spec: str | None, runs_dir: str | Path = "runs", precision: str = "float32", ensemble: int = 1
):
    """The model behind a `--model` value, computing in `precision` (a Keras policy name),
    averaged over `ensemble` flipped/transposed views (tfdenoise.ensemble) when > 1."""
    model = load_model(resolve_model_path(spec, runs_dir), policy=precision)
    return with_passes(model, ensemble)


def unet_architecture(path: str | Path) -> dict[str, tuple[int, ...] | int] | None:
    """A U-Net `.keras` file's widths, blocks and unshuffle, read from its config alone (no
    weights loaded, no code run); None for another model class or a file without a config.

    Lets `fit --init-from` take the architecture of the model it fine-tunes instead of asking
    the user to repeat it.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if not isinstance(saved, dict) or saved.get("class_name") != "UNet":
        return None
    config = saved.get("config")
    if not isinstance(config, dict):
        return None
    return {
        "widths": tuple(int(w) for w in config.get("widths", ())),
        "blocks": tuple(int(b) for b in config.get("blocks", ())),
        "unshuffle": int(config.get("unshuffle", 1)),
    }
