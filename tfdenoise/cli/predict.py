"""`tfdenoise predict` / `python -m tfdenoise.predict DIR`: the folder job with a progress bar,
a summary table and the documented exit codes (0 all written, 1 some failed, 2 usage)."""

from __future__ import annotations

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
    precision_option,
    progress_bar,
    runs_dir_option,
)
from tfdenoise.config import DEFAULT_OVERLAP, DEFAULT_TILE


@click.command("predict")
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
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
    type=click.Choice(["png", "jpeg", "webp", "same"]),
    default="png",
    show_default=True,
    help="Output format; same = the input's (by suffix; BMP and GIF inputs -> PNG).",
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
    default="8",
    show_default=True,
    help="Bits per channel of PNG outputs; same = 16 for 16-bit inputs, else 8.",
)
@click.option(
    "--strip-metadata",
    is_flag=True,
    help="Drop the ICC profile, EXIF and XMP (kept by default; DPI is always kept).",
)
@precision_option
@ensemble_option
@runs_dir_option
def predict_command(
    input_dir: Path,
    output,
    model_spec,
    overwrite,
    tile,
    overlap,
    skip_clean,
    report_file,
    output_format,
    quality,
    bit_depth,
    strip_metadata,
    precision,
    ensemble,
    runs_dir,
) -> None:
    """Denoise every image under INPUT_DIR at full resolution into OUT/<relative path>, as
    PNG unless --format says otherwise, keeping ICC profiles, EXIF, XMP and DPI."""
    from tfdenoise import checkpoints, inference
    from tfdenoise.io import files
    from tfdenoise.predict import folder

    try:
        inference.check_tiling(tile, overlap)
        options = folder.PredictOptions(
            overwrite=overwrite,
            tile=tile,
            overlap=overlap,
            skip_clean=skip_clean,
            output_format=output_format,
            quality=quality,
            bit_depth=bit_depth,
            strip_metadata=strip_metadata,
        )
        paths = files.list_image_files(input_dir)
        model = checkpoints.load_denoiser(
            model_spec, runs_dir, inference_policy(precision), ensemble
        )
    except (ValueError, checkpoints.ModelLoadError) as error:
        raise click.UsageError(str(error)) from None
    output = output or folder.default_output_dir(input_dir)
    with progress_bar() as progress:
        task = progress.add_task("denoising", total=len(paths), status="")

        def on_image(result):
            progress.update(task, advance=1, status=f"{result.input.name}: {result.status}")

        try:
            report = folder.predict_folder(model, input_dir, output, options, on_image=on_image)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if report_file:
        folder.write_report_csv(report, report_file)
    _print_predict_summary(report, output, input_dir)
    if report.stopped:
        log(
            f"stopped early, the output disk refuses writes ({report.stopped}); outputs "
            "written so far are complete: free space and re-run to continue"
        )
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
        f"{len(report.results)} images: {len(report.written)} denoised, "
        f"{len(report.copied)} copied as clean, {len(report.kept)} kept (exist; "
        f"--overwrite to replace), {len(report.failed)} failed -> {output}"
    )
    console.print(
        f"{report.megapixels:.1f} MP denoised in {report.seconds:.1f} s "
        f"({report.megapixels_per_second:.2f} MP/s)"
    )
    for path, reason in report.failed:
        log(f"failed {path}: {reason}")


def predict_main() -> None:
    """Entry point of `python -m tfdenoise.predict`."""
    predict_command(prog_name="python -m tfdenoise.predict")
