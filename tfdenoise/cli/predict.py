"""`tfdenoise predict` / `python -m tfdenoise.predict DIR`: the folder job with a progress bar,
a summary table and the documented exit codes (0 all written, 1 some failed, 2 usage; 130 or
143 when stopped by SIGINT or SIGTERM, after the summary of what was done)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
from rich.table import Table

from tfdenoise.cli.common import (
    console,
    ensemble_option,
    inference_policy,
    log,
    model_option,
    note_other_files,
    precision_option,
    progress_bar,
    runs_dir_option,
)
from tfdenoise.config import DEFAULT_MAX_PIXELS, DEFAULT_OVERLAP, DEFAULT_TILE


class ShardParam(click.ParamType):
    """`I/N` -> selection.Shard(I, N); a usage error (exit 2) unless 0 <= I < N."""

    name = "I/N"

    def convert(self, value, param, ctx):
        from tfdenoise.predict import selection

        if isinstance(value, selection.Shard):
            return value
        try:
            return selection.Shard.parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _stops_cleanly(command):
    """Run `command` with SIGINT (Ctrl-C) and SIGTERM turned into a clean stop (see
    tfdenoise.predict.stopping): the job reports what it did and the command exits 128 + the
    signal's number. A stop before the job ran (or a second signal while it winds down) ends
    here, with that status and no summary."""

    @functools.wraps(command)
    def stopping_cleanly(*args, **kwargs):
        from tfdenoise.predict import stopping

        with stopping.stop_on_signals():
            try:
                return command(*args, **kwargs)
            except stopping.Interrupted as stop:
                log(f"stopped by {stop.signal_name}; every output written is complete")
                sys.exit(stop.exit_status)

    return stopping_cleanly


@click.command("predict", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input_dir", metavar="DIR", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder (default: DIR_denoised beside DIR).",
)
@model_option
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
@click.option(
    "--tile",
    type=click.IntRange(16),
    default=DEFAULT_TILE,
    show_default=True,
    help="Side of the windows large images are denoised in (bounds memory).",
)
@click.option(
    "--overlap",
    type=click.IntRange(0),
    default=DEFAULT_OVERLAP,
    show_default=True,
    help="Pixels of shared context between neighbouring tiles.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Fail images with more pixels than this before decoding (decompression bombs); "
    "raise it for large scans, which must fit in memory (~14 bytes a pixel for 8-bit RGB "
    "beside ~0.6 GB for TensorFlow: a 300 MP scan needs ~5 GB).",
)
@click.option(
    "--skip-clean",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SIGMA",
    help="Copy images whose estimated noise sigma (0-255) is below SIGMA unchanged.",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a per-image CSV (status, size, sigma before/after).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["png", "jpeg", "webp", "tiff", "same"]),
    default="png",
    show_default=True,
    help="Output format; same = the input's (by suffix; BMP and GIF inputs -> PNG; TIFF "
    "stays TIFF, multi-page too). Multi-page TIFFs in other formats: one file per page, "
    "NAME.p001.png, NAME.p002.png, ...",
)
@click.option(
    "--quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    help="JPEG / WebP quality (JPEG is written without chroma subsampling).",
)
@click.option(
    "--bit-depth",
    type=click.Choice(["8", "16", "same"]),
    default="same",
    show_default=True,
    help="Bits per channel of PNG and TIFF outputs; same = 16 for 16-bit inputs (a scan's "
    "depth is kept), else 8; JPEG and WebP outputs hold 8.",
)
@click.option(
    "--strip-metadata",
    is_flag=True,
    help="Drop the ICC profile, EXIF and XMP (kept by default; DPI is always kept).",
)
@click.option(
    "--strength",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    metavar="S",
    help="How much of the denoising to apply: input + S * (denoised - input); 0 returns "
    "the input's pixels, values below 1 keep some grain.",
)
@click.option(
    "--files-from",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Denoise only the images FILE lists, one path a line relative to DIR (blank lines "
    "and # comments ignored; missing or non-image entries are reported as failed).",
)
@click.option(
    "--shard",
    type=ShardParam(),
    default=None,
    help="Denoise only shard I of N (0 <= I < N, by a hash of each relative path): N jobs "
    "with I = 0..N-1 cover DIR without overlap.",
)
@click.option(
    "--runner",
    type=click.Choice(["local", "beam"]),
    default="local",
    show_default=True,
    help="local = this process; beam = Apache Beam workers (pip install 'tfdenoise[beam]'; "
    "DIR and OUT on storage every worker sees).",
)
@click.option(
    "--beam-args",
    default="",
    metavar="OPTIONS",
    help='Beam pipeline options, e.g. "--runner=FlinkRunner --flink_master=host:8081" '
    "(default: the DirectRunner).",
)
@click.option(
    "--io-threads",
    type=click.IntRange(0),
    default=2,
    show_default=True,
    help="Threads decoding ahead of the model and as many writing behind it (each queue "
    "holds at most this many images); 0 = decode, denoise and write one after another.",
)
@precision_option
@ensemble_option
@runs_dir_option
@_stops_cleanly
def predict_command(
    input_dir: Path,
    output,
    model_spec,
    overwrite,
    tile,
    overlap,
    max_pixels,
    skip_clean,
    report_file,
    output_format,
    quality,
    bit_depth,
    strip_metadata,
    strength,
    files_from,
    shard,
    runner,
    beam_args,
    io_threads,
    precision,
    ensemble,
    runs_dir,
) -> None:
    """Denoise every image under DIR at full resolution into OUT/<relative path>, as PNG
    unless --format says otherwise, keeping ICC profiles, EXIF, XMP and DPI. DIR may also be
    one image: it is denoised as in its folder's run (OUT defaults to FOLDER_denoised)."""
    from tfdenoise import checkpoints, inference
    from tfdenoise.predict import folder, selection, stopping

    try:
        inference.check_tiling(tile, overlap)
        options = folder.PredictOptions(
            overwrite=overwrite,
            tile=tile,
            overlap=overlap,
            max_pixels=max_pixels,
            skip_clean=skip_clean,
            output_format=output_format,
            quality=quality,
            bit_depth=bit_depth,
            strip_metadata=strip_metadata,
            strength=strength,
        )
        if input_dir.is_dir():
            entries = selection.select(input_dir, files_from, shard, output_format, output)
            if files_from is None:
                note_other_files(input_dir, exclude=output)
        elif files_from is not None or shard is not None:
            raise ValueError("--files-from and --shard select from a folder: give DIR, not a file")
        else:
            input_dir, entries = selection.select_file(input_dir, output_format, output)
        if runner == "beam":
            beam = _import_beam()
            checkpoints.resolve_model_path(model_spec, runs_dir)  # fail early, on the launcher
        else:
            model = checkpoints.load_denoiser(
                model_spec, runs_dir, inference_policy(precision), ensemble
            )
    except (ValueError, checkpoints.ModelLoadError) as error:
        raise click.UsageError(str(error)) from None
    output = output or folder.default_output_dir(input_dir)
    stop = None
    if runner == "beam":
        spec = beam.ModelSpec(model_spec, str(runs_dir), precision, ensemble)
        log(f"Apache Beam: {len(entries)} images, pipeline options: {beam_args or '(none)'}")
        try:
            report = beam.predict_folder_beam(input_dir, output, options, spec, entries, beam_args)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    else:
        try:
            report = _predict_locally(model, input_dir, output, options, entries, io_threads)
        except stopping.Interrupted as interrupted:
            if interrupted.report is None:  # a second signal while the job wound down
                raise
            stop, report = interrupted, interrupted.report
    if report_file:
        folder.write_report_csv(report, report_file)
    _print_predict_summary(report, output, input_dir)
    if report.stopped:
        log(
            f"stopped early, the output disk refuses writes ({report.stopped}); outputs "
            "written so far are complete: free space and re-run to continue"
        )
    if stop is not None:
        log(
            f"stopped by {stop.signal_name} after {len(report.results)} of {len(entries)} "
            "images; every output written is complete, none half-written: re-run to continue "
            "(existing outputs are kept)"
        )
        sys.exit(stop.exit_status)
    if report.failed or report.stopped:
        sys.exit(1)


