"""Converting an image folder into sharded TFRecords + manifest: the writer, its worker pool,
the manifest, the OUT lock.

A conversion is planned before anything is written: every file is listed and validated
(`files.scan`), each split is sorted by relative path and cut into shards by cumulative
*source* bytes. The plan is stored in `OUT/.plan.json`, so shard names (`-NNNNN-of-MMMMM`) and
contents are fixed before the first write. Each shard is written to a temp name and renamed
when complete; `manifest.json` is written last. A re-run after a crash therefore keeps the
finished shards (their record counts are checked against the plan), rewrites the rest, and
ends with the same files as an uninterrupted run. The stored plan wins over the folder's
current state: files added after the plan are picked up only by a fresh run (`overwrite`).

Stored bytes: JPEGs that TF decodes natively are kept byte-identical; everything else (PNG,
GIF, BMP, WebP, CMYK JPEG, 16-bit, alpha, palette) is converted to 8-bit RGB and stored
losslessly, as the plan's `lossless` says: "raw" pixels (format version 2: decoded by a copy,
4-7x faster than PNG, see tools/record_formats.py) or PNG (the default, as DESIGN.md says;
8-bit RGB PNGs then kept byte-identical). EXIF orientation is not applied, so every record
keeps the pixel layout its file stores (training patches are orientation-agnostic, and JPEG
bytes stay untouched).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import tensorflow as tf

from tfdenoise import __version__
from tfdenoise.config import DEFAULT_MAX_PIXELS, DEFAULT_SPLIT
from tfdenoise.io import atomic, files, locks
from tfdenoise.io.encoding import DEFAULT_LOSSLESS, LOSSLESS_FORMATS, encode_or_skip
from tfdenoise.io.records.folder import (
    MANIFEST,
    SHARD_SUFFIX,
    count_records,
    is_records_folder,
    read_manifest,
)
from tfdenoise.io.records.plan import (
    DEFAULT_SHARD_MB,
    PLAN,
    ConversionPlan,
    PlannedShard,
    load_plan,
    make_plan,
)
from tfdenoise.io.records.schema import encode_example

EXECUTORS = ("thread", "process")


class NothingToConvert(ValueError):
    """SRC holds no usable image; nothing was written. `skipped` says why for each file."""

    def __init__(self, source: str, skipped: Sequence[files.Skipped]):
        super().__init__(f"no usable images in {source} ({len(skipped)} files skipped)")
        self.skipped = list(skipped)


def _our_files(out: Path) -> list[Path]:
    """Files a conversion creates in OUT; --overwrite removes exactly these."""
    names = [out / MANIFEST, out / PLAN, *_temporary_files(out)]
    for split in files.SPLITS:
        names.extend(out.glob(f"{split}-*-of-*{SHARD_SUFFIX}"))
    return [p for p in names if p.exists()]


def _temporary_files(out: Path) -> list[Path]:
    """Temp files of ours (atomic.temporary_path names) that a killed run may have left."""
    names = [p for name in (MANIFEST, PLAN) for p in out.glob(f".{Path(name).stem}.tmp*.json")]
    for split in files.SPLITS:
        names.extend(out.glob(f".{split}-*-of-*.tmp*{SHARD_SUFFIX}"))
    return [p for p in names if p.exists()]


@dataclasses.dataclass
class ShardResult:
    name: str
    split: str
    records: int
    bytes: int
    reused: bool  # finished by an earlier run
    failed: list[files.Skipped]  # planned files that no longer decoded at write time


@dataclasses.dataclass
class ConversionReport:
    """What a conversion did; timing lives here, not in the (deterministic) manifest."""

    out: Path
    manifest: dict
    seconds: float
    images_written: int  # converted in this run (not counting reused shards)
    source_bytes_written: int
    already_done: bool = False  # manifest was present: nothing to do

    @property
    def images_per_second(self) -> float:
        return self.images_written / self.seconds if self.seconds > 0 else 0.0

    @property
    def megabytes_per_second(self) -> float:
        return self.source_bytes_written / 2**20 / self.seconds if self.seconds > 0 else 0.0


# progress(event, amount): ("planning", 0) while files are validated, ("plan", images to store),
# then ("image", n) as images are stored or found in finished shards.
Progress = Callable[[str, int], None]


def _bounded_map(
    pool: concurrent.futures.Executor, function, jobs: Iterable[tuple], window: int
) -> Iterator:
    """Like pool.map, in order, with at most `window` results in flight (bounded memory)."""
    pending: list[concurrent.futures.Future] = []
    for job in jobs:
        pending.append(pool.submit(function, *job))
        if len(pending) >= window:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def _finished_shard(out: Path, shard: PlannedShard) -> ShardResult | None:
    """A shard an earlier run completed, if its record count matches the plan."""
    path = out / shard.name
    if not path.is_file():
        return None
    try:
        records = count_records(path)
    except ValueError:
        return None
    if records != len(shard.files):
        return None  # some file failed at write time: rewrite (the result is the same)
    return ShardResult(shard.name, shard.split, records, path.stat().st_size, True, [])


def _write_shard(
    out: Path,
    plan: ConversionPlan,
    shard: PlannedShard,
    pool: concurrent.futures.Executor,
    window: int,
    progress: Progress,
) -> ShardResult:
    """Convert a shard's files on the pool, write them in plan order to a temp file, rename."""
    final = out / shard.name
    jobs = (
        (str(Path(plan.source) / f.relpath), f.relpath, f.info, plan.max_pixels, plan.lossless)
        for f in shard.files
    )
    records, failed = 0, []
    with atomic.replacing(final, durable=True) as temp, tf.io.TFRecordWriter(str(temp)) as writer:
        for planned, result in zip(shard.files, _bounded_map(pool, encode_or_skip, jobs, window)):
            if isinstance(result, files.Skipped):
                failed.append(result)
            else:
                writer.write(encode_example(result, planned.relpath))
                records += 1
            progress("image", 1)
    return ShardResult(shard.name, shard.split, records, final.stat().st_size, False, failed)


