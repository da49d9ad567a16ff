"""Atomic file replacement: readers see the old file or the new one, never a partial write.

Every output that a killed or failing job could leave half-written (run files, manifests,
models, denoised images) goes through `replacing`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def temporary_path(path: Path) -> Path:
    """`.name.tmp-PID-RANDOM.ext` beside the target: hidden, same file system, same extension
    (writers such as PIL and Keras choose the format from it), and unique per writer: two
    processes writing the same output (a retried job overlapping the first) never write into
    one temp file; each renames its own complete file, the last rename wins. The host is in
    the name too: on a shared file system only temp files of this host are judged stale."""
    tag = f"{HOST}-{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".{path.stem}.tmp-{tag}{path.suffix}")


HOST = re.sub(r"[^A-Za-z0-9]", "", os.uname().nodename)[:24] or "host"
TEMPORARY_NAME = re.compile(r"^\..*\.tmp-([A-Za-z0-9]*)-(\d+)-[0-9a-f]{8}(\.[^.]*)?$")
_swept: set[str] = set()  # folders whose stale temp files this process has removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Temp files in `folder` (not below) of this host whose writer process is gone (killed
    mid-write): those of live writers, of this process and of other hosts are left alone."""
    stale = []
    with os.scandir(folder) as entries:
        for entry in entries:
            match = TEMPORARY_NAME.match(entry.name)
            if not match or match.group(1) != HOST:
                continue
            pid = int(match.group(2))
            if pid != os.getpid() and not _alive(pid):
                stale.append(Path(entry.path))
    return stale


def sweep_once(folder: Path) -> None:
    """Remove the stale temp files of `folder`, once per process (before its first write)."""
    key = str(folder.resolve())
    if key in _swept:
        return
    _swept.add(key)
    try:
        for path in stale_temporaries(folder):
            path.unlink(missing_ok=True)
    except OSError:  # unlistable or read-only folder: the write itself will report it
        pass


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
    sweep_once(path.parent)
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