def _predict_locally(model, input_dir, output, options, entries, io_threads):
    from tfdenoise.predict import folder, pipelined

    with progress_bar() as progress:
        task = progress.add_task("denoising", total=len(entries), status="")

        def on_image(result):
            progress.update(task, advance=1, status=f"{result.input.name}: {result.status}")

        try:
            if io_threads == 0:
                return folder.predict_folder(
                    model, input_dir, output, options, on_image=on_image, entries=entries
                )
            return pipelined.predict_folder_pipelined(
                model, input_dir, output, options, on_image, entries, io_threads
            )
        except ValueError as error:
            raise click.UsageError(str(error)) from None


def _import_beam():
    """tfdenoise.predict.beam, or a usage error (exit 2) saying how to install Apache Beam."""
    try:
        from tfdenoise.predict import beam
    except ImportError as error:
        raise click.UsageError(
            f"--runner beam needs Apache Beam ({error}): pip install 'tfdenoise[beam]' "
            "(in a checkout: pip install '.[beam]')"
        ) from None
    return beam


SUMMARY_ROWS = 20  # per-image rows printed; the CSV report has them all


def _sigma(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _print_predict_summary(report, output: Path, input_dir: Path) -> None:
    from tfdenoise.predict import folder

    shown = [r for r in report.results if r.status in ("written", "copied-clean")]
    if shown:
        table = Table(title="estimated noise sigma (0-255, Immerkaer)")
        for column in ("image", "size", "status", "sigma before", "sigma after"):
            table.add_column(column, justify="left" if column == "image" else "right")
        for result in shown[:SUMMARY_ROWS]:
            table.add_row(
                str(result.input.relative_to(input_dir)),
                f"{result.width}x{result.height}",
                result.status,
                _sigma(result.sigma_before),
                _sigma(result.sigma_after),
            )
        console.print(table)
        if len(shown) > SUMMARY_ROWS:
            console.print(f"... {len(shown) - SUMMARY_ROWS} more (--report FILE lists all)")
    console.print(
        f"{len(report.results)} image{'' if len(report.results) == 1 else 's'}: "
        f"{len(report.written)} denoised, "
        f"{len(report.copied)} copied as clean, {len(report.kept)} kept (exist; "
        f"--overwrite to replace), {len(report.failed)} failed -> {output}"
    )
    console.print(
        f"{report.megapixels:.1f} MP denoised in {report.seconds:.1f} s "
        f"({report.megapixels_per_second:.2f} MP/s)"
    )
    for result in report.results:
        if result.status in ("written", "copied-clean") and folder.first_frame_only(result):
            log(f"note {result.input}: {result.mode}")
    for path, reason in report.failed:
        log(f"failed {path}: {reason}")


def predict_main() -> None:
    """Entry point of `python -m tfdenoise.predict`."""
    predict_command(prog_name="python -m tfdenoise.predict")
