"""Denoise every image in a folder at full resolution: `python -m tfdenoise.predict DIR`.

    list -> decode (PIL, EXIF orientation) -> estimate noise -> [skip clean: copy]
         -> tiles (or a batch of same-size small images) -> model -> crop -> compose -> write

Memory stays bounded for any image size: the decoded uint8 image and a uint8 output of the
same size are the only whole-image arrays; the model sees `tile x tile` windows (a few at a
time) converted to float32 one batch at a time. Each tile is run with `overlap` pixels of
extra context and only its centre is kept ("crop the centre"): seams fall in the middle of
the overlap, where both neighbours had at least overlap/2 pixels of real context, so for a
fully convolutional model the tiled result matches the whole-image one up to the influence
of far-away pixels (well under one grey level for 32 px of context on a trained denoiser).

Inputs are never modified; outputs go to OUT/<relative path>.png via temp file + rename, and
existing outputs are kept unless overwrite is asked for.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import os
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

if __name__ == "__main__":  # `python -m tfdenoise.predict`: quiet TF's C++ start-up, as cli.py does
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from tfdenoise import images, models, noise_level, runs  # noqa: E402

PRETRAINED = Path(__file__).parent / "pretrained" / "denoiser.keras"
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
DEFAULT_BATCH_PIXELS = 1 << 18  # pixels per model call: one 512^2 tile; activations dominate RSS


# --- model ----------------------------------------------------------------------------------

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


def load(spec: str | None, runs_dir: str | Path = "runs", precision: str = "float32"):
    """The model behind a `--model` value, computing in `precision` (a Keras policy name)."""
    return models.load_model(resolve_model_path(spec, runs_dir), policy=precision)


_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _graph(model) -> tf.types.experimental.PolymorphicFunction:
    """The model as one cached graph: ~2.5x faster than eager calls on CPU (graph-mode op
    fusion), traced once for every tile and batch shape."""
    if model not in _GRAPHS:
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
        def denoise(batch_uint8):
            denoised = model(models.to_unit_float(batch_uint8), training=False)
            return tf.cast(tf.round(tf.clip_by_value(denoised, 0.0, 1.0) * 255.0), tf.uint8)

        _GRAPHS[model] = denoise
    return _GRAPHS[model]


def _run_model(model, batch_uint8: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] uint8 -> denoised [N, H, W, 3] uint8 (rounded, clipped)."""
    return _graph(model)(tf.convert_to_tensor(batch_uint8)).numpy()


# --- tiling ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Span:
    """One tile along one axis: the model reads [start, stop), the output keeps [keep_start, keep_stop)."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def check_tiling(tile: int, overlap: int) -> None:
    if tile < 16:
        raise ValueError(f"tile must be at least 16 pixels, got {tile}")
    if overlap < 0 or 2 * overlap >= tile:
        raise ValueError(f"overlap must be in [0, tile / 2), got {overlap} for tile {tile}")


def spans(length: int, tile: int, overlap: int, align: int = 1) -> list[Span]:
    """Tiles covering [0, length), each keeping the part up to the middle of its overlaps.

    Starts are multiples of `align` (the model's stride), so a tile's pooling grid coincides
    with the whole image's and tiling changes nothing but the far context. The step is
    tile - overlap rounded down to that multiple; the last tile ends at `length` and may be up
    to align - 1 pixels longer than `tile`.
    """
    if length <= tile:
        return [Span(0, length, 0, length)]
    step = max(align, (tile - overlap) // align * align)
    last = (length - tile) // align * align
    starts = [start for start in range(0, length - tile, step) if start < last] + [last]
    stops = [start + tile for start in starts[:-1]] + [length]
    result = []
    for index, (start, stop) in enumerate(zip(starts, stops)):
        keep_start = 0 if index == 0 else (stops[index - 1] + start) // 2
        keep_stop = length if index == len(starts) - 1 else (stop + starts[index + 1]) // 2
        result.append(Span(start, stop, keep_start, keep_stop))
    return result


def denoise_rgb8(model, image: np.ndarray, tile: int = DEFAULT_TILE,
                 overlap: int = DEFAULT_OVERLAP,
                 batch_pixels: int = DEFAULT_BATCH_PIXELS) -> np.ndarray:
    """Denoise one H x W x 3 uint8 image at full size in overlapping tiles; uint8 out.

    Only the uint8 input and output are whole-image arrays; tiles of one shape are gathered a
    batch at a time (at most `batch_pixels` pixels, at least one tile) and converted to float
    there.
    """
    check_tiling(tile, overlap)
    align = int(getattr(model, "stride", 1))
    rows = spans(image.shape[0], tile, overlap, align)
    cols = spans(image.shape[1], tile, overlap, align)
    if len(rows) == len(cols) == 1:
        return _run_model(model, image[None])[0]
    output = np.empty_like(image)
    by_shape: dict[tuple[int, int], list[tuple[Span, Span]]] = {}
    for r in rows:
        for c in cols:
            by_shape.setdefault((r.stop - r.start, c.stop - c.start), []).append((r, c))
    for (height, width), boxes in by_shape.items():
        per_batch = max(1, batch_pixels // (height * width))
        for first in range(0, len(boxes), per_batch):
            group = boxes[first : first + per_batch]
            batch = np.stack([image[r.start : r.stop, c.start : c.stop] for r, c in group])
            for (r, c), denoised in zip(group, _run_model(model, batch)):
                output[r.keep_start : r.keep_stop, c.keep_start : c.keep_stop] = denoised[
                    r.keep_start - r.start : r.keep_stop - r.start,
                    c.keep_start - c.start : c.keep_stop - c.start]
    return output


def denoise_same_size(model, pictures: Sequence[np.ndarray],
                      batch_pixels: int = DEFAULT_BATCH_PIXELS) -> list[np.ndarray]:
    """Several small images of one shape, in as few model calls as batch_pixels allows."""
    height, width = pictures[0].shape[:2]
    per_batch = max(1, batch_pixels // (height * width))
    results = []
    for first in range(0, len(pictures), per_batch):
        results += list(_run_model(model, np.stack(pictures[first : first + per_batch])))
    return results


# --- write stage (issue #8 extends this with ICC profiles, EXIF and 16-bit output) -----------

def compose_output(picture: images.Picture, denoised: np.ndarray) -> Image.Image:
    """The image to write: grayscale sources back to L (channel mean), alpha carried over."""
    if picture.grayscale:
        mean = np.round(denoised.mean(axis=2, dtype=np.float32)).astype(np.uint8)
        output = Image.fromarray(mean, mode="L")
    else:
        output = Image.fromarray(denoised, mode="RGB")
    if picture.alpha is not None:
        output.putalpha(Image.fromarray(picture.alpha, mode="L"))
    return output


def write_png_atomic(image: Image.Image | np.ndarray, path: Path) -> None:
    """Write a PNG via a temp file in the same folder + rename: never a half-written output."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        image.save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"})


