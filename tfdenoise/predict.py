"""Denoise every image in a folder at full resolution: `python -m tfdenoise.predict DIR`.

list -> decode (PIL, EXIF orientation applied) -> pad -> model -> crop -> encode PNG -> write.
Inputs are never modified; outputs go to OUT/<relative path>.png via temp file + rename, and
existing outputs are kept unless overwrite is asked for.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from tfdenoise import images, models, runs

PRETRAINED = Path(__file__).parent / "pretrained" / "denoiser.keras"


def resolve_model_path(spec: str | None, runs_dir: str | Path = "runs") -> Path:
    """A `--model` value -> .keras file: a path, a run directory, "best", or None (bundled)."""
    if spec is None:
        if not PRETRAINED.is_file():
            raise ValueError("no bundled model in this install; pass --model PATH, a run "
                             "directory, or 'best'")
        return PRETRAINED
    if spec == "best":
        return runs.best_run(runs_dir) / runs.BEST_MODEL
    path = Path(spec)
    if path.is_dir():
        candidate = path / runs.BEST_MODEL
        if not candidate.is_file():
            raise ValueError(f"run directory {path} has no {runs.BEST_MODEL}")
        return candidate
    if not path.exists():
        raise ValueError(f"model not found: {spec}")
    return path


def load(spec: str | None, runs_dir: str | Path = "runs"):
    return models.load_model(resolve_model_path(spec, runs_dir))


def default_output_dir(input_dir: str | Path) -> Path:
    """OUT defaults to DIR_denoised beside DIR."""
    resolved = Path(input_dir).resolve()
    return resolved.with_name(f"{resolved.name}_denoised")


def output_path(path: Path, input_dir: Path, output_dir: Path) -> Path:
    return (output_dir / path.relative_to(input_dir)).with_suffix(".png")


def denoise_rgb8(model, image: np.ndarray) -> np.ndarray:
    """Denoise one H x W x 3 uint8 image at its full size; uint8 out."""
    batch = tf.convert_to_tensor(image[None])
    denoised = tf.clip_by_value(model(models.to_unit_float(batch), training=False), 0.0, 1.0)
    return np.round(denoised[0].numpy() * 255.0).astype(np.uint8)


def write_png_atomic(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(image).save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@dataclasses.dataclass
class Report:
    written: list[Path] = dataclasses.field(default_factory=list)
    kept: list[Path] = dataclasses.field(default_factory=list)
    failed: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    megapixels: float = 0.0
    seconds: float = 0.0

    @property
    def megapixels_per_second(self) -> float:
        return self.megapixels / self.seconds if self.seconds else 0.0


def predict_folder(
    model,
    input_dir: str | Path,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
    on_image: Callable[[Path, str], None] | None = None,
) -> Report:
    """Denoise every image under input_dir; failures are reported, never fatal."""
    input_dir = Path(input_dir)
    output_dir = Path(output_dir) if output_dir else default_output_dir(input_dir)
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError("the output folder must differ from the input folder")
    report = Report()
    started = time.perf_counter()
    for path in images.list_image_files(input_dir):
        target = output_path(path, input_dir, output_dir)
        if target.exists() and not overwrite:
            report.kept.append(target)
            status = "kept"
        else:
            try:
                image = images.load_rgb8(path, max_pixels)
                write_png_atomic(denoise_rgb8(model, image), target)
                report.written.append(target)
                report.megapixels += image.shape[0] * image.shape[1] / 1e6
                status = "written"
            except images.ImageError as error:
                report.failed.append((path, str(error)))
                status = f"failed: {error}"
            except OSError as error:
                report.failed.append((path, f"cannot write {target}: {error.strerror or error}"))
                status = "failed"
        if on_image:
            on_image(path, status)
    report.seconds = time.perf_counter() - started
    return report


if __name__ == "__main__":
    from tfdenoise.cli import predict_main

    predict_main()
