"""`tfdenoise bench`: measure pipelines, training and prediction side by side; print the ratios."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tfdenoise.cli.common import Counts, console


@click.command("bench")
@click.option("--quick", is_flag=True, help="Short timings and a smaller corpus (~4 minutes).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the results as JSON to this file.",
)
@click.option(
    "--corpus",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Image folder to measure on (default: generated from the sample photos).",
)
@click.option(
    "--images",
    type=click.IntRange(2),
    default=None,
    help="Corpus images used (its first N files; their train split is read).",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Timed seconds per pipeline figure (after warm-up).",
)
@click.option(
    "--train-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Timed seconds per training figure (after warm-up).",
)
@click.option(
    "--train-steps",
    type=click.IntRange(1),
    default=None,
    help="Minimum timed steps per training figure.",
)
@click.option(
    "--widths",
    type=Counts(1),
    default=None,
    help="U-Net widths, comma-separated (default: the fit default).",
)
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Training batch size.")
@click.option("--patch-size", type=click.IntRange(8), default=None, help="Training patch size.")
@click.option(
    "--resize",
    type=click.IntRange(8),
    default=None,
    help="Output side of the prototype comparison (default 224).",
)
@click.option(
    "--predict-images",
    type=click.IntRange(1),
    default=None,
    help="Full-size images denoised for the predict figure.",
)
def bench_command(
    quick,
    json_path,
    corpus,
    images,
    seconds,
    train_seconds,
    train_steps,
    widths,
    batch_size,
    patch_size,
    resize,
    predict_images,
) -> None:
    """Measure input pipelines, training and prediction side by side; print the ratios."""
    from tfdenoise import bench

    overrides = {
        key: value
        for key, value in dict(
            corpus=corpus,
            images=images,
            pipeline_seconds=seconds,
            train_seconds=train_seconds,
            train_min_steps=train_steps,
            batch_size=batch_size,
            patch_size=patch_size,
            resize=resize,
            predict_images=predict_images,
            widths=widths,
        ).items()
        if value is not None
    }
    try:
        config = bench.BenchConfig.quick(**overrides) if quick else bench.BenchConfig(**overrides)
        results = bench.run(config, log=lambda message: console.print(message, highlight=False))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    results["command"] = (
        " ".join(["tfdenoise", "bench", *sys.argv[2:]])
        if len(sys.argv) > 1 and sys.argv[1] == "bench"
        else "tfdenoise bench"
    )
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
    from tfdenoise import bench

    pipe = results["pipeline"]
    table = Table(
        title=f"tfdenoise bench ({results['machine']['cpus']} CPUs, "
        f"{pipe['images']} images, {pipe['mean_megapixels']} MP mean)"
    )
    for column in ("figure", "value", "unit", "ratio", "vs", "target"):
        table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
    for row in bench.table_rows(results):
        mark = "" if row.met is None else (" ok" if row.met else " MISSED")
        table.add_row(
            row.figure,
            _fmt(row.value),
            row.unit,
            _fmt(row.ratio, 2),
            row.versus,
            f">= {row.target}{mark}" if row.target else "",
        )
    return table
