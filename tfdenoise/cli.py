"""The `tfdenoise` command line: thin click commands over library functions; rich lives here."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the CLI

import click  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)
from rich.table import Table  # noqa: E402

from tfdenoise import config as config_module  # noqa: E402

console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False, disable=not console.is_terminal,
    )


def _rich_progress_callback():
    """A Keras callback drawing one rich progress bar per epoch and a line of results."""
    import keras

    class RichProgress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.progress = _progress()
            self.task = None

        def on_train_begin(self, logs=None):
            self.progress.start()

        def on_epoch_begin(self, epoch, logs=None):
            self.task = self.progress.add_task(
                f"epoch {epoch + 1}/{self.params['epochs']}", total=self.params["steps"],
                status="")

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            status = f"loss {logs.get('loss', math.nan):.4f} psnr {logs.get('psnr', math.nan):.2f}"
            self.progress.update(self.task, completed=batch + 1, status=status)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.progress.update(self.task, completed=self.params["steps"], status="")
            self.progress.console.print(
                f"epoch {epoch + 1}: loss {logs.get('loss', math.nan):.4f} "
                f"psnr {logs.get('psnr', math.nan):.2f} dB | val_loss "
                f"{logs.get('val_loss', math.nan):.4f} val_psnr "
                f"{logs.get('val_psnr', math.nan):.2f} dB")

        def on_train_end(self, logs=None):
            self.progress.stop()

    return RichProgress()


class SplitFractions(click.ParamType):
    """`0.7,0.1,0.2` -> (0.7, 0.1, 0.2): train/val/test fractions."""

    name = "TRAIN,VAL,TEST"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            fractions = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not three comma-separated numbers", param, ctx)
        if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
            self.fail(f"{value!r}: need three non-negative fractions, not all zero", param, ctx)
        return fractions


class Counts(click.ParamType):
    """`32,64,128` -> (32, 64, 128): one integer per U-Net level, each at least `minimum`."""

    name = "N,N,..."

    def __init__(self, minimum: int):
        self.minimum = minimum

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            counts = tuple(int(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not comma-separated integers", param, ctx)
        if min(counts) < self.minimum:
            self.fail(f"{value!r}: every value must be >= {self.minimum}", param, ctx)
        return counts


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfdenoise")
def main() -> None:
    """Train and serve convolutional image denoisers with TensorFlow."""


DEFAULTS = config_module.FitConfig()


@main.command()
@click.argument("data", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--model", type=click.Choice(config_module.MODELS), default=DEFAULTS.model,
              show_default=True, help="unet: residual U-Net; seed: the prototype autoencoder.")
@click.option("--widths", type=Counts(1), default=",".join(map(str, DEFAULTS.widths)),
              show_default=True, help="U-Net channels per level (len - 1 downsamplings).")
@click.option("--blocks", type=Counts(0), default=None,
              help="Extra residual blocks after each level's encoder, one count per width, e.g. "
                   "0,0,1,1 (default: none); --init-from a model with fewer grows it.")
@click.option("--epochs", type=click.IntRange(1), default=DEFAULTS.epochs, show_default=True,
              help="Maximum epochs (early stopping may end sooner).")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=DEFAULTS.steps_per_epoch,
              show_default=True, help="Training steps per epoch.")
@click.option("--val-steps", type=click.IntRange(1), default=None,
              help="Validation batches per epoch (default: the whole validation split).")
@click.option("--batch-size", type=click.IntRange(1), default=DEFAULTS.batch_size,
              show_default=True, help="Global batch size.")
@click.option("--patch-size", type=click.IntRange(8), default=DEFAULTS.patch_size,
              show_default=True, help="Side of the random training crops.")
@click.option("--resize", type=click.IntRange(8), default=None,
              help="Prototype mode: resize whole images to this square size instead of cropping.")
@click.option("--eval-size", type=click.IntRange(8), default=DEFAULTS.eval_size,
              show_default=True, help="Side of the centre crops scored in validation and test.")
@click.option("--noise", type=click.Choice(config_module.NOISES), default=DEFAULTS.noise,
              show_default=True, help="Training noise model (mix = blind mixture).")
@click.option("--sigma-range", type=(float, float), default=DEFAULTS.sigma_range,
              show_default=True, help="Gaussian sigma range on the 0-255 scale.")
@click.option("--sigma-sampling", type=click.Choice(config_module.SIGMA_SAMPLINGS),
              default=DEFAULTS.sigma_sampling, show_default=True,
              help="How sigma is drawn in that range; low = density falling linearly to zero "
                   "at the top, for the mild noise most scans have.")
@click.option("--loss", type=click.Choice(config_module.LOSSES), default=DEFAULTS.loss,
              show_default=True,
              help="Training loss; psnr (per-image -PSNR) weighs faint and heavy noise alike.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.lr,
              show_default=True, help="Peak learning rate (cosine decay).")
@click.option("--precision", type=click.Choice(config_module.PRECISIONS),
              default=DEFAULTS.precision, show_default=True,
              help="Numeric precision; auto picks per machine and says why.")
@click.option("--xla", type=click.Choice(config_module.XLA_MODES), default=DEFAULTS.xla,
              show_default=True, help="XLA-compile the train step; auto = on GPUs only.")
@click.option("--split", type=SplitFractions(), default="0.7,0.1,0.2", show_default=True,
              help="Train/val/test fractions (a file's split is a hash of its relative path).")
@click.option("--patience", type=click.IntRange(1), default=DEFAULTS.patience,
              show_default=True, help="Early stopping patience in epochs.")
@click.option("--init-from", default=None, metavar="MODEL",
              help="Fine-tune: start from this model's weights (a .keras file, a run directory "
                   "or 'best'); --model and --widths must match it.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Seed for initial weights and data order.")
@click.option("--name", default=None, help="Suffix for the run directory name.")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=DEFAULTS.runs_dir,
              show_default=True, help="Where run directories are created.")
@click.option("--strategy", type=click.Choice(config_module.STRATEGIES),
              default=DEFAULTS.strategy, show_default=True,
              help="tf.distribute strategy; auto: mirrored on several GPUs, multi-worker when "
                   "TF_CONFIG names a cluster, else default.")
@click.option("--run-id", default=None, envvar="TFDENOISE_RUN_ID",
              help="Run directory name shared by all workers (runs/RUN_ID); required for "
                   "multi-worker runs; the same id again resumes. [env: TFDENOISE_RUN_ID]")
@click.option("--data-service", default=None, metavar="grpc://HOST:PORT",
              help="tf.data service dispatcher that decodes and crops the training images.")
@click.option("--resume", "resume", is_flag=False, flag_value="last", default=None,
              metavar="[RUN]",
              help="Continue an interrupted run (a run directory; alone: the latest run).")
def fit(data, resume, runs_dir, **options) -> None:
    """Train a denoiser on DATA (an image folder; omitted: the scikit-image sample photos)."""
    from tfdenoise import runs, train

    options["blocks"] = options["blocks"] or ()
    config = config_module.FitConfig(data=data, runs_dir=runs_dir, **options)
    resume_dir = None
    if resume is not None:
        try:
            resume_dir = runs.latest_run(runs_dir) if resume == "last" else Path(resume)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    try:
        result = train.fit(config, resume=resume_dir, extra_callbacks=[_rich_progress_callback()],
                           log=_log)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    except OSError as error:  # disk full, read-only runs dir: earlier files stay valid
        console.print(f"Error: cannot write the run: {_describe(error)}", highlight=False,
                      soft_wrap=True, markup=False)
        # A failed HDF5 write (Keras's backup file) leaves h5py objects that segfault when
        # finalised at interpreter shutdown. Every file of ours is complete (atomic writes)
        # and nothing is pending, so leave without running finalizers.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    _print_metrics(result.metrics)
    _log(f"run directory: {result.run_dir}")


def _describe(error: OSError) -> str:
    """'No space left on device: /path' rather than a traceback (one line, even for HDF5's
    multi-line messages)."""
    where = f": {error.filename}" if error.filename else ""
    return " ".join(f"{error.strerror or error}{where}".split())


def _inference_policy(requested: str) -> str:
    from tfdenoise import hardware

    policy, reason = hardware.inference_precision(requested)
    _log(f"precision: {policy} ({reason})")
    return policy


def _log(message: str) -> None:
    """One log line, never hard-wrapped (paths and reasons must stay greppable)."""
    console.print(message, highlight=False, soft_wrap=True, markup=False)


@main.group("data-service")
def data_service() -> None:
    """Run tf.data service servers that decode and crop images for `fit --data-service`."""


def _serve(address: str, role: str, timeout: float | None, status=None) -> None:
    """Print where the server listens, then block until Ctrl-C, SIGTERM or `timeout`.

    `status()` (optional) is polled each second and printed whenever it changes.
    """
    import signal
    import threading
    import time

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"tf.data service {role} listening on {address}")
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if status is not None and status() != last:
                last = status()
                click.echo(f"{role}: {last}")
            stop.wait(1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        stop.set()
    console.print(f"{role} {'stopped' if stop.is_set() else f'timed out after {timeout:g} s'}")
    # A worker with a running task never finishes its C++ shutdown (it waits for the task's
    # endless input); its in-flight elements are lost by design, so leave without cleanup.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@data_service.command("dispatcher")
@click.option("--port", type=click.IntRange(0, 65535), required=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="Journal directory: a restarted dispatcher recovers its jobs from it.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds (default: run until Ctrl-C/SIGTERM).")
def dispatcher_command(port: int, work_dir: str | None, timeout: float | None) -> None:
    """Start a tf.data service dispatcher (trainers and workers connect to it)."""
    from tfdenoise import service

    server = service.start_dispatcher(port, work_dir)
    _serve(server.address, "dispatcher", timeout)


@data_service.command("worker")
@click.option("--dispatcher", "dispatcher", required=True, metavar="HOST:PORT",
              help="Address of the dispatcher.")
@click.option("--port", type=click.IntRange(0, 65535), required=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="localhost", show_default=True,
              help="Name or IP under which trainers reach this worker (set it on multi-host).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds (default: run until Ctrl-C/SIGTERM).")
def worker_command(dispatcher: str, port: int, host: str, timeout: float | None) -> None:
    """Start a tf.data service worker: it runs the decode/crop work the dispatcher hands out."""
    from tfdenoise import service

    try:
        server = service.start_worker(dispatcher, port, host)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    _serve(server.address, "worker", timeout,
           status=lambda: f"{service.active_tasks(server)} active task(s)")


def _print_metrics(metrics: dict) -> None:
    table = Table(title=f"test split ({metrics['test_images']} images, fixed noise)")
    for column in ("condition", "PSNR noisy", "PSNR denoised", "gain", "SSIM noisy",
                   "SSIM denoised"):
        table.add_column(column, justify="right")
    for name, score in metrics["test"].items():
        table.add_row(name, f"{score['psnr_noisy']:.2f}", f"{score['psnr_denoised']:.2f}",
                      f"{score['psnr_denoised'] - score['psnr_noisy']:+.2f}",
                      f"{score['ssim_noisy']:.3f}", f"{score['ssim_denoised']:.3f}")
    console.print(table)


@main.command("runs")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=DEFAULTS.runs_dir,
              show_default=True, help="Where run directories live.")
def list_runs(runs_dir) -> None:
    """List runs, lowest validation loss first."""
    from tfdenoise import runs

    table = Table()
    table.add_column("run", no_wrap=True)  # names are copied into --model and --resume
    for column in ("best val loss", "best val PSNR", "epochs", "finished", "test PSNR σ=25"):
        table.add_column(column)
    for summary in runs.ranked_runs(runs_dir):
        val_psnr = (f"{summary.best_val_psnr:.2f}" if math.isfinite(summary.best_val_psnr)
                    else "-")
        loss = f"{summary.best_val_loss:.5f}" if math.isfinite(summary.best_val_loss) else "-"
        psnr = summary.test_psnr.get("gaussian-25")
        table.add_row(summary.path.name, loss, val_psnr, str(summary.epochs),
                      "yes" if summary.finished else "no", f"{psnr:.2f}" if psnr else "-")
    Console().print(table)


# Options shared by the commands that load a model (predict, evaluate, export).
model_option = click.option(
    "--model", "model_spec", default=None,
    help="A .keras file, a run directory, 'best', or omitted for the bundled model.")
precision_option = click.option(
    "--precision", type=click.Choice(config_module.PRECISIONS), default="auto",
    show_default=True,
    help="Inference precision; auto = bfloat16 on CPUs with native support, float16 on GPUs "
         "(outputs within a few grey levels of float32).")
ensemble_option = click.option(
    "--ensemble", type=click.Choice(["1", "2", "4", "8"]), default="2", show_default=True,
    callback=lambda _ctx, _param, value: int(value),
    help="Average the model over this many flipped/transposed views of each image: 2 gains "
         "~0.25 dB for 2x the time, 4 ~0.4 dB for 4x; 1 = fastest.")
runs_dir_option = click.option(
    "--runs-dir", type=click.Path(file_okay=False), default=DEFAULTS.runs_dir,
    show_default=True, help="Where 'best' looks for runs.")


@main.command("predict")
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: DIR_denoised beside DIR).")
@model_option
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
@click.option("--tile", type=click.IntRange(16), default=512, show_default=True,
              help="Side of the windows large images are denoised in (bounds memory).")
@click.option("--overlap", type=click.IntRange(0), default=32, show_default=True,
              help="Pixels of shared context between neighbouring tiles.")
@click.option("--skip-clean", type=click.FloatRange(min=0), default=None, metavar="SIGMA",
              help="Copy images whose estimated noise sigma (0-255) is below SIGMA unchanged.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write a per-image CSV (status, size, sigma before/after).")
@click.option("--format", "output_format", type=click.Choice(["png", "jpeg", "webp", "same"]),
              default="png", show_default=True,
              help="Output format; same = the input's (by suffix; BMP and GIF inputs -> PNG).")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG / WebP quality (JPEG is written without chroma subsampling).")
@click.option("--bit-depth", type=click.Choice(["8", "16", "same"]), default="8",
              show_default=True,
              help="Bits per channel of PNG outputs; same = 16 for 16-bit inputs, else 8.")
@click.option("--strip-metadata", is_flag=True,
              help="Drop the ICC profile, EXIF and XMP (kept by default; DPI is always kept).")
@precision_option
@ensemble_option
@runs_dir_option
def predict_command(input_dir: Path, output, model_spec, overwrite, tile, overlap, skip_clean,
                    report_file, output_format, quality, bit_depth, strip_metadata, precision,
                    ensemble, runs_dir) -> None:
    """Denoise every image under INPUT_DIR at full resolution into OUT/<relative path>, as
    PNG unless --format says otherwise, keeping ICC profiles, EXIF, XMP and DPI."""
    from tfdenoise import images, models, predict

    try:
        predict.check_tiling(tile, overlap)
        options = predict.PredictOptions(
            overwrite=overwrite, tile=tile, overlap=overlap, skip_clean=skip_clean,
            output_format=output_format, quality=quality, bit_depth=bit_depth,
            strip_metadata=strip_metadata)
        files = images.list_image_files(input_dir)
        model = predict.load(model_spec, runs_dir, _inference_policy(precision), ensemble)
    except (ValueError, models.ModelLoadError) as error:
        raise click.UsageError(str(error)) from None
    output = output or predict.default_output_dir(input_dir)
    with _progress() as progress:
        task = progress.add_task("denoising", total=len(files), status="")

        def on_image(result):
            progress.update(task, advance=1, status=f"{result.input.name}: {result.status}")

        try:
            report = predict.predict_folder(model, input_dir, output, options, on_image=on_image)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if report_file:
        predict.write_report_csv(report, report_file)
    _print_predict_summary(report, output, input_dir)
    if report.stopped:
        _log(f"stopped early, the output disk refuses writes ({report.stopped}); outputs "
             "written so far are complete: free space and re-run to continue")
    if report.failed or report.stopped:
        sys.exit(1)


SUMMARY_ROWS = 20  # per-image rows printed; the CSV report has them all


def _sigma(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _print_predict_summary(report, output: Path, input_dir: Path) -> None:
    shown = [r for r in report.results if r.status in ("written", "copied-clean")]
    if shown:
        table = Table(title="estimated noise sigma (0-255, Immerkaer)")
        for column in ("image", "size", "status", "sigma before", "sigma after"):
            table.add_column(column, justify="left" if column == "image" else "right")
        for result in shown[:SUMMARY_ROWS]:
            table.add_row(str(result.input.relative_to(input_dir)),
                          f"{result.width}x{result.height}", result.status,
                          _sigma(result.sigma_before), _sigma(result.sigma_after))
        console.print(table)
        if len(shown) > SUMMARY_ROWS:
            console.print(f"... {len(shown) - SUMMARY_ROWS} more (--report FILE lists all)")
    console.print(f"{len(report.results)} images: {len(report.written)} denoised, "
                  f"{len(report.copied)} copied as clean, {len(report.kept)} kept (exist; "
                  f"--overwrite to replace), {len(report.failed)} failed -> {output}")
    console.print(f"{report.megapixels:.1f} MP denoised in {report.seconds:.1f} s "
                  f"({report.megapixels_per_second:.2f} MP/s)")
    for path, reason in report.failed:
        _log(f"failed {path}: {reason}")


@main.command("export")
@click.argument("model_spec", metavar="MODEL")
@click.argument("output", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "export_format", type=click.Choice(["saved_model"]),
              default="saved_model", show_default=True,
              help="saved_model: TF Serving, signature image bytes -> PNG bytes.")
@runs_dir_option
def export_command(model_spec, output: Path, export_format, runs_dir) -> None:
    """Export MODEL (a .keras file, run directory or 'best') to OUTPUT for serving."""
    from tfdenoise import export, models, predict

    try:
        model = predict.load(model_spec, runs_dir)
        export.export(model, output, export_format)
    except (ValueError, models.ModelLoadError) as error:
        raise click.UsageError(str(error)) from None
    console.print(f"saved {export_format} to {output}: signature serving_default "
                  "(image_bytes: scalar string) -> {png: scalar string}")


@main.command("evaluate")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option
@click.option("--all", "use_all", is_flag=True,
              help="Score every image in DATA, not only its hash-split test part.")
@click.option("--crop", type=click.IntRange(0), default=512, show_default=True,
              help="Score the crop x crop centre of each image; 0 = the full image.")
@click.option("--baselines", "baseline_names", default=None, metavar="NAMES",
              help="Comma-separated: opencv-nlm, skimage-nlm, skimage-wavelet, cbm3d "
                   "(default: all installed); 'none' for the model only.")
@click.option("--conditions", "condition_names", default=None, metavar="NAMES",
              help="Comma-separated noise conditions to score: gaussian-15, gaussian-25, "
                   "gaussian-50, seed (default: all; the same noise as a full run).")
@click.option("--grid", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write an original / noisy (sigma 25) / denoised PNG grid here.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the scores as JSON here.")
@precision_option
@ensemble_option
@runs_dir_option
def evaluate_command(data: Path, model_spec, use_all, crop, baseline_names, condition_names,
                     grid, json_file, precision, ensemble, runs_dir) -> None:
    """PSNR/SSIM/colour shift (ΔE) per noise condition on DATA's test split: model vs noisy vs
    baselines."""
    from tfdenoise import evaluate, models, predict, runs

    names = None
    if baseline_names is not None:
        names = [] if baseline_names == "none" else _name_list(baseline_names)
    conditions = None if condition_names is None else _name_list(condition_names)
    if grid and conditions is not None and evaluate.GRID_CONDITION not in conditions:
        raise click.UsageError(f"--grid shows {evaluate.GRID_CONDITION}: add it to --conditions")
    try:
        model = predict.load(model_spec, runs_dir, _inference_policy(precision), ensemble)
        with _progress() as progress:
            task = progress.add_task("evaluating", total=None, status="")
            result, triples = evaluate.evaluate_folder(
                model, data, use_all, crop or None, names,
                on_step=lambda step: progress.update(task, status=step),
                condition_names=conditions)
    except (ValueError, models.ModelLoadError) as error:
        raise click.UsageError(str(error)) from None
    for note in result.notes:
        _log(f"note: {note}")
    _print_evaluation(result)
    if json_file:  # with the settings that produced the model's scores
        runs.write_json(json_file, {**result.to_json(), "model": model_spec or "bundled",
                                    "ensemble": ensemble, "precision": precision})
    if grid:
        evaluate.save_png(evaluate.grid_image(triples), grid)


def _name_list(text: str) -> list[str]:
    """`a, b,,c` -> ["a", "b", "c"]: the names of a comma-separated option."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _print_evaluation(result) -> None:
    crop = f"{result.crop}x{result.crop} centre crops" if result.crop else "full images"
    table = Table(title=f"{len(result.images)} images, {crop}, fixed seeded noise")
    for column in ("condition", "method", "PSNR dB", "SSIM", "ΔE00 (low-pass)", "MP/s"):
        table.add_column(column, justify="left" if column in ("condition", "method") else "right")
    for condition, methods in result.scores.items():
        for method, score in methods.items():
            speed = score.megapixels_per_second
            table.add_row(condition, method, f"{score.psnr:.2f}", f"{score.ssim:.4f}",
                          f"{score.delta_e:.2f}", "-" if speed is None else f"{speed:.3f}")
        table.add_section()
    Console().print(table)