def _make_pool(executor: str, workers: int) -> concurrent.futures.Executor:
    if executor == "thread":
        return concurrent.futures.ThreadPoolExecutor(workers)
    # spawn, not fork: forking a process that has started TensorFlow's threads is unsafe.
    context = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)


def build_manifest(plan: ConversionPlan, results: Sequence[ShardResult]) -> dict:
    """The manifest: deterministic for a given plan (no timestamps), so re-runs compare equal.
    Of the plan's format version (a resumed version-1 conversion ends as version 1)."""
    counts = {split: sum(r.records for r in results if r.split == split) for split in files.SPLITS}
    failed = [s for r in results for s in r.failed]
    if plan.format_version == 1:
        storage = {}
        image = "bytes (JPEG as in the source file, else 8-bit RGB PNG)"
        formats = "bytes: jpeg | png"
    else:
        storage = {"lossless": plan.lossless}  # how images other than JPEGs are stored
        image = (
            "bytes (JPEG as in the source file, else 8-bit RGB: raw = height * width * 3 "
            "bytes, row-major; png = lossless PNG)"
        )
        formats = "bytes: jpeg | png | raw"
    return {
        "format_version": plan.format_version,
        "created_by": f"tfdenoise {__version__}",
        "source": plan.source,
        "split_fractions": list(plan.fractions),
        "shard_bytes": plan.shard_bytes,  # target, counted in source-file bytes
        "max_pixels": plan.max_pixels,
        **storage,
        "features": {
            "image": image,
            "height": "int64",
            "width": "int64",
            "format": formats,
            "source": "bytes: path relative to the source folder",
        },
        "counts": counts,
        "total_records": sum(counts.values()),
        "shards": [
            {"name": r.name, "split": r.split, "records": r.records, "bytes": r.bytes}
            for r in results
        ],
        "skipped": [dataclasses.asdict(s) for s in (*plan.skipped, *failed)],
    }


