"""`tfdenoise runs`: the run directories, lowest validation loss first."""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tfdenoise.cli.common import FIT_DEFAULTS, log


@click.command("runs")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False),
    default=FIT_DEFAULTS.runs_dir,
    show_default=True,
    help="Where run directories live.",
)
def list_runs(runs_dir) -> None:
    """List runs, lowest validation loss first."""
    from tfdenoise import runs

    if not Path(runs_dir).is_dir():  # an empty table would look like "no runs yet"
        raise click.UsageError(f"runs folder does not exist: {runs_dir}")
    ranked = runs.ranked_runs(runs_dir)
    table = Table()
    table.add_column("run", no_wrap=True)  # names are copied into --model and --resume
    for column in ("best val loss", "best val PSNR", "epochs", "finished", "test PSNR σ=25"):
        table.add_column(column)
    for summary in ranked:
        if summary.problem:
            table.add_row(summary.path.name, "unreadable", "-", "-", "-", "-")
            continue
        val_psnr = f"{summary.best_val_psnr:.2f}" if math.isfinite(summary.best_val_psnr) else "-"
        loss = f"{summary.best_val_loss:.5f}" if math.isfinite(summary.best_val_loss) else "-"
        psnr = summary.test_psnr.get("gaussian-25")
        table.add_row(
            summary.path.name,
            loss,
            val_psnr,
            str(summary.epochs),
            "yes" if summary.finished else "no",
            f"{psnr:.2f}" if psnr else "-",
        )
    Console().print(table)
    for summary in ranked:
        if summary.problem:
            log(
                f"note: run {summary.path.name} is unreadable ({summary.problem}); "
                "--model best leaves it out"
            )
