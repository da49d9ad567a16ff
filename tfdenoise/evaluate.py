"""Scoring a denoiser: PSNR/SSIM/colour shift per fixed noise condition, and comparison grids.

Noise here is stateless and seeded by each batch's first element index plus the condition, so
every model and every run is scored on exactly the same noisy images.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from tfdenoise.baselines import Baseline
from tfdenoise.models import EVAL_SEED_SALT, PSNR_CAP, to_unit_float
from tfdenoise.noise import EVAL_CONDITIONS, Gaussian, NoiseModel


@dataclasses.dataclass
class ConditionScore:
    """Mean scores over the images of one noise condition."""

    images: int
    psnr_noisy: float
    psnr_denoised: float
    ssim_noisy: float
    ssim_denoised: float

    @property
    def psnr_gain(self) -> float:
        return self.psnr_denoised - self.psnr_noisy


def condition_seed(index: tf.Tensor, condition_number: int) -> tf.Tensor:
    """The fixed seed of a batch under a condition."""
    return tf.stack([tf.cast(index, tf.int32), tf.constant(EVAL_SEED_SALT + 1 + condition_number)])


def _scores(clean, image):
    psnr = tf.minimum(tf.image.psnr(clean, image, max_val=1.0), PSNR_CAP)
    return psnr, tf.image.ssim(clean, image, max_val=1.0)


def _scoring_step(model, condition: NoiseModel, number: int):
    """A compiled step scoring one batch under one condition (a factory: one trace each)."""

    @tf.function(reduce_retracing=True)
    def step(clean, index):
        clean = to_unit_float(clean)
        noisy = condition(clean, condition_seed(index[0], number))
        denoised = tf.clip_by_value(model(noisy, training=False), 0.0, 1.0)
        (psnr_noisy, ssim_noisy), (psnr_denoised, ssim_denoised) = (
            _scores(clean, noisy), _scores(clean, denoised))
        return psnr_noisy, psnr_denoised, ssim_noisy, ssim_denoised

    return step


def evaluate_conditions(
    model,
    dataset: tf.data.Dataset,
    conditions: Mapping[str, NoiseModel] = EVAL_CONDITIONS,
) -> dict[str, ConditionScore]:
    """Mean PSNR/SSIM of the noisy input and of the model's output, per condition.

    `dataset` yields {"clean": uint8 batch, "index": element indices}, as eval_pipeline does.
    """
    results = {}
    for number, (name, condition) in enumerate(conditions.items()):
        step = _scoring_step(model, condition, number)
        sums = np.zeros(4)
        count = 0
        for batch in dataset:
            values = [v.numpy() for v in step(batch["clean"], batch["index"])]
            sums += [v.sum() for v in values]
            count += len(values[0])
        if count == 0:
            raise ValueError("no images to evaluate")
        means = sums / count
        results[name] = ConditionScore(count, *map(float, means))
    return results


def denoise_examples(model, clean_uint8: tf.Tensor, condition: NoiseModel,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, noisy, denoised) float arrays in [0, 1] for a small batch, with fixed noise."""
    clean = to_unit_float(clean_uint8)
    noisy = condition(clean, tf.constant([seed, EVAL_SEED_SALT], tf.int32))
    denoised = tf.clip_by_value(model(noisy, training=False), 0.0, 1.0)
    return clean.numpy(), noisy.numpy(), denoised.numpy()


def comparison_grid(clean: np.ndarray, noisy: np.ndarray, denoised: np.ndarray,
                    gap: int = 4) -> np.ndarray:
    """One uint8 image: originals on the top row, noisy in the middle, denoised at the bottom."""
    rows = []
    for batch in (clean, noisy, denoised):
        tiles = []
        for image in batch:
            tiles += [image, np.ones((image.shape[0], gap, 3), image.dtype)]
        rows += [np.concatenate(tiles[:-1], axis=1)]
        rows += [np.ones((gap, rows[-1].shape[1], 3), rows[-1].dtype)]
    grid = np.concatenate(rows[:-1], axis=0)
    return np.round(np.clip(grid, 0.0, 1.0) * 255).astype(np.uint8)


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write a uint8 image atomically (temp file then rename)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image).save(temporary, format="PNG")
    temporary.replace(path)


