"""The `tfdenoise` command line: thin click commands over library functions, one module per
command; the only layer that imports click and rich."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the CLI

import click  # noqa: E402

from tfdenoise.cli.bench import bench_command  # noqa: E402
from tfdenoise.cli.data_service import data_service  # noqa: E402
from tfdenoise.cli.evaluate import evaluate_command  # noqa: E402
from tfdenoise.cli.export import export_command  # noqa: E402
from tfdenoise.cli.fit import fit  # noqa: E402
from tfdenoise.cli.predict import predict_command, predict_main  # noqa: E402
from tfdenoise.cli.records import make_tfrecords  # noqa: E402
from tfdenoise.cli.runs import list_runs  # noqa: E402

__all__ = ["main", "predict_main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfdenoise")
def main() -> None:
    """Train and serve convolutional image denoisers with TensorFlow."""


for command in (
    fit,
    predict_command,
    evaluate_command,
    export_command,
    make_tfrecords,
    bench_command,
    list_runs,
    data_service,
):
    main.add_command(command)
