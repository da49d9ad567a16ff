"""Atomic file writes: readers see the old file or the new one, never a partial write.

Every output that a killed or failing job could leave half-written goes through a temp file
beside it. Two ways to move the complete temp file into place:

- `replacing` / `write_with` rename it over the target (the last writer wins): run files,
  manifests, models, and predict outputs under `--overwrite`.
- `creating` / `create_with` publish it only if the target does not exist yet, else raise
  `OutputExists` (hard link, which refuses an existing name atomically; see `publish`):
  predict's outputs, so that two jobs on one output (a retried job overlapping the first)
  write each image exactly once, the second keeping the first's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def temporary_path(path: Path) -> Path:
    """`.name.tmp-HOST-PID-RANDOM.ext` beside the target: hidden, same file system, same
    extension (writers such as PIL and Keras choose the format from it), and unique per writer:
    two processes writing the same output (a retried job overlapping the first) never write
    into one temp file; each moves its own complete file into place (see `replacing` and
    `creating` for who wins). The host is in the name too: on a shared file system only temp
    files of this host are judged stale. The name is cut at a character boundary to stay
    within NAME_MAX bytes, so that any target whose own name is legal can be written (the tag
    keeps it unique, and TEMPORARY_NAME still finds it)."""
    tag = f"{HOST}-{os.getpid()}-{secrets.token_hex(4)}"
    room = NAME_MAX - len(os.fsencode(f"..tmp-{tag}{path.suffix}"))
    return path.with_name(f".{_cut(path.stem, room)}.tmp-{tag}{path.suffix}")


def _cut(text: str, size: int) -> str:
    """The longest start of `text` whose file-system encoding is at most `size` bytes."""
    text = text[: max(size, 0)]  # every character takes at least one byte
    while text and len(os.fsencode(text)) > size:
        text = text[:-1]
    return text


NAME_MAX = 255  # bytes in one file name (ext4, XFS, Btrfs, APFS, ...), in os.fsencode's bytes
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


class OutputExists(FileExistsError):
    """`publish` refused: the target exists (another job wrote it since it was checked)."""


# os.link's errors on file systems without hard links (some FUSE, SMB/CIFS, FAT mounts)
NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS})


def publish(temporary: Path, path: Path) -> None:
    """Give the complete file `temporary` the name `path` unless `path` exists: then raise
    `OutputExists`, leaving `path` as it is and `temporary` to the caller to remove.

    A hard link refuses an existing name atomically, so of two writers publishing one target
    exactly one succeeds; the temp name is removed right after. (A writer killed between the
    two leaves a second name of the complete output, removed as any stale temp file.) Where
    the file system has no hard links (`NO_HARD_LINKS`), this falls back to a check then
    `os.replace`: two writers publishing within that instant may both succeed (both files
    complete, the last one wins), as with `replacing`.
    """
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    except OSError as error:
        if error.errno not in NO_HARD_LINKS:
            raise
        if not os.path.lexists(path):
            os.replace(temporary, path)
            return
    else:
        os.unlink(temporary)
        return
    raise OutputExists(errno.EEXIST, "exists already, written by another job", str(path))


@contextlib.contextmanager
def _writing(
    path: str | os.PathLike, durable: bool, move: Callable[[Path, Path], None]
) -> Iterator[Path]:
    path = Path(path)
    temporary = temporary_path(path)
    sweep_once(path.parent)
    try:
        yield temporary
        if durable:
            with open(temporary, "rb+") as stream:
                os.fsync(stream.fileno())
        move(temporary, path)
        if durable:
            _fsync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def replacing(
    path: str | os.PathLike, durable: bool = False
) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed.

    `durable` also fsyncs the file and its folder, so the new content survives a power cut
    (used where a later run trusts the file to decide what is already done).
    """
    return _writing(path, durable, os.replace)


def creating(
    path: str | os.PathLike, durable: bool = False
) -> contextlib.AbstractContextManager[Path]:
    """`replacing`, but never over an existing `path`: on success the temp file is published
    with `publish`, which raises `OutputExists` (the temp file removed, `path` untouched) when
    another writer created `path` first."""
    return _writing(path, durable, publish)


def write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Run `write(temporary)` on a temp file beside `path` (its folder created), then rename it
    over `path`: never a half-written output, whatever fails in between."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as temporary:
        write(temporary)


def create_with(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """`write_with` without replacing: `OutputExists` when `path` exists by the time the
    temp file is complete (see `creating`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with creating(path) as temporary:
        write(temporary)


def write_json(path: str | os.PathLike, value: Any, durable: bool = False, default=None) -> None:
    with replacing(path, durable) as temporary:
        temporary.write_text(json.dumps(value, indent=2, default=default) + "\n", encoding="utf-8")
