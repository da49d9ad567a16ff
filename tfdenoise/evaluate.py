"""`tfdenoise evaluate`: the model (denoising whole images as predict does, tiled) against the
noisy input and classical baselines, per fixed noise condition, on PSNR, SSIM and colour shift.

Two protocols:
- "stored" (default): the noisy image is what a file would hold, noise clipped and rounded to
  8 bits; every method sees those uint8 pixels. Conditions are seeded TF noise models.
- "paper": the protocol of the DnCNN/FFDNet/DRUNet code, so figures compare with published
  tables: clean uint8 -> float in [0, 1], Gaussian noise from numpy (`RandomState(image
  index)`, one seed per image) added in float32 and neither clipped nor rounded, the output
  clipped and rounded to uint8, PSNR over RGB with no border crop, full images. It defines
  Gaussian conditions only; the other conditions are scored as stored files, as there.
Baselines are told the true sigma under fixed-sigma Gaussian noise, the std of the added noise
under the prototype's (random amplitude), and an Immerkaer estimate from the noisy image under
the realistic conditions, where a user would have nothing else.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfdenoise import baselines, inference
from tfdenoise.baselines import Baseline
from tfdenoise.config import (
    DEFAULT_EVAL_CROP,
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    MIN_SCORED_SIDE,
    PROTOCOLS,
    PROTOTYPE_ALIASES,
)
from tfdenoise.data.pipeline import center_crop
from tfdenoise.degradations.catalog import ALL_CONDITIONS, CONDITION_NUMBERS, REALISTIC_CONDITIONS
from tfdenoise.degradations.noise import Gaussian, NoiseModel
from tfdenoise.io import files
from tfdenoise.metrics import comparison_grid, condition_seed, image_scores
from tfdenoise.models import to_unit_float
from tfdenoise.noise_level import estimate_sigma_255

CLEAN = "clean"  # the extra condition: no noise added; the output should equal the input
MODEL = "model"
NOISY = "noisy"
GRID_CONDITION = "gaussian-25"
GRID_IMAGES = 4
GRID_CROP = 192


@dataclasses.dataclass
class MethodScore:
    """Sums over images for one (condition, method); means and speed as properties."""

    images: int = 0
    psnr_sum: float = 0.0
    ssim_sum: float = 0.0
    delta_e_sum: float = 0.0
    seconds: float = 0.0
    megapixels: float = 0.0
    # Each image's PSNR in order: a mean hides which kind of photo a method fails on.
    per_image_psnr: list[float] = dataclasses.field(default_factory=list)

    def add(
        self, psnr: float, ssim: float, delta_e: float, seconds: float, megapixels: float
    ) -> None:
        self.per_image_psnr.append(psnr)
        self.images += 1
        self.psnr_sum += psnr
        self.ssim_sum += ssim
        self.delta_e_sum += delta_e
        self.seconds += seconds
        self.megapixels += megapixels

    def merge(self, other: MethodScore) -> None:
        """Add another score's images (e.g. one image's, replayed from a journal)."""
        self.per_image_psnr += other.per_image_psnr
        self.images += other.images
        self.psnr_sum += other.psnr_sum
        self.ssim_sum += other.ssim_sum
        self.delta_e_sum += other.delta_e_sum
        self.seconds += other.seconds
        self.megapixels += other.megapixels

    @property
    def psnr(self) -> float:
        return self.psnr_sum / self.images

    @property
    def ssim(self) -> float:
        return self.ssim_sum / self.images

    @property
    def delta_e(self) -> float:
        """Mean colour shift (CIEDE2000 on low-passed images, see colour_shift)."""
        return self.delta_e_sum / self.images

    @property
    def megapixels_per_second(self) -> float | None:
        return self.megapixels / self.seconds if self.seconds > 0 else None


@dataclasses.dataclass
class Evaluation:
    """condition -> method -> score, plus what was evaluated and notes on skipped baselines."""

    images: list[str]
    crop: int | None
    scores: dict[str, dict[str, MethodScore]]
    notes: list[str]
    protocol: str = "stored"

    def to_json(self) -> dict:
        return {
            "images": self.images,
            "crop": self.crop,
            "protocol": self.protocol,
            "notes": self.notes,
            "scores": {
                condition: {
                    method: {
                        "psnr": s.psnr,
                        "ssim": s.ssim,
                        "delta_e": s.delta_e,
                        "images": s.images,
                        "megapixels_per_second": s.megapixels_per_second,
                        "per_image_psnr": s.per_image_psnr,
                    }
                    for method, s in methods.items()
                }
                for condition, methods in self.scores.items()
            },
        }


def centre_crop_uint8(image: np.ndarray, crop: int | None) -> np.ndarray:
    """A crop x crop centre window (or the whole side when the image is smaller); None: all."""
    if not crop:
        return image
    height, width = image.shape[:2]
    top, left = max(0, (height - crop) // 2), max(0, (width - crop) // 2)
    return np.ascontiguousarray(image[top : top + crop, left : left + crop])


def check_crop(crop: int | None) -> None:
    if crop and crop < MIN_SCORED_SIDE:
        raise ValueError(
            f"crop must be 0 (full images) or at least {MIN_SCORED_SIDE} pixels "
            f"(SSIM's window), got {crop}"
        )


def scorable(image: np.ndarray) -> np.ndarray:
    """`image` itself, or an ImageError (the file is skipped) when a side is under SSIM's window."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_SCORED_SIDE:
        raise files.ImageError(
            f"too small to score: {width}x{height} "
            f"(SSIM needs at least {MIN_SCORED_SIDE}x{MIN_SCORED_SIDE})"
        )
    return image


