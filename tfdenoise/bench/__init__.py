"""The measurements behind `tfdenoise bench`: input cost and model cost, seen apart.

Like nanoGPT's benchmark, every figure is taken after a warm-up, and the model is timed both
on a constant in-memory batch (synthetic: model cost only) and fed by the real pipeline, so
the difference is what the input pipeline costs the model. Comparisons are meant as ratios
of figures from the same run: the machine this runs on is shared and absolute numbers drift.

Figures are taken in interleaved rounds (rounds.py); the ratios and their targets are in
ratios.py. Stages: inputs.py (the corpus, the pipeline figures; beside them prototype.py and
ceilings.py), training.py, prediction.py; the printed rows: table.py; sizes: config.py.

Figures (JSON keys, dotted = nested; each the median over rounds):
  pipeline.prototype_generator_img_s   the prototype's Python generator (cv2 or PIL, NumPy noise)
  pipeline.files_img_s            our folder pipeline, same 224x224 output (headline)
  pipeline.tfrecords_img_s        our TFRecord pipeline, same output (headline)
  pipeline.tfrecords_raw_img_s    the same with non-JPEGs stored as raw pixels (--lossless raw)
  pipeline.decode_ceiling_img_s   every core decoding the same JPEGs, nothing else
  pipeline.crop_decode_ceiling_patches_s  every core decoding only patch-sized JPEG windows
  train.synthetic_img_s / pipeline_img_s / float32_img_s / auto_precision_img_s /
  xla_on_img_s / xla_off_img_s    training steps, images (patches) per second
  predict.megapixels_per_s        full-size images through the model
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from tfdenoise import hardware
from tfdenoise.bench.config import BenchConfig
from tfdenoise.bench.inputs import (
    corpus_files,
    corpus_folder,
    make_feeds,
    pipeline_figures,
    pipeline_info,
    pipeline_specs,
)
from tfdenoise.bench.prediction import predict_group
from tfdenoise.bench.ratios import TARGETS
from tfdenoise.bench.rounds import FigureGroup, Log, collect
from tfdenoise.bench.training import training_group
from tfdenoise.io import files as image_files


def machine() -> dict:
    """What the figures were measured on: absolute figures compare only on the same machine."""
    return {
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "processor": platform.processor() or None,
        "gpus": hardware.gpu_count(),
        "cpu_bf16": sorted(hardware.cpu_flags() & hardware.BF16_CPU_FLAGS),
    }


def run(config: BenchConfig, log: Log = print) -> dict:
    """Every figure in one process, in `config.rounds` interleaved rounds; returns the
    JSON-ready results (medians in each section; rounds, summaries and the method beside)."""
    config.validate()
    started = time.perf_counter()
    with (
        corpus_folder(config, log) as root,
        tempfile.TemporaryDirectory(prefix="tfdenoise-bench-records-") as folder,
    ):
        work = Path(folder)
        files = corpus_files(root, config.images)
        feeds = make_feeds(files, work, "all", log, raw=True)
        jpeg_files = [f for f in files if f.info.decoder == image_files.Decoder.JPEG]
        jpeg_feeds = None
        if 2 <= len(jpeg_files) < len(files):
            jpeg_feeds = make_feeds(jpeg_files, work, "jpeg", log)
        elif len(jpeg_files) == len(files):
            jpeg_feeds = feeds
        patch_spec = pipeline_specs(config)["patch"]
        pipe = pipeline_figures(config, feeds, jpeg_feeds)
        groups = [
            FigureGroup("pipeline", pipe, pipeline_info(config, files)),
            training_group(config, feeds.tfrecords(patch_spec), "tfrecords", log),
            predict_group(config, files, work / "predict", log),
        ]
        results = collect(groups, config.rounds, log)
        results["corpus"] = {
            "path": config.corpus or "generated from the sample photos",
            "images_used": len(files),
        }
    results["targets"] = TARGETS
    results["config"] = dataclasses.asdict(config)
    results["machine"] = machine()
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results
