"""Denoise every image in a folder at full resolution: `python -m tfdenoise.predict DIR`.

    list -> decode (PIL, EXIF orientation, metadata) -> estimate noise -> [skip clean: copy]
         -> tiles (or a batch of same-size small images) -> model -> crop -> compose -> write

Memory stays bounded for any image size: the decoded image (uint8 RGB; uint16 samples for
16-bit sources) and an output of the same size (uint8, or uint16 for 16-bit output) are the
only whole-image arrays; the model sees `tile x tile` windows (a few at a time) converted to
float32 one batch at a time. Each tile is run with `overlap` pixels of
extra context and only its centre is kept ("crop the centre"): seams fall in the middle of
the overlap, where both neighbours had at least overlap/2 pixels of real context, so for a
fully convolutional model the tiled result matches the whole-image one up to the influence
of far-away pixels (well under one grey level for 32 px of context on a trained denoiser).

Inputs are never modified; outputs go to OUT/<relative path> with the suffix of the output
format (.png by default; see writing.py, which also keeps ICC profiles, EXIF, XMP and DPI) via temp
file + rename, and existing outputs are kept unless overwrite is asked for.
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
from tfdenoise import images, models, noise_level, runs, writing  # noqa: E402
from tfdenoise.ensemble import with_passes  # noqa: E402

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


def load(spec: str | None, runs_dir: str | Path = "runs", precision: str = "float32",
         ensemble: int = 1):
    """The model behind a `--model` value, computing in `precision` (a Keras policy name),
    averaged over `ensemble` flipped/transposed views (tfdenoise.ensemble) when > 1."""
    model = models.load_model(resolve_model_path(spec, runs_dir), policy=precision)
    return with_passes(model, ensemble)


# model -> {(input dtype, channels, output dtype): graph}
_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _graph(model, in_dtype: np.dtype, channels: int,
           out_dtype: type) -> tf.types.experimental.PolymorphicFunction:
    """The model as one cached graph per sample type: ~2.5x faster than eager calls on CPU
    (graph-mode op fusion), traced once for every tile and batch shape.

    uint8 or uint16 samples in (scaled to [0, 1]; one channel, 16-bit gray, is replicated
    to three here), uint8 or uint16 out (rounded, clipped).
    """
    graphs = _GRAPHS.setdefault(model, {})
    key = (np.dtype(in_dtype).str, channels, np.dtype(out_dtype).str)
    if key not in graphs:
        in_top, out_top = float(np.iinfo(in_dtype).max), float(np.iinfo(out_dtype).max)

        @tf.function(input_signature=[
            tf.TensorSpec([None, None, None, channels], tf.as_dtype(in_dtype))])
        def denoise(batch):
            inputs = tf.cast(batch, tf.float32) / in_top
            if channels == 1:
                inputs = tf.repeat(inputs, 3, axis=-1)
            denoised = model(inputs, training=False)
            scaled = tf.round(tf.clip_by_value(denoised, 0.0, 1.0) * out_top)
            return tf.cast(scaled, tf.as_dtype(out_dtype))

        graphs[key] = denoise
    return graphs[key]


def _run_model(model, batch: np.ndarray, out_dtype: type = np.uint8) -> np.ndarray:
    """[N, H, W, C] uint8 or uint16 (C = 3, or 1 for 16-bit gray) -> denoised [N, H, W, 3]
    out_dtype (uint8 or uint16; rounded, clipped)."""
    graph = _graph(model, batch.dtype, batch.shape[-1], out_dtype)
    return graph(tf.convert_to_tensor(batch)).numpy()


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
    with the whole image's and tiling changes nothing but the far context. As many tiles as
    `tile` needs, each shrunk to an even share of the length (see balanced_tile); the last
    tile ends at `length` and may be up to align - 1 pixels longer than the others.
    """
    if length <= tile:
        return [Span(0, length, 0, length)]
    return _spans(length, balanced_tile(length, tile, overlap, align), overlap, align)


