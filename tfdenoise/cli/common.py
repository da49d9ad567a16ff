"""What every command shares: the rich console and progress bars, log lines, option types and
the options of the commands that load a model. The CLI layer is the only user of click and rich.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tfdenoise import config as config_module

console = Console(stderr=True)
FIT_DEFAULTS = config_module.FitConfig()
SPLIT_DEFAULT = ",".join(f"{fraction:g}" for fraction in config_module.DEFAULT_SPLIT)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def log(message: str) -> None:
    """One log line, never hard-wrapped (paths and reasons must stay greppable)."""
    console.print(message, highlight=False, soft_wrap=True, markup=False)


def note_other_files(root, exclude=None, shown: int = 5) -> None:
    """Say which files under root a folder command leaves out by suffix (PDFs, RAW files,
    notes), so a short count of images is never a mystery; nothing when there are none."""
    from tfdenoise.io import files

    counts = files.other_files(root, exclude)
    if not counts:
        return
    total = sum(counts.values())
    kinds = ", ".join(f"{suffix or '(no suffix)'} {n}" for suffix, n in counts.most_common(shown))
    more = f", {len(counts) - shown} more kinds" if len(counts) > shown else ""
    log(
        f"not read: {total} file{'s' if total != 1 else ''} under {root} whose suffix is not "
        f"an image format tfdenoise reads ({kinds}{more})"
    )


def describe(error: OSError) -> str:
    """'No space left on device: /path' rather than a traceback (one line, even for HDF5's
    multi-line messages)."""
    where = f": {error.filename}" if error.filename else ""
    return " ".join(f"{error.strerror or error}{where}".split())


def inference_policy(requested: str) -> str:
    """The precision a command that runs a model computes in, said in one line."""
    from tfdenoise import hardware

    policy, reason = hardware.inference_precision(requested)
    log(f"precision: {policy} ({reason})")
    return policy


def name_list(text: str) -> list[str]:
    """`a, b,,c` -> ["a", "b", "c"]: the names of a comma-separated option."""
    return [name.strip() for name in text.split(",") if name.strip()]


class AliasedChoice(click.Choice):
    """A choice that also takes earlier names (aliases) of its values, converted on the way in."""

    def __init__(self, choices, aliases: dict[str, str]):
        super().__init__(choices)
        self.aliases = aliases

    def convert(self, value, param, ctx):
        return super().convert(self.aliases.get(value, value), param, ctx)


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


# Options shared by the commands that load a model (predict, evaluate, export).
model_option = click.option(
    "--model",
    "model_spec",
    default=None,
    help="A .keras file, a run directory, 'best', or 'bundled' (the default when omitted).",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(config_module.PRECISIONS),
    default="auto",
    show_default=True,
    help="Inference precision; auto = bfloat16 on CPUs with native support, float16 on GPUs "
    "(outputs within a few grey levels of float32).",
)
ensemble_option = click.option(
    "--ensemble",
    type=click.Choice(["1", "2", "4", "8"]),
    default="2",
    show_default=True,
    callback=lambda _ctx, _param, value: int(value),
    help="Average the model over this many flipped/transposed views of each image: 2 gains "
    "~0.25 dB for 2x the time, 4 ~0.4 dB for 4x; 1 = fastest.",
)
runs_dir_option = click.option(
    "--runs-dir",
    type=click.Path(file_okay=False),
    default=FIT_DEFAULTS.runs_dir,
    show_default=True,
    help="Where 'best' looks for runs.",
)
