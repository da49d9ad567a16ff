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
import contextlib
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
    """All features of one serialized example (eager or in a tf.data graph).

    Bad bytes raise tf.errors.InvalidArgumentError. Found by fuzzing, eagerly: TF 2.21's
    parser crashes the process (SIGSEGV) on some wire-corrupt examples, so eager bytes are
    checked with protobuf first; and TF quotes bad bytes in its message and fails to decode
    them (UnicodeDecodeError). In a tf.data graph neither guard can run: records are trusted
    there as make-tfrecords wrote them (every record's CRC is checked on reading).
    """
    message = "could not parse a tf.train.Example (corrupt record)"
    if tf.executing_eagerly():
        from google.protobuf.message import DecodeError

        data = serialized.numpy() if isinstance(serialized, tf.Tensor) else serialized
        try:
            tf.train.Example.FromString(data)
        except (DecodeError, TypeError):
            raise tf.errors.InvalidArgumentError(None, None, message) from None
    try:
        return tf.io.parse_single_example(serialized, FEATURES)
    except UnicodeDecodeError:
        raise tf.errors.InvalidArgumentError(None, None, message) from None


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
        """The plan of `to_json`; ValueError for anything else (a damaged file is untrusted)."""
        if not isinstance(value, dict) or value.get("format_version") != FORMAT_VERSION:
            version = value.get("format_version") if isinstance(value, dict) else None
            raise ValueError(f"plan format {version} is not {FORMAT_VERSION}")
        _check_plan(value)
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


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(f"malformed: {what}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _list_of_dicts(value, keys: dict[str, Callable[[object], bool]], what: str) -> None:
    """`value` is a list of dicts holding at least `keys`, each value passing its check."""
    _check(isinstance(value, list), f"{what} is not a list")
    for item in value:
        _check(isinstance(item, dict), f"an entry of {what} is not an object")
        for key, ok in keys.items():
            _check(key in item and ok(item[key]), f"{what}: bad or missing {key!r}")


def _is_str(value) -> bool:
    return isinstance(value, str)


def _is_list(value) -> bool:
    return isinstance(value, list)


def _check_fractions(value, what: str) -> None:
    _check(
        isinstance(value, list) and len(value) == 3 and all(_is_number(f) for f in value),
        f"{what} is not three numbers",
    )


def _check_plan(value: dict) -> None:
    """Every field from_json and convert_folder read, with its type (fuzzed plans found
    KeyError/TypeError/AttributeError here before)."""
    _check(_is_str(value.get("source")), "source")
    _check_fractions(value.get("fractions"), "fractions")
    _check(_is_int(value.get("shard_bytes")) and _is_int(value.get("max_pixels")), "sizes")
    shard_keys = {"split": _is_str, "index": _is_int, "count": _is_int, "files": _is_list}
    _list_of_dicts(value.get("shards"), shard_keys, "shards")
    fields = dataclasses.fields(PlannedFile)
    file_keys = {f.name: _is_int if f.type == "int" else _is_str for f in fields}
    for shard in value["shards"]:
        _list_of_dicts(shard["files"], file_keys, "files")
        for planned in shard["files"]:
            _check(set(planned) == set(file_keys), "files: unknown keys")
    _list_of_dicts(value.get("skipped"), {"path": _is_str, "reason": _is_str}, "skipped")
    for skipped in value["skipped"]:
        _check(set(skipped) == {"path", "reason"}, "skipped: unknown keys")


def _check_manifest(manifest: dict) -> None:
    """The fields fit, make-tfrecords and the records source read, with their types."""
    counts = manifest.get("counts")
    _check(isinstance(counts, dict) and all(_is_int(n) for n in counts.values()), "counts")
    _check_fractions(manifest.get("split_fractions"), "split_fractions")
    _list_of_dicts(manifest.get("shards"), {"name": _is_str, "split": _is_str}, "shards")
    _list_of_dicts(manifest.get("skipped"), {"path": _is_str, "reason": _is_str}, "skipped")


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
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError: a damaged file
        raise ValueError(f"{path}: not a manifest ({files.short_reason(error)})") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {version} is not "
            f"{FORMAT_VERSION} (convert again with this version of tfdenoise)"
        )
    try:
        _check_manifest(manifest)
    except ValueError as error:
        raise ValueError(f"{path}: {error} (convert again with --overwrite)") from None
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
    names = [p for name in (MANIFEST, PLAN) for p in out.glob(f".{Path(name).stem}.tmp*.json")]
    for split in files.SPLITS:
        names.extend(out.glob(f".{split}-*-of-*.tmp*{SHARD_SUFFIX}"))
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


def load_plan(out: Path) -> ConversionPlan | None:
    """The stored plan of an unfinished conversion in `out`, None if there is none; ValueError
    (with the file named) when it is not a plan of this format."""
    path = out / PLAN
    if not path.is_file():
        return None
    try:
        return ConversionPlan.from_json(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as error:
        raise ValueError(f"{path}: {files.short_reason(error)} (use --overwrite)") from None


def _load_or_make_plan(
    source: Path, out: Path, fractions, shard_mb, max_pixels, workers
) -> ConversionPlan:
    """The stored plan of an unfinished run with the same options, else a new stored plan."""
    plan_path = out / PLAN
    stored = load_plan(out)
    if stored is not None:
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
    with output_lock(out):
        args = (fractions, shard_mb, max_pixels, workers, executor, overwrite, progress, start)
        return _convert_locked(source, out, *args)


class OutputBusy(ValueError):
    """OUT is being written by another conversion (its lock is held)."""


LOCK = ".lock"


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive flock on OUT/.lock for the whole conversion; OutputBusy at once if
    another process holds it. The kernel drops the lock with its holder's last descriptor, so
    a killed run never leaves a stale lock (only the file, unlocked, which the next run takes
    and removes). The file is removed before it is unlocked; a process that locked a removed
    file (it opened it before the removal) sees that and locks the new one instead."""
    import fcntl

    path = out / LOCK
    while True:
        stream = open(path, "a+b")  # noqa: SIM115 - closed below on every path
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.close()
            raise OutputBusy(
                f"{out} is being written by another make-tfrecords (it holds {path}); "
                "wait for it to finish, or write to another folder"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(stream.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        stream.close()  # locked a file its holder had just removed: take the new one
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        stream.close()  # releases the lock


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