# --- `tfdenoise evaluate`: whole images (or large centre crops) against classical baselines ---

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

    def add(self, psnr: float, ssim: float, delta_e: float, seconds: float,
            megapixels: float) -> None:
        self.per_image_psnr.append(psnr)
        self.images += 1
        self.psnr_sum += psnr
        self.ssim_sum += ssim
        self.delta_e_sum += delta_e
        self.seconds += seconds
        self.megapixels += megapixels

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

    def to_json(self) -> dict:
        return {
            "images": self.images,
            "crop": self.crop,
            "notes": self.notes,
            "scores": {
                condition: {
                    method: {"psnr": s.psnr, "ssim": s.ssim, "delta_e": s.delta_e,
                             "images": s.images,
                             "megapixels_per_second": s.megapixels_per_second,
                             "per_image_psnr": s.per_image_psnr}
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


def oracle_sigma(condition: NoiseModel, clean: np.ndarray, noisy: np.ndarray) -> float:
    """The sigma (0-255) a baseline is told: the nominal one for fixed-sigma Gaussian noise,
    else the per-image std of the noise actually added (the prototype's noise has a random
    amplitude per image)."""
    if isinstance(condition, Gaussian) and condition.sigma_min == condition.sigma_max:
        return float(condition.sigma_min)
    return float(np.std(noisy.astype(np.float32) - clean.astype(np.float32)))


def add_noise_uint8(clean: np.ndarray, condition: NoiseModel, index: int,
                    condition_number: int) -> np.ndarray:
    """Fixed, seeded noise, quantised to uint8 like a real noisy file (every method sees it)."""
    noisy = condition(to_unit_float(tf.convert_to_tensor(clean[None])),
                      condition_seed(index, condition_number))
    return tf.cast(tf.round(noisy[0] * 255.0), tf.uint8).numpy()


COLOUR_SIGMA = 2.0  # px: the low-pass before Delta E; removes sigma-25 noise, keeps colour areas
COLOUR_STRIPE_ROWS = 256  # rows per stripe: Lab float64 temporaries stay small on any image


def _low_pass_lab(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-blurred (per channel, edges replicated) uint8 sRGB -> CIELAB (D65)."""
    from skimage.color import rgb2lab
    from skimage.filters import gaussian

    blurred = gaussian(rgb.astype(np.float32) / 255.0, sigma=sigma, mode="nearest",
                       channel_axis=-1, preserve_range=True)
    return rgb2lab(np.clip(blurred, 0.0, 1.0))


def colour_shift(clean: np.ndarray, result: np.ndarray, sigma: float = COLOUR_SIGMA) -> float:
    """Mean CIEDE2000 Delta E between low-passed uint8 RGB images.

    The low-pass averages zero-mean noise (and residual grain) away, so what remains is a
    shift of colour over areas -- what a viewer of a restored archive would see as "the
    colours changed". Delta E 1 is about the smallest difference a person notices. Computed in
    stripes with 4 sigma of real context above and below, so the result equals the
    whole-image computation while memory stays a few MB for any image size.
    """
    from skimage.color import deltaE_ciede2000

    if clean.shape != result.shape:
        raise ValueError(f"shapes differ: {clean.shape} vs {result.shape}")
    height = clean.shape[0]
    margin = int(np.ceil(4 * sigma))
    total = 0.0
    for top in range(0, height, COLOUR_STRIPE_ROWS):
        start, stop = max(0, top - margin), min(height, top + COLOUR_STRIPE_ROWS + margin)
        keep = slice(top - start, min(height, top + COLOUR_STRIPE_ROWS) - start)
        lab_clean = _low_pass_lab(clean[start:stop], sigma)[keep]
        lab_result = _low_pass_lab(result[start:stop], sigma)[keep]
        total += float(deltaE_ciede2000(lab_clean, lab_result, channel_axis=-1).sum())
    return total / (clean.shape[0] * clean.shape[1])


def image_scores(clean: np.ndarray, result: np.ndarray) -> tuple[float, float, float]:
    """PSNR (dB), SSIM and colour shift (Delta E) of a uint8 result against the clean image."""
    clean_f, result_f = to_unit_float(tf.constant(clean)), to_unit_float(tf.constant(result))
    psnr, ssim = _scores(clean_f, result_f)
    return float(psnr), float(ssim), colour_shift(clean, result)


def _timed(denoise, noisy: np.ndarray, *args) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    result = denoise(noisy, *args)
    return result, time.perf_counter() - started


def select_conditions(names: Sequence[str] | None) -> dict[str, NoiseModel]:
    """The EVAL_CONDITIONS named (all of them for None), in their fixed order."""
    if names is None:
        return dict(EVAL_CONDITIONS)
    if not names or set(names) - set(EVAL_CONDITIONS):
        raise ValueError(f"noise conditions must be some of {', '.join(EVAL_CONDITIONS)}; "
                         f"got {', '.join(names) or 'none'}")
    return {name: noise for name, noise in EVAL_CONDITIONS.items() if name in names}


def evaluate_images(
    denoise_model: Callable[[np.ndarray], np.ndarray],
    load_clean: Sequence[Callable[[], np.ndarray]],
    baselines: Sequence[Baseline] = (),
    conditions: Mapping[str, NoiseModel] = EVAL_CONDITIONS,
    on_step: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict[str, MethodScore]], list[tuple[np.ndarray, ...]]]:
    """Score the model, the noisy input and baselines on every image under every condition.

    `conditions` is EVAL_CONDITIONS or part of it (select_conditions). Each condition's noise
    is seeded by its place in EVAL_CONDITIONS, not in `conditions`, so a run over some of them
    scores the same noisy images as a full run: an hour of CBM3D can go to one noise level.
    Images are loaded one at a time (full-size photos would not all fit in memory). Returns
    the scores and up to GRID_IMAGES (clean, noisy, denoised) triples under GRID_CONDITION.
    """
    numbers = {name: number for number, name in enumerate(EVAL_CONDITIONS)}
    scores: dict[str, dict[str, MethodScore]] = {
        name: collections.defaultdict(MethodScore) for name in (*conditions, CLEAN)}
    grid = []
    for index, load in enumerate(load_clean):
        clean = load()
        megapixels = clean.shape[0] * clean.shape[1] / 1e6
        output, seconds = _timed(denoise_model, clean)
        scores[CLEAN][MODEL].add(*image_scores(clean, output), seconds, megapixels)
        for name, condition in conditions.items():
            noisy = add_noise_uint8(clean, condition, index, numbers[name])
            sigma = oracle_sigma(condition, clean, noisy)
            scores[name][NOISY].add(*image_scores(clean, noisy), 0.0, megapixels)
            output, seconds = _timed(denoise_model, noisy)
            scores[name][MODEL].add(*image_scores(clean, output), seconds, megapixels)
            if name == GRID_CONDITION and len(grid) < GRID_IMAGES:
                grid.append((clean, noisy, output))
            for baseline in baselines:
                if on_step:
                    on_step(f"image {index + 1}: {name} {baseline.name}")
                result, seconds = _timed(baseline.denoise, noisy, sigma)
                scores[name][baseline.name].add(*image_scores(clean, result), seconds,
                                                megapixels)
        if on_step:
            on_step(f"image {index + 1} done")
    return {name: dict(methods) for name, methods in scores.items()}, grid


def grid_image(triples: Sequence[tuple[np.ndarray, ...]], size: int = GRID_CROP) -> np.ndarray:
    """Original / noisy / denoised rows of size x size centre crops (small images mirror-padded)."""
    from tfdenoise.data import center_crop

    rows = [
        np.stack([to_unit_float(center_crop(tf.constant(t[k]), size)).numpy() for t in triples])
        for k in range(3)
    ]
    return comparison_grid(*rows)


def evaluation_files(root: str | Path, use_all: bool = False) -> list[Path]:
    """DATA's test split by the hash split (the images fit never trained on), or all of them."""
    from tfdenoise import images

    scan = images.scan(root)
    files = scan.files if use_all else scan.split("test")
    if not files:
        which = "usable images" if use_all else "test-split images (--all uses every image)"
        raise ValueError(f"no {which} in {root}")
    return [Path(f.path) for f in files]


def evaluate_folder(
    model,
    root: str | Path,
    use_all: bool = False,
    crop: int | None = 512,
    baseline_names: list[str] | None = None,
    tile: int = 512,
    overlap: int = 32,
    on_step: Callable[[str], None] | None = None,
    condition_names: Sequence[str] | None = None,
) -> tuple[Evaluation, list[tuple[np.ndarray, ...]]]:
    """`tfdenoise evaluate DATA`: the model (denoising as predict does, tiled) vs baselines."""
    from tfdenoise import baselines, images, predict

    chosen, notes = baselines.select(baseline_names)
    conditions = select_conditions(condition_names)
    files = evaluation_files(root, use_all)

    def loader(path: Path) -> Callable[[], np.ndarray]:
        return lambda: centre_crop_uint8(images.load_rgb8(path), crop)

    scores, grid = evaluate_images(
        lambda image: predict.denoise_rgb8(model, image, tile, overlap),
        [loader(path) for path in files], chosen, conditions, on_step=on_step)
    names = [path.relative_to(root).as_posix() for path in files]
    return Evaluation(names, crop, scores, notes), grid
