"""TFRecord datasets of images: schema, one-example encode/parse, a sharded writer, the manifest.

A conversion is planned before anything is written: every file is listed and validated
(`files.scan`), each split is sorted by relative path and cut into shards by cumulative
*source* bytes. The plan is stored in `OUT/.plan.json`, so shard names (`-NNNNN-of-MMMMM`) and
contents are fixed before the first write. Each shard is written to a temp name and renamed
when complete; `manifest.json` is written last. A re-run after a crash therefore keeps the
finished shards (their record counts are checked against the plan), rewrites the rest, and
ends with the same files as an uninterrupted run. The stored plan wins over the folder's
current state: files added after the plan are picked up only by a fresh run (`overwrite`).

Stored bytes: JPEGs that TF decodes natively, and PNGs that are 8-bit RGB already, are kept
byte-identical; everything else (other PNGs, GIF, BMP, WebP, CMYK JPEG, 16-bit, alpha, palette)
is converted to 8-bit RGB and stored as lossless PNG. EXIF orientation is not applied to either,
so every record keeps the pixel layout its file stores (training patches are
orientation-agnostic, and JPEG bytes stay untouched).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import tensorflow as tf

from tfdenoise import __version__
from tfdenoise.config import DEFAULT_MAX_PIXELS, DEFAULT_SPLIT
from tfdenoise.io import atomic, files
from tfdenoise.io.encoding import EncodedImage, encode_or_skip

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PLAN = ".plan.json"
SHARD_SUFFIX = ".tfrecord"
DEFAULT_SHARD_MB = 128
EXECUTORS = ("thread", "process")

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),  # encoded JPEG or PNG bytes
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "format": tf.io.FixedLenFeature([], tf.string),  # b"jpeg" or b"png"
    "source": tf.io.FixedLenFeature([], tf.string),  # path relative to the converted folder
}


# --- one example ------------------------------------------------------------------------------


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def encode_example(image: EncodedImage, source: str) -> bytes:
    """One serialized tf.train.Example in the schema of FEATURES."""
    if image.format not in ("jpeg", "png"):
        raise ValueError(f"records store jpeg or png, not {image.format!r}")
    features = tf.train.Features(
        feature={
            "image": _bytes_feature(image.data),
            "height": _int_feature(image.height),
            "width": _int_feature(image.width),
            "format": _bytes_feature(image.format.encode()),
            "source": _bytes_feature(source.encode("utf-8")),
        }
    )
    # deterministic: map keys sorted; otherwise the order varies between processes, and
    # a resumed run would not reproduce the bytes of an uninterrupted one.
    return tf.train.Example(features=features).SerializeToString(deterministic=True)


def parse_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """All features of one serialized example (eager or in a tf.data graph)."""
    return tf.io.parse_single_example(serialized, FEATURES)


def parse_example(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(encoded bytes, decoder id): the first pipeline stage, as for image folders.

    Records hold only JPEG (TF's JPEG decoder, crop windows) and PNG (tf.io.decode_image), so
    the PIL fallback is never needed.
    """
    features = parse_features(serialized)
    decoder = tf.where(
        tf.equal(features["format"], b"jpeg"), int(files.Decoder.JPEG), int(files.Decoder.TF_IMAGE)
    )
    return features["image"], tf.cast(decoder, tf.int32)


# --- the plan ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlannedFile:
    relpath: str
    format: str  # PIL format name from the probe
    mode: str
    width: int
    height: int
    bytes: int  # source file size

    @property
    def info(self) -> files.ImageInfo:
        return files.ImageInfo(self.format, self.mode, self.width, self.height)


@dataclasses.dataclass(frozen=True)
class PlannedShard:
    split: str
    index: int
    count: int  # shards in this split
    files: tuple[PlannedFile, ...]

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}-of-{self.count:05d}{SHARD_SUFFIX}"

    @property
    def source_bytes(self) -> int:
        return sum(f.bytes for f in self.files)


