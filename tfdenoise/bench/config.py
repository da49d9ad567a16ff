"""The sizes of one `tfdenoise bench` run. Every stage reads them, so they live apart from
the package's `run`, which imports every stage."""

from __future__ import annotations

import dataclasses

from tfdenoise import config as config_module


@dataclasses.dataclass
class BenchConfig:
    """Sizes of one benchmark run; `quick()` is the ~4-minute, single-round variant."""

    # Existing image folder to measure on; None = generate `images` images from the sample photos.
    corpus: str | None = None
    # Images of the corpus used (the train split of its first `images` files, sorted by name).
    images: int = 600
    # Rounds: every figure once per round, interleaved (A B C A B C ...); medians over rounds.
    # 1 round = single noisy measurements (quick mode).
    rounds: int = 5
    # Seconds each pipeline figure is timed for per round, after its warm-up.
    pipeline_seconds: float = 5.0
    pipeline_warmup_batches: int = 5
    # Training: timed for `train_seconds` per round but at least `train_min_steps`, after
    # warm-up steps.
    train_seconds: float = 15.0
    train_min_steps: int = 5
    train_warmup_steps: int = 3
    # XLA on CPU is slow and its compile takes ~40 s: fewer timed steps.
    xla_min_steps: int = 3
    # Model and batch: FitConfig's defaults unless overridden (tests use a tiny U-Net).
    widths: tuple[int, ...] = config_module.FitConfig.widths
    batch_size: int = config_module.FitConfig.batch_size
    patch_size: int = config_module.FitConfig.patch_size
    patches_per_image: int = config_module.FitConfig.patches_per_image
    resize: int = 224  # the prototype's input size: output of the pipeline comparisons
    # Prediction: up to this many corpus images (largest first), each capped in size; every
    # round denoises them three times (1 pass, 2 passes, the whole folder job).
    predict_images: int = 2
    predict_max_megapixels: float = 4.0
    seed: int = 0

    @classmethod
    def quick(cls, **overrides) -> BenchConfig:
        values = dict(
            images=200,
            pipeline_seconds=3.0,
            pipeline_warmup_batches=3,
            train_seconds=8.0,
            train_min_steps=3,
            train_warmup_steps=2,
            rounds=1,
            xla_min_steps=2,
            predict_images=2,
            predict_max_megapixels=1.5,
        )
        values.update(overrides)
        return cls(**values)

    def validate(self) -> None:
        checks = [
            (self.images >= 2, "images must be >= 2"),
            (self.pipeline_seconds > 0 and self.train_seconds > 0, "seconds must be > 0"),
            (self.train_min_steps >= 1 and self.xla_min_steps >= 1, "min steps must be >= 1"),
            (self.rounds >= 1, "rounds must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.patch_size >= 8 and self.resize >= 8, "patch_size and resize must be >= 8"),
            (self.predict_images >= 1, "predict_images must be >= 1"),
            (len(self.widths) >= 1 and min(self.widths) >= 1, "widths must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
