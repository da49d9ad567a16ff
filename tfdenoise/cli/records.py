"""`tfdenoise make-tfrecords`: convert an image folder into sharded TFRecords + manifest."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.table import Table

from tfdenoise.cli.common import (
    SPLIT_DEFAULT,
    SplitFractions,
    console,
    note_other_files,
    progress_bar,
)
from tfdenoise.config import DEFAULT_MAX_PIXELS
from tfdenoise.io.encoding import DEFAULT_LOSSLESS, LOSSLESS_FORMATS


@click.command("make-tfrecords")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--shard-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=128,
    show_default=True,
    help="Approximate shard size, counted in source-file bytes.",
)
@click.option(
    "--split",
    "fractions",
    type=SplitFractions(),
    default=SPLIT_DEFAULT,
    show_default=True,
    help="Train,val,test fractions (a file's split is a hash of its relative path).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=os.cpu_count() or 1,
    show_default=True,
    help="Parallel conversions (and probes while planning).",
)
@click.option(
    "--executor",
    type=click.Choice(["thread", "process"]),
    default="thread",
    show_default=True,
    help="Run conversions on threads or spawned processes.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Skip images with more pixels than this (decompression bombs).",
)
@click.option(
    "--lossless",
    type=click.Choice(LOSSLESS_FORMATS),
    default=None,
    help=(
        "How images other than JPEGs are stored, as 8-bit RGB: raw pixels (decoded 4-7x "
        "faster than PNG, 1.7-3.3x its bytes on photos) or lossless PNG (for slow storage). "
        f"[default: {DEFAULT_LOSSLESS}; an unfinished OUT keeps its own]"
    ),
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Convert again even if OUT holds a finished or unfinished conversion.",
)
def make_tfrecords(
    src: Path, out: Path, shard_mb, fractions, workers, executor, max_pixels, lossless, overwrite
) -> None:
    """Convert the images under SRC into sharded TFRecords + manifest.json in OUT.

    JPEGs are stored byte-identical, other images as 8-bit RGB (raw pixels, or PNG with
    --lossless png); bad files are skipped and listed. An interrupted run finishes when run
    again; a finished OUT is left as it is.
    Exit status: 0 when records were written (even if some files were skipped), 1 when SRC
    holds no usable image, 2 on usage errors -- among them OUT being written by another
    make-tfrecords right now (OUT/.lock is held): the second run is refused, never interleaved.
    """
    from tfdenoise.io.records.convert import NothingToConvert, OutputBusy, convert_folder
    from tfdenoise.io.records.folder import MANIFEST

    note_other_files(src, exclude=out)
    with progress_bar() as progress:
        task = progress.add_task("validating", total=None, status="")

        def on_progress(event: str, amount: int) -> None:
            if event == "plan":
                progress.update(task, description="writing", total=amount, status="")
            elif event == "image":
                progress.advance(task, amount)

        try:
            report = convert_folder(
                src,
                out,
                fractions,
                shard_mb,
                max_pixels,
                workers,
                executor,
                overwrite,
                progress=on_progress,
                lossless=lossless,
            )
        except NothingToConvert as error:
            progress.stop()
            _print_skipped([(s.path, s.reason) for s in error.skipped])
            console.print(f"[red]{error}[/red]", highlight=False)
            sys.exit(1)
        except OutputBusy as error:  # a usage error too, but say it plainly
            progress.stop()
            raise click.UsageError(f"refused: {error}") from None
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if report.already_done:
        console.print(
            f"{out} is already finished ({MANIFEST} present): nothing to do; "
            "--overwrite converts again.",
            highlight=False,
        )
    _print_records_summary(report)


def _print_records_summary(report) -> None:
    manifest = report.manifest
    table = Table(title=f"TFRecords in {report.out}")
    for column in ("split", "images", "shards", "MB"):
        table.add_column(column, justify="right")
    for split, count in manifest["counts"].items():
        shards = [s for s in manifest["shards"] if s["split"] == split]
        table.add_row(
            split, str(count), str(len(shards)), f"{sum(s['bytes'] for s in shards) / 2**20:.1f}"
        )
    console.print(table)
    if not report.already_done:
        console.print(
            f"{report.images_written} images ({report.source_bytes_written / 2**20:.1f} "
            f"MB of source files) converted in {report.seconds:.1f} s: "
            f"{report.images_per_second:.1f} images/s, "
            f"{report.megabytes_per_second:.1f} MB/s",
            highlight=False,
        )
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