@main.command("make-tfrecords")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--shard-mb", type=click.FloatRange(min=0, min_open=True), default=128,
              show_default=True, help="Approximate shard size, counted in source-file bytes.")
@click.option("--split", "fractions", type=SplitFractions(), default="0.7,0.1,0.2",
              show_default=True,
              help="Train,val,test fractions (a file's split is a hash of its relative path).")
@click.option("--workers", type=click.IntRange(1), default=os.cpu_count() or 1,
              show_default=True, help="Parallel conversions (and probes while planning).")
@click.option("--executor", type=click.Choice(["thread", "process"]), default="thread",
              show_default=True, help="Run conversions on threads or spawned processes.")
@click.option("--max-pixels", type=click.IntRange(1), default=100_000_000, show_default=True,
              help="Skip images with more pixels than this (decompression bombs).")
@click.option("--overwrite", is_flag=True,
              help="Convert again even if OUT holds a finished or unfinished conversion.")
def make_tfrecords(src: Path, out: Path, shard_mb, fractions, workers, executor, max_pixels,
                   overwrite) -> None:
    """Convert the images under SRC into sharded TFRecords + manifest.json in OUT.

    JPEGs are stored byte-identical, other images as 8-bit RGB PNG; bad files are skipped and
    listed. An interrupted run finishes when run again; a finished OUT is left as it is.
    Exit status: 0 when records were written (even if some files were skipped), 1 when SRC
    holds no usable image, 2 on usage errors.
    """
    from tfdenoise import records

    with _progress() as progress:
        task = progress.add_task("validating", total=None, status="")

        def on_progress(event: str, amount: int) -> None:
            if event == "plan":
                progress.update(task, description="writing", total=amount, status="")
            elif event == "image":
                progress.advance(task, amount)

        try:
            report = records.convert_folder(src, out, fractions, shard_mb, max_pixels, workers,
                                            executor, overwrite, progress=on_progress)
        except records.NothingToConvert as error:
            progress.stop()
            _print_skipped([(s.path, s.reason) for s in error.skipped])
            console.print(f"[red]{error}[/red]", highlight=False)
            sys.exit(1)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if report.already_done:
        console.print(f"{out} is already finished ({records.MANIFEST} present): nothing to do; "
                      "--overwrite converts again.", highlight=False)
    _print_records_summary(report)


