"""A finished records folder: manifest.json, the shard files of each split, their record counts.
What fit's records source reads; nothing of the writer.

Format versions: 1 stored PNG for every non-JPEG image; 2 adds raw records and the `lossless`
choice to the plan and the manifest. Both read the same way (each record says its own format);
an unfinished version-1 conversion resumes as version 1.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from tfdenoise.io import files
from tfdenoise.io.records.checks import check, check_fractions, is_int, is_str, list_of_dicts

FORMAT_VERSION = 2  # what this version writes
READABLE_VERSIONS = (1, 2)  # manifests and plans this version reads
MANIFEST = "manifest.json"
SHARD_SUFFIX = ".tfrecord"


def _check_manifest(manifest: dict) -> None:
    """The fields fit, make-tfrecords and the records source read, with their types."""
    counts = manifest.get("counts")
    check(isinstance(counts, dict) and all(is_int(n) for n in counts.values()), "counts")
    check_fractions(manifest.get("split_fractions"), "split_fractions")
    list_of_dicts(manifest.get("shards"), {"name": is_str, "split": is_str}, "shards")
    list_of_dicts(manifest.get("skipped"), {"path": is_str, "reason": is_str}, "skipped")


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
    if not is_int(version) or version not in READABLE_VERSIONS:
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
