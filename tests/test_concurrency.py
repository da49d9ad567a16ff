"""Two jobs on one output: overlapping predicts (a retried job) and two make-tfrecords.

Real processes, not threads: the races are between processes (temp files, renames, locks).
"""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import photo_like, save
from PIL import Image

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


@pytest.mark.parametrize(
    "name",
    [
        "\u00e9" * 120 + ".jpg",  # 244 bytes in UTF-8: a legal name, its temp name was not
        "x" * 251 + ".png",  # NAME_MAX exactly
        os.fsdecode(b"\xe9" * 240 + b".tif"),  # Latin-1 bytes, not UTF-8
    ],
    ids=["utf8-244-bytes", "ascii-255-bytes", "latin1-244-bytes"],
)
def test_a_legal_long_name_is_written_through_a_temp_name_within_name_max(
    tmp_path, monkeypatch, name
):
    target = tmp_path / "out" / name
    atomic.create_with(target, lambda temporary: temporary.write_bytes(b"x"))
    atomic.write_with(target, lambda temporary: temporary.write_bytes(b"y"))
    assert target.read_bytes() == b"y" and _names(target.parent) == [name]
    temporary = atomic.temporary_path(target)
    assert len(os.fsencode(temporary.name)) <= atomic.NAME_MAX
    assert temporary.suffix == target.suffix
    assert os.fsencode(temporary.name[1:]).startswith(os.fsencode(target.stem[:100]))
    if name.isprintable():  # cut between characters, not inside one
        os.fsencode(temporary.name).decode("utf-8")
    # a killed writer's temp file of such a name is still found and removed
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    monkeypatch.setattr(os, "getpid", lambda: int(dead))
    stale = atomic.temporary_path(target)
    monkeypatch.undo()
    stale.write_bytes(b"half")
    assert atomic.stale_temporaries(target.parent) == [stale]
    atomic._swept.discard(str(target.parent.resolve()))
    atomic.write_with(target, lambda temporary: temporary.write_bytes(b"z"))
    assert _names(target.parent) == [name]


# --- publishing without replacing (predict's outputs) -------------------------------------


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_publishing_onto_an_existing_file_refuses_and_keeps_its_bytes(tmp_path):
    target = tmp_path / "out" / "image.png"
    atomic.create_with(target, lambda temporary: temporary.write_bytes(b"first job"))
    with pytest.raises(atomic.OutputExists) as refused:
        atomic.create_with(target, lambda temporary: temporary.write_bytes(b"second job"))
    assert refused.value.errno == errno.EEXIST and refused.value.filename == str(target)
    assert target.read_bytes() == b"first job"
    assert _names(target.parent) == ["image.png"]  # no temp file left
    assert target.stat().st_nlink == 1  # the temp name of the published file is gone too


