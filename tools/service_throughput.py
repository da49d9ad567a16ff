#!/usr/bin/env python3
"""Input throughput of the training pipeline with 0, 1, 2 ... local tf.data service workers.

Why: `fit --data-service` moves decode/crop off the trainer; this shows what that buys on the
machine at hand. 0 workers = the pipeline runs in this process (what `fit` does by default).
N workers = a dispatcher and N `tfdenoise data-service worker` processes on 127.0.0.1 run the
same pipeline (built with allow_pil=False) and this process only receives batches.

usage: python tools/service_throughput.py DATA [--workers 0 1 2] [--seconds 20] [--warmup 5]
       [--batch-size 16] [--patch-size 128] [--per-image]
--per-image sends decoded patches of one image per element and batches here instead.
Prints one line per setting and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from tfdenoise.data import pipeline, sources  # noqa: E402
from tfdenoise.train import service  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def input_pipeline(source, spec: pipeline.PipelineSpec, per_image: bool) -> tf.data.Dataset:
    """The training pipeline, or (per_image) its decode+flip stage only, without Python calls."""
    encoded = source.encoded("train", training=True)
    if not per_image:
        return pipeline.training_pipeline(encoded, spec, allow_pil=False)
    return encoded.map(
        lambda raw, decoder: pipeline.random_flips(
            pipeline.decode_random_patches(
                raw, decoder, spec.patch_size, spec.patches_per_image, allow_pil=False
            )
        ),
        num_parallel_calls=pipeline.AUTOTUNE,
        deterministic=False,
    )


def rebatch_locally(dataset: tf.data.Dataset, spec: pipeline.PipelineSpec) -> tf.data.Dataset:
    return (
        dataset.unbatch()
        .shuffle(spec.shuffle_patches)
        .batch(spec.batch_size, drop_remainder=True)
        .map(lambda b: {"clean": b})
    )


def patches_per_second(dataset: tf.data.Dataset, warmup: float, seconds: float) -> float:
    """Patches delivered per second after `warmup` seconds of discarded batches."""
    iterator = iter(dataset.prefetch(pipeline.AUTOTUNE))
    started = time.monotonic()
    while time.monotonic() - started < warmup:
        next(iterator)
    patches, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        patches += int(next(iterator)["clean"].shape[0])
    return patches / (time.monotonic() - started)


def start_servers(workers: int, logs: Path) -> tuple[list[subprocess.Popen], str]:
    """Dispatcher + workers as separate processes (like separate hosts, on loopback)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    port = free_port()
    command = [sys.executable, "-m", "tfdenoise", "data-service"]
    processes = [
        subprocess.Popen(
            [*command, "dispatcher", "--port", str(port), "--timeout", "600"],
            env=env,
            cwd=REPO,
            stdout=open(logs / "dispatcher.log", "wb"),
            stderr=subprocess.STDOUT,
        )
    ]
    for index in range(workers):
        processes.append(
            subprocess.Popen(
                [
                    *command,
                    "worker",
                    "--dispatcher",
                    f"127.0.0.1:{port}",
                    "--port",
                    str(free_port()),
                    "--host",
                    "127.0.0.1",
                    "--timeout",
                    "600",
                ],
                env=env,
                cwd=REPO,
                stdout=open(logs / f"worker{index}.log", "wb"),
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 120
    for index, name in enumerate(["dispatcher"] + [f"worker{i}" for i in range(workers)]):
        while b"listening on" not in (logs / f"{name}.log").read_bytes():
            if time.monotonic() > deadline or processes[index].poll() is not None:
                raise RuntimeError(f"{name} did not start: see {logs / f'{name}.log'}")
            time.sleep(0.2)
    return processes, f"grpc://127.0.0.1:{port}"


def measure(
    source, spec, workers: int, per_image: bool, warmup: float, seconds: float, logs: Path
) -> float:
    dataset = input_pipeline(source, spec, per_image)
    if workers == 0:
        if per_image:
            dataset = rebatch_locally(dataset, spec)
        return patches_per_second(dataset, warmup, seconds)
    processes, address = start_servers(workers, logs)
    try:
        remote = service.distribute(dataset, address, job_name=f"bench-{workers}-{per_image}")
        if per_image:
            remote = rebatch_locally(remote, spec)
        return patches_per_second(remote, warmup, seconds)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--patches-per-image", type=int, default=4)
    parser.add_argument("--per-image", action="store_true")
    parser.add_argument("--logs", default="/tmp/tfdenoise-service-bench")
    args = parser.parse_args()

    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    source = sources.open_source(args.data)
    if source.pil_only("train"):
        raise SystemExit(
            f"{len(source.pil_only('train'))} training files need PIL; "
            f"use JPEG/PNG files or TFRecords"
        )
    spec = pipeline.PipelineSpec(
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        patches_per_image=args.patches_per_image,
    )
    results = {}
    for workers in args.workers:
        rate = measure(source, spec, workers, args.per_image, args.warmup, args.seconds, logs)
        results[workers] = {
            "patches_per_s": round(rate, 1),
            "images_per_s": round(rate / spec.patches_per_image, 1),
        }
        print(
            f"{workers} service workers: {rate:8.1f} patches/s = "
            f"{rate / spec.patches_per_image:7.1f} images/s",
            flush=True,
        )
    print(
        json.dumps(
            {
                "data": source.description,
                "train_images": source.count("train"),
                "per_image": args.per_image,
                "load_average": os.getloadavg(),
                "cpus": os.cpu_count(),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
