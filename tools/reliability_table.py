#!/usr/bin/env python3
"""Print the README's Reliability table by running the real code over the fault corpus.

For each input of tests/faults.py: what `fit`'s scan, `make-tfrecords` and `predict` did with
it (the same library calls the CLI makes; tests/test_reliability.py asserts the same outcomes).

usage: python tools/reliability_table.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from faults import make_fault_corpus  # noqa: E402

from tfdenoise import checkpoints, models  # noqa: E402
from tfdenoise.io import files as image_files  # noqa: E402
from tfdenoise.io.records.convert import convert_folder  # noqa: E402
from tfdenoise.io.records.folder import read_manifest  # noqa: E402
from tfdenoise.predict.folder import predict_folder  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        corpus = work / "corpus"
        faults = make_fault_corpus(corpus)
        scan = image_files.scan(corpus)
        fit_skips = {Path(s.path).relative_to(corpus).as_posix(): s.reason for s in scan.skipped}
        convert_folder(corpus, work / "records", shard_mb=0.01, workers=2)
        record_skips = {s["path"]: s["reason"] for s in read_manifest(work / "records")["skipped"]}
        model_path = work / "tiny.keras"
        models.built(models.UNet(widths=(4, 8))).save(model_path)
        report = predict_folder(checkpoints.load_model(model_path), corpus, work / "out")
        predict_fails = {Path(p).relative_to(corpus).as_posix(): r for p, r in report.failed}

    def outcome(skips: dict[str, str], relpath: str, used: str) -> str:
        return f"skipped: {skips[relpath]}" if relpath in skips else used

    print("| input | fit (folder) | make-tfrecords | predict |")
    print("|---|---|---|---|")
    for fault in faults:
        if fault.name.startswith("photo") and fault.name != "photo0":
            continue  # one ordinary photo stands for all
        print(
            f"| {fault.name} (`{fault.relpath}`) "
            f"| {outcome(fit_skips, fault.relpath, 'trained on')} "
            f"| {outcome(record_skips, fault.relpath, 'stored')} "
            f"| {outcome(predict_fails, fault.relpath, 'denoised')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
