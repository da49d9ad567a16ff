"""`tfdenoise export`: a model as a SavedModel for TF Serving."""

from __future__ import annotations

from pathlib import Path

import click

from tfdenoise.cli.common import console, runs_dir_option
from tfdenoise.config import EXPORT_FORMATS


@click.command("export")
@click.argument("model_spec", metavar="MODEL")
@click.argument("output", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "export_format",
    type=click.Choice(EXPORT_FORMATS),
    default="saved_model",
    show_default=True,
    help="saved_model: TF Serving, signature image bytes -> PNG bytes.",
)
@runs_dir_option
def export_command(model_spec, output: Path, export_format, runs_dir) -> None:
    """Export MODEL (a .keras file, run directory or 'best') to OUTPUT for serving."""
    from tfdenoise import checkpoints, export

    try:
        model = checkpoints.load_denoiser(model_spec, runs_dir)
        export.export(model, output, export_format)
    except (ValueError, checkpoints.ModelLoadError) as error:
        raise click.UsageError(str(error)) from None
    console.print(
        f"saved {export_format} to {output}: signature serving_default "
        "(image_bytes: scalar string) -> {png: scalar string}"
    )
