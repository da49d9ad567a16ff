"""An exclusive lock on a directory that one job writes (make-tfrecords' OUT, fit's run
directory): a second job is refused at once, never interleaved with the first.

Why flock on a file in the directory: the kernel drops the lock with its holder's last
descriptor, so a killed job never leaves a stale lock (only the file, unlocked, which the
next job takes and removes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

LOCK = ".lock"


@contextlib.contextmanager
def exclusive(directory: Path, busy: Exception) -> Iterator[None]:
    """Hold an exclusive flock on DIRECTORY/.lock while the block runs; raise `busy` at once if
    another process holds it. The file is removed before it is unlocked; a process that locked
    a removed file (it opened it before the removal) sees that and locks the new one instead."""
    import fcntl

    path = Path(directory) / LOCK
    while True:
        stream = open(path, "a+b")  # noqa: SIM115 - closed below on every path
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.close()
            raise busy from None
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