def fixed_sigma(condition: NoiseModel) -> float | None:
    """The sigma (0-255) of fixed-sigma Gaussian noise; None for any other condition."""
    if isinstance(condition, Gaussian) and condition.sigma_min == condition.sigma_max:
        return float(condition.sigma_min)
    return None


def baseline_sigma(condition: NoiseModel, clean: np.ndarray, noisy: np.ndarray) -> float:
    """The sigma (0-255) a baseline is told: the nominal one for fixed-sigma Gaussian noise;
    an Immerkaer estimate from the noisy pixels under the realistic conditions (what a user
    would have); else the per-image std of the noise actually added (the prototype's noise
    has a random amplitude per image)."""
    sigma = fixed_sigma(condition)
    if sigma is not None:
        return sigma
    if any(condition is realistic for realistic in REALISTIC_CONDITIONS.values()):
        return estimate_sigma_255(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    return float(np.std(noisy.astype(np.float32) - clean.astype(np.float32)))


def paper_noisy(clean: np.ndarray, sigma: float, index: int) -> np.ndarray:
    """The papers' noisy input: float32 in [0, 1] scale plus N(0, sigma/255) from numpy seeded
    by the image's index, neither clipped nor rounded."""
    noisy = clean.astype(np.float32) / 255.0
    noisy += np.random.RandomState(index).normal(0.0, sigma / 255.0, noisy.shape)
    return noisy


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float pixels on the 0-255 scale -> uint8, rounded and clipped (as a file stores them)."""
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def add_noise_uint8(
    clean: np.ndarray, condition: NoiseModel, index: int, condition_number: int
) -> np.ndarray:
    """Fixed, seeded noise, quantised to uint8 like a real noisy file (every method sees it)."""
    noisy = condition(
        to_unit_float(tf.convert_to_tensor(clean[None])), condition_seed(index, condition_number)
    )
    return tf.cast(tf.round(noisy[0] * 255.0), tf.uint8).numpy()


def _timed(denoise, noisy: np.ndarray, *args) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    result = denoise(noisy, *args)
    return result, time.perf_counter() - started


def check_grid(condition_names: Sequence[str] | None) -> None:
    """The grid shows GRID_CONDITION: a run that scores only other conditions cannot draw it."""
    if condition_names is not None and GRID_CONDITION not in condition_names:
        raise ValueError(f"--grid shows {GRID_CONDITION}: add it to --conditions")


def select_conditions(names: Sequence[str] | None) -> dict[str, NoiseModel]:
    """The ALL_CONDITIONS named (all of them for None), in their fixed order."""
    if names is None:
        return dict(ALL_CONDITIONS)
    names = [PROTOTYPE_ALIASES.get(name, name) for name in names]
    if not names or set(names) - set(ALL_CONDITIONS):
        raise ValueError(
            f"noise conditions must be some of {', '.join(ALL_CONDITIONS)}; "
            f"got {', '.join(names) or 'none'}"
        )
    return {name: noise for name, noise in ALL_CONDITIONS.items() if name in names}


def evaluate_images(
    denoise_model: Callable[[np.ndarray], np.ndarray],
    load_clean: Sequence[Callable[[], np.ndarray]],
    baselines: Sequence[Baseline] = (),
    conditions: Mapping[str, NoiseModel] = ALL_CONDITIONS,
    on_step: Callable[[str], None] | None = None,
    protocol: str = "stored",
    done: Mapping[int, Mapping[str, Mapping[str, MethodScore]]] | None = None,
    on_image: Callable[[int, dict[str, dict[str, MethodScore]]], None] | None = None,
) -> tuple[dict[str, dict[str, MethodScore]], list[tuple[np.ndarray, ...]], dict[int, str]]:
    """Score the model, the noisy input and baselines on every image under every condition.

    `conditions` is ALL_CONDITIONS or part of it (select_conditions). Each condition's noise
    is seeded by its place in ALL_CONDITIONS, not in `conditions`, so a run over some of them
    scores the same noisy images as a full run: an hour of CBM3D can go to one noise level.
    Images are loaded one at a time (full-size photos would not all fit in memory); a loader
    raising ImageError skips its image (a file can pass the scan and fail to decode). Returns
    the scores, up to GRID_IMAGES (clean, noisy, denoised) triples under GRID_CONDITION and
    the reason each skipped image (by index) was left out. `done` holds images' scores from
    an earlier run (by index: they are not scored again) and `on_image` hears each newly
    scored image's (a journal: tfdenoise.evaluate_journal).
    `protocol` "paper" adds fixed-sigma Gaussian noise the papers' way (see the module
    docstring); the noisy input's own score is then that of its clipped, rounded pixels.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    scores: dict[str, dict[str, MethodScore]] = {
        name: collections.defaultdict(MethodScore) for name in (*conditions, CLEAN)
    }
    grid, skipped = [], {}
    for index, load in enumerate(load_clean):
        if done and index in done:
            merge_scores(scores, done[index])
            continue
        try:
            clean = load()
        except files.ImageError as error:
            skipped[index] = str(error)
            continue
        image = {name: collections.defaultdict(MethodScore) for name in scores}
        score_clean(image[CLEAN], clean, denoise_model)
        for name, condition in conditions.items():
            sigma = fixed_sigma(condition)
            if protocol == "paper" and sigma is not None:
                noisy_float = paper_noisy(clean, sigma, index)  # model input, [0, 1] scale
                noisy = to_uint8(noisy_float * 255.0)
                baseline_input = noisy_float.astype(np.float64) * 255.0
            else:
                noisy = noisy_float = add_noise_uint8(
                    clean, condition, index, CONDITION_NUMBERS[name]
                )
                baseline_input = noisy
                sigma = baseline_sigma(condition, clean, noisy)
            output = score_noisy(
                image[name],
                clean,
                noisy,
                denoise_model,
                baselines,
                sigma,
                model_input=noisy_float,
                baseline_input=baseline_input,
                on_step=on_step,
                step=f"image {index + 1}: {name}",
            )
            if name == GRID_CONDITION and len(grid) < GRID_IMAGES:
                grid.append((clean, noisy, output))
        image = {name: dict(methods) for name, methods in image.items()}
        merge_scores(scores, image)
        if on_image:
            on_image(index, image)
        if on_step:
            on_step(f"image {index + 1} done")
    return {name: dict(methods) for name, methods in scores.items()}, grid, skipped


