"""`tfdenoise runs`: the run directories, lowest validation loss first."""

from __future__ import annotations

import math

import click
from rich.console import Console
from rich.table import Table

from tfdenoise.cli.common import FIT_DEFAULTS


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

    table = Table()
    table.add_column("run", no_wrap=True)  # names are copied into --model and --resume
    for column in ("best val loss", "best val PSNR", "epochs", "finished", "test PSNR σ=25"):
        table.add_column(column)
    for summary in runs.ranked_runs(runs_dir):
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
