"""What `tfdenoise fit DATA` reads: an image folder, or the sample photos when DATA is omitted.

A source knows its files per split and turns them into the first pipeline stage
(encoded bytes + decoder); everything after that is shared in tfdenoise.data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from tfdenoise import data, images, samples


class FolderSource:
    """Images in a folder (recursively), split by a hash of each relative path."""

    kind = "folder"

    def __init__(self, root: str | Path, paths: Sequence[Path] | None = None,
                 fractions: Sequence[float] = images.DEFAULT_SPLIT,
                 max_pixels: int = images.DEFAULT_MAX_PIXELS):
        self.root = Path(root)
        self.scan = images.scan(self.root, paths, fractions, max_pixels)
        self.description = f"image folder {self.root}"

    @property
    def skipped(self) -> list[images.Skipped]:
        return self.scan.skipped

    def count(self, split: str) -> int:
        return len(self.scan.split(split))

    def encoded(self, split: str, training: bool, shard: tuple[int, int] = (1, 0),
                ) -> tf.data.Dataset:
        """(bytes, decoder) of one split; `shard` = (count, index) deals files out to workers."""
        count, index = shard
        files = self.scan.split(split)[index::count]
        return data.encoded_files(files, shuffle=training, repeat=training)

    def pil_only(self, split: str) -> list[images.ImageFile]:
        """Files only PIL decodes (CMYK JPEG, BMP, WebP): they cannot go to tf.data service."""
        return [f for f in self.scan.split(split) if f.info.decoder == images.Decoder.PIL]


def sample_source(fractions: Sequence[float] = images.DEFAULT_SPLIT) -> FolderSource:
    source = FolderSource(samples.sample_photo_dir(), samples.sample_photo_paths(), fractions)
    source.kind = "samples"
    source.description = f"{len(source.scan.files)} sample photos from scikit-image"
    return source


def open_source(path: str | Path | None, fractions: Sequence[float] = images.DEFAULT_SPLIT,
                max_pixels: int = images.DEFAULT_MAX_PIXELS) -> FolderSource:
    """The source behind a DATA argument."""
    if path is None:
        return sample_source(fractions)
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"DATA must be a folder of images or TFRecords: {path} is not a directory")
    return FolderSource(path, None, fractions, max_pixels)
