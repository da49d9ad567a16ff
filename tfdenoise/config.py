"""Options for training: one dataclass, one source of truth for defaults and their reasons."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

# Defaults shared by several commands, written once.
DEFAULT_SPLIT = (0.7, 0.1, 0.2)  # train/val/test fractions; a file's split hashes its path
DEFAULT_MAX_PIXELS = 100_000_000  # refused before decoding (decompression bombs)
# zlib level of every PNG tfdenoise writes (records, predict outputs). Lossless at any level;
# on denoised Kodak photos level 3 encodes 3x faster than PIL's default 6 into 1% smaller files
# (level 1: 5x faster, 0.4% larger).
PNG_COMPRESS_LEVEL = 3
DEFAULT_TILE = 512  # side of the windows predict and evaluate run the model on; bounds memory
DEFAULT_OVERLAP = 32  # context shared by neighbouring tiles, halved at each seam
DEFAULT_CLIP_NORM = 1.0  # fit: Adam's global gradient-norm clip (FitConfig.clip_norm)
DEFAULT_PSNR_CAP_DB = 50.0  # fit: where the -PSNR loss saturates (FitConfig.psnr_cap)
DEFAULT_EVAL_CROP = 512  # evaluate scores this centre crop of each image by default
# tf.image.ssim's 11 x 11 window: validation crops, prototype-mode images and evaluate's crops
# need at least this side to be scored (smaller files are skipped by evaluate with that reason)
MIN_SCORED_SIDE = 11
# fit trains on what users' photos carry (realistic degradations beside the papers' white
# noise), as the bundled model does; "mix" (white, uniform, Poisson) was the default before.
DEFAULT_NOISE = "blind"

MODELS = ("unet", "prototype")
# The fixed noise conditions scored by evaluate and by fit's validation (implemented, in this
# order, by tfdenoise.degradations.catalog.ALL_CONDITIONS).
CONDITIONS = (
    "gaussian-15",
    "gaussian-25",
    "gaussian-50",
    "prototype",
    "jpeg-noise",
    "jpeg-30",
    "correlated",
    "jpeg-mild",
)
# fit --select-by: what picks best.keras and stops early, the run's own validation loss or the
# validation PSNR under one fixed condition.
VAL_LOSS = "val-loss"
NOISES = (
    "mix",
    "practical",
    "blind",
    "white",
    "prototype",
    "gaussian",
    "poisson-gaussian",
    "salt-pepper",
)
# Earlier names of the prototype's model and noise, still accepted: "seed" now means the
# random seed only.
PROTOTYPE_ALIASES = {"seed": "prototype"}
# `fit --degradation NAME P`: the degradations of "practical" whose probability can be set
DEGRADATIONS = (
    "clean",
    "gaussian",
    "spatial",
    "poisson",
    "grain",
    "uniform",
    "jpeg",
    "second-round",
    "unclipped",
    "compressed",
    "mild",
)
WEIGHTED_NOISES = ("practical", "blind")  # the --noise names `--degradation` applies to
SIGMA_SAMPLINGS = ("uniform", "low")  # see tfdenoise.noise.Gaussian
LOSSES = ("l1", "mse", "charbonnier", "psnr")
# evaluate --protocol: "stored" = noise clipped and rounded to 8 bits, as files are stored;
# "paper" = the protocol of the DnCNN/FFDNet/DRUNet papers (see tfdenoise.evaluate)
PROTOCOLS = ("stored", "paper")
# evaluate --reference: real noisy photos against clean ones (see tfdenoise.evaluate_pairs)
PAIRED_PROTOCOL = "paired"
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
XLA_MODES = ("auto", "on", "off")
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")  # see tfdenoise.train.distribute
EXPORT_FORMATS = ("saved_model",)  # see tfdenoise.export


@dataclasses.dataclass
class FitConfig:
    """Everything `tfdenoise fit` needs; saved as `config.json` in the run directory."""

    # Image folder, TFRecord folder (has manifest.json) or None for the skimage sample photos.
    data: str | None = None
    # Validate (val loss, --val-condition scores, --select-by) on every image of this folder
    # instead of DATA's val split: e.g. a few whole photos kept out of the training folder,
    # scored as the users' photos are; None = DATA's val split.
    val_data: str | None = None
    # "unet": residual U-Net that predicts the noise (default); "prototype": the prototype's
    # autoencoder.
    model: str = "unet"
    # U-Net channel widths, one per level; len(widths) - 1 downsamplings.
    widths: tuple[int, ...] = (32, 64, 128, 256)
    # Extra residual blocks after each level's encoder (one count per level); () = none.
    # Cheap depth at the coarse levels; --init-from a model with fewer blocks grows it.
    blocks: tuple[int, ...] = ()
    # Pixel unshuffle before the U-Net (FFDNet): 2 runs the top level at half scale on 2x2
    # blocks of pixels, ~1.3x faster on a CPU. --init-from a model with one level more and
    # half the unshuffle keeps every weight below its top level.
    unshuffle: int = 1
    # Training length. An epoch is a fixed number of steps because patches are sampled at random.
    epochs: int = 12
    steps_per_epoch: int = 100
    # Validation batches per epoch; None = the whole (finite) validation set.
    val_steps: int | None = None
    # Global batch size (split across replicas when several devices train).
    batch_size: int = 16
    # Side of the square training patches; a multiple of the model stride keeps shapes static.
    patch_size: int = 128
    # Prototype mode: resize every whole image to resize x resize instead of cropping patches.
    resize: int | None = None
    # Random patches taken from each decoded image: amortises full decodes of large non-JPEGs.
    patches_per_image: int = 4
    # Side of the deterministic centre crops used for validation and test metrics.
    eval_size: int = 256
    # Noise model for training (tfdenoise.degradations.catalog): "practical" is the blind mix
    # of realistic degradations (correlated, signal-dependent, film grain, JPEG after the
    # noise), "blind" (default) half that and half the papers' white Gaussian noise ("white"
    # alone: half unclipped floats, half stored 8-bit);
    # validation uses the same model, with fixed seeds.
    noise: str = DEFAULT_NOISE
    # Probabilities of the "practical" degradations by name (DEGRADATIONS); unnamed ones keep
    # the defaults of tfdenoise.degradations.practical.Practical.
    degradation_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    # Gaussian sigma range on the 0-255 scale: "gaussian", "white" (the white half of "blind"),
    # and the Gaussian part of "mix".
    sigma_range: tuple[float, float] = (0.0, 55.0)
    # How that sigma is drawn: "uniform", or "low" (density falling linearly to zero at the
    # top of the range) to spend a blind model's capacity on the mild noise of most scans.
    sigma_sampling: str = "uniform"
    # Loss: L1 trains blind denoisers to higher PSNR than MSE; "mse" reproduces the prototype;
    # "psnr" (per-image -PSNR) weighs faint and heavy noise alike, for fine-tuning a blind model.
    loss: str = "l1"
    # With loss "psnr": each image's -PSNR saturates at this many dB (losses.NegativePSNR).
    psnr_cap: float = DEFAULT_PSNR_CAP_DB
    # Peak learning rate of Adam; cosine decay to 1% over the whole run.
    lr: float = 1e-3
    # Adam's global gradient-norm clip; None = no clipping. A loss spike at lr 1e-3 once
    # killed a U-Net for good (every later output = its input); typical norms are ~0.25 (L1,
    # 4.6 M parameters), so 1.0 only cuts the spikes.
    clip_norm: float | None = DEFAULT_CLIP_NORM
    # Momentum of an exponential moving average of the weights (Polyak averaging, as BasicSR's
    # ema_decay), None = off. With it, validation, --select-by, best.keras and the grids use the
    # average, and the backup keeps both: fine-tunes swing by tenths of a dB between epochs.
    ema: float | None = None
    # "auto" chooses per machine (tfdenoise.hardware), or force a Keras mixed precision policy.
    precision: str = "auto"
    # XLA compilation of the train step: "auto" (GPU only), "on" or "off".
    xla: str = "auto"
    # Early stopping patience in epochs without a better selection score (select_by).
    patience: int = 5
    # Conditions (CONDITIONS) under which the validation images are also scored every epoch,
    # logged as val_psnr_<name>: the run's own mixed validation loss can hide what matters
    # for a use (correlated noise moved by 0.7 dB between two epochs at nearly the same loss).
    val_conditions: tuple[str, ...] = ()
    # What picks best.keras and stops early: VAL_LOSS, or a condition's validation PSNR
    # (scored every epoch even when not in val_conditions).
    select_by: str = VAL_LOSS
    # Train/val/test fractions; a file's split is a hash of its relative path.
    split: tuple[float, float, float] = DEFAULT_SPLIT
    # Images above this many pixels are refused before decoding (decompression bombs).
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Start from this model's weights instead of random ones (fine-tuning): a .keras file, a
    # run directory, "best" or "bundled"; its architecture must match model/widths (it may have
    # fewer blocks: see `blocks`; the CLI takes the architecture flags not given from it).
    # None = random.
    init_from: str | None = None
    # Seed for the model's initial weights and the fixed evaluation noise.
    seed: int = 0
    # Optional suffix of the run directory name: runs/<timestamp>-<name>.
    name: str | None = None
    # Parent directory of the run directories.
    runs_dir: str = "runs"
    # tf.distribute strategy: "auto" = mirrored on several GPUs, multi-worker when TF_CONFIG
    # names a cluster, else default (one device).
    strategy: str = "auto"
    # Run directory name shared by all workers of a multi-worker run (runs/<run_id>); None =
    # $TFDENOISE_RUN_ID, else a timestamped name. Re-running with the same id resumes.
    run_id: str | None = None
    # tf.data service dispatcher (grpc://HOST:PORT) that decodes and crops training images;
    # None = decode on this host.
    data_service: str | None = None

    def __post_init__(self) -> None:
        self.model = PROTOTYPE_ALIASES.get(self.model, self.model)
        self.noise = PROTOTYPE_ALIASES.get(self.noise, self.noise)

    def validate(self) -> None:
        """Reject impossible settings with a message a user can act on."""
        checks = [
            (self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}"),
            (self.noise in NOISES, f"noise must be one of {NOISES}, got {self.noise!r}"),
            (
                self.sigma_sampling in SIGMA_SAMPLINGS,
                f"sigma_sampling must be one of {SIGMA_SAMPLINGS}, got {self.sigma_sampling!r}",
            ),
            (self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}"),
            (
                set(self.val_conditions) <= set(CONDITIONS),
                f"val_conditions must be among {CONDITIONS}, got {list(self.val_conditions)}",
            ),
            (
                self.select_by == VAL_LOSS or self.select_by in CONDITIONS,
                f"select_by must be {VAL_LOSS!r} or one of {CONDITIONS}, got {self.select_by!r}",
            ),
            (20.0 <= self.psnr_cap <= 100.0, "psnr_cap must be in [20, 100] dB"),
            (
                not self.degradation_weights or self.noise in WEIGHTED_NOISES,
                "degradation weights apply to noise 'practical' or 'blind' only",
            ),
            (
                set(self.degradation_weights) <= set(DEGRADATIONS),
                f"degradations must be some of {DEGRADATIONS}",
            ),
            (
                all(0.0 <= p <= 1.0 for p in self.degradation_weights.values()),
                "degradation probabilities must be in [0, 1]",
            ),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.xla in XLA_MODES, f"xla must be one of {XLA_MODES}"),
            (self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.steps_per_epoch >= 1, "steps_per_epoch must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.patch_size >= 8, "patch_size must be >= 8"),
            (self.patches_per_image >= 1, "patches_per_image must be >= 1"),
            (
                self.eval_size >= MIN_SCORED_SIDE,
                f"eval_size must be >= {MIN_SCORED_SIDE} (SSIM's window)",
            ),
            (
                self.resize is None or self.resize >= MIN_SCORED_SIDE,
                f"resize must be >= {MIN_SCORED_SIDE} (SSIM's window)",
            ),
            (
                len(self.split) == 3 and min(self.split) >= 0 and sum(self.split) > 0,
                "split needs three non-negative fractions",
            ),
            (
                0 <= self.sigma_range[0] <= self.sigma_range[1],
                "sigma_range must be 0 <= min <= max",
            ),
            (self.lr > 0, "lr must be > 0"),
            (self.clip_norm is None or self.clip_norm > 0, "clip_norm must be > 0 or None"),
            (
                self.ema is None or 0 < self.ema < 1,
                "ema must be between 0 and 1 (exclusive) or None",
            ),
            (len(self.widths) >= 1 and min(self.widths) >= 1, "widths must be positive"),
            (self.unshuffle >= 1, "unshuffle must be >= 1"),
            (
                not self.blocks or (len(self.blocks) == len(self.widths) and min(self.blocks) >= 0),
                "blocks needs one count >= 0 per width",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def scored_conditions(self) -> tuple[str, ...]:
        """The conditions scored on the validation images each epoch: val_conditions, then
        the select_by condition if it is not among them."""
        chosen = () if self.select_by == VAL_LOSS else (self.select_by,)
        return tuple(dict.fromkeys((*self.val_conditions, *chosen)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FitConfig:
        """Build from a saved config, ignoring unknown keys (older or newer versions)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in fields}
        for key in ("widths", "blocks", "sigma_range", "split", "val_conditions"):
            if key in kwargs and kwargs[key] is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path) -> FitConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
