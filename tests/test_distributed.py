"""Scaling out: strategy choice, 2-worker MultiWorkerMirroredStrategy, tf.data service.

The process tests start `python -m tfdenoise` children of the checkout under test (cwd and
PYTHONPATH = this repository), on 127.0.0.1 with free ports, each bounded by a timeout and
killed in a `finally`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import photo_like, save, write_mode_zoo

from tfdenoise.config import FitConfig
from tfdenoise.data import pipeline, sources
from tfdenoise.io.files import Decoder
from tfdenoise.io.records.convert import convert_folder
from tfdenoise.io.records.folder import shard_paths
from tfdenoise.train import distribute, service
from tfdenoise.train.fit import fit

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds for any child process; the tests take ~1 min on 2 busy cores
FIT = [
    "--epochs",
    "4",
    "--steps-per-epoch",
    "6",
    "--lr",
    "3e-3",
    "--batch-size",
    "8",
    "--patch-size",
    "32",
    "--eval-size",
    "32",
    "--val-steps",
    "2",
    "--noise",
    "gaussian",
    "--sigma-range",
    "25",
    "25",
    "--precision",
    "float32",
    "--patience",
    "10",
    "--seed",
    "0",
]


# --- choices, in process ----------------------------------------------------------------


@pytest.mark.parametrize(
    "requested, gpus, tasks, expected",
    [
        ("auto", 0, 0, "default"),
        ("auto", 1, 0, "default"),
        ("auto", 4, 0, "mirrored"),
        ("auto", 0, 2, "multi-worker"),
        ("auto", 4, 3, "multi-worker"),
        ("mirrored", 0, 0, "mirrored"),
        ("default", 4, 2, "default"),
    ],
)
def test_auto_strategy_follows_gpus_and_tf_config(requested, gpus, tasks, expected):
    assert distribute.choose(requested, gpus, tasks).name == expected


def test_tf_config_counts_chief_and_workers_but_not_the_evaluator():
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"], "evaluator": ["d:1"]}
    assert distribute.cluster_tasks(json.dumps({"cluster": cluster})) == 3
    assert distribute.cluster_tasks(None) == 0
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.cluster_tasks("{not json")


def test_global_batch_must_split_evenly_across_replicas():
    assert distribute.replica_batch_size(16, 4) == 4
    with pytest.raises(ValueError, match="not divisible by the 3 replicas"):
        distribute.replica_batch_size(16, 3)


def test_multi_worker_runs_need_a_shared_run_id(monkeypatch):
    monkeypatch.delenv(distribute.RUN_ID_ENV, raising=False)
    multi = distribute.Choice("multi-worker", "test")
    with pytest.raises(ValueError, match="run id"):
        distribute.run_dir_name(None, multi)
    monkeypatch.setenv(distribute.RUN_ID_ENV, "exp7")
    assert distribute.run_dir_name(None, multi) == "exp7"
    with pytest.raises(ValueError, match="plain name"):
        distribute.run_dir_name("../up", multi)


def test_files_are_dealt_out_by_worker_unless_there_are_too_few():
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    assert distribute.shard(10, context) == (2, 1)
    assert distribute.shard(1, context) == (1, 0)


def test_service_addresses_are_checked():
    assert service.check_address("localhost:5050") == "grpc://localhost:5050"
    assert service.check_address("grpc://10.0.0.2:5050") == "grpc://10.0.0.2:5050"
    with pytest.raises(ValueError, match="HOST:PORT"):
        service.check_address("localhost")


def _sources_of(dataset: tf.data.Dataset) -> list[bytes]:
    return sorted(bytes(image.numpy()) for image, _ in dataset)


@pytest.mark.parametrize("shard_mb", [0.01, 100.0])  # many shard files / a single one
def test_record_shards_give_each_worker_different_images(image_folder, tmp_path, shard_mb):
    """FILE sharding when there are enough shard files, DATA sharding otherwise: either way the
    two workers' images are disjoint and together are the whole split."""
    out = tmp_path / "records"
    convert_folder(image_folder, out, shard_mb=shard_mb, workers=1)
    source = sources.open_source(out)
    files = len(shard_paths(out, source.manifest, "train"))
    assert files >= 2 if shard_mb < 1 else files == 1
    everything = _sources_of(source.encoded("train", training=False))
    halves = [_sources_of(source.encoded("train", False, (2, i))) for i in range(2)]
    assert halves[0] and halves[1]
    assert not set(halves[0]) & set(halves[1])
    assert sorted(halves[0] + halves[1]) == everything
    # Training streams (shuffled, repeated) draw only from their worker's half; kept in
    # memory, each epoch is exactly that half (a streamed one may mix neighbouring epochs).
    for keep_small in (True, False):
        for index, half in enumerate(halves):
            stream = iter(source.encoded("train", True, (2, index), keep_small=keep_small))
            draws = 3 * len(half) if keep_small else 3 * len(half) + 64  # past the window
            first = sorted(bytes(next(stream)[0].numpy()) for _ in range(draws))
            assert set(first) == set(half)
            if keep_small:  # three whole epochs
                assert first == sorted(3 * half)


