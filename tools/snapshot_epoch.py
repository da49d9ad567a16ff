#!/usr/bin/env python3
"""Write the model of a run's last backed-up epoch as a .keras file, while the run goes on.

`best.keras` holds the one epoch its score picked; to judge every epoch by other measures
(Kodak24, real noise, held-out photos: training/README.md), snapshot each from the backup:
the trained weights, or with `--average` the moving average a `fit --ema` run validates.

The file holds the weights only, as the bundled model does (a third of the size): the
backup's optimizer state stays in the backup.

usage: python tools/snapshot_epoch.py RUN_DIR OUT.keras [--average]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras

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
    plain = keras.models.clone_model(model)  # uncompiled: Keras 3 saves a compiled model's
    plain.set_weights(model.get_weights())  # optimizer whatever save() is told
    plain.save(args.output)
    kind = "moving average" if args.average else "trained weights"
    print(f"{args.output}: epoch {epoch} of {args.run_dir} ({kind})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
