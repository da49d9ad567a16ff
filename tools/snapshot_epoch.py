#!/usr/bin/env python3
"""Write the model of a run's last backed-up epoch as a .keras file, while the run goes on.

`best.keras` holds the one epoch its score picked; to judge every epoch by other measures
(Kodak24, real noise, held-out photos: training/README.md), snapshot each from the backup:
the trained weights, or with `--average` the moving average a `fit --ema` run validates.

usage: python tools/snapshot_epoch.py RUN_DIR OUT.keras [--average]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tfdenoise.train import backup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--average", action="store_true", help="the --ema moving average")
    args = parser.parse_args()
    try:
        model = backup.backed_up_model(args.run_dir, average=args.average)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    epoch = backup.backed_up_epoch(args.run_dir)
    model.save(args.output, include_optimizer=False)
    kind = "moving average" if args.average else "trained weights"
    print(f"{args.output}: epoch {epoch} of {args.run_dir} ({kind})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
