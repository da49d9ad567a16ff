"""The predict figures: full-size images through the model (1 pass, and predict's defaults)
and the whole pipelined folder job on the same images; `measure_predict` takes them alone."""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from tfdenoise import hardware, inference, models
from tfdenoise.bench.config import BenchConfig
from tfdenoise.bench.rounds import BenchFigure, FigureGroup, Log, collect
from tfdenoise.ensemble import with_passes
from tfdenoise.io import files as image_files
from tfdenoise.predict import folder, pipelined

PREDICT_PASSES = 2  # predict's default --ensemble


def predict_arrays(config: BenchConfig, files: Sequence[image_files.ImageFile]) -> list[np.ndarray]:
    """The largest corpus images under the size cap (the smallest image if none is under it)."""
    cap = config.predict_max_megapixels * 1e6
    candidates = sorted(
        (f for f in files if f.info.width * f.info.height <= cap),
        key=lambda f: f.info.width * f.info.height,
        reverse=True,
    )
    chosen = candidates[: config.predict_images] or [
        min(files, key=lambda f: f.info.width * f.info.height)
    ]
    return [image_files.load_rgb8(f.path) for f in chosen]


def predict_group(
    config: BenchConfig, files: Sequence[image_files.ImageFile], work: Path, log: Log
) -> FigureGroup:
    """Megapixels per second denoising full-size corpus images: the model with 1 pass, the
    model with predict's defaults (2 passes, tiles) on the images in memory, and the whole
    pipelined folder job over the same images as JPEG files writing PNGs. Start-up and the
    models' first calls happen here, once, so no round includes them."""
    arrays = predict_arrays(config, files)
    megapixels = sum(a.shape[0] * a.shape[1] for a in arrays) / 1e6
    plan = hardware.plan()
    log(f"predict: {len(arrays)} full-size images ({plan.precision}), warming up ...")
    with hardware.precision_policy(plan.precision):
        model = models.built(models.UNet(widths=config.widths, name="unet"))
        passes = with_passes(model, PREDICT_PASSES)
        inference.denoise_rgb8(model, arrays[-1])  # first calls build the graphs
        inference.denoise_rgb8(passes, arrays[-1])
    source = work / "photos"
    source.mkdir(parents=True, exist_ok=True)
    for index, array in enumerate(arrays):
        keras.utils.array_to_img(array, scale=False).save(source / f"{index}.jpg", quality=92)

    def in_memory(denoiser) -> Callable[[], float]:
        def measure() -> float:
            with hardware.precision_policy(plan.precision):
                started = time.perf_counter()
                for array in arrays:
                    inference.denoise_rgb8(denoiser, array)
                return megapixels / (time.perf_counter() - started)

        return measure

    outputs = itertools.count()

    def whole() -> float:
        out = work / f"out-{next(outputs)}"  # a fresh output folder: nothing to skip
        with hardware.precision_policy(plan.precision):
            report = pipelined.predict_folder_pipelined(
                passes, source, out, folder.PredictOptions()
            )
        return report.megapixels_per_second if len(report.written) == len(arrays) else 0.0

    figures = [
        BenchFigure("predict.megapixels_per_s", "predict: model, 1 pass", in_memory(model)),
        BenchFigure(
            "predict.model_only_mp_s",
            f"predict: model, {PREDICT_PASSES} passes",
            in_memory(passes),
        ),
        BenchFigure(
            "predict.whole_mp_s", f"predict: whole pipelined run, {len(arrays)} JPEGs -> PNG", whole
        ),
    ]
    info = {
        "images": len(arrays),
        "megapixels": round(megapixels, 3),
        "precision": plan.precision,
        "passes": PREDICT_PASSES,
    }
    return FigureGroup("predict", figures, info)


def measure_predict(config: BenchConfig, files: Sequence[image_files.ImageFile], log: Log) -> dict:
    """The predict figures alone (`config.rounds` interleaved rounds): the "predict" section of
    the results, with the per-round figures and `whole_vs_model_only` (median per-round ratio)."""
    with tempfile.TemporaryDirectory(prefix="tfdenoise-bench-predict-") as work:
        group = predict_group(config, files, Path(work), log)
        results = collect([group], config.rounds, log)
    prediction = results["predict"]
    prediction["rounds"] = results["rounds"]["figures"]
    prediction["whole_vs_model_only"] = results["ratios"]["predict_whole_vs_model_only"]
    return prediction
