#!/usr/bin/env python3
"""Score the whole `python -m tfdenoise.predict` command on stored degraded files.

Why: `tfdenoise evaluate` feeds the model arrays; users run `predict` on files. This writes
each clean image of CLEAN, degraded under an evaluation condition, as the file a user would
have (JPEG conditions as real libjpeg JPEG files at the condition's quality, the others as
8-bit PNG), runs `predict` on that folder as a subprocess (its defaults, plus any
`--predict-arg`), and scores noisy and denoised files against the clean ones: PSNR over RGB,
no border crop, mean over the images. The noise of image i is the one `evaluate` draws for
it (same condition seeds), so the noisy column matches `evaluate --conditions NAME --all`.

usage: python tools/predict_scores.py CLEAN WORK --condition jpeg-noise [--condition ...]
           [--predict-arg=--ensemble --predict-arg=1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfdenoise import evaluate  # noqa: E402
from tfdenoise.degradations import catalog  # noqa: E402


def stored_noisy(clean: np.ndarray, name: str, index: int) -> tuple[bytes, str]:
    """The degraded file's bytes and extension: the noise before the JPEG (if any) drawn with
    evaluate's seed for (image, condition), then libjpeg at the condition's quality."""
    number = catalog.CONDITION_NUMBERS[name]
    condition = catalog.ALL_CONDITIONS[name]
    if isinstance(condition, catalog.LibJpeg):  # stored as the JPEG file the condition decodes
        before = condition.before
        pixels = clean if before is None else evaluate.add_noise_uint8(clean, before, index, number)
        return tf.io.encode_jpeg(pixels, quality=condition.quality).numpy(), ".jpg"
    noisy = evaluate.add_noise_uint8(clean, condition, index, number)
    return tf.io.encode_png(noisy).numpy(), ".png"


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    error = np.mean((clean.astype(np.float64) - other.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(error, 1e-10)))


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def output_of(out_dir: Path, noisy_path: Path) -> Path:
    """predict's output for an input: same relative name, but the format predict chose
    (e.g. PNG for a JPEG input unless asked otherwise)."""
    (match,) = [p for p in out_dir.iterdir() if p.stem == noisy_path.stem]
    return match


def score_condition(
    clean_files: list[Path], name: str, work: Path, predict_args: list[str]
) -> dict:
    noisy_dir, out_dir = work / name / "noisy", work / name / "denoised"
    noisy_dir.mkdir(parents=True, exist_ok=True)
    pairs = []
    for index, path in enumerate(clean_files):
        clean = rgb(path)
        data, suffix = stored_noisy(clean, name, index)
        target = noisy_dir / (path.stem + suffix)
        target.write_bytes(data)
        pairs.append((path, target))
    command = [sys.executable, "-m", "tfdenoise.predict", str(noisy_dir), "-o", str(out_dir)]
    subprocess.run(command + predict_args, check=True)
    rows = []
    for path, noisy_path in pairs:
        clean = rgb(path)
        rows.append(
            {
                "image": path.name,
                "noisy": psnr(clean, rgb(noisy_path)),
                "denoised": psnr(clean, rgb(output_of(out_dir, noisy_path))),
            }
        )
    return {
        "noisy": float(np.mean([r["noisy"] for r in rows])),
        "denoised": float(np.mean([r["denoised"] for r in rows])),
        "images": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clean", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--condition", action="append", choices=list(catalog.ALL_CONDITIONS))
    parser.add_argument("--predict-arg", action="append", default=[])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    clean_files = sorted(p for p in args.clean.iterdir() if p.suffix.lower() in {".png", ".jpg"})
    results = {}
    for name in args.condition or ["jpeg-noise", "jpeg-30"]:
        results[name] = score_condition(clean_files, name, args.work, args.predict_arg)
        noisy, denoised = results[name]["noisy"], results[name]["denoised"]
        print(f"{name}: noisy {noisy:.2f} dB, predict {denoised:.2f} dB ({denoised - noisy:+.2f})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