def test_publishing_falls_back_to_a_rename_where_hard_links_are_unsupported(tmp_path, monkeypatch):
    def no_hard_links(source, destination, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted", str(source))

    monkeypatch.setattr(os, "link", no_hard_links)
    target = tmp_path / "image.png"
    atomic.create_with(target, lambda temporary: temporary.write_bytes(b"first job"))
    assert target.read_bytes() == b"first job"
    with pytest.raises(atomic.OutputExists):
        atomic.create_with(target, lambda temporary: temporary.write_bytes(b"second job"))
    assert target.read_bytes() == b"first job"
    assert _names(tmp_path) == ["image.png"]


def test_other_link_errors_fail_the_write_and_leave_nothing(tmp_path, monkeypatch):
    def denied(source, destination, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(destination))

    monkeypatch.setattr(os, "link", denied)
    with pytest.raises(PermissionError):
        atomic.create_with(tmp_path / "image.png", lambda temporary: temporary.write_bytes(b"x"))
    assert _names(tmp_path) == []


def test_replacing_writes_still_replace(tmp_path):
    target = tmp_path / "run.json"
    atomic.write_json(target, {"step": 1})
    atomic.write_json(target, {"step": 2})
    assert '"step": 2' in target.read_text() and _names(tmp_path) == ["run.json"]


def test_an_output_written_by_another_job_meanwhile_is_reported_kept(tmp_path):
    from tfdenoise.predict import folder

    source = save(tmp_path / "in" / "image.png", photo_like(24, 32))
    target = tmp_path / "out" / "image.png"
    options = folder.PredictOptions()
    pending = folder._decode(source, target, options)  # found missing: denoise it
    save(target, photo_like(24, 32, seed=1))  # ... but another job publishes it first
    theirs = target.read_bytes()
    result = folder._finish(pending, pending.picture.rgb, options)
    assert (result.status, result.error) == ("kept", "")
    assert target.read_bytes() == theirs and _names(target.parent) == ["image.png"]
    # --overwrite replaces it, as before
    overwrite = folder.PredictOptions(overwrite=True)
    pending = folder._decode(source, target, overwrite)
    result = folder._finish(pending, pending.picture.rgb, overwrite)
    assert result.status == "written" and target.read_bytes() != theirs


@pytest.mark.parametrize("engine", ["pipelined", "serial"])
def test_a_rerun_that_writes_nothing_still_removes_a_killed_jobs_second_name(tmp_path, engine):
    """kill -9 between publishing an output (hard link) and removing its temp name leaves a
    second name of the complete file; a re-run that finds every output there removes it."""
    from tfdenoise.predict import folder, pipelined

    source = save(tmp_path / "in" / "image.png", photo_like(24, 32))
    out = tmp_path / "out"
    save(out / "image.png", photo_like(24, 32, seed=1))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    second_name = out / f".image.tmp-{atomic.HOST}-{dead}-0123abcd.png"
    os.link(out / "image.png", second_name)
    atomic._swept.discard(str(out.resolve()))
    run = pipelined.predict_folder_pipelined if engine == "pipelined" else folder.predict_folder
    report = run(None, source.parent, out, folder.PredictOptions())
    assert [r.status for r in report.results] == ["kept"]
    assert _names(out) == ["image.png"]


# --- two predicts on one output ---------------------------------------------------------------


def _predict(folder: Path, out: Path, *extra: str) -> subprocess.Popen:
    """`python -m tfdenoise.predict` with the bundled model."""
    command = [sys.executable, "-m", "tfdenoise.predict", str(folder), "-o", str(out)]
    return subprocess.Popen(
        [*command, *extra],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _complete(path: Path) -> tuple[int, int]:
    """The size of an image that decodes to its last pixel (a truncated file raises)."""
    with Image.open(path) as image:
        image.load()
        return image.size


def _statuses(report: Path) -> dict[str, tuple[str, str]]:
    """Input name -> (status, width) from a --report CSV (width 0: skipped before decoding)."""
    with open(report, newline="") as handle:
        rows = csv.DictReader(handle)
        return {Path(row["input"]).name: (row["status"], row["width"]) for row in rows}


SIZES = ((24, 32), (32, 24), (40, 48))  # consecutive images differ: one model call each


def test_two_predicts_started_together_write_each_image_exactly_once(tmp_path):
    """A retried job overlapping the first, with the bundled model: both list every image as
    missing at first, denoise side by side and race to publish each output. The publish
    refuses an existing target (hard link), so each image is written by exactly one job and
    kept by the other; both exit 0. (With a rename over the target both jobs wrote most
    images, the last rename winning.)"""
    folder, out = tmp_path / "in", tmp_path / "out"
    sizes = {}
    for index in range(40):
        height, width = SIZES[index % 3]
        name = f"img{index:03d}.{'png' if index % 2 else 'jpg'}"
        save(folder / name, photo_like(height, width, seed=index), quality=90)
        sizes[name] = (width, height)
    reports = [tmp_path / f"report{job}.csv" for job in (0, 1)]
    jobs = [_predict(folder, out, "--report", str(report)) for report in reports]
    logs = [job.communicate(timeout=300)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], logs
    assert not any("Traceback" in log for log in logs), logs
    statuses = [_statuses(report) for report in reports]
    for name in sizes:
        pair = sorted(status[name][0] for status in statuses)
        assert pair == ["kept", "written"], (name, pair, logs)
    outputs = sorted(p.name for p in out.iterdir())
    assert outputs == sorted(Path(name).with_suffix(".png").name for name in sizes)
    for name, size in sizes.items():  # every output a complete image of its input's size
        assert _complete(out / Path(name).with_suffix(".png").name) == size
    assert not _temp_debris(out)
    # kept after decoding and denoising: the other job published first (informative only,
    # the split between these and kept-at-listing depends on timing)
    raced = [n for s in statuses for n in sizes if s[n][0] == "kept" and s[n][1] != "0"]
    print(f"{len(raced)} of {len(sizes)} images denoised by both jobs, published by one")


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
    from tfdenoise.io.records.folder import count_records, read_manifest

    manifest = read_manifest(out)
    assert sum(manifest["counts"].values()) == 30
    for shard in manifest["shards"]:
        assert count_records(out / shard["name"]) == shard["records"]
    assert not _temp_debris(out)
