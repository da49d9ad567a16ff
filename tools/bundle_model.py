#!/usr/bin/env python3
"""Copy a run's best model into the package as the bundled pretrained model.

The model is re-saved without optimizer state (a third of the size) and a provenance file is
written beside it: the run's config, epochs and steps trained, training time, validation loss
and the command that produced it, so the README's claims can be traced to a run.

usage: python tools/bundle_model.py RUN_DIR --command "tfdenoise fit ..."
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfdenoise import atomic, models, predict, runs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--command", required=True, help="the fit command that made the run")
    args = parser.parse_args()

    model = models.load_model(args.run_dir / runs.BEST_MODEL)
    target = predict.PRETRAINED
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(target) as temporary:
        model.save(temporary)
    history = runs.read_json(args.run_dir / runs.HISTORY, default=[])
    config = runs.read_json(args.run_dir / runs.CONFIG)
    best = min(history, key=lambda row: row.get("val_loss", float("inf")))
    provenance = {
        "run": args.run_dir.name,
        "command": args.command,
        "bundled": datetime.date.today().isoformat(),
        "epochs_trained": len(history),
        "steps_trained": len(history) * config["steps_per_epoch"],
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "best_val_psnr": best.get("val_psnr"),
        "train_seconds": round(sum(row.get("train_seconds", 0.0) for row in history)),
        "parameters": int(model.count_params()),
        "config": config,
    }
    atomic.write_json(target.with_suffix(".json"), provenance)
    print(json.dumps({k: v for k, v in provenance.items() if k != "config"}, indent=2))
    print(f"bundled {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
