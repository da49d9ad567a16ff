"""Two jobs on one output: overlapping predicts (a retried job) and two make-tfrecords.

Real processes, not threads: the races are between processes (temp files, renames, locks).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import photo_like, save
from PIL import Image

from tfdenoise import models
from tfdenoise.io import atomic

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _temp_debris(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".tmp" in p.name]


# --- the atomic writer ------------------------------------------------------------------------

WRITER = """
    import sys
    from pathlib import Path
    from tfdenoise.io import atomic

    target, fill, rounds = Path(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
    payload = fill * 400_000  # large enough that writes interleave
    for _ in range(rounds):
        atomic.write_with(target, lambda temporary: temporary.write_bytes(payload))
"""


def test_two_processes_writing_one_file_never_mix_their_bytes(tmp_path):
    """Each writer has its own temp file: the target is always one writer's complete bytes.
    (With one shared temp name, a writer renamed the other's half-written file, or its
    rename failed because the other had already moved the shared file away.)"""
    target = tmp_path / "out" / "image.png"
    writers = [_python(WRITER, str(target), fill, "60") for fill in ("a", "b")]
    while any(w.poll() is None for w in writers):
        if target.exists():
            data = target.read_bytes()
            assert len(data) == 400_000 and len(set(data)) == 1, "a mixed or partial file"
    for writer in writers:
        assert writer.wait() == 0, writer.stdout.read()
    assert len(set(target.read_bytes())) == 1
    assert not _temp_debris(tmp_path)


def test_a_killed_writers_temp_file_is_removed_by_the_next_writer(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    host = atomic.HOST
    stale = folder / f".a.tmp-{host}-{dead}-0123abcd.png"  # left by kill -9 of a finished pid
    live = folder / f".b.tmp-{host}-{sleeper.pid}-0123abcd.png"  # a writer still running
    other_host = folder / f".c.tmp-elsewhere-{dead}-0123abcd.png"  # shared file system
    for path in (stale, live, other_host):
        path.write_bytes(b"half")
    try:
        atomic._swept.discard(str(folder.resolve()))
        atomic.write_with(folder / "c.png", lambda temporary: temporary.write_bytes(b"x"))
        assert not stale.exists() and live.exists() and other_host.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


# --- two predicts on one output ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    models.built(models.UNet(widths=(4, 8))).save(path)
    return path


def _predict(folder: Path, out: Path, model: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "tfdenoise.predict", str(folder), "-o", str(out)]
    return subprocess.Popen(
        [*command, "--model", str(model), *extra],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def test_two_overlapping_predicts_leave_every_output_complete_and_identical(tmp_path, tiny_model):
    folder, out, reference = tmp_path / "in", tmp_path / "out", tmp_path / "reference"
    for index in range(40):
        save(folder / f"img{index:03d}.png", photo_like(24, 32, seed=index))
    (folder / "bad.png").write_bytes(b"not a picture")
    single = _predict(folder, reference, tiny_model)
    first = _predict(folder, out, tiny_model)
    time.sleep(1.0)  # the retried job starts while the first is running
    second = _predict(folder, out, tiny_model)
    logs = [job.communicate(timeout=300)[0] for job in (single, first, second)]
    assert not any("Traceback" in log for log in logs), logs
    # a bad input fails both jobs the same way (exit 1 = some inputs failed)
    assert single.returncode == first.returncode == second.returncode == 1
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in reference.iterdir())
    assert len(written) == 40
    for name in written:  # complete, and the same pixels as one uninterrupted job
        np.testing.assert_array_equal(_pixels(out / name), _pixels(reference / name))
    assert not _temp_debris(out)


# --- two make-tfrecords into one OUT ----------------------------------------------------------

HOLD_LOCK = """
    import fcntl, sys, time
    stream = open(sys.argv[1], "a+b")
    fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(120)
"""


def _make_tfrecords(src: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tfdenoise", "make-tfrecords", str(src), str(out)]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def test_second_make_tfrecords_into_one_out_is_refused_and_a_killed_lock_is_free(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for index in range(4):
        save(src / f"img{index}.png", photo_like(24, 32, seed=index))
    out.mkdir()
    holder = _python(HOLD_LOCK, str(out / ".lock"))  # a running conversion holds the lock
    assert holder.stdout.readline().strip() == "locked"
    refused = _make_tfrecords(src, out)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    message = refused.stdout + refused.stderr
    assert "being written by another make-tfrecords" in message
    assert "Traceback" not in message
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written, nothing removed
    os.kill(holder.pid, signal.SIGKILL)  # kill -9: the kernel drops the lock with the process
    holder.wait()
    done = _make_tfrecords(src, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "manifest.json").is_file()


def test_two_make_tfrecords_started_together_never_interleave(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for index in range(30):
        save(src / f"img{index:02d}.png", photo_like(48, 64, seed=index))
    command = [sys.executable, "-m", "tfdenoise", "make-tfrecords", str(src), str(out)]
    jobs = [
        subprocess.Popen(
            command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    codes = sorted(job.wait(timeout=300) for job in jobs)
    # either the second was refused while the first ran, or it started after the first
    # finished and found OUT complete (exit 0, "nothing to do")
    assert codes in ([0, 2], [0, 0]), [job.stdout.read() for job in jobs]
    from tfdenoise.io import records

    manifest = records.read_manifest(out)
    assert sum(manifest["counts"].values()) == 30
    for shard in manifest["shards"]:
        assert records.count_records(out / shard["name"]) == shard["records"]
    assert not _temp_debris(out)
