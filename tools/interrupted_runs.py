"""Long interrupted runs: predict and make-tfrecords over thousands of small files, killed with
SIGKILL at random moments and re-run until done, compared with one uninterrupted run.

    python tools/interrupted_runs.py WORK [--files 3000] [--kills 8] [--seed 0]

For each command: every output present, complete and identical to the uninterrupted run's
(predict: same pixels; make-tfrecords: same manifest and the same records in every shard),
no file lost, no temp file left. Prints the figures and writes WORK/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def make_inputs(folder: Path, count: int, seed: int) -> None:
    """`count` 32x32 RGB PNGs: smooth gradients plus noise, in 10 subfolders."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, 32, dtype=np.float32)
    for index in range(count):
        path = folder / f"part{index % 10}" / f"img{index:05d}.png"
        if path.exists():
            continue
        base = ramp[None, :, None] + ramp[:, None, None] * rng.uniform(0, 0.3, 3)
        pixels = np.clip(base + rng.normal(0, 12, (32, 32, 3)), 0, 255).astype(np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)


def make_model(path: Path) -> None:
    if path.exists():
        return
    from tfdenoise import models

    models.built(models.UNet(widths=(4, 8))).save(path)


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def interrupted(
    command: list[str], kills: int, rng: random.Random, progress, within: float
) -> dict:
    """Run `command` until it exits 0 by itself, SIGKILLing the first `kills` attempts at a
    random moment: some during start-up, most up to `within` seconds after the attempt's
    first new output (while outputs are being written)."""
    attempts, killed, start = 0, 0, time.monotonic()
    while True:
        attempts += 1
        process = _start(command)
        if killed < kills:
            before = progress()
            if rng.random() < 0.2:  # sometimes during start-up or planning
                time.sleep(rng.uniform(0.5, 6.0))
            else:  # usually once outputs are being written
                while progress() == before and process.poll() is None:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, within))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed += 1
                continue
        output, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{command[:4]} exited {process.returncode}:\n{output[-3000:]}")
        return {"attempts": attempts, "kills": killed, "seconds": time.monotonic() - start}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def _relative_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def run_predict(work: Path, kills: int, rng: random.Random) -> dict:
    model, inputs = work / "tiny.keras", work / "in"
    reference, out = work / "predict-reference", work / "predict-out"

    def command(target: Path) -> list[str]:
        return [sys.executable, "-m", "tfdenoise.predict", str(inputs), "-o", str(target)]

    if not reference.exists():
        started = time.monotonic()
        done = subprocess.run(
            [*command(reference), "--model", str(model)], cwd=REPO, env=ENV, capture_output=True
        )
        assert done.returncode == 0, done.stdout[-3000:]
        print(f"predict, uninterrupted: {time.monotonic() - started:.0f} s", flush=True)

    def progress() -> int:
        return sum(1 for _ in out.rglob("*.png")) if out.exists() else 0

    figures = interrupted([*command(out), "--model", str(model)], kills, rng, progress, 3.0)
    expected = _relative_files(reference)
    found = _relative_files(out)
    different = [
        name
        for name in sorted(expected & found)
        if not np.array_equal(_pixels(out / name), _pixels(reference / name))
    ]
    return {
        **figures,
        "files": len(expected),
        "lost": len(expected - found),
        "extra": sorted(found - expected),
        "different_pixels": different,
        "temp_files_left": _temp_files(out),
    }


def _records(folder: Path) -> dict[str, list[bytes]]:
    import tensorflow as tf

    from tfdenoise.io.records.folder import read_manifest

    manifest = read_manifest(folder)
    return {
        shard["name"]: [r.numpy() for r in tf.data.TFRecordDataset(str(folder / shard["name"]))]
        for shard in manifest["shards"]
    }


def run_records(work: Path, kills: int, rng: random.Random) -> dict:
    inputs = work / "in"
    reference, out = work / "records-reference", work / "records-out"

    def command(target: Path) -> list[str]:
        return [sys.executable, "-m", "tfdenoise", "make-tfrecords", str(inputs), str(target)]

    base = ["--shard-mb", "0.05", "--workers", "2"]  # many shards: kills land between them
    if not reference.exists():
        done = subprocess.run([*command(reference), *base], cwd=REPO, env=ENV, capture_output=True)
        assert done.returncode == 0, done.stdout[-3000:]

    def progress() -> int:
        return sum(1 for _ in out.glob("*.tfrecord")) if out.exists() else 0

    figures = interrupted([*command(out), *base], kills, rng, progress, 0.4)  # a fast job
    expected, found = _records(reference), _records(out)
    manifest_equal = (reference / "manifest.json").read_bytes() == (
        out / "manifest.json"
    ).read_bytes()
    stored = sum(len(v) for v in found.values())
    return {
        **figures,
        "files": sum(len(v) for v in expected.values()),
        "lost": sum(len(v) for v in expected.values()) - stored,
        "records_identical": expected == found,
        "manifest_identical": manifest_equal,
        "temp_files_left": _temp_files(out),
        "plan_left": (out / ".plan.json").exists(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=8, help="SIGKILLs per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("predict", "records"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    make_inputs(args.work / "in", args.files, args.seed)
    make_model(args.work / "tiny.keras")
    summary = {"files": args.files, "seed": args.seed}
    if args.only in (None, "predict"):
        summary["predict"] = run_predict(args.work, args.kills, rng)
        print("predict:", json.dumps(summary["predict"]), flush=True)
    if args.only in (None, "records"):
        summary["make-tfrecords"] = run_records(args.work, args.kills, rng)
        print("make-tfrecords:", json.dumps(summary["make-tfrecords"]), flush=True)
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    bad = [
        name
        for name in ("predict", "make-tfrecords")
        if name in summary
        and (
            summary[name]["lost"]
            or summary[name]["temp_files_left"]
            or summary[name].get("different_pixels")
            or summary[name].get("extra")
            or summary[name].get("records_identical") is False
            or summary[name].get("manifest_identical") is False
            or summary[name].get("plan_left")
        )
    ]
    print("FAILED: " + ", ".join(bad) if bad else "every output complete and identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