def balanced_tile(length: int, tile: int, overlap: int, align: int = 1) -> int:
    """The smallest tile length (a multiple of `align`, at most `tile`) that covers `length`
    with no more tiles than `tile` does.

    Why: with full-size tiles the last one mostly re-covers its neighbour: 512-pixel tiles
    read 1.54x the pixels of a 2560 x 1600 photo, the same six-by-four tiles shrunk to an
    even share read 1.13x, and the model's cost is proportional to the pixels it reads.
    """
    count = len(_spans(length, tile, overlap, align))
    share = -(-(length + (count - 1) * overlap) // count)  # ceil: the length plus the overlaps
    size = -(-share // align) * align
    while size < tile and len(_spans(length, size, overlap, align)) > count:
        size += align
    return min(size, tile)


def _spans(length: int, tile: int, overlap: int, align: int) -> list[Span]:
    """Tiles of `tile` pixels `tile - overlap` (rounded down to `align`) apart, the last one
    ending at `length`."""
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
    """Denoise one H x W x 3 uint8 image at full size in overlapping tiles; uint8 out."""
    return denoise_image(model, image, tile, overlap, batch_pixels, np.uint8)


def denoise_image(model, image: np.ndarray, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, batch_pixels: int = DEFAULT_BATCH_PIXELS,
                  out_dtype: type = np.uint8) -> np.ndarray:
    """Denoise one H x W x C image (uint8 or uint16; C = 3, or 1 for 16-bit gray) at full size
    in overlapping tiles; H x W x 3 out_dtype (uint8 or uint16) out.

    Only the input and output are whole-image arrays (integer samples: no float copy); tiles
    of one shape are gathered a batch at a time (at most `batch_pixels` pixels, at least one
    tile) and converted to float there.
    """
    check_tiling(tile, overlap)
    align = int(getattr(model, "stride", 1))
    rows = spans(image.shape[0], tile, overlap, align)
    cols = spans(image.shape[1], tile, overlap, align)
    if len(rows) == len(cols) == 1:
        return _run_model(model, image[None], out_dtype)[0]
    output = np.empty((*image.shape[:2], 3), out_dtype)
    by_shape: dict[tuple[int, int], list[tuple[Span, Span]]] = {}
    for r in rows:
        for c in cols:
            by_shape.setdefault((r.stop - r.start, c.stop - c.start), []).append((r, c))
    for (height, width), boxes in by_shape.items():
        per_batch = max(1, batch_pixels // (height * width))
        for first in range(0, len(boxes), per_batch):
            group = boxes[first : first + per_batch]
            batch = np.stack([image[r.start : r.stop, c.start : c.stop] for r, c in group])
            for (r, c), denoised in zip(group, _run_model(model, batch, out_dtype)):
                output[r.keep_start : r.keep_stop, c.keep_start : c.keep_stop] = denoised[
                    r.keep_start - r.start : r.keep_stop - r.start,
                    c.keep_start - c.start : c.keep_stop - c.start]
    return output


def denoise_same_size(model, pictures: Sequence[np.ndarray],
                      batch_pixels: int = DEFAULT_BATCH_PIXELS,
                      out_dtype: type = np.uint8) -> list[np.ndarray]:
    """Several small images of one shape and dtype, in as few model calls as batch_pixels
    allows."""
    height, width = pictures[0].shape[:2]
    per_batch = max(1, batch_pixels // (height * width))
    results = []
    for first in range(0, len(pictures), per_batch):
        batch = np.stack(pictures[first : first + per_batch])
        results += list(_run_model(model, batch, out_dtype))
    return results


# --- the folder loop ------------------------------------------------------------------------

def default_output_dir(input_dir: str | Path) -> Path:
    """OUT defaults to DIR_denoised beside DIR."""
    resolved = Path(input_dir).resolve()
    return resolved.with_name(f"{resolved.name}_denoised")


def output_path(path: Path, input_dir: Path, output_dir: Path,
                output_format: str = "png") -> Path:
    """OUT/<relative path> with the suffix of the output format (see writing.output_suffix)."""
    suffix = writing.output_suffix(path, output_format)
    return (output_dir / path.relative_to(input_dir)).with_suffix(suffix)


def estimate_sigma_255(image: np.ndarray) -> float:
    """Immerkaer noise sigma on the 0-255 scale for uint8 or uint16 pixels."""
    return noise_level.estimate_sigma(image) * 255.0 / np.iinfo(image.dtype).max


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
    output_format: str = "png"  # png | jpeg | webp | same (the input's, by suffix)
    quality: int = writing.DEFAULT_QUALITY  # JPEG / WebP quality, 1-100
    bit_depth: str = "8"  # 8 | 16 | same (16 for 16-bit sources); 16 only in PNG
    strip_metadata: bool = False  # drop ICC profile, EXIF and XMP on purpose (DPI is kept)

    def __post_init__(self) -> None:
        writing.check_output_options(self.output_format, self.quality, self.bit_depth)


@dataclasses.dataclass
class _Pending:
    """A decoded image waiting for the model (small ones wait to fill a batch)."""

    result: ImageResult
    picture: images.Picture
    started: float
    output_format: str  # png | jpeg | webp, resolved for this image
    bits: int  # 8 or 16 per output sample

    @property
    def out_dtype(self) -> type:
        return np.uint16 if self.bits == 16 else np.uint8


def _decode(path: Path, target: Path, options: PredictOptions) -> ImageResult | _Pending:
    """Decode and classify one input: failed, copied as clean, or waiting for the model."""
    started = time.perf_counter()
    result = ImageResult(path, target, "failed")
    output_format = writing.resolve_format(path, options.output_format)
    try:
        picture = images.load_picture(path, options.max_pixels)
        writing.check_writable(picture, output_format)
    except images.ImageError as error:
        result.error = str(error)
        return result
    result.height, result.width = picture.rgb.shape[:2]
    result.mode = picture.mode
    result.sigma_before = estimate_sigma_255(picture.rgb)
    if options.skip_clean is not None and result.sigma_before < options.skip_clean:
        try:
            writing.copy_clean(path, target, picture, output_format, options.strip_metadata,
                               options.quality)
            result.status, result.sigma_after = "copied-clean", result.sigma_before
        except OSError as error:
            _write_failure(result, error)
        result.seconds = time.perf_counter() - started
        return result
    bits = writing.output_bits(picture, output_format, options.bit_depth)
    return _Pending(result, picture, started, output_format, bits)


def _write(pending: _Pending, denoised: np.ndarray, options: PredictOptions) -> None:
    """Compose and write one output in its format and bit depth, metadata kept or stripped."""
    picture, target = pending.picture, pending.result.output
    metadata = writing.output_metadata(picture, pending.output_format, options.strip_metadata)
    if pending.bits == 16:
        writing.save_png16(writing.compose_output16(picture, denoised), target, metadata)
    else:
        writing.save_image(writing.compose_output(picture, denoised), target,
                           pending.output_format, metadata, options.quality)


class OutputDiskError(OSError):
    """The output disk is full or read-only: every further write would fail the same way."""


_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})


def _write_failure(result: ImageResult, error: OSError) -> None:
    """Record a failed write; a full or read-only disk stops the whole job (OutputDiskError)."""
    result.error = f"cannot write {result.output}: {error.strerror or error}"
    if error.errno in _DISK_ERRNOS:
        raise OutputDiskError(error.errno, error.strerror, str(result.output))


def _finish(pending: _Pending, denoised: np.ndarray, options: PredictOptions) -> ImageResult:
    result = pending.result
    try:
        _write(pending, denoised, options)
        result.status = "written"
        result.sigma_after = estimate_sigma_255(denoised)
    except OSError as error:
        _write_failure(result, error)
    except ValueError as error:  # PIL refusing metadata, e.g. EXIF over JPEG's 64 KB limit
        result.error = f"cannot encode {result.output}: {error}"
    result.seconds = time.perf_counter() - pending.started
    return result


def _is_small(picture: images.Picture, tile: int) -> bool:
    return max(picture.rgb.shape[:2]) <= tile


def _denoise_group(model, group: list[_Pending], options: PredictOptions) -> Iterator[ImageResult]:
    """Model outputs for decoded images: one same-size batch, or one (tiled) large image."""
    out_dtype = group[0].out_dtype
    if len(group) == 1 and not _is_small(group[0].picture, options.tile):
        outputs = [denoise_image(model, group[0].picture.rgb, options.tile, options.overlap,
                                 options.batch_pixels, out_dtype)]
    else:
        outputs = denoise_same_size(model, [p.picture.rgb for p in group], options.batch_pixels,
                                    out_dtype)
    for pending, denoised in zip(group, outputs):
        yield _finish(pending, denoised, options)


def _group_key(pending: _Pending, tile: int):
    """Consecutive small images with equal shapes, input dtypes and output depths share a
    batch; large ones go alone."""
    if _is_small(pending.picture, tile):
        return pending.picture.rgb.shape, pending.picture.rgb.dtype.str, pending.bits
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
            target = output_path(path, input_dir, output_dir, options.output_format)
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