def _load_or_make_plan(
    source: Path, out: Path, fractions, shard_mb, max_pixels, workers, lossless: str | None
) -> ConversionPlan:
    """The stored plan of an unfinished run with the same options, else a new stored plan.

    lossless=None: the stored plan's (an unfinished version-1 run resumes as PNG), else
    DEFAULT_LOSSLESS."""
    plan_path = out / PLAN
    stored = load_plan(out)
    if stored is not None:
        wanted = {
            "source": str(source.resolve()),
            "fractions": [float(f) for f in fractions],
            "shard_bytes": int(shard_mb * 2**20),
            "max_pixels": max_pixels,
            "lossless": stored.lossless if lossless is None else lossless,
        }
        if stored.options() != wanted:
            raise ValueError(
                f"{out} holds an unfinished conversion with other options "
                f"({stored.options()}); re-run with the same options or use --overwrite"
            )
        return stored
    lossless = DEFAULT_LOSSLESS if lossless is None else lossless
    plan = make_plan(source, fractions, shard_mb, max_pixels, workers, lossless)
    if plan.image_count == 0:
        raise NothingToConvert(str(source), plan.skipped)
    atomic.write_json(plan_path, plan.to_json())
    return plan


def _no_progress(event: str, amount: int) -> None:
    pass


def convert_folder(
    source: str | os.PathLike,
    out: str | os.PathLike,
    fractions: Sequence[float] = DEFAULT_SPLIT,
    shard_mb: float = DEFAULT_SHARD_MB,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    executor: str = "thread",
    overwrite: bool = False,
    progress: Progress = _no_progress,
    lossless: str | None = None,
) -> ConversionReport:
    """Convert an image folder into sharded TFRecords + manifest (resumable, see module doc).

    lossless: how images other than JPEGs are stored, "raw" or "png"; None = the unfinished
    run's choice when OUT holds one, else DEFAULT_LOSSLESS."""
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise ValueError(f"not a directory: {source}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if lossless is not None and lossless not in LOSSLESS_FORMATS:
        raise ValueError(f"lossless must be one of {LOSSLESS_FORMATS}, got {lossless!r}")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        args = (fractions, shard_mb, max_pixels, workers, executor, overwrite, progress, start)
        return _convert_locked(source, out, *args, lossless)


class OutputBusy(ValueError):
    """OUT is being written by another conversion (its lock is held)."""


def output_lock(out: Path) -> contextlib.AbstractContextManager[None]:
    """Hold OUT's lock for the whole conversion; OutputBusy at once if another holds it."""
    return locks.exclusive(
        out,
        OutputBusy(
            f"{out} is being written by another make-tfrecords (it holds {out / locks.LOCK}); "
            "wait for it to finish, or write to another folder"
        ),
    )


def _convert_locked(
    source: Path,
    out: Path,
    fractions,
    shard_mb,
    max_pixels,
    workers,
    executor,
    overwrite,
    progress: Progress,
    start: float,
    lossless: str | None,
) -> ConversionReport:
    """convert_folder's work, with OUT locked."""
    if overwrite:
        for path in _our_files(out):
            path.unlink()
    elif is_records_folder(out):
        return ConversionReport(out, read_manifest(out), 0.0, 0, 0, already_done=True)

    for stale in _temporary_files(out):  # left by a killed run; no other writer runs here
        stale.unlink()
    progress("planning", 0)
    plan = _load_or_make_plan(source, out, fractions, shard_mb, max_pixels, workers, lossless)
    progress("plan", plan.image_count)
    results, written, written_bytes = [], 0, 0
    with _make_pool(executor, workers) as pool:
        for shard in plan.shards:
            result = _finished_shard(out, shard)
            if result is None:
                result = _write_shard(out, plan, shard, pool, 2 * workers + 2, progress)
                written += len(shard.files)
                written_bytes += shard.source_bytes
            else:
                progress("image", len(shard.files))
            results.append(result)
    manifest = build_manifest(plan, results)
    atomic.write_json(out / MANIFEST, manifest)
    (out / PLAN).unlink()
    return ConversionReport(out, manifest, time.perf_counter() - start, written, written_bytes)
