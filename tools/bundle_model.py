#!/usr/bin/env python3
"""Copy a run's best model into the package as the bundled pretrained model.

The model is re-saved without optimizer state (a third of the size) and a provenance file is
written beside it: each training stage's config, epochs and steps trained, training time,
validation scores and the command that produced it, so the README's claims can be traced to
runs. A fine-tuned model (`fit --init-from`) lists its base runs first: each base's epochs up
to the one the next stage started from (its best by validation loss unless `--carried-epoch`
says otherwise: a stage may have started from an epoch kept for its scores), then the final
run's. `--machine` records where each stage ran: training speed differs ~6x between CPUs
with and without bfloat16 units, so a stage's seconds mean little without it.

The bundled weights are the final run's best.keras, or with `--model FILE --final-epoch N`
one epoch's snapshot of it, picked by scores its validation loss does not see (`fit
--select-by`); the final stage then counts its epochs up to N.

usage: python tools/bundle_model.py [BASE_RUN_DIR ...] RUN_DIR --command "tfdenoise fit ..."
       [--command "tfdenoise fit --init-from ..."]   (one command per run directory)
       [--machine "2-core Xeon, AMX, mixed_bfloat16" ...]   (none, or one per run directory)
       [--carried-epoch N ...]   (none, or one per base run)
       [--model EPOCH.keras --final-epoch N]   (the final run's epoch N instead of its best)
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfdenoise import checkpoints, runs  # noqa: E402
from tfdenoise.io import atomic  # noqa: E402


def best_row(history: list[dict]) -> dict:
    return min(history, key=lambda row: row.get("val_loss", float("inf")))


def stage(run_dir: Path, command: str, carried: int | None, machine: str | None) -> dict:
    """One run's contribution: a base run counts up to the epoch carried on (`carried`), the
    final run all of its epochs (carried None) or, when one epoch of it is bundled, up to it."""
    history = runs.trained_rows(runs.read_json(run_dir / runs.HISTORY, default=[]))
    config = runs.read_json(run_dir / runs.CONFIG)
    best = best_row(history)
    if carried is not None and not any(row["epoch"] == carried for row in history):
        raise ValueError(f"{run_dir}: no epoch {carried} in its history")
    used = history if carried is None else [row for row in history if row["epoch"] <= carried]
    return {
        "run": run_dir.name,
        "command": command,
        "machine": machine,
        "carried_epoch": carried,
        "epochs_trained": len(used),
        "steps_trained": len(used) * config["steps_per_epoch"],
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "best_val_psnr": best.get("val_psnr"),
        "train_seconds": round(sum(row.get("train_seconds", 0.0) for row in used)),
        "config": config,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="base run(s) first, final last")
    parser.add_argument(
        "--command",
        action="append",
        required=True,
        help="the fit command of each run directory, in the same order",
    )
    parser.add_argument(
        "--machine",
        action="append",
        default=[],
        help="where each run trained (CPU, precision), in the same order; none or one per run",
    )
    parser.add_argument(
        "--carried-epoch",
        type=int,
        action="append",
        default=[],
        help="the epoch of each base run that the next stage started from (default: its best)",
    )
    parser.add_argument(
        "--model", type=Path, help="the final run's model to bundle (default: its best.keras)"
    )
    parser.add_argument(
        "--final-epoch", type=int, help="with --model: the final run's epoch that model is"
    )
    args = parser.parse_args()
    if (args.model is None) != (args.final_epoch is None):
        parser.error("give --model and --final-epoch together")
    if len(args.command) != len(args.run_dirs):
        parser.error("give one --command per run directory")
    if args.machine and len(args.machine) != len(args.run_dirs):
        parser.error("give no --machine or one per run directory")
    bases = args.run_dirs[:-1]
    if args.carried_epoch and len(args.carried_epoch) != len(bases):
        parser.error("give no --carried-epoch or one per base run (all but the last directory)")
    carried = args.carried_epoch or [
        best_row(runs.read_json(run_dir / runs.HISTORY, default=[]))["epoch"] for run_dir in bases
    ]
    machines = args.machine or [None] * len(args.run_dirs)

    final = args.run_dirs[-1]
    model = checkpoints.load_model(args.model or final / runs.BEST_MODEL)
    target = checkpoints.PRETRAINED
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(target) as temporary:
        model.save(temporary)
    stages = [
        stage(run_dir, command, epoch, machine)
        for run_dir, command, epoch, machine in zip(
            args.run_dirs, args.command, [*carried, args.final_epoch], machines
        )
    ]
    provenance = {
        "run": final.name,
        "bundled": datetime.date.today().isoformat(),
        "steps_trained": sum(s["steps_trained"] for s in stages),
        "train_seconds": sum(s["train_seconds"] for s in stages),
        "parameters": int(model.count_params()),
        "stages": stages,
    }
    atomic.write_json(target.with_suffix(".json"), provenance)
    summary = {k: v for k, v in provenance.items() if k != "stages"}
    summary["stages"] = [{k: v for k, v in s.items() if k != "config"} for s in stages]
    print(json.dumps(summary, indent=2))
    print(f"bundled {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
