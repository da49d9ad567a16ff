"""predict's folder job: denoise every image under DIR at full resolution into OUT.

    list -> decode (PIL, EXIF orientation, metadata) -> estimate noise -> [skip clean: copy]
         -> tiles (or a batch of same-size small images) -> model -> compose -> write

Inputs are never modified; outputs go to OUT/<relative path> with the suffix of the output
format (.png by default; tfdenoise.io.photo keeps ICC profiles, EXIF, XMP and DPI) via a temp
file, and existing outputs are kept unless overwrite is asked for: an output is published only
if no other job (a retried one overlapping this) has written it since it was found missing,
else the image is reported `kept` (see `_publish`). The model runs through
tfdenoise.inference (tiles, batches, cached graphs).
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tfdenoise.config import DEFAULT_MAX_PIXELS, DEFAULT_OVERLAP, DEFAULT_TILE
from tfdenoise.inference import (
    DEFAULT_BATCH_PIXELS,
    blend,
    check_tiling,
    denoise_image,
    denoise_same_size,
)
from tfdenoise.io import atomic, files, photo
from tfdenoise.noise_level import estimate_sigma_255
from tfdenoise.predict import selection, stopping


def default_output_dir(input_dir: str | Path) -> Path:
    """OUT defaults to DIR_denoised beside DIR."""
    resolved = Path(input_dir).resolve()
    return resolved.with_name(f"{resolved.name}_denoised")


def output_path(path: Path, input_dir: Path, output_dir: Path, output_format: str = "png") -> Path:
    """OUT/<relative path> with the suffix of the output format (see photo.output_suffix)."""
    suffix = photo.output_suffix(path, output_format)
    return (output_dir / path.relative_to(input_dir)).with_suffix(suffix)


@dataclasses.dataclass
class ImageResult:
    """One row of the report (and of the --report CSV)."""

    input: Path
    output: Path
    status: str  # written | copied-clean | kept (existed, or another job wrote it) | failed
    width: int = 0
    height: int = 0
    mode: str = ""
    sigma_before: float | None = None  # Immerkaer estimate, 0-255 scale
    sigma_after: float | None = None
    seconds: float = 0.0
    error: str = ""


REPORT_COLUMNS = tuple(field.name for field in dataclasses.fields(ImageResult))
FIRST_FRAME_ONLY = "first frame only"  # ends the mode of an animation: the rest is not read


def reported_mode(picture: photo.Picture) -> str:
    """The report's mode of one input: its pixel mode, and for an animation how many frames it
    has, of which only the first is denoised (or copied) -- said, not passed over in silence."""
    if picture.frames > 1:
        return f"{picture.mode}, animated: {picture.frames} frames, {FIRST_FRAME_ONLY}"
    return picture.mode


def first_frame_only(result: ImageResult) -> bool:
    """Whether an input is an animation whose later frames were left out (see reported_mode)."""
    return result.mode.endswith(FIRST_FRAME_ONLY)


def kept_existing(path: Path, target: Path) -> ImageResult:
    """An image whose output exists already. Its folder's stale temp files are swept as a
    write would sweep them: a job killed between publishing an output and removing its temp
    name leaves a second name of it, and a re-run that writes nothing there must remove it."""
    atomic.sweep_once(target.parent)
    return ImageResult(path, target, "kept")


@dataclasses.dataclass
class PredictReport:
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


def write_report_csv(report: PredictReport, path: str | Path) -> None:
    """The per-image report as CSV; sigmas with 2 decimals, empty when not measured. UTF-8,
    with a file name that is not UTF-8 written as its own bytes (it names the file exactly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
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
    max_pixels: int = DEFAULT_MAX_PIXELS
    output_format: str = "png"  # png | jpeg | webp | same (the input's, by suffix)
    quality: int = photo.DEFAULT_QUALITY  # JPEG / WebP quality, 1-100
    bit_depth: str = "same"  # 8 | 16 | same (16 for 16-bit sources); 16 only in PNG/TIFF
    strip_metadata: bool = False  # drop ICC profile, EXIF and XMP on purpose (DPI is kept)
    strength: float = 1.0  # output = input + strength * (denoised - input); 0 = the input

    def __post_init__(self) -> None:
        photo.check_output_options(self.output_format, self.quality, self.bit_depth)
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")


@dataclasses.dataclass
class _Pending:
    """A decoded image waiting for the model (small ones wait to fill a batch)."""

    result: ImageResult
    picture: photo.Picture
    started: float
    output_format: str  # png | jpeg | webp, resolved for this image
    bits: int  # 8 or 16 per output sample

    @property
    def out_dtype(self) -> type:
        return np.uint16 if self.bits == 16 else np.uint8


def name_too_long(output: Path) -> str | None:
    """Why `output` cannot be written when its name is longer than a file name can be (a long
    input name with a longer suffix, or a page number added), else None: checked before the
    output is looked up, which would raise rather than say no."""
    size = len(os.fsencode(output.name))
    if size <= atomic.NAME_MAX:
        return None
    return (
        f"its output name is {size} bytes, more than a file name holds ({atomic.NAME_MAX}): "
        "shorten the input's name"
    )


def settled(
    entry: selection.Entry, input_dir: Path, output_dir: Path, options: PredictOptions
) -> ImageResult | Path:
    """An entry's result when it needs no decoding -- failed with its reason (the output
    another input owns in the row's output column) or an output name too long, or its output
    kept because it exists -- else the output to write."""
    if entry.reason is not None:
        output = output_dir / (entry.output or entry.relpath)
        return ImageResult(entry.path, output, "failed", error=entry.reason)
    target = output_path(entry.path, input_dir, output_dir, options.output_format)
    reason = name_too_long(target)
    if reason is not None:
        return ImageResult(entry.path, target, "failed", error=reason)
    if target.exists() and not options.overwrite:
        return kept_existing(entry.path, target)
    return target


def _decode(path: Path, target: Path, options: PredictOptions) -> ImageResult | _Pending:
    """Decode and classify one input: failed, copied as clean, or waiting for the model."""
    started = time.perf_counter()
    result = ImageResult(path, target, "failed")
    output_format = photo.resolve_format(path, options.output_format)
    try:
        picture = photo.load_picture(path, options.max_pixels)
        photo.check_writable(picture, output_format)
    except files.ImageError as error:
        result.error = str(error)
        return result
    result.height, result.width = picture.rgb.shape[:2]
    result.mode = reported_mode(picture)
    result.sigma_before = estimate_sigma_255(picture.rgb)
    single_page = picture.pages == 1  # multi-page TIFFs are always denoised, page by page
    if single_page and options.skip_clean is not None and result.sigma_before < options.skip_clean:
        try:
            _publish(
                target,
                lambda output: photo.copy_clean(
                    path, output, picture, output_format, options.strip_metadata, options.quality
                ),
                options.overwrite,
            )
            result.status, result.sigma_after = "copied-clean", result.sigma_before
        except atomic.OutputExists:
            result.status = "kept"
        except OSError as error:
            _write_failure(result, error)
        result.seconds = time.perf_counter() - started
        return result
    bits = photo.output_bits(picture, output_format, options.bit_depth)
    return _Pending(result, picture, started, output_format, bits)


def _publish(target: Path, write: Callable[[Path], None], overwrite: bool) -> None:
    """Write one output with `write(path)` (an atomic photo writer). With overwrite it replaces
    `target`; without, it is written to a temp file and published only if `target` still does
    not exist, else `atomic.OutputExists` (the temp file removed): another job on the same
    output wrote it after this one found it missing, and the image counts as kept."""
    if overwrite:
        write(target)
    else:
        atomic.create_with(target, write)


def _picture_writer(
    picture: photo.Picture, output_format: str, bits: int, options: PredictOptions
) -> Callable[[Path], None]:
    """Writes one picture to a given path in its format and bit depth, metadata kept or
    stripped."""
    return lambda output: photo.save_picture(
        picture, output, output_format, bits, options.quality, options.strip_metadata
    )


def _write(pending: _Pending, denoised: np.ndarray, options: PredictOptions) -> None:
    """Compose and write one output in its format and bit depth, metadata kept or stripped."""
    picture = dataclasses.replace(pending.picture, rgb=denoised)
    writer = _picture_writer(picture, pending.output_format, pending.bits, options)
    _publish(pending.result.output, writer, options.overwrite)


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
    denoised = blend(pending.picture.rgb, denoised, options.strength)
    try:
        _write(pending, denoised, options)
        result.status = "written"
        result.sigma_after = estimate_sigma_255(denoised)
    except atomic.OutputExists:  # another job wrote it meanwhile: kept, not an error
        result.status = "kept"
    except OSError as error:
        _write_failure(result, error)
    except ValueError as error:  # PIL refusing metadata, e.g. EXIF over JPEG's 64 KB limit
        result.error = f"cannot encode {result.output}: {error}"
    result.seconds = time.perf_counter() - pending.started
    return result


def page_output_path(target: Path, page: int) -> Path:
    """The output of one page (0-based) of a multi-page TIFF written in a single-page format:
    scan.p001.png, scan.p002.png, ... (see selection.page_output_name)."""
    return target.with_name(selection.page_output_name(target.name, page))


def _denoise_page(model, picture: photo.Picture, bits: int, options: PredictOptions):
    """One page alone (tiled when large), blended by --strength: H x W x 3 at `bits` bits."""
    out_dtype = np.uint16 if bits == 16 else np.uint8
    denoised = denoise_image(
        model, picture.rgb, options.tile, options.overlap, options.batch_pixels, out_dtype
    )
    return blend(picture.rgb, denoised, options.strength)


def _denoise_pages(model, pending: _Pending, options: PredictOptions) -> ImageResult:
    """A multi-page TIFF, one page in memory at a time: into one multi-page TIFF (--format
    same or tiff) or one file per page (see page_output_path); existing page files are kept
    unless overwrite is asked for."""
    result, first, path = pending.result, pending.picture, pending.result.input
    pending.picture = dataclasses.replace(first, rgb=first.rgb[:0, :0], alpha=None)  # let go
    result.mode = f"{first.mode}, {first.pages} pages"
    if pending.output_format != "tiff":  # the last page's name is the longest
        reason = name_too_long(page_output_path(result.output, first.pages - 1))
        if reason is not None:
            result.output = page_output_path(result.output, first.pages - 1)
            result.status, result.error = "failed", reason
            result.seconds = time.perf_counter() - pending.started
            return result
    current = {"page": 0}

    def denoised_pages() -> Iterator[tuple[int, photo.Picture, int]]:
        nonlocal first
        for page in range(first.pages):
            current["page"] = page
            if pending.output_format != "tiff":
                if page_output_path(result.output, page).exists() and not options.overwrite:
                    continue
            picture = first if page == 0 else photo.load_picture(path, options.max_pixels, page)
            first = None  # page 0's samples are not kept while later pages are denoised
            photo.check_writable(picture, pending.output_format)
            bits = photo.output_bits(picture, pending.output_format, options.bit_depth)
            denoised = _denoise_page(model, picture, bits, options)
            if page == 0:
                result.sigma_after = estimate_sigma_255(denoised)
            yield page, dataclasses.replace(picture, rgb=denoised), bits

    try:
        if pending.output_format == "tiff":
            # an upper bound of the samples (4 channels, 2 bytes): classic TIFF or BigTIFF
            estimate = result.height * result.width * 8 * pending.picture.pages
            pages = ((picture, bits) for _, picture, bits in denoised_pages())
            _publish(
                result.output,
                lambda output: photo.save_tiff_pages(
                    output, pages, options.strip_metadata, estimate
                ),
                options.overwrite,
            )
            result.status = "written"
        else:
            written = 0
            for page, picture, bits in denoised_pages():
                try:
                    writer = _picture_writer(picture, pending.output_format, bits, options)
                    _publish(page_output_path(result.output, page), writer, options.overwrite)
                    written += 1
                except atomic.OutputExists:  # this page written by another job meanwhile
                    pass
            result.output = page_output_path(result.output, 0)
            result.status = "written" if written else "kept"
    except atomic.OutputExists:  # the multi-page TIFF written by another job meanwhile
        result.status = "kept"
    except files.ImageError as error:
        result.status, result.error = "failed", f"page {current['page'] + 1}: {error}"
    except OSError as error:
        result.status = "failed"
        _write_failure(result, error)
    except ValueError as error:  # PIL refusing metadata, e.g. EXIF over JPEG's 64 KB limit
        result.status, result.error = "failed", f"cannot encode {result.output}: {error}"
    result.seconds = time.perf_counter() - pending.started
    return result


def _is_small(picture: photo.Picture, tile: int) -> bool:
    return max(picture.rgb.shape[:2]) <= tile


def _model_outputs(model, group: list[_Pending], options: PredictOptions) -> list:
    """Model outputs for decoded images: one same-size batch, or one (tiled) large image."""
    out_dtype = group[0].out_dtype
    if len(group) == 1 and not _is_small(group[0].picture, options.tile):
        picture = group[0].picture
        return [
            denoise_image(
                model, picture.rgb, options.tile, options.overlap, options.batch_pixels, out_dtype
            )
        ]
    return denoise_same_size(model, [p.picture.rgb for p in group], options.batch_pixels, out_dtype)


def _denoise_group(model, group: list[_Pending], options: PredictOptions) -> Iterator[ImageResult]:
    """Denoise and write a group of decoded images (see _model_outputs)."""
    for pending, denoised in zip(group, _model_outputs(model, group, options)):
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
    entries: Sequence[selection.Entry] | None = None,
) -> PredictReport:
    """Denoise every image under input_dir; failures are reported, never fatal.

    A full or read-only output disk stops the job at once (`Report.stopped`): every output
    written so far is complete (temp file + rename) and a re-run continues where it stopped.
    So does an interruption (Ctrl-C; SIGTERM under `stopping.stop_on_signals`), which raises
    `stopping.Interrupted` with the report of the images finished before it.
    `entries` (from `selection.select`: --files-from, --shard) replaces the listing of every
    image under input_dir; an entry with a reason is reported as failed.
    """
    check_tiling(options.tile, options.overlap)
    input_dir = Path(input_dir)
    output_dir = Path(output_dir) if output_dir else default_output_dir(input_dir)
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError("the output folder must differ from the input folder")
    report = PredictReport()
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
        if entries is None:
            entries = selection.select(
                input_dir, output_format=options.output_format, output_dir=output_dir
            )
        for entry in entries:
            target = settled(entry, input_dir, output_dir, options)
            if isinstance(target, ImageResult):
                flush()  # keep the report in input order
                record(target)
                continue
            decoded = _decode(entry.path, target, options)
            if isinstance(decoded, ImageResult):
                flush()
                record(decoded)
                continue
            if decoded.picture.pages > 1:  # multi-page TIFF: its pages one after the other
                flush()
                record(_denoise_pages(model, decoded, options))
                continue
            pixels = decoded.picture.rgb.shape[0] * decoded.picture.rgb.shape[1]
            if group and (
                _group_key(group[0], options.tile) != _group_key(decoded, options.tile)
                or group_pixels + pixels > options.batch_pixels
            ):
                flush()
            group.append(decoded)
            group_pixels += pixels
            if not _is_small(decoded.picture, options.tile):
                flush()  # never hold a large decoded image while decoding the next one
        flush()
    except OutputDiskError as error:
        report.stopped = f"{error.strerror}: {error.filename}"
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM under stopping.stop_on_signals
        report.seconds = time.perf_counter() - started
        raise stopping.with_report(error, report) from None  # an interrupted write left no temp
    report.seconds = time.perf_counter() - started
    return report
