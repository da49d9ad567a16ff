"""Atomic file replacement: readers see the old file or the new one, never a partial write.

Every output that a killed or failing job could leave half-written (run files, manifests,
models, denoised images) goes through `replacing`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def temporary_path(path: Path) -> Path:
    """`.name.tmp.ext` beside the target: hidden, same file system, same extension (writers
    such as PIL and Keras choose the format from it)."""
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed.

    `durable` also fsyncs the file and its folder, so the new content survives a power cut
    (used where a later run trusts the file to decide what is already done).
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        if durable:
            with open(temporary, "rb+") as stream:
                os.fsync(stream.fileno())
        os.replace(temporary, path)
        if durable:
            _fsync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Run `write(temporary)` on a temp file beside `path` (its folder created), then rename it
    over `path`: never a half-written output, whatever fails in between."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as temporary:
        write(temporary)


def write_json(path: str | os.PathLike, value: Any, durable: bool = False, default=None) -> None:
    with replacing(path, durable) as temporary:
        temporary.write_text(json.dumps(value, indent=2, default=default) + "\n", encoding="utf-8")
