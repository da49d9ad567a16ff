"""TFRecord datasets of images: schema, one-example encode/parse, a sharded writer, the manifest.

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

Format versions: 1 stored PNG for every non-JPEG image; 2 adds raw records and the `lossless`
choice to the plan and the manifest. Both read the same way (each record says its own format);
an unfinished version-1 conversion resumes as version 1.
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
from tfdenoise.io.encoding import DEFAULT_LOSSLESS, LOSSLESS_FORMATS, EncodedImage, encode_or_skip

FORMAT_VERSION = 2  # what this version writes
READABLE_VERSIONS = (1, 2)  # manifests and plans this version reads
RECORD_FORMATS = ("jpeg", "png", "raw")  # the values of the `format` feature
MANIFEST = "manifest.json"
PLAN = ".plan.json"
SHARD_SUFFIX = ".tfrecord"
DEFAULT_SHARD_MB = 128
EXECUTORS = ("thread", "process")

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),  # JPEG or PNG bytes, or raw RGB pixels
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "format": tf.io.FixedLenFeature([], tf.string),  # b"jpeg", b"png" or b"raw" (version 2)
    "source": tf.io.FixedLenFeature([], tf.string),  # path relative to the converted folder
}

# Decoder id of raw records in the (bytes, decoder) pipeline stage, after files.Decoder's ids.
RAW_DECODER = max(files.Decoder) + 1
# A raw record's bytes in that stage: the pixels, then its shape as a fixed-width trailer
# (height and width, RAW_SHAPE_DIGITS decimal digits each), so the stage stays (bytes, decoder)
# for every source. A trailer, not a header: decode_raw(fixed_length=) then reads the pixels
# without another copy.
RAW_SHAPE_DIGITS = 10
RAW_TRAILER_BYTES = 2 * RAW_SHAPE_DIGITS


# --- one example ------------------------------------------------------------------------------


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def encode_example(image: EncodedImage, source: str) -> bytes:
    """One serialized tf.train.Example in the schema of FEATURES."""
    if image.format not in RECORD_FORMATS:
        raise ValueError(f"records store one of {RECORD_FORMATS}, not {image.format!r}")
    if image.format == "raw" and len(image.data) != image.height * image.width * 3:
        raise ValueError(
            f"raw pixels of {image.height} x {image.width} x 3 are "
            f"{image.height * image.width * 3} bytes, not {len(image.data)}"
        )
    features = tf.train.Features(
        feature={
            "image": _bytes_feature(image.data),
            "height": _int_feature(image.height),
            "width": _int_feature(image.width),
            "format": _bytes_feature(image.format.encode()),
            "source": _bytes_feature(os.fsencode(source)),  # the name's bytes, UTF-8 or not
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
    """(bytes, decoder id): the first pipeline stage, as for image folders.

    Records hold only JPEG (TF's JPEG decoder, crop windows), PNG (tf.io.decode_image) and raw
    pixels (RAW_DECODER; the bytes get their shape trailer, see with_raw_shape), so the PIL
    fallback is never needed. A raw record whose size does not match its shape fails in the
    decode stage (InvalidArgumentError), like a corrupt PNG.
    """
    features = parse_features(serialized)
    image, format_ = features["image"], features["format"]
    is_raw = tf.equal(format_, b"raw")
    decoder = tf.where(
        is_raw,
        RAW_DECODER,
        tf.where(tf.equal(format_, b"jpeg"), int(files.Decoder.JPEG), int(files.Decoder.TF_IMAGE)),
    )
    data = tf.cond(
        is_raw,
        lambda: with_raw_shape(image, features["height"], features["width"]),
        lambda: image,
    )
    return data, tf.cast(decoder, tf.int32)


def with_raw_shape(pixels: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Raw pixel bytes + their shape trailer: what the decode stage reads for RAW_DECODER."""
    limit = 10**RAW_SHAPE_DIGITS - 1  # out-of-range sizes are caught by the size check

    def digits(value):
        value = tf.clip_by_value(tf.cast(value, tf.int64), 0, limit)
        return tf.strings.as_string(value, width=RAW_SHAPE_DIGITS, fill="0")

    return tf.strings.join([pixels, digits(height), digits(width)])


def decode_raw_pixels(data: tf.Tensor) -> tf.Tensor:
    """[H, W, 3] uint8 from raw pixels + shape trailer (with_raw_shape); InvalidArgumentError
    when the byte count is not H * W * 3 (a corrupt record), never a crash."""
    pixel_bytes = tf.cast(tf.strings.length(data), tf.int64) - RAW_TRAILER_BYTES
    with tf.control_dependencies(
        [tf.debugging.assert_non_negative(pixel_bytes, message="raw record: no shape trailer")]
    ):
        trailer = tf.strings.substr(data, pixel_bytes, tf.constant(RAW_TRAILER_BYTES, tf.int64))
    digits = RAW_SHAPE_DIGITS
    height = tf.strings.to_number(tf.strings.substr(trailer, 0, digits), tf.int64)
    width = tf.strings.to_number(tf.strings.substr(trailer, digits, digits), tf.int64)
    expected = height * width * 3
    checks = [
        tf.debugging.assert_positive(
            tf.stack([height, width]), message="raw record: height and width must be > 0"
        ),
        tf.debugging.assert_equal(
            pixel_bytes,
            expected,
            message="raw record: byte count is not height * width * 3 (corrupt record)",
        ),
    ]
    with tf.control_dependencies(checks):
        # the first H * W * 3 bytes, one copy; a string tensor is < 2 GiB, so int32 holds it
        pixels = tf.io.decode_raw(data, tf.uint8, fixed_length=tf.cast(expected, tf.int32))
    return tf.reshape(pixels, tf.stack([height, width, 3]))


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
    lossless: str = DEFAULT_LOSSLESS  # how non-JPEG images are stored: "raw" or "png"
    format_version: int = FORMAT_VERSION  # 1: an unfinished conversion of an older version

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
            "lossless": self.lossless,
        }

    def to_json(self) -> dict:
        options = self.options()
        if self.format_version == 1:
            del options["lossless"]  # always png; version 1 had no such field
        return {
            "format_version": self.format_version,
            **options,
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
        """The plan of `to_json` (format version 1 or 2); ValueError for anything else (a
        damaged file is untrusted)."""
        version = value.get("format_version") if isinstance(value, dict) else None
        if not _is_int(version) or version not in READABLE_VERSIONS:
            raise ValueError(f"plan format {version} is not one of {READABLE_VERSIONS}")
        _check_plan(value)
        lossless = "png" if version == 1 else value.get("lossless")
        _check(lossless in LOSSLESS_FORMATS, f"lossless is not one of {LOSSLESS_FORMATS}")
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
            lossless,
            version,
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
    lossless: str = DEFAULT_LOSSLESS,
) -> ConversionPlan:
    """Validate every image under source and fix the shards each one goes to."""
    if shard_mb <= 0:
        raise ValueError(f"shard size must be positive, got {shard_mb} MB")
    if lossless not in LOSSLESS_FORMATS:
        raise ValueError(f"lossless must be one of {LOSSLESS_FORMATS}, got {lossless!r}")
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
        lossless,
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
    """The manifest of a finished conversion (format version 1 or 2: both read the same way);
    ValueError if absent or of another format."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ValueError(f"not a TFRecord folder (no {MANIFEST}): {folder}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError: a damaged file
        raise ValueError(f"{path}: not a manifest ({files.short_reason(error)})") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not _is_int(version) or version not in READABLE_VERSIONS:
        raise ValueError(
            f"{path}: format version {version} is not one of "
            f"{READABLE_VERSIONS} (convert again with this version of tfdenoise)"
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
