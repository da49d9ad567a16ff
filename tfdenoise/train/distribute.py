"""Distribution strategy for `fit`: which tf.distribute engine, which worker writes, which data.

One job: decide *how* training is spread over devices and hosts, using TensorFlow's own
engines (MirroredStrategy on several local GPUs, MultiWorkerMirroredStrategy across
processes/hosts described by TF_CONFIG). Pipelines stay in tfdenoise.data; this module only
says how many replicas there are, how to shard the input, and who is the chief.

MultiWorkerMirroredStrategy must be created before TensorFlow runs any op in the process
(collectives are configured at start-up), so `fit` creates the strategy first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import tensorflow as tf

from tfdenoise import runs
from tfdenoise.config import STRATEGIES

RUN_ID_ENV = "TFDENOISE_RUN_ID"


@dataclasses.dataclass(frozen=True)
class Choice:
    """The strategy `fit` uses and why; printed at the start of a run."""

    name: str  # one of STRATEGIES except "auto"
    reason: str


def cluster_tasks(tf_config: str | None) -> int:
    """Number of tasks (chief + workers) that TF_CONFIG names; 0 without a cluster."""
    if not tf_config:
        return 0
    try:
        cluster = json.loads(tf_config).get("cluster", {})
    except (json.JSONDecodeError, AttributeError):
        raise ValueError(f"TF_CONFIG is not a JSON object: {tf_config[:80]!r}") from None
    return sum(len(addresses) for job, addresses in cluster.items() if job != "evaluator")


def choose(requested: str, gpus: int, tasks: int) -> Choice:
    """Resolve `--strategy` (pure function of the machine and TF_CONFIG, so it is testable)."""
    if requested not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {requested!r}")
    if requested != "auto":
        return Choice(requested, "requested")
    if tasks > 1:
        return Choice("multi-worker", f"TF_CONFIG names a cluster of {tasks} tasks")
    if gpus > 1:
        return Choice("mirrored", f"{gpus} GPUs visible: one replica per GPU")
    return Choice("default", "one device and no cluster in TF_CONFIG")


def create(choice: Choice) -> tf.distribute.Strategy:
    """The tf.distribute strategy object for a resolved choice."""
    if choice.name == "multi-worker":
        # RING collectives work on CPUs and GPUs alike; NCCL would be picked on GPUs by AUTO.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if choice.name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def replica_batch_size(global_batch: int, replicas: int) -> int:
    """Per-replica batch; a global batch that does not split evenly is refused."""
    if global_batch % replicas:
        raise ValueError(
            f"batch size {global_batch} is not divisible by the {replicas} replicas; "
            f"use a multiple of {replicas}"
        )
    return global_batch // replicas


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that writes the run directory (the usual Keras rule)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Worker processes in the cluster (each runs one input pipeline); 1 without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("chief", [])) + len(spec.get("worker", [])))


def shard(count: int, context: tf.distribute.InputContext) -> tuple[int, int]:
    """(num_shards, index) for a list of `count` files read by this input pipeline.

    Files are dealt out across workers before any read (FILE sharding: no worker decodes an
    image another worker keeps). With fewer files than workers every worker reads them all,
    so no shard is empty; an infinite stream then simply has duplicates.
    """
    if context.num_input_pipelines <= 1 or count < context.num_input_pipelines:
        return 1, 0
    return context.num_input_pipelines, context.input_pipeline_id


def distributed_dataset(
    strategy: tf.distribute.Strategy, build: Callable[[tf.distribute.InputContext], tf.data.Dataset]
):
    """A dataset for `model.fit`: `build` gets the InputContext (shard + per-replica batch).

    Without distribution the plain dataset is returned, so the common path is unchanged.
    """
    if strategy.num_replicas_in_sync == 1 and num_workers(strategy) == 1:
        return build(tf.distribute.InputContext())
    return strategy.distribute_datasets_from_function(build)


def run_dir_name(run_id: str | None, choice: Choice) -> str | None:
    """The run directory name all workers agree on: --run-id or $TFDENOISE_RUN_ID.

    Multi-worker runs need one (timestamps differ between hosts); others may omit it.
    """
    run_id = run_id or os.environ.get(RUN_ID_ENV) or None
    if run_id is None and choice.name == "multi-worker":
        raise ValueError(
            f"multi-worker training needs a run id shared by all workers: pass --run-id ID "
            f"or set {RUN_ID_ENV} to the same value on every worker"
        )
    return None if run_id is None else runs.check_plain_name(run_id, "run id")


@contextmanager
def worker_dir(run_dir: Path, chief: bool) -> Iterator[Path]:
    """Where this worker writes: the run directory for the chief, else a temporary copy.

    Non-chief workers must still save (saving reads synchronised variables, a collective
    all workers join) but their files are thrown away. They start from a copy of the chief's
    history so that early stopping decides identically on every worker after a resume.
    """
    if chief:
        yield run_dir
        return
    temporary = Path(tempfile.mkdtemp(prefix="tfdenoise-worker-"))
    try:
        for name in ("history.json", "config.json"):
            if (run_dir / name).is_file():
                shutil.copy(run_dir / name, temporary / name)
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