def merge_scores(
    scores: Mapping[str, dict[str, MethodScore]], image: Mapping[str, Mapping[str, MethodScore]]
) -> None:
    """Add one image's scores (condition -> method -> score) to the running totals."""
    for condition, methods in image.items():
        for method, score in methods.items():
            scores[condition][method].merge(score)


def score_clean(
    methods: dict[str, MethodScore],
    clean: np.ndarray,
    denoise_model: Callable[[np.ndarray], np.ndarray],
) -> None:
    """The model on a clean image: what it does where there is nothing to remove."""
    output, seconds = _timed(denoise_model, clean)
    methods[MODEL].add(*image_scores(clean, output), seconds, clean.shape[0] * clean.shape[1] / 1e6)


def score_noisy(
    methods: dict[str, MethodScore],
    clean: np.ndarray,
    noisy: np.ndarray,
    denoise_model: Callable[[np.ndarray], np.ndarray],
    baselines: Sequence[Baseline],
    sigma: float,
    model_input: np.ndarray | None = None,
    baseline_input: np.ndarray | None = None,
    on_step: Callable[[str], None] | None = None,
    step: str = "",
) -> np.ndarray:
    """Score the noisy uint8 image itself, the model and every baseline against `clean`;
    returns the model's output. The model and float-input baselines may be given unrounded
    pixels instead (the papers' protocol); baselines are told `sigma`. `on_step` hears
    `step` and each baseline's name before it runs (baselines can take minutes)."""
    megapixels = clean.shape[0] * clean.shape[1] / 1e6
    methods[NOISY].add(*image_scores(clean, noisy), 0.0, megapixels)
    output, seconds = _timed(denoise_model, noisy if model_input is None else model_input)
    methods[MODEL].add(*image_scores(clean, output), seconds, megapixels)
    for baseline in baselines:
        if on_step:
            on_step(f"{step} {baseline.name}")
        given = noisy if baseline_input is None or not baseline.float_input else baseline_input
        result, seconds = _timed(baseline.denoise, given, sigma)
        methods[baseline.name].add(*image_scores(clean, result), seconds, megapixels)
    return output


