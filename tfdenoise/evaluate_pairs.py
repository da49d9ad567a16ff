"""`tfdenoise evaluate DATA --reference CLEAN`: the model on real noise, against clean photos.

Real noise (camera sensors, scanners, film, the compression after them) is what users have and
what no simulated condition fully covers; the benchmarks for it are pairs of the same scene, one
noisy and one clean (SIDD's and PolyU's noisy / mean images, a high-ISO and a low-ISO shot on a
tripod, a poor scan and a good one). This scores the model, the noisy photo itself and the
classical baselines on such pairs, as `evaluate` does on added noise.

A pair is DATA/<path> and CLEAN/<path>, or CLEAN/<path with another image suffix> (noisy JPEGs
against PNG references). The noisy photo is what every method sees, as its file holds it;
baselines are told an Immerkaer estimate of its sigma, as a user would have nothing else. A
photo without a reference, of another size than its reference or unreadable is skipped with
its reason in the notes. With a journal (`evaluate --json`), a killed run resumes as
`evaluate`'s own does (tfdenoise.evaluate_journal).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfdenoise import baselines, inference
from tfdenoise.config import DEFAULT_OVERLAP, DEFAULT_TILE, PAIRED_PROTOCOL
from tfdenoise.evaluate import (
    CLEAN,
    GRID_IMAGES,
    Evaluation,
    MethodScore,
    centre_crop_uint8,
    check_crop,
    merge_scores,
    scorable,
    score_clean,
    score_noisy,
)
from tfdenoise.io import files
from tfdenoise.noise_level import estimate_sigma_255

REAL = "real"  # the condition the pairs are scored under in Evaluation.scores


@dataclasses.dataclass(frozen=True)
class Pair:
    name: str  # the noisy photo's path relative to DATA
    noisy: Path
    clean: Path


def find_pairs(
    noisy_root: str | Path, clean_root: str | Path
) -> tuple[list[Pair], list[files.Skipped]]:
    """Every image under `noisy_root` with its reference under `clean_root` (same relative
    path; if that file does not exist, the one image there with the same path but another
    suffix), and the images left without one."""
    noisy_root, clean_root = Path(noisy_root), Path(clean_root)
    if not clean_root.is_dir():
        raise ValueError(f"reference folder not found: {clean_root}")
    references = clean_root.resolve()
    if references == noisy_root.resolve():
        raise ValueError(f"the reference folder is the noisy folder itself: {clean_root}")
    by_stem: dict[str, list[Path]] = collections.defaultdict(list)
    for path in files.list_image_files(clean_root):
        by_stem[path.relative_to(clean_root).with_suffix("").as_posix()].append(path)
    pairs, skipped = [], []
    for path in files.list_image_files(noisy_root):
        if references in path.resolve().parents:  # the references kept inside DATA
            continue
        relative = path.relative_to(noisy_root)
        stem = relative.with_suffix("").as_posix()
        candidates = by_stem.get(stem, [])
        exact = [c for c in candidates if c.name == path.name]
        if exact or len(candidates) == 1:
            pairs.append(Pair(relative.as_posix(), path, (exact or candidates)[0]))
        elif candidates:
            names = ", ".join(sorted(c.name for c in candidates))
            skipped.append(files.Skipped(str(path), f"several references ({names})"))
        else:
            skipped.append(files.Skipped(str(path), f"no reference {stem}.* in {clean_root}"))
    if not pairs:
        raise ValueError(f"no image in {noisy_root} has a reference in {clean_root}")
    return pairs, skipped


def _load_pair(pair: Pair, crop: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) uint8 RGB, the same centre crop of both; ImageError if unusable."""
    try:
        clean = files.load_rgb8(pair.clean)
    except files.ImageError as error:
        raise files.ImageError(f"reference {pair.clean.name}: {error}") from None
    noisy = files.load_rgb8(pair.noisy)
    if clean.shape != noisy.shape:
        raise files.ImageError(
            f"{noisy.shape[1]}x{noisy.shape[0]}, its reference "
            f"{clean.shape[1]}x{clean.shape[0]}: not the same scene framing"
        )
    return scorable(centre_crop_uint8(clean, crop)), centre_crop_uint8(noisy, crop)


def evaluate_pairs(
    model,
    noisy_root: str | Path,
    clean_root: str | Path,
    crop: int | None = None,
    baseline_names: list[str] | None = None,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    on_step: Callable[[str], None] | None = None,
    journal: Callable[[dict], Any] | None = None,
) -> tuple[Evaluation, list[tuple[np.ndarray, ...]]]:
    """Scores under REAL (each noisy photo against its reference) and CLEAN (the model on the
    references), with up to GRID_IMAGES (clean, noisy, denoised) triples for a grid.
    `journal` as evaluate.evaluate_folder's: pairs it holds are not scored again."""
    check_crop(crop)
    chosen, notes = baselines.select(baseline_names)
    pairs, skipped = find_pairs(noisy_root, clean_root)
    record = None
    if journal is not None:
        record = journal(
            {
                "data": str(Path(noisy_root).resolve()),
                "reference": str(Path(clean_root).resolve()),
                "pairs": [[pair.name, str(pair.clean)] for pair in pairs],
                "crop": crop,
                "protocol": PAIRED_PROTOCOL,
                "baselines": [baseline.name for baseline in chosen],
                "tile": tile,
                "overlap": overlap,
            }
        )
    scores: dict[str, dict[str, MethodScore]] = {
        REAL: collections.defaultdict(MethodScore),
        CLEAN: collections.defaultdict(MethodScore),
    }
    names, grid = [], []

    def denoise(image: np.ndarray) -> np.ndarray:
        return inference.denoise_rgb8(model, image, tile, overlap)

    for index, pair in enumerate(pairs):
        if record and index in record.done:
            merge_scores(scores, record.done[index])
            names.append(pair.name)
            continue
        try:
            clean, noisy = _load_pair(pair, crop)
        except files.ImageError as error:
            skipped.append(files.Skipped(str(pair.noisy), str(error)))
            continue
        image = {
            REAL: collections.defaultdict(MethodScore),
            CLEAN: collections.defaultdict(MethodScore),
        }
        output = score_noisy(
            image[REAL],
            clean,
            noisy,
            denoise,
            chosen,
            estimate_sigma_255(noisy),
            on_step=on_step,
            step=f"pair {index + 1}: {pair.name}",
        )
        score_clean(image[CLEAN], clean, denoise)
        image = {name: dict(methods) for name, methods in image.items()}
        merge_scores(scores, image)
        if record:
            record.record(index, image)
        names.append(pair.name)
        if len(grid) < GRID_IMAGES:
            grid.append((clean, noisy, output))
    if not names:
        raise ValueError("no usable pair: " + "; ".join(f"{s.path}: {s.reason}" for s in skipped))
    notes = [*notes, *(f"skipped {s.path}: {s.reason}" for s in skipped)]
    result = {name: dict(methods) for name, methods in scores.items()}
    return Evaluation(names, crop, result, notes, PAIRED_PROTOCOL), grid
