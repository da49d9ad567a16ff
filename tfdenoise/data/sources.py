"""What `tfdenoise fit DATA` reads: an image folder, a TFRecord folder (with manifest.json), or
the sample photos when DATA is omitted.

A source knows its images per split and turns them into the first pipeline stage
(encoded bytes + decoder); everything after that is shared in tfdenoise.data.pipeline.
`allow_pil` says whether the decode stage needs the PIL fallback (folders: any format;
records: never).
"""

from __future__ import annotations

import collections
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from tfdenoise.config import DEFAULT_MAX_PIXELS, DEFAULT_SPLIT
from tfdenoise.data import pipeline, samples
from tfdenoise.io import files
from tfdenoise.io.records.folder import is_records_folder, read_manifest, shard_paths

# Training keeps a record split's encoded bytes in memory when they total at most this (see
# pipeline.encoded_records): a few thousand photos, a small share of the RAM of any machine
# that trains; larger splits are streamed from their shards every epoch.
RECORD_CACHE_BYTES = 2 * 1024**3


class FolderSource:
    """Images in a folder (recursively), split by a hash of each relative path."""

    kind = "folder"
    allow_pil = True  # folders may hold CMYK JPEG, BMP, WebP: TF cannot decode those exactly

    def __init__(
        self,
        root: str | Path,
        paths: Sequence[Path] | None = None,
        fractions: Sequence[float] = DEFAULT_SPLIT,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        exclude: str | Path | None = None,
    ):
        self.root = Path(root)
        if paths is None:  # `exclude`: fit's runs folder, whose preview grids are PNGs
            paths = files.list_image_files(self.root, exclude=exclude)
        self.scan = files.scan(self.root, paths, fractions, max_pixels)
        self.description = f"image folder {self.root}"

    @property
    def skipped(self) -> list[files.Skipped]:
        return self.scan.skipped

    def count(self, split: str) -> int:
        return len(self.scan.split(split))

    def encoded(
        self,
        split: str,
        training: bool,
        shard: tuple[int, int] = (1, 0),
        keep_small: bool = True,
    ) -> tf.data.Dataset:
        """(bytes, decoder) of one split; `shard` = (count, index) deals files out to workers.
        `keep_small` is for RecordSource's signature: files are read from disk every epoch
        (the OS page cache keeps a small folder's bytes in memory anyway)."""
        count, index = shard
        files = self.scan.split(split)[index::count]
        return pipeline.encoded_files(files, shuffle=training, repeat=training)

    def pil_only(self, split: str) -> list[files.ImageFile]:
        """Files only PIL decodes (CMYK JPEG, BMP, WebP): they cannot go to tf.data service."""
        return [f for f in self.scan.split(split) if f.info.decoder == files.Decoder.PIL]


class RecordSource:
    """Sharded TFRecords written by `tfdenoise make-tfrecords`; splits fixed at conversion."""

    kind = "records"
    allow_pil = False  # records hold JPEG, PNG and raw pixels only

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        fractions = "/".join(f"{f:g}" for f in self.manifest["split_fractions"])
        self.description = f"TFRecords {self.root} (split {fractions} fixed at conversion)"
        missing = [
            s["name"] for s in self.manifest["shards"] if not (self.root / s["name"]).is_file()
        ]
        if missing:
            raise ValueError(
                f"{self.root}: shards listed in the manifest are missing: {', '.join(missing[:3])}"
            )

    @property
    def skipped(self) -> list[files.Skipped]:
        return [files.Skipped(s["path"], s["reason"]) for s in self.manifest["skipped"]]

    def count(self, split: str) -> int:
        return int(self.manifest["counts"].get(split, 0))

    def encoded(
        self,
        split: str,
        training: bool,
        shard: tuple[int, int] = (1, 0),
        keep_small: bool = True,
    ) -> tf.data.Dataset:
        """(bytes, decoder) of one split; `shard` = (count, index) for one of several workers.

        Shard files are dealt out (FILE sharding: each worker reads only its files); with
        fewer files than workers every worker reads all records and keeps every count-th
        (DATA sharding: records are read twice, but each is decoded by one worker only).
        Training keeps a worker's records in memory when their shards total at most
        RECORD_CACHE_BYTES and `keep_small` (not under tf.data service: its workers are handed
        parts of each epoch, and a worker's cache would replay the part it was handed first).
        """
        count, index = shard
        paths = shard_paths(self.root, self.manifest, split)
        data_shard = shard
        if count > 1 and len(paths) >= count:
            paths, data_shard = paths[index::count], (1, 0)
        sizes = {str(self.root / s["name"]): int(s["bytes"]) for s in self.manifest["shards"]}
        worker_bytes = sum(sizes[path] for path in paths) / data_shard[0]
        cached = self.count(split) if keep_small and worker_bytes <= RECORD_CACHE_BYTES else 0
        return pipeline.encoded_records(
            paths, shuffle=training, repeat=training, cached_records=cached, data_shard=data_shard
        )

    def pil_only(self, split: str) -> list[files.ImageFile]:
        """Always empty: records hold JPEG, PNG and raw pixels only."""
        return []


def sample_source(fractions: Sequence[float] = DEFAULT_SPLIT) -> FolderSource:
    source = FolderSource(samples.sample_photo_dir(), samples.sample_photo_paths(), fractions)
    source.kind = "samples"
    source.description = f"{len(source.scan.files)} sample photos from scikit-image"
    return source


def open_source(
    path: str | Path | None,
    fractions: Sequence[float] = DEFAULT_SPLIT,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    exclude: str | Path | None = None,
) -> FolderSource | RecordSource:
    """The source behind a DATA argument; a folder with manifest.json is read as TFRecords
    (fractions and max_pixels then come from the conversion). Nothing under `exclude` (the
    runs folder, when DATA holds it: `cd photos && tfdenoise fit .`) is an image of DATA."""
    if path is None:
        return sample_source(fractions)
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"DATA must be a folder of images or TFRecords: {path} is not a directory")
    if is_records_folder(path):
        return RecordSource(path)
    return FolderSource(path, None, fractions, max_pixels, exclude)


def shared_files(
    candidates: FolderSource, source: FolderSource | RecordSource, split: str
) -> list[str]:
    """The files of `candidates` (all splits) whose bytes equal a file in `source`'s `split`:
    sizes first, then SHA-256 of the few files of the same size, so a large training folder
    costs one stat per file. TFRecord sources re-encode what is not JPEG: not compared."""
    if not isinstance(source, FolderSource):
        return []
    by_size: dict[int, list[str]] = collections.defaultdict(list)
    for image in source.scan.split(split):
        by_size[os.path.getsize(image.path)].append(image.path)
    hashes: dict[int, set[str]] = {}  # size -> digests of the training files of that size
    shared = []
    for image in candidates.scan.files:
        size = os.path.getsize(image.path)
        if size not in by_size:
            continue
        if size not in hashes:  # hashed once, however many candidates share the size
            hashes[size] = {_sha256(path) for path in by_size[size]}
        if _sha256(image.path) in hashes[size]:
            shared.append(image.relpath)
    return shared


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
