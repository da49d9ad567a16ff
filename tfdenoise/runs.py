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


def trained_rows(history: list[dict]) -> list[dict]:
    """The history rows of trained epochs: row 0, the --init-from model's scores, left out."""
    return [row for row in history if row.get("epoch", 1) >= 1]


def summarize(path: str | Path) -> RunSummary:
    path = Path(path)
    history = read_json(path / HISTORY, default=[]) or []
    losses = [row["val_loss"] for row in history if row.get("val_loss") is not None]
    psnrs = [row["val_psnr"] for row in history if row.get("val_psnr") is not None]
    metrics = read_json(path / METRICS, default={}) or {}
    test = metrics.get("test", {})
    return RunSummary(
        path=path,
        best_val_loss=min(losses) if losses else math.inf,
        best_val_psnr=max(psnrs) if psnrs else -math.inf,
        epochs=len(trained_rows(history)),
        finished=bool(metrics),
        test_psnr={name: score["psnr_denoised"] for name, score in test.items()},
        has_model=(path / BEST_MODEL).is_file(),
    )


def ranked_runs(runs_dir: str | Path) -> list[RunSummary]:
    """Runs sorted by best validation loss, lowest first (runs without one last).

    The contract of `--model best` (DESIGN.md). Losses of runs trained with different
    `--loss` do not compare; `tfdenoise runs` also shows the validation PSNR, which does.
    """
    return sorted((summarize(p) for p in all_runs(runs_dir)), key=lambda r: r.best_val_loss)


def best_run(runs_dir: str | Path) -> Path:
    """The run with the lowest validation loss that has a saved model."""
    for summary in ranked_runs(runs_dir):
        if summary.has_model and math.isfinite(summary.best_val_loss):
            return summary.path
    raise ValueError(f"no run with a saved model in {runs_dir}")