@dataclasses.dataclass(frozen=True)
class ConversionPlan:
    """Everything a conversion writes, decided before the first write."""

    source: str  # absolute path of the converted folder
    fractions: tuple[float, float, float]
    shard_bytes: int
    max_pixels: int
    shards: tuple[PlannedShard, ...]
    skipped: tuple[files.Skipped, ...]  # paths relative to source

    @property
    def image_count(self) -> int:
        return sum(len(s.files) for s in self.shards)

    @property
    def source_bytes(self) -> int:
        return sum(s.source_bytes for s in self.shards)

    def options(self) -> dict:
        """The inputs that decide the plan; a resumed run must ask for the same ones."""
        return {
            "source": self.source,
            "fractions": list(self.fractions),
            "shard_bytes": self.shard_bytes,
            "max_pixels": self.max_pixels,
        }

    def to_json(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            **self.options(),
            "shards": [
                {
                    "split": s.split,
                    "index": s.index,
                    "count": s.count,
                    "files": [dataclasses.asdict(f) for f in s.files],
                }
                for s in self.shards
            ],
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
        }

    @classmethod
    def from_json(cls, value: dict) -> ConversionPlan:
        if value.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"plan format {value.get('format_version')} is not {FORMAT_VERSION}")
        shards = tuple(
            PlannedShard(
                s["split"], s["index"], s["count"], tuple(PlannedFile(**f) for f in s["files"])
            )
            for s in value["shards"]
        )
        return cls(
            value["source"],
            tuple(value["fractions"]),
            value["shard_bytes"],
            value["max_pixels"],
            shards,
            tuple(files.Skipped(**s) for s in value["skipped"]),
        )


def cut_into_shards(
    split: str, files: Sequence[PlannedFile], shard_bytes: int
) -> list[PlannedShard]:
    """Consecutive groups of about shard_bytes source bytes (a larger file gets its own shard)."""
    groups: list[list[PlannedFile]] = []
    size = 0
    for planned in files:
        if not groups or (size + planned.bytes > shard_bytes and groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append(planned)
        size += planned.bytes
    return [
        PlannedShard(split, index, len(groups), tuple(group)) for index, group in enumerate(groups)
    ]


def make_plan(
    source: str | os.PathLike,
    fractions: Sequence[float] = DEFAULT_SPLIT,
    shard_mb: float = DEFAULT_SHARD_MB,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
) -> ConversionPlan:
    """Validate every image under source and fix the shards each one goes to."""
    if shard_mb <= 0:
        raise ValueError(f"shard size must be positive, got {shard_mb} MB")
    root = Path(source).resolve()
    scan = files.scan(root, fractions=fractions, max_pixels=max_pixels, workers=workers)
    shards: list[PlannedShard] = []
    for split in files.SPLITS:
        in_split = sorted(scan.split(split), key=lambda f: f.relpath)
        planned = [
            PlannedFile(
                f.relpath,
                f.info.format,
                f.info.mode,
                f.info.width,
                f.info.height,
                Path(f.path).stat().st_size,
            )
            for f in in_split
        ]
        shards.extend(cut_into_shards(split, planned, int(shard_mb * 2**20)))
    skipped = tuple(files.Skipped(_relative(s.path, root), s.reason) for s in scan.skipped)
    return ConversionPlan(
        str(root),
        tuple(float(f) for f in fractions),
        int(shard_mb * 2**20),
        max_pixels,
        tuple(shards),
        skipped,
    )


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


class NothingToConvert(ValueError):
    """SRC holds no usable image; nothing was written. `skipped` says why for each file."""

    def __init__(self, source: str, skipped: Sequence[files.Skipped]):
        super().__init__(f"no usable images in {source} ({len(skipped)} files skipped)")
        self.skipped = list(skipped)


# --- files on disk ----------------------------------------------------------------------------


def count_records(path: str | os.PathLike) -> int:
    """Records in a TFRecord file, by walking the length headers (no data read, no CRC check).

    Raises ValueError if the file does not end on a record boundary (a truncated write).
    """
    size = os.path.getsize(path)
    count = position = 0
    with open(path, "rb") as stream:
        while position < size:
            header = stream.read(12)  # uint64 length + uint32 masked CRC of the length
            if len(header) < 12:
                raise ValueError(f"{path}: truncated record header at byte {position}")
            (length,) = struct.unpack("<Q", header[:8])
            position += 12 + length + 4  # data + uint32 masked CRC of the data
            if position > size:
                raise ValueError(f"{path}: truncated record at byte {position - length - 16}")
            stream.seek(position)
            count += 1
    return count


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a finished conversion; ValueError if absent or of another format."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ValueError(f"not a TFRecord folder (no {MANIFEST}): {folder}")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {manifest.get('format_version')} is not "
            f"{FORMAT_VERSION} (convert again with this version of tfdenoise)"
        )
    return manifest


