"""`tfdenoise bench`: measure pipelines, training and prediction side by side; print the ratios."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tfdenoise.cli.common import Counts, console


@click.command("bench")
@click.option(
    "--quick",
    is_flag=True,
    help="Smoke test: 1 round of short timings on a smaller corpus (~4 minutes); every figure "
    "is a single noisy measurement.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1),
    default=None,
    help="Interleaved rounds of every figure (A B C A B C ...); the table shows medians and "
    "min-max spreads over them [default: 5; 1 with --quick].",
)
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
    help="Timed seconds per pipeline figure and round (after warm-up).",
)
@click.option(
    "--train-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Timed seconds per training figure and round (after warm-up).",
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
    rounds,
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
    from tfdenoise.bench import run
    from tfdenoise.bench.config import BenchConfig

    overrides = {
        key: value
        for key, value in dict(
            corpus=corpus,
            rounds=rounds,
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
        config = BenchConfig.quick(**overrides) if quick else BenchConfig(**overrides)
        results = run(config, log=lambda message: console.print(message, highlight=False))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    results["command"] = (
        " ".join(["tfdenoise", "bench", *sys.argv[2:]])
        if len(sys.argv) > 1 and sys.argv[1] == "bench"
        else "tfdenoise bench"
    )
    out = Console()
    if not out.is_terminal:
        out = Console(width=150)  # files and CI logs: keep each row on one line
    out.print(_bench_table(results))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"results written to {json_path}")


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _fmt_spread(spread, digits: int = 1) -> str:
    return "" if spread is None else f"{_fmt(spread[0], digits)}–{_fmt(spread[1], digits)}"


def _caption(measurement: dict) -> str:
    """How to read the figures: medians over rounds, or (one round) single noisy measurements."""
    if measurement["single_noisy_measurements"]:
        return (
            "1 round: every figure is a single noisy measurement (a neighbour's load can move a "
            "ratio 2x). Smoke test only; run without --quick for medians over rounds."
        )
    return (
        f"median over {measurement['rounds']} interleaved rounds (A B C A B C ...); spread = "
        "min–max over rounds; each ratio is computed per round from the two figures measured "
        "side by side in it, then the median of those ratios is shown."
    )


def _bench_table(results: dict) -> Table:
    """Figures with the ratio each is judged by and its target (ratios from this run only)."""
    from tfdenoise.bench.table import table_rows

    pipe, measurement = results["pipeline"], results["measurement"]
    table = Table(
        title=f"tfdenoise bench ({results['machine']['cpus']} CPUs, "
        f"{pipe['images']} images, {pipe['mean_megapixels']} MP mean, "
        f"{measurement['rounds']} round{'s' if measurement['rounds'] != 1 else ''})",
        caption=_caption(measurement),
    )
    columns = ("figure", "median", "min–max", "unit", "ratio", "ratio min–max", "vs", "target")
    for column in columns:
        table.add_column(column, justify="left" if column in ("figure", "unit", "vs") else "right")
    for row in table_rows(results):
        mark = "" if row.met is None else (" ok" if row.met else " MISSED")
        table.add_row(
            escape(row.figure),  # "[headline]" is text, not a rich style
            _fmt(row.value),
            _fmt_spread(row.spread),
            row.unit,
            _fmt(row.ratio, 2),
            _fmt_spread(row.ratio_spread, 2),
            row.versus,
            f">= {row.target}{mark}" if row.target else "",
        )
    return table
