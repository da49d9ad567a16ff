"""`tfdenoise data-service dispatcher|worker`: tf.data service servers for `fit --data-service`."""

from __future__ import annotations

import click

from tfdenoise.cli.common import console


@click.group("data-service")
def data_service() -> None:
    """Run tf.data service servers that decode and crop images for `fit --data-service`."""


@data_service.command("dispatcher")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    required=True,
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Journal directory: a restarted dispatcher recovers its jobs from it.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C/SIGTERM).",
)
def dispatcher_command(port: int, work_dir: str | None, timeout: float | None) -> None:
    """Start a tf.data service dispatcher (trainers and workers connect to it)."""
    from tfdenoise.train import service

    try:
        server = service.start_dispatcher(port, work_dir)  # refuses a busy port
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    console.print(service.serve(server.address, "dispatcher", timeout, log=click.echo))
    service.exit_now()


@data_service.command("worker")
@click.option(
    "--dispatcher",
    "dispatcher",
    required=True,
    metavar="HOST:PORT",
    help="Address of the dispatcher.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    required=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--host",
    default="localhost",
    show_default=True,
    help="Name or IP under which trainers reach this worker (set it on multi-host).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C/SIGTERM).",
)
def worker_command(dispatcher: str, port: int, host: str, timeout: float | None) -> None:
    """Start a tf.data service worker: it runs the decode/crop work the dispatcher hands out."""
    from tfdenoise.train import service

    try:
        server = service.start_worker(dispatcher, port, host)  # refuses a busy port
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    console.print(
        service.serve(
            server.address,
            "worker",
            timeout,
            log=click.echo,
            status=lambda: f"{service.active_tasks(server)} active task(s)",
        )
    )
    service.exit_now()