def test_data_service_refuses_images_only_pil_decodes(tmp_path):
    folder = tmp_path / "zoo"
    write_mode_zoo(folder)
    config = FitConfig(
        data=str(folder),
        runs_dir=str(tmp_path / "runs"),
        data_service="grpc://127.0.0.1:1",
        split=(1.0, 0.0, 0.0),
    )
    with pytest.raises(ValueError, match="need PIL"):
        fit(config, log=lambda message: None)
    assert not (tmp_path / "runs").exists()


def _graph_ops(dataset: tf.data.Dataset) -> str:
    return dataset._as_serialized_graph().numpy().decode("latin-1")


def test_pipeline_without_pil_has_no_python_calls_and_still_decodes(tmp_path):
    """tf.data service ships the graph: it must hold no PyFunc, yet JPEG/PNG must decode."""
    paths = [
        save(tmp_path / "a.png", photo_like(40, 48)),
        save(tmp_path / "b.jpg", photo_like(48, 40, seed=1), quality=90),
    ]
    encoded = (
        tf.data.Dataset.from_tensor_slices(
            ([str(p) for p in paths], [int(Decoder.TF_IMAGE), int(Decoder.JPEG)])
        )
        .map(lambda path, decoder: (tf.io.read_file(path), decoder))
        .repeat()
    )
    spec = pipeline.PipelineSpec(batch_size=4, patch_size=32, patches_per_image=2)
    assert "PyFunc" in _graph_ops(pipeline.training_pipeline(encoded, spec))
    remote = pipeline.training_pipeline(encoded, spec, allow_pil=False)
    assert "PyFunc" not in _graph_ops(remote)
    batch = next(iter(remote))["clean"]
    assert batch.shape == (4, 32, 32, 3) and batch.dtype == tf.uint8


# --- processes on 127.0.0.1 -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m tfdenoise ARGS` from this checkout, output to `log`."""
    inherited = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}  # no stray cluster
    full_env = {**inherited, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "tfdenoise", *args],
            cwd=REPO,
            env=full_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_all(processes: list[subprocess.Popen], logs: list[Path], deadline: float) -> None:
    """Wait for every process to exit 0 before `deadline`; show the log of any that did not."""
    for process, log in zip(processes, logs):
        try:
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{log.name} timed out:\n{log.read_text(errors='replace')[-3000:]}")
        assert code == 0, f"{log.name} exited {code}:\n{log.read_text(errors='replace')[-3000:]}"


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def epoch_losses(run_dir: Path) -> list[float]:
    return [row["loss"] for row in json.loads((run_dir / "history.json").read_text())]


