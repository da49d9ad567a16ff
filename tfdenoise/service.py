"""tf.data service: start its dispatcher and workers, and send a pipeline's work to them.

Decoding and cropping photos costs more CPU than a small trainer host has; tf.data service
runs that part of the pipeline on other processes or hosts. The trainer ships the dataset
*graph* to the dispatcher, so the graph must not call Python (no numpy_function: build the
pipeline with `allow_pil=False`), and every worker must be able to read the input files
under the same paths (a shared filesystem, or records on object storage).
"""

from __future__ import annotations

import dataclasses
import re

import tensorflow as tf

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
        raise ValueError(f"tf.data service address must be HOST:PORT or grpc://HOST:PORT, "
                         f"got {address!r}")
    return address if address.startswith("grpc://") else f"grpc://{address}"


def start_dispatcher(port: int, work_dir: str | None = None) -> RunningServer:
    """Start a dispatcher; with `work_dir` it journals its state and survives restarts."""
    config = tf.data.experimental.service.DispatcherConfig(
        port=port, work_dir=work_dir, fault_tolerant_mode=work_dir is not None)
    server = tf.data.experimental.service.DispatchServer(config)
    return RunningServer(server, server.target)


def start_worker(dispatcher: str, port: int, host: str = "localhost",
                 heartbeat_ms: int = HEARTBEAT_MS) -> RunningServer:
    """Start a worker that registers with `dispatcher`; `host` is how trainers reach it."""
    dispatcher = check_address(dispatcher).removeprefix("grpc://")
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=dispatcher, worker_address=f"{host}:%port%", port=port,
        heartbeat_interval_ms=heartbeat_ms)
    server = tf.data.experimental.service.WorkerServer(config)
    bound_port = server._address.rsplit(":", 1)[-1]  # differs from `port` when port is 0
    return RunningServer(server, f"{host}:{bound_port}")


def active_tasks(worker: RunningServer) -> int:
    """Tasks (one per job it serves) a worker is running now; for operators' logs.

    WorkerServer exposes no public accessor for this, so the private `_num_tasks` is used.
    """
    return int(worker.server._num_tasks())


def distribute(dataset: tf.data.Dataset, service: str, job_name: str | None = None,
               ) -> tf.data.Dataset:
    """Run `dataset` on tf.data service workers, each element read once per epoch.

    `distributed_epoch` splits the source (file names) between workers, so no two workers
    decode the same image in one pass. Trainers that pass the same `job_name` (all workers of
    one multi-worker run) share one job and receive disjoint elements.
    """
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode="distributed_epoch", service=check_address(service), job_name=job_name))
