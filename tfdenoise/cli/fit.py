"""`tfdenoise fit`: train a denoiser (tfdenoise.train.fit) with a rich progress bar."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import click
from rich.table import Table

from tfdenoise import config as config_module
from tfdenoise.cli.common import (
    FIT_DEFAULTS,
    SPLIT_DEFAULT,
    AliasedChoice,
    Counts,
    SplitFractions,
    console,
    describe,
    log,
    note_other_files,
    progress_bar,
)

DEFAULTS = FIT_DEFAULTS


def rich_progress_callback():
    """A Keras callback drawing one rich progress bar per epoch and a line of results."""
    import keras

    from tfdenoise.train.callbacks import VAL_PSNR_PREFIX

    class RichProgress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.progress = progress_bar()
            self.task = None

        def on_train_begin(self, logs=None):
            self.progress.start()

        def on_epoch_begin(self, epoch, logs=None):
            self.task = self.progress.add_task(
                f"epoch {epoch + 1}/{self.params['epochs']}", total=self.params["steps"], status=""
            )

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            status = f"loss {logs.get('loss', math.nan):.4f} psnr {logs.get('psnr', math.nan):.2f}"
            self.progress.update(self.task, completed=batch + 1, status=status)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.progress.update(self.task, completed=self.params["steps"], status="")
            conditions = "".join(
                f" | {key.removeprefix(VAL_PSNR_PREFIX)} {value:.2f} dB"
                for key, value in logs.items()
                if key.startswith(VAL_PSNR_PREFIX)
            )
            self.progress.console.print(
                f"epoch {epoch + 1}: loss {logs.get('loss', math.nan):.4f} "
                f"psnr {logs.get('psnr', math.nan):.2f} dB | val_loss "
                f"{logs.get('val_loss', math.nan):.4f} val_psnr "
                f"{logs.get('val_psnr', math.nan):.2f} dB{conditions}",
                highlight=False,
            )

        def on_train_end(self, logs=None):
            self.progress.stop()

    return RichProgress()


@click.command()
@click.argument("data", required=False, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--model",
    type=AliasedChoice(config_module.MODELS, config_module.PROTOTYPE_ALIASES),
    default=DEFAULTS.model,
    show_default=True,
    help="unet: residual U-Net; prototype (or seed): the prototype autoencoder.",
)
@click.option(
    "--widths",
    type=Counts(1),
    default=",".join(map(str, DEFAULTS.widths)),
    show_default=True,
    help="U-Net channels per level (len - 1 downsamplings).",
)
@click.option(
    "--blocks",
    type=Counts(0),
    default=None,
    help="Extra residual blocks after each level's encoder, one count per width, e.g. "
    "0,0,1,1 (default: none); --init-from a model with fewer grows it.",
)
@click.option(
    "--unshuffle",
    type=click.IntRange(1),
    default=DEFAULTS.unshuffle,
    show_default=True,
    help="Pixel unshuffle before the U-Net (FFDNet): 2 runs its top level on 2x2 pixel "
    "blocks at half scale, ~1.3x faster but far slower to train (docs/training.md). "
    "--init-from a U-Net with one more level: e.g. --widths 64,128,256 --blocks 0,1,2 "
    "--unshuffle 2 from 32,64,128,256 and 0,0,1,2.",
)
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=DEFAULTS.epochs,
    show_default=True,
    help="Maximum epochs (early stopping may end sooner).",
)
@click.option(
    "--steps-per-epoch",
    type=click.IntRange(1),
    default=DEFAULTS.steps_per_epoch,
    show_default=True,
    help="Training steps per epoch.",
)
@click.option(
    "--val-steps",
    type=click.IntRange(1),
    default=None,
    help="Validation batches per epoch (default: the whole validation split).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=DEFAULTS.batch_size,
    show_default=True,
    help="Global batch size.",
)
@click.option(
    "--patch-size",
    type=click.IntRange(8),
    default=DEFAULTS.patch_size,
    show_default=True,
    help="Side of the random training crops.",
)
@click.option(
    "--resize",
    type=click.IntRange(config_module.MIN_SCORED_SIDE),
    default=None,
    help="Prototype mode: resize whole images to this square size instead of cropping.",
)
@click.option(
    "--eval-size",
    type=click.IntRange(config_module.MIN_SCORED_SIDE),
    default=DEFAULTS.eval_size,
    show_default=True,
    help="Side of the centre crops scored in validation and test.",
)
@click.option(
    "--noise",
    type=AliasedChoice(config_module.NOISES, config_module.PROTOTYPE_ALIASES),
    default=DEFAULTS.noise,
    show_default=True,
    help="Training noise model: practical = realistic blind degradations (correlated, "
    "signal-dependent, film grain, JPEG after the noise); blind = half practical, half white "
    "Gaussian (--sigma-range) as the papers add it, as the bundled model was trained; white = "
    "that white half alone (half unclipped, half 8-bit), for the papers' benchmark; mix = "
    "blind Gaussian/uniform/Poisson mixture (white noise only); prototype (or seed) = the "
    "prototype's uniform noise.",
)
@click.option(
    "--sigma-range",
    type=(float, float),
    default=DEFAULTS.sigma_range,
    show_default=True,
    help="Gaussian sigma range on the 0-255 scale.",
)
@click.option(
    "--sigma-sampling",
    type=click.Choice(config_module.SIGMA_SAMPLINGS),
    default=DEFAULTS.sigma_sampling,
    show_default=True,
    help="How sigma is drawn in that range; low = density falling linearly to zero "
    "at the top, for the mild noise most scans have.",
)
@click.option(
    "--degradation",
    "degradation_weights",
    type=(click.Choice(config_module.DEGRADATIONS), click.FloatRange(0, 1)),
    multiple=True,
    metavar="NAME P",
    help="With --noise practical (or blind: its practical half): the probability of one "
    "degradation (repeatable), e.g. "
    "--degradation jpeg 0.9 --degradation clean 0.1.",
)
@click.option(
    "--loss",
    type=click.Choice(config_module.LOSSES),
    default=DEFAULTS.loss,
    show_default=True,
    help="Training loss; psnr (per-image -PSNR) weighs faint and heavy noise alike.",
)
@click.option(
    "--psnr-cap",
    type=click.FloatRange(20, 100),
    default=DEFAULTS.psnr_cap,
    show_default=True,
    help="With --loss psnr: an image restored above this many dB earns no more; 40 lets a "
    "blind model learn JPEG artefacts instead of passing every clean-looking image through.",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.lr,
    show_default=True,
    help="Peak learning rate (cosine decay).",
)
@click.option(
    "--clip-norm",
    type=click.FloatRange(min=0),
    default=DEFAULTS.clip_norm,
    show_default=True,
    help="Clip the gradients' global norm to this (cuts loss spikes); 0 = no clipping.",
)
@click.option(
    "--ema",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=None,
    metavar="MOMENTUM",
    help="Keep a moving average of the weights (e.g. 0.999) and validate, select and save it "
    "as best.keras; off by default.",
)
@click.option(
    "--precision",
    type=click.Choice(config_module.PRECISIONS),
    default=DEFAULTS.precision,
    show_default=True,
    help="Numeric precision; auto picks per machine and says why.",
)
@click.option(
    "--xla",
    type=click.Choice(config_module.XLA_MODES),
    default=DEFAULTS.xla,
    show_default=True,
    help="XLA-compile the train step; auto = on GPUs only.",
)
@click.option(
    "--split",
    type=SplitFractions(),
    default=SPLIT_DEFAULT,
    show_default=True,
    help="Train/val/test fractions (a file's split is a hash of its relative path).",
)
@click.option(
    "--patience",
    type=click.IntRange(1),
    default=DEFAULTS.patience,
    show_default=True,
    help="Early stopping patience in epochs.",
)
@click.option(
    "--val-data",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Validate on every image in this folder instead of DATA's val split (e.g. whole "
    "photos kept out of DATA: they rank epochs as the benchmark does; docs/training.md).",
)
@click.option(
    "--val-condition",
    "val_conditions",
    multiple=True,
    type=click.Choice(config_module.CONDITIONS),
    help="Also score the validation images under this fixed condition every epoch "
    "(val_psnr_NAME in history.json and TensorBoard); repeatable.",
)
@click.option(
    "--select-by",
    type=click.Choice((config_module.VAL_LOSS, *config_module.CONDITIONS)),
    default=DEFAULTS.select_by,
    show_default=True,
    help="What picks best.keras and stops early: the validation loss under the training "
    "noise, or the validation PSNR under one condition (e.g. correlated for scans).",
)
@click.option(
    "--init-from",
    default=None,
    metavar="MODEL",
    help="Fine-tune: start from this model's weights (a .keras file, a run directory, "
    "'best' or 'bundled'); its widths, blocks and unshuffle are used unless given.",
)
@click.option(
    "--seed",
    type=int,
    default=DEFAULTS.seed,
    show_default=True,
    help="Seed for initial weights and data order.",
)
@click.option("--name", default=None, help="Suffix for the run directory name.")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False),
    default=DEFAULTS.runs_dir,
    show_default=True,
    help="Where run directories are created.",
)
@click.option(
    "--strategy",
    type=click.Choice(config_module.STRATEGIES),
    default=DEFAULTS.strategy,
    show_default=True,
    help="tf.distribute strategy; auto: mirrored on several GPUs, multi-worker when "
    "TF_CONFIG names a cluster, else default.",
)
@click.option(
    "--run-id",
    default=None,
    envvar="TFDENOISE_RUN_ID",
    help="Run directory name shared by all workers (runs/RUN_ID); required for "
    "multi-worker runs; the same id again resumes. [env: TFDENOISE_RUN_ID]",
)
@click.option(
    "--data-service",
    default=None,
    metavar="grpc://HOST:PORT",
    help="tf.data service dispatcher that decodes and crops the training images.",
)
@click.option(
    "--resume",
    "resume",
    is_flag=False,
    flag_value="last",
    default=None,
    metavar="[RUN]",
    help="Continue an interrupted run (a run directory; alone: the latest run) with its own "
    "options; only --epochs, when given, changes it (extends it, stretching its cosine schedule).",
)
def fit(data, resume, runs_dir, **options) -> None:
    """Train a denoiser on DATA (an image folder or a make-tfrecords folder; omitted: the
    scikit-image sample photos)."""
    from tfdenoise import runs
    from tfdenoise.io.records.folder import is_records_folder
    from tfdenoise.train.fit import fit as train

    options["blocks"] = options["blocks"] or ()
    options["val_conditions"] = tuple(options["val_conditions"])
    options["degradation_weights"] = dict(options["degradation_weights"])
    options["clip_norm"] = options["clip_norm"] or None  # 0 = off
    if options["init_from"] and resume is None:
        options.update(_source_architecture(options["init_from"], runs_dir))
    config = config_module.FitConfig(data=data, runs_dir=runs_dir, **options)
    resume_dir = None
    if resume is not None:
        try:
            resume_dir = runs.latest_run(runs_dir) if resume == "last" else Path(resume)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        ignored = _ignored_on_resume()
        if ignored:
            log(
                "note: ignored with --resume (the run keeps the options it started with): "
                + ", ".join(ignored)
            )
    if data is not None and resume is None and not is_records_folder(data):
        note_other_files(data, exclude=runs_dir)
    try:
        result = train(
            config,
            resume=resume_dir,
            extra_callbacks=[rich_progress_callback()],
            log=log,
            extend_to=config.epochs if _given("epochs") else None,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    except OSError as error:  # disk full, read-only runs dir: earlier files stay valid
        console.print(
            f"Error: cannot write the run: {describe(error)}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        # A failed HDF5 write (Keras's backup file) leaves h5py objects that segfault when
        # finalised at interpreter shutdown. Every file of ours is complete (atomic writes)
        # and nothing is pending, so leave without running finalizers.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    _print_metrics(result.metrics)
    log(f"run directory: {result.run_dir}")


def _source_architecture(init_from: str, runs_dir: str) -> dict:
    """The --widths, --blocks and --unshuffle the user left at their defaults, taken from the
    U-Net that --init-from names, so that fine-tuning it needs no architecture flags."""
    from tfdenoise import checkpoints

    try:
        path = checkpoints.resolve_model_path(init_from, runs_dir)
    except ValueError as error:
        raise click.UsageError(f"--init-from: {error}") from None
    architecture = checkpoints.unet_architecture(path)
    if architecture is None:
        return {}
    taken = {name: value for name, value in architecture.items() if not _given(name)}
    if taken:
        described = ", ".join(
            f"{name} {','.join(map(str, v)) if isinstance(v, tuple) else v}"
            for name, v in taken.items()
        )
        log(f"architecture of --init-from: {described}")
    return taken


def _given(option: str) -> bool:
    """Whether the user set an option (command line or environment), not left its default."""
    source = click.get_current_context().get_parameter_source(option)
    return source is not click.core.ParameterSource.DEFAULT


def _ignored_on_resume() -> list[str]:
    """What the user set that a resumed run does not take: it keeps its own options, and
    only --epochs (an extension) and --runs-dir (where the latest run is) count."""
    context = click.get_current_context()
    return [
        param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
        for param in context.command.params
        if param.name not in ("resume", "epochs", "runs_dir") and _given(param.name)
    ]


def _print_metrics(metrics: dict) -> None:
    table = Table(title=f"test split ({metrics['test_images']} images, fixed noise)")
    for column in (
        "condition",
        "PSNR noisy",
        "PSNR denoised",
        "gain",
        "SSIM noisy",
        "SSIM denoised",
    ):
        table.add_column(column, justify="right")
    for name, score in metrics["test"].items():
        table.add_row(
            name,
            f"{score['psnr_noisy']:.2f}",
            f"{score['psnr_denoised']:.2f}",
            f"{score['psnr_denoised'] - score['psnr_noisy']:+.2f}",
            f"{score['ssim_noisy']:.3f}",
            f"{score['ssim_denoised']:.3f}",
        )
    console.print(table)