def copy_as_png(source: Path, target: Path) -> None:
    """--skip-clean: the source's own pixels (EXIF orientation applied) as PNG, no 8-bit
    conversion where PNG can hold the mode (16-bit and palette stay as they are)."""
    with Image.open(source) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode not in PNG_MODES:
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        write_png_atomic(image, target)


# --- the folder loop ------------------------------------------------------------------------

def default_output_dir(input_dir: str | Path) -> Path:
    """OUT defaults to DIR_denoised beside DIR."""
    resolved = Path(input_dir).resolve()
    return resolved.with_name(f"{resolved.name}_denoised")


def output_path(path: Path, input_dir: Path, output_dir: Path) -> Path:
    return (output_dir / path.relative_to(input_dir)).with_suffix(".png")


@dataclasses.dataclass
class ImageResult:
    """One row of the report (and of the --report CSV)."""

    input: Path
    output: Path
    status: str  # written | copied-clean | kept | failed
    width: int = 0
    height: int = 0
    mode: str = ""
    sigma_before: float | None = None  # Immerkaer estimate, 0-255 scale
    sigma_after: float | None = None
    seconds: float = 0.0
    error: str = ""


REPORT_COLUMNS = tuple(field.name for field in dataclasses.fields(ImageResult))


@dataclasses.dataclass
class Report:
    results: list[ImageResult] = dataclasses.field(default_factory=list)
    megapixels: float = 0.0  # of images denoised by the model
    seconds: float = 0.0
    stopped: str | None = None  # why the job stopped early (output disk full or read-only)

    def with_status(self, status: str) -> list[ImageResult]:
        return [r for r in self.results if r.status == status]

    @property
    def written(self) -> list[Path]:
        return [r.output for r in self.with_status("written")]

    @property
    def copied(self) -> list[Path]:
        return [r.output for r in self.with_status("copied-clean")]

    @property
    def kept(self) -> list[Path]:
        return [r.output for r in self.with_status("kept")]

    @property
    def failed(self) -> list[tuple[Path, str]]:
        return [(r.input, r.error) for r in self.with_status("failed")]

    @property
    def megapixels_per_second(self) -> float:
        return self.megapixels / self.seconds if self.seconds else 0.0


def write_report_csv(report: Report, path: str | Path) -> None:
    """The per-image report as CSV; sigmas with 2 decimals, empty when not measured."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        for result in report.results:
            row = dataclasses.asdict(result)
            for key in ("sigma_before", "sigma_after"):
                row[key] = "" if row[key] is None else f"{row[key]:.2f}"
            row["seconds"] = f"{row['seconds']:.3f}"
            writer.writerow([row[column] for column in REPORT_COLUMNS])


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """How predict_folder denoises; defaults are the CLI's."""

    overwrite: bool = False
    tile: int = DEFAULT_TILE  # side of the windows the model sees; bounds memory
    overlap: int = DEFAULT_OVERLAP  # extra context around each tile, halved at each seam
    batch_pixels: int = DEFAULT_BATCH_PIXELS  # pixels per model call
    skip_clean: float | None = None  # copy images whose estimated sigma is below this
    max_pixels: int = images.DEFAULT_MAX_PIXELS


