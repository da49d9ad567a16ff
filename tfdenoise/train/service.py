"""tf.data service: start its dispatcher and workers, and send a pipeline's work to them.

Decoding and cropping photos costs more CPU than a small trainer host has; tf.data service
runs that part of the pipeline on other processes or hosts. The trainer ships the dataset
*graph* to the dispatcher, so the graph must not call Python (no numpy_function: build the
pipeline with `allow_pil=False`), and every worker must be able to read the input files
under the same paths (a shared filesystem, or records on object storage).
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable

import tensorflow as tf

from tfdenoise import ports

# Workers learn about new jobs on their heartbeat; TF's default (30 s) delays the first batch
# of every `fit` by up to 30 s. One small RPC per second is negligible.
HEARTBEAT_MS = 1000
ADDRESS = re.compile(r"^(grpc://)?[^:/\s]+:\d+$")


@dataclasses.dataclass(frozen=True)
class RunningServer:
    """A started server and the address clients use to reach it."""

    server: object  # DispatchServer or WorkerServer; kept alive by this reference
    address: str


def check_address(address: str) -> str:
    """`HOST:PORT` or `grpc://HOST:PORT`, returned with the grpc:// prefix."""
    if not ADDRESS.match(address):
        raise ValueError(
            f"tf.data service address must be HOST:PORT or grpc://HOST:PORT, got {address!r}"
        )
    return address if address.startswith("grpc://") else f"grpc://{address}"


def start_dispatcher(port: int, work_dir: str | None = None) -> RunningServer:
    """Start a dispatcher; with `work_dir` it journals its state and survives restarts.
    ValueError if `port` is busy (gRPC would share it: ports.check_port_free)."""
    ports.check_port_free(port)
    config = tf.data.experimental.service.DispatcherConfig(
        port=port, work_dir=work_dir, fault_tolerant_mode=work_dir is not None
    )
    server = tf.data.experimental.service.DispatchServer(config)
    return RunningServer(server, server.target)


def start_worker(
    dispatcher: str, port: int, host: str = "localhost", heartbeat_ms: int = HEARTBEAT_MS
) -> RunningServer:
    """Start a worker that registers with `dispatcher`; `host` is how trainers reach it.
    ValueError if `port` is busy (gRPC would share it: ports.check_port_free)."""
    dispatcher = check_address(dispatcher).removeprefix("grpc://")
    ports.check_port_free(port)
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=dispatcher,
        worker_address=f"{host}:%port%",
        port=port,
        heartbeat_interval_ms=heartbeat_ms,
    )
    server = tf.data.experimental.service.WorkerServer(config)
    bound_port = server._address.rsplit(":", 1)[-1]  # differs from `port` when port is 0
    return RunningServer(server, f"{host}:{bound_port}")


def active_tasks(worker: RunningServer) -> int:
    """Tasks (one per job it serves) a worker is running now; for operators' logs.

    WorkerServer exposes no public accessor for this, so the private `_num_tasks` is used.
    """
    return int(worker.server._num_tasks())


def distribute(
    dataset: tf.data.Dataset,
    service: str,
    job_name: str | None = None,
) -> tf.data.Dataset:
    """Run `dataset` on tf.data service workers, each element read once per epoch.

    `distributed_epoch` splits the source (file names) between workers, so no two workers
    decode the same image in one pass. Trainers that pass the same `job_name` (all workers of
    one multi-worker run) share one job and receive disjoint elements.
    """
    return dataset.apply(
        tf.data.experimental.service.distribute(
            processing_mode="distributed_epoch", service=check_address(service), job_name=job_name
        )
    )


def serve(
    address: str,
    role: str,
    timeout: float | None,
    log: Callable[[str], None],
    status: Callable[[], str] | None = None,
) -> str:
    """Say where the server listens, then block until Ctrl-C, SIGTERM or `timeout`; returns the
    closing line. `status()` (optional) is polled each second and logged whenever it changes.
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log(f"tf.data service {role} listening on {address}")
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if status is not None and status() != last:
                last = status()
                log(f"{role}: {last}")
            stop.wait(1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        stop.set()
    return f"{role} {'stopped' if stop.is_set() else f'timed out after {timeout:g} s'}"


def exit_now() -> None:
    """Leave the process without cleanup: a worker with a running task never finishes its C++
    shutdown (it waits for the task's endless input); its in-flight elements are lost by
    design."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