def grid_image(triples: Sequence[tuple[np.ndarray, ...]], size: int = GRID_CROP) -> np.ndarray:
    """Original / noisy / denoised rows of size x size centre crops (small images mirror-padded)."""
    rows = [
        np.stack([to_unit_float(center_crop(tf.constant(t[k]), size)).numpy() for t in triples])
        for k in range(3)
    ]
    return comparison_grid(*rows)


def evaluation_files(
    root: str | Path, use_all: bool = False, exclude: str | Path | None = None
) -> tuple[list[Path], list[files.Skipped]]:
    """DATA's test split by the hash split (the images fit never trained on), or all of them,
    and the files of that part the scan could not use. `exclude` is the runs folder, left out
    as fit leaves it out: its grid.png previews are not benchmark images, and fit and
    evaluate must agree on the test split."""
    scan = files.scan(root, files.list_image_files(root, exclude=exclude))
    chosen = scan.files if use_all else scan.split("test")
    unusable = [s for s in scan.skipped if use_all or _split_of(s.path, root) == "test"]
    if not chosen:
        which = "usable images" if use_all else "test-split images (--all uses every image)"
        raise ValueError(f"no {which} in {root}")
    return [Path(f.path) for f in chosen], unusable


def _split_of(path: str, root: str | Path) -> str:
    return files.split_of(Path(path).relative_to(root).as_posix())


def evaluate_folder(
    model,
    root: str | Path,
    use_all: bool = False,
    crop: int | None = DEFAULT_EVAL_CROP,
    baseline_names: list[str] | None = None,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    on_step: Callable[[str], None] | None = None,
    condition_names: Sequence[str] | None = None,
    protocol: str = "stored",
    journal: Callable[[dict], Any] | None = None,
    exclude: str | Path | None = None,
) -> tuple[Evaluation, list[tuple[np.ndarray, ...]]]:
    """`tfdenoise evaluate DATA`: the model (denoising as predict does, tiled) vs baselines.
    `exclude`: a folder under DATA whose images are not scored (the runs folder).
    `crop` None scores full images (the papers' protocol does). `journal`, given the settings
    the scores depend on, opens a record of per-image scores to resume from and append to
    (tfdenoise.evaluate_journal.Journal; discarding it once results are saved is the caller's)."""
    check_crop(crop)
    chosen, notes = baselines.select(baseline_names)
    conditions = select_conditions(condition_names)
    paths, skipped = evaluation_files(root, use_all, exclude)

    def loader(path: Path) -> Callable[[], np.ndarray]:
        return lambda: scorable(centre_crop_uint8(files.load_rgb8(path), crop))

    all_names = [path.relative_to(root).as_posix() for path in paths]
    record = None
    if journal is not None:
        record = journal(
            {
                "data": str(Path(root).resolve()),
                "images": all_names,
                "crop": crop,
                "protocol": protocol,
                "conditions": list(conditions),
                "baselines": [baseline.name for baseline in chosen],
                "tile": tile,
                "overlap": overlap,
            }
        )
    scores, grid, failed = evaluate_images(
        lambda image: inference.denoise_rgb8(model, image, tile, overlap),
        [loader(path) for path in paths],
        chosen,
        conditions,
        on_step=on_step,
        protocol=protocol,
        done=record.done if record else None,
        on_image=record.record if record else None,
    )
    skipped += [files.Skipped(str(paths[index]), reason) for index, reason in failed.items()]
    if len(failed) == len(paths):
        raise ValueError("no usable image: " + "; ".join(f"{s.path}: {s.reason}" for s in skipped))
    names = [name for index, name in enumerate(all_names) if index not in failed]
    notes = [*notes, *(f"skipped {s.path}: {s.reason}" for s in skipped)]
    return Evaluation(names, crop, scores, notes, protocol), grid
