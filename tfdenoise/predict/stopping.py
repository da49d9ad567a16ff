"""A clean stop of the folder job on SIGINT (Ctrl-C) or SIGTERM (`kill`, a scheduler's time
limit, `docker stop`): what was done is reported, as for a full disk, and nothing half-done is
left behind.

Both signals become `Interrupted`, a KeyboardInterrupt raised in the main thread as Python
does for SIGINT, so the model stops between two batches rather than after a whole large image.
Nothing is lost by stopping there: an output is published only once its temp file is complete
(`tfdenoise.io.atomic`), and an interrupted write removes its temp file on the way out. The job
catches the interruption, lets the writes already running in its threads end, and raises
`Interrupted` again with its report of every image finished so far; the CLI prints it and exits
128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as shells report a killed command.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The job was asked to stop by `signum`; `report` (a PredictReport) is set when the job
    has wound down and holds every image finished before the stop."""

    def __init__(self, signum: int = signal.SIGINT, report: Any = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.report = report

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """128 + the signal's number: what a shell reports for a command a signal ended."""
        return 128 + self.signum


def with_report(error: KeyboardInterrupt, report: Any) -> Interrupted:
    """The interruption a job re-raises once it has wound down: `error`'s signal (SIGINT for
    Python's own KeyboardInterrupt) and the job's report."""
    signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
    return Interrupted(signum, report)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise `Interrupted` in the main thread; the
    previous handlers afterwards. A signal the process started with ignored (SIGINT of a job
    started in the background by a script, or under nohup) stays ignored, as it should."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (and only it receives signals)
        return
    previous = {}
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _raise_interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