def _print_records_summary(report) -> None:
    manifest = report.manifest
    table = Table(title=f"TFRecords in {report.out}")
    for column in ("split", "images", "shards", "MB"):
        table.add_column(column, justify="right")
    for split, count in manifest["counts"].items():
        shards = [s for s in manifest["shards"] if s["split"] == split]
        table.add_row(split, str(count), str(len(shards)),
                      f"{sum(s['bytes'] for s in shards) / 2**20:.1f}")
    console.print(table)
    if not report.already_done:
        console.print(f"{report.images_written} images ({report.source_bytes_written / 2**20:.1f} "
                      f"MB of source files) converted in {report.seconds:.1f} s: "
                      f"{report.images_per_second:.1f} images/s, "
                      f"{report.megabytes_per_second:.1f} MB/s", highlight=False)
    _print_skipped([(s["path"], s["reason"]) for s in manifest["skipped"]])


def _print_skipped(skipped: list[tuple[str, str]], limit: int = 30) -> None:
    """(path, reason) rows; the full list is in manifest.json."""
    if not skipped:
        return
    table = Table(title=f"{len(skipped)} files skipped")
    table.add_column("file")
    table.add_column("reason")
    for path, reason in skipped[:limit]:
        table.add_row(path, reason)
    if len(skipped) > limit:
        table.add_row(f"... {len(skipped) - limit} more", "listed in manifest.json")
    console.print(table)