@pytest.mark.distributed
def test_two_workers_follow_the_single_worker_loss_trend(image_folder, tmp_path):
    """Same seed (same initial weights), same global batch (8 = 2 x 4), same steps and
    schedule: the 2-worker run differs only in which patches and noise each step draws (files
    are sharded, replicas fold their id into the noise seed), so the curves must agree in
    trend and level, not bit for bit. A loss scaled wrongly across replicas would be off by 2x.
    """
    runs_dir = tmp_path / "runs"
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    common = ["fit", str(image_folder), *FIT, "--runs-dir", str(runs_dir)]
    scratch = tmp_path / "worker-tmp"
    scratch.mkdir()
    logs = [tmp_path / "single.log", tmp_path / "worker0.log", tmp_path / "worker1.log"]
    processes = []
    try:
        processes.append(start([*common, "--strategy", "default", "--run-id", "single"], logs[0]))
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            processes.append(
                start(
                    [*common, "--strategy", "auto", "--run-id", "pair"],
                    logs[1 + index],
                    env={"TF_CONFIG": tf_config, "TMPDIR": str(scratch)},
                )
            )
        wait_all(processes, logs, time.monotonic() + TIMEOUT)
    finally:
        stop(processes)

    assert "strategy: multi-worker" in logs[1].read_text()
    assert "non-chief" in logs[2].read_text()
    assert sorted(p.name for p in runs_dir.iterdir()) == ["pair", "single"]  # chief wrote once
    assert not any(scratch.iterdir()), "the non-chief worker left its temporary files"
    single, pair = epoch_losses(runs_dir / "single"), epoch_losses(runs_dir / "pair")
    assert len(single) == len(pair) == 4
    for losses in (single, pair):
        assert losses[-1] < 0.95 * losses[0], losses
    assert abs(pair[-1] - single[-1]) < 0.15 * single[-1], (single, pair)
    assert abs(pair[0] - single[0]) < 0.15 * single[0], (single, pair)


def wait_for_line(log: Path, text: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{log.name} never printed {text!r}:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


@pytest.mark.distributed
def test_data_service_workers_feed_fit(image_folder, tmp_path):
    """A dispatcher and 2 workers decode and crop every training batch of a short `fit`.

    The trainer reads training batches only from the service, so a finished run proves they
    were served; each worker logging an active task shows both took part.
    """
    dispatcher_port, worker_ports = free_port(), [free_port(), free_port()]
    address = f"127.0.0.1:{dispatcher_port}"
    servers: list[subprocess.Popen] = []
    fit = None
    try:
        log = tmp_path / "dispatcher.log"
        servers.append(
            start(
                [
                    "data-service",
                    "dispatcher",
                    "--port",
                    str(dispatcher_port),
                    "--timeout",
                    str(TIMEOUT),
                ],
                log,
            )
        )
        wait_for_line(log, "listening on", servers[0], 120)
        for index, port in enumerate(worker_ports):
            log = tmp_path / f"service-worker{index}.log"
            servers.append(
                start(
                    [
                        "data-service",
                        "worker",
                        "--dispatcher",
                        address,
                        "--port",
                        str(port),
                        "--host",
                        "127.0.0.1",
                        "--timeout",
                        str(TIMEOUT),
                    ],
                    log,
                )
            )
        for index, server in enumerate(servers[1:]):
            wait_for_line(tmp_path / f"service-worker{index}.log", "listening on", server, 120)

        fit_log = tmp_path / "fit.log"
        runs_dir = tmp_path / "runs"
        fit = start(
            [
                "fit",
                str(image_folder),
                *FIT,
                "--epochs",
                "2",
                "--steps-per-epoch",
                "3",
                "--runs-dir",
                str(runs_dir),
                "--run-id",
                "served",
                "--data-service",
                f"grpc://{address}",
            ],
            fit_log,
        )
        wait_all([fit], [fit_log], time.monotonic() + TIMEOUT)
        assert all(server.poll() is None for server in servers), "a server died during fit"
    finally:
        stop([p for p in [fit, *servers] if p is not None])

    assert len(epoch_losses(runs_dir / "served")) == 2
    for index in range(2):
        assert "worker: 1 active task(s)" in (tmp_path / f"service-worker{index}.log").read_text()


@pytest.mark.distributed
def test_data_service_server_stops_on_sigterm(tmp_path):
    log = tmp_path / "dispatcher.log"
    process = start(
        ["data-service", "dispatcher", "--port", str(free_port()), "--timeout", str(TIMEOUT)], log
    )
    try:
        wait_for_line(log, "listening on grpc://", process, 120)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert "dispatcher stopped" in log.read_text()
    finally:
        stop([process])