@dataclasses.dataclass
class _Pending:
    """A decoded image waiting for the model (small ones wait to fill a batch)."""

    result: ImageResult
    picture: images.Picture
    started: float


def _decode(path: Path, target: Path, options: PredictOptions) -> ImageResult | _Pending:
    """Decode and classify one input: failed, copied as clean, or waiting for the model."""
    started = time.perf_counter()
    result = ImageResult(path, target, "failed")
    try:
        picture = images.load_picture(path, options.max_pixels)
    except images.ImageError as error:
        result.error = str(error)
        return result
    result.height, result.width = picture.rgb.shape[:2]
    result.mode = picture.mode
    result.sigma_before = noise_level.estimate_sigma(picture.rgb)
    if options.skip_clean is not None and result.sigma_before < options.skip_clean:
        try:
            copy_as_png(path, target)
            result.status, result.sigma_after = "copied-clean", result.sigma_before
        except OSError as error:
            _write_failure(result, error)
        result.seconds = time.perf_counter() - started
        return result
    return _Pending(result, picture, started)


class OutputDiskError(OSError):
    """The output disk is full or read-only: every further write would fail the same way."""


_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})


def _write_failure(result: ImageResult, error: OSError) -> None:
    """Record a failed write; a full or read-only disk stops the whole job (OutputDiskError)."""
    result.error = f"cannot write {result.output}: {error.strerror or error}"
    if error.errno in _DISK_ERRNOS:
        raise OutputDiskError(error.errno, error.strerror, str(result.output))


def _finish(pending: _Pending, denoised: np.ndarray) -> ImageResult:
    result = pending.result
    try:
        write_png_atomic(compose_output(pending.picture, denoised), result.output)
        result.status = "written"
        result.sigma_after = noise_level.estimate_sigma(denoised)
    except OSError as error:
        _write_failure(result, error)
    result.seconds = time.perf_counter() - pending.started
    return result


def _is_small(picture: images.Picture, tile: int) -> bool:
    return max(picture.rgb.shape[:2]) <= tile


def _denoise_group(model, group: list[_Pending], options: PredictOptions) -> Iterator[ImageResult]:
    """Model outputs for decoded images: one same-size batch, or one (tiled) large image."""
    if len(group) == 1 and not _is_small(group[0].picture, options.tile):
        outputs = [denoise_rgb8(model, group[0].picture.rgb, options.tile, options.overlap,
                                options.batch_pixels)]
    else:
        outputs = denoise_same_size(model, [p.picture.rgb for p in group], options.batch_pixels)
    for pending, denoised in zip(group, outputs):
        yield _finish(pending, denoised)


def _group_key(pending: _Pending, tile: int):
    """Consecutive small images with equal shapes share a batch; large ones go alone."""
    if _is_small(pending.picture, tile):
        return pending.picture.rgb.shape
    return id(pending)


def predict_folder(
    model,
    input_dir: str | Path,
    output_dir: str | Path | None = None,
    options: PredictOptions = PredictOptions(),
    on_image: Callable[[ImageResult], None] | None = None,
) -> Report:
    """Denoise every image under input_dir; failures are reported, never fatal.

    A full or read-only output disk stops the job at once (`Report.stopped`): every output
    written so far is complete (temp file + rename) and a re-run continues where it stopped.
    """
    check_tiling(options.tile, options.overlap)
    input_dir = Path(input_dir)
    output_dir = Path(output_dir) if output_dir else default_output_dir(input_dir)
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError("the output folder must differ from the input folder")
    report = Report()
    started = time.perf_counter()
    group: list[_Pending] = []
    group_pixels = 0

    def record(result: ImageResult) -> None:
        report.results.append(result)
        if result.status == "written":
            report.megapixels += result.width * result.height / 1e6
        if on_image:
            on_image(result)

    def flush() -> None:
        nonlocal group, group_pixels
        if group:
            for result in _denoise_group(model, group, options):
                record(result)
        group, group_pixels = [], 0

    try:
        for path in images.list_image_files(input_dir):
            target = output_path(path, input_dir, output_dir)
            if target.exists() and not options.overwrite:
                flush()  # keep the report in input order
                record(ImageResult(path, target, "kept"))
                continue
            decoded = _decode(path, target, options)
            if isinstance(decoded, ImageResult):
                flush()
                record(decoded)
                continue
            pixels = decoded.picture.rgb.shape[0] * decoded.picture.rgb.shape[1]
            if group and (_group_key(group[0], options.tile) != _group_key(decoded, options.tile)
                          or group_pixels + pixels > options.batch_pixels):
                flush()
            group.append(decoded)
            group_pixels += pixels
            if not _is_small(decoded.picture, options.tile):
                flush()  # never hold a large decoded image while decoding the next one
        flush()
    except OutputDiskError as error:
        report.stopped = f"{error.strerror}: {error.filename}"
    report.seconds = time.perf_counter() - started
    return report


if __name__ == "__main__":
    from tfdenoise.cli import predict_main

    predict_main()
