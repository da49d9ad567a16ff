"""The conversion plan: every file is listed and validated (`files.scan`), each split is sorted
by relative path and cut into shards by cumulative *source* bytes. Stored in `OUT/.plan.json`
before the first write, so shard names (`-NNNNN-of-MMMMM`) and contents are fixed and an
interrupted conversion resumes the same plan (see convert.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from tfdenoise.config import DEFAULT_MAX_PIXELS, DEFAULT_SPLIT
from tfdenoise.io import files
from tfdenoise.io.encoding import DEFAULT_LOSSLESS, LOSSLESS_FORMATS
from tfdenoise.io.records.checks import (
    check,
    check_fractions,
    is_int,
    is_list,
    is_str,
    list_of_dicts,
)
from tfdenoise.io.records.folder import FORMAT_VERSION, READABLE_VERSIONS, SHARD_SUFFIX

PLAN = ".plan.json"
DEFAULT_SHARD_MB = 128


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
        if not is_int(version) or version not in READABLE_VERSIONS:
            raise ValueError(f"plan format {version} is not one of {READABLE_VERSIONS}")
        _check_plan(value)
        lossless = "png" if version == 1 else value.get("lossless")
        check(lossless in LOSSLESS_FORMATS, f"lossless is not one of {LOSSLESS_FORMATS}")
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


def _check_plan(value: dict) -> None:
    """Every field from_json and convert_folder read, with its type (fuzzed plans found
    KeyError/TypeError/AttributeError here before)."""
    check(is_str(value.get("source")), "source")
    check_fractions(value.get("fractions"), "fractions")
    check(is_int(value.get("shard_bytes")) and is_int(value.get("max_pixels")), "sizes")
    shard_keys = {"split": is_str, "index": is_int, "count": is_int, "files": is_list}
    list_of_dicts(value.get("shards"), shard_keys, "shards")
    fields = dataclasses.fields(PlannedFile)
    file_keys = {f.name: is_int if f.type == "int" else is_str for f in fields}
    for shard in value["shards"]:
        list_of_dicts(shard["files"], file_keys, "files")
        for planned in shard["files"]:
            check(set(planned) == set(file_keys), "files: unknown keys")
    list_of_dicts(value.get("skipped"), {"path": is_str, "reason": is_str}, "skipped")
    for skipped in value["skipped"]:
        check(set(skipped) == {"path", "reason"}, "skipped: unknown keys")


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