def is_records_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def shard_paths(folder: str | os.PathLike, manifest: dict, split: str) -> list[str]:
    """The shard files of one split, in name order (which is relative-path order)."""
    return [str(Path(folder) / s["name"]) for s in manifest["shards"] if s["split"] == split]


def _our_files(out: Path) -> list[Path]:
    """Files a conversion creates in OUT; --overwrite removes exactly these."""
    names = [out / MANIFEST, out / PLAN, *_temporary_files(out)]
    for split in files.SPLITS:
        names.extend(out.glob(f"{split}-*-of-*{SHARD_SUFFIX}"))
    return [p for p in names if p.exists()]


def _temporary_files(out: Path) -> list[Path]:
    """Temp files of ours (atomic.temporary_path names) that a killed run may have left."""
    names = [atomic.temporary_path(out / name) for name in (MANIFEST, PLAN)]
    for split in files.SPLITS:
        names.extend(out.glob(f".{split}-*-of-*.tmp{SHARD_SUFFIX}"))
    return [p for p in names if p.exists()]


# --- writing ----------------------------------------------------------------------------------


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
        (str(Path(plan.source) / f.relpath), f.relpath, f.info, plan.max_pixels)
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
    """The manifest: deterministic for a given plan (no timestamps), so re-runs compare equal."""
    counts = {split: sum(r.records for r in results if r.split == split) for split in files.SPLITS}
    failed = [s for r in results for s in r.failed]
    return {
        "format_version": FORMAT_VERSION,
        "created_by": f"tfdenoise {__version__}",
        "source": plan.source,
        "split_fractions": list(plan.fractions),
        "shard_bytes": plan.shard_bytes,  # target, counted in source-file bytes
        "max_pixels": plan.max_pixels,
        "features": {
            "image": "bytes (JPEG as in the source file, else 8-bit RGB PNG)",
            "height": "int64",
            "width": "int64",
            "format": "bytes: jpeg | png",
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
    source: Path, out: Path, fractions, shard_mb, max_pixels, workers
) -> ConversionPlan:
    """The stored plan of an unfinished run with the same options, else a new stored plan."""
    plan_path = out / PLAN
    if plan_path.is_file():
        stored = ConversionPlan.from_json(json.loads(plan_path.read_text(encoding="utf-8")))
        wanted = {
            "source": str(source.resolve()),
            "fractions": [float(f) for f in fractions],
            "shard_bytes": int(shard_mb * 2**20),
            "max_pixels": max_pixels,
        }
        if stored.options() != wanted:
            raise ValueError(
                f"{out} holds an unfinished conversion with other options "
                f"({stored.options()}); re-run with the same options or use --overwrite"
            )
        return stored
    plan = make_plan(source, fractions, shard_mb, max_pixels, workers)
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
) -> ConversionReport:
    """Convert an image folder into sharded TFRecords + manifest (resumable, see module doc)."""
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise ValueError(f"not a directory: {source}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for path in _our_files(out):
            path.unlink()
    elif is_records_folder(out):
        return ConversionReport(out, read_manifest(out), 0.0, 0, 0, already_done=True)

    for stale in _temporary_files(out):  # left by a killed run; no other writer runs here
        stale.unlink()
    progress("planning", 0)
    plan = _load_or_make_plan(source, out, fractions, shard_mb, max_pixels, workers)
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