@main.command("bench")
@click.option("--quick", is_flag=True, help="Short timings and a smaller corpus (~4 minutes).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the results as JSON to this file.")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False), default=None,
              help="Image folder to measure on (default: generated from the sample photos).")
@click.option("--images", type=click.IntRange(2), default=None,
              help="Corpus images used (its first N files; their train split is read).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Timed seconds per pipeline figure (after warm-up).")
@click.option("--train-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Timed seconds per training figure (after warm-up).")
@click.option("--train-steps", type=click.IntRange(1), default=None,
              help="Minimum timed steps per training figure.")
@click.option("--widths", type=Counts(1), default=None,
              help="U-Net widths, comma-separated (default: the fit default).")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Training batch size.")
@click.option("--patch-size", type=click.IntRange(8), default=None, help="Training patch size.")
@click.option("--resize", type=click.IntRange(8), default=None,
              help="Output side of the prototype comparison (default 224).")
@click.option("--predict-images", type=click.IntRange(1), default=None,
              help="Full-size images denoised for the predict figure.")
def bench_command(quick, json_path, corpus, images, seconds, train_seconds, train_steps, widths,
                  batch_size, patch_size, resize, predict_images) -> None:
    """Measure input pipelines, training and prediction side by side; print the ratios."""
    import json

    from tfdenoise import bench

    overrides = {key: value for key, value in dict(
        corpus=corpus, images=images, pipeline_seconds=seconds, train_seconds=train_seconds,
        train_min_steps=train_steps, batch_size=batch_size, patch_size=patch_size,
        resize=resize, predict_images=predict_images,
        widths=widths,
    ).items() if value is not None}
    try:
        config = bench.BenchConfig.quick(**overrides) if quick else bench.BenchConfig(**overrides)
        results = bench.run(config, log=lambda message: console.print(message, highlight=False))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    results["command"] = " ".join(["tfdenoise", "bench", *sys.argv[2:]]) \
        if len(sys.argv) > 1 and sys.argv[1] == "bench" else "tfdenoise bench"
    out = Console()
    if not out.is_terminal:
        out = Console(width=110)  # files and CI logs: keep each row on one line
    out.print(_bench_table(results))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"results written to {json_path}")


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _bench_table(results: dict) -> Table:
    """Figures with the ratio each is judged by and its target (ratios from this run only)."""
    from tfdenoise.bench import TARGETS

    pipe, train, ratios = results["pipeline"], results["train"], results["ratios"]
    table = Table(title=f"tfdenoise bench ({results['machine']['cpus']} CPUs, "
                        f"{pipe['images']} images, {pipe['mean_megapixels']} MP mean)")
    for column in ("figure", "value", "unit", "ratio", "vs", "target"):
        table.add_column(column, justify="right" if column in ("value", "ratio") else "left")

    def row(figure, value, unit, ratio_key=None, versus=""):
        ratio = ratios.get(ratio_key) if ratio_key else None
        target = TARGETS.get(ratio_key)
        mark = "" if target is None or ratio is None else (" ok" if ratio >= target else " MISSED")
        table.add_row(figure, _fmt(value), unit, _fmt(ratio, 2), versus,
                      f">= {target}{mark}" if target else "")

    jpeg = pipe.get("jpeg_only") or {}
    row(f"pipeline.seed_generator ({pipe['reader']}, 1 thread)", pipe["seed_generator_img_s"],
        "img/s")
    row("pipeline.files (224 resize)", pipe["files_img_s"], "img/s",
        "files_vs_seed_generator", "seed generator")
    row("pipeline.tfrecords (224 resize) [headline]", pipe["tfrecords_img_s"], "img/s",
        "tfrecords_vs_seed_generator", "seed generator")
    row("", None, "", "tfrecords_vs_mixed_decode_ceiling", "all-format ceiling")
    row("pipeline.decode_ceiling (all formats)", pipe["decode_ceiling_mixed_img_s"], "img/s")
    row("pipeline.files (patches)", pipe["files_patch_img_s"], "patch/s")
    row("pipeline.tfrecords (patches)", pipe["tfrecords_patch_img_s"], "patch/s",
        "tfrecords_patch_vs_files_patch", "files (patches)")
    row("pipeline.decode_ceiling (JPEGs)", pipe["decode_ceiling_img_s"], "img/s")
    row("JPEGs only: seed_generator", jpeg.get("seed_generator_img_s"), "img/s")
    row("JPEGs only: files (224 resize)", jpeg.get("files_img_s"), "img/s",
        "files_vs_decode_ceiling", "decode ceiling")
    row("JPEGs only: tfrecords (224 resize)", jpeg.get("tfrecords_img_s"), "img/s",
        "tfrecords_vs_decode_ceiling", "decode ceiling")
    row("", None, "", "jpeg_only_tfrecords_vs_seed_generator", "seed generator")
    row("train.synthetic", train["synthetic_img_s"], "img/s")
    row(f"train.pipeline ({train['pipeline_source']})", train["pipeline_img_s"], "img/s",
        "pipeline_fed_vs_synthetic_training", "synthetic")
    row("train.float32", train["float32_img_s"], "img/s")
    row(f"train.auto_precision ({train['precision_auto']})", train["auto_precision_img_s"],
        "img/s", "auto_vs_float32_precision", "float32")
    row("train.xla_off", train["xla_off_img_s"], "img/s")
    row("train.xla_on", train["xla_on_img_s"], "img/s", "xla_on_vs_off", "XLA off")
    row("predict (full-size images)", results["predict"]["megapixels_per_s"], "MP/s")
    return table


def predict_main() -> None:
    """Entry point of `python -m tfdenoise.predict`."""
    predict_command(prog_name="python -m tfdenoise.predict")


if __name__ == "__main__":
    main()
