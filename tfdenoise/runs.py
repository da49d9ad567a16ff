"""Run directories: `runs/<timestamp>[-name]/` with config, history, best model, metrics, grid.

Every file is written atomically (temp file then rename) so a killed run never leaves a
half-written JSON or model behind.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from pathlib import Path
from typing import Any

from tfdenoise.io import atomic

CONFIG = "config.json"
HISTORY = "history.json"
BEST_MODEL = "best.keras"
METRICS = "metrics.json"
GRID = "grid.png"
TENSORBOARD = "tensorboard"
BACKUP = "backup"


def write_json(path: str | Path, value: Any) -> None:
    """Atomic JSON write (dataclasses and numpy scalars allowed)."""
    atomic.write_json(path, value, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_json(path: str | Path, default: Any = None) -> Any:
    path = Path(path)
    if not path.is_file():
        return default
    return json.loads(path.read_text())


def check_plain_name(name: str, what: str) -> str:
    """`name` if it can name one directory inside the runs dir: not blank, no separator, not
    hidden or a parent reference; else a ValueError that says which `what` was wrong."""
    if not name.strip() or "/" in name or name.startswith("."):
        raise ValueError(f"{what} must be a plain name, got {name!r}")
    return name


def new_run_dir(runs_dir: str | Path, name: str | None = None) -> Path:
    """Create runs_dir/<YYYYmmdd-HHMMSS>[-name], never reusing an existing directory."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{check_plain_name(name, 'run name')}" if name else stamp
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        path = runs_dir / (base if attempt == 1 else f"{base}.{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run directory under {runs_dir}")


def named_run_dir(runs_dir: str | Path, name: str, create: bool = True) -> Path:
    """runs_dir/<name>: the directory every worker of a multi-worker run agrees on.

    Only the chief creates it (other workers write elsewhere and may start first).
    """
    path = Path(runs_dir) / check_plain_name(name, "run id")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def all_runs(runs_dir: str | Path) -> list[Path]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and is_run_dir(p))


def latest_run(runs_dir: str | Path) -> Path:
    runs = all_runs(runs_dir)
    if not runs:
        raise ValueError(f"no runs in {runs_dir}")
    return max(runs, key=lambda p: (p / CONFIG).stat().st_mtime)


@dataclasses.dataclass
class RunSummary:
    path: Path
    best_val_loss: float
    best_val_psnr: float
    epochs: int
    finished: bool
    test_psnr: dict[str, float]
    has_model: bool
    # "history.json: <reason>" when a file of the run cannot be read (truncated, hand-edited):
    # the run is listed as unreadable and never chosen by `--model best`.
    problem: str | None = None


def trained_rows(history: list[dict]) -> list[dict]:
    """The history rows of trained epochs: row 0, the --init-from model's scores, left out."""
    return [row for row in history if row.get("epoch", 1) >= 1]


def summarize(path: str | Path) -> RunSummary:
    """The run's scores; a file that cannot be read makes it an unreadable run (`problem`)
    instead of an error, so that one damaged run never hides the others."""
    path = Path(path)
    has_model = (path / BEST_MODEL).is_file()
    try:
        history = _read_history(path / HISTORY)
        test = _read_test_scores(path / METRICS)
    except RunFileError as error:
        return RunSummary(path, math.inf, -math.inf, 0, False, {}, has_model, str(error))
    losses = [row["val_loss"] for row in history if row.get("val_loss") is not None]
    psnrs = [row["val_psnr"] for row in history if row.get("val_psnr") is not None]
    return RunSummary(
        path=path,
        best_val_loss=min(losses) if losses else math.inf,
        best_val_psnr=max(psnrs) if psnrs else -math.inf,
        epochs=len(trained_rows(history)),
        finished=test is not None,
        test_psnr={name: score["psnr_denoised"] for name, score in (test or {}).items()},
        has_model=has_model,
    )


class RunFileError(ValueError):
    """A run's JSON file that is not valid JSON of the expected shape; says 'FILE: reason'."""


def _read_run_json(path: Path, default: Any) -> Any:
    try:
        return read_json(path, default)
    except (OSError, ValueError) as error:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise RunFileError(f"{path.name}: {error}") from error


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_history(path: Path) -> list[dict]:
    """history.json: a list of epoch rows whose epoch and scores, when present, are numbers."""
    history = _read_run_json(path, default=[]) or []
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise RunFileError(f"{path.name}: not a list of epoch objects")
    for index, row in enumerate(history):
        for key in ("epoch", "val_loss", "val_psnr"):
            if row.get(key) is not None and not _is_number(row[key]):
                raise RunFileError(f"{path.name}: row {index}: {key} is not a number")
    return history


def _read_test_scores(path: Path) -> dict[str, dict] | None:
    """metrics.json's test scores by condition, each with a numeric psnr_denoised; None when
    the run has not finished (no metrics.json or an empty one)."""
    metrics = _read_run_json(path, default={}) or {}
    if not isinstance(metrics, dict):
        raise RunFileError(f"{path.name}: not a JSON object")
    if not metrics:
        return None
    test = metrics.get("test", {})
    if not isinstance(test, dict) or not all(
        isinstance(score, dict) and _is_number(score.get("psnr_denoised"))
        for score in test.values()
    ):
        raise RunFileError(f"{path.name}: test scores are not objects with a numeric psnr_denoised")
    return test


def ranked_runs(runs_dir: str | Path) -> list[RunSummary]:
    """Runs sorted by best validation loss, lowest first (runs without one last).

    The contract of `--model best` (DESIGN.md). Losses of runs trained with different
    `--loss` do not compare; `tfdenoise runs` also shows the validation PSNR, which does.
    """
    return sorted((summarize(p) for p in all_runs(runs_dir)), key=lambda r: r.best_val_loss)


def best_run(runs_dir: str | Path) -> Path:
    """The run with the lowest validation loss that has a saved model (unreadable runs are
    left out: their loss is unknown)."""
    ranked = ranked_runs(runs_dir)
    for summary in ranked:
        if summary.problem is None and summary.has_model and math.isfinite(summary.best_val_loss):
            return summary.path
    unreadable = [f"{s.path.name} ({s.problem})" for s in ranked if s.problem]
    also = f"; unreadable runs left out: {', '.join(unreadable)}" if unreadable else ""
    raise ValueError(f"no run with a saved model in {runs_dir}{also}")
