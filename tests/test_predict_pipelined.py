"""The pipelined predict (decode ahead, write behind): the serial path's outputs and report,
bounded queues, failures and a full output disk handled the same way."""

from __future__ import annotations

import errno
import signal
import threading
import time

import pytest
from conftest import photo_like, save, write_bad_files

from tfdenoise import checkpoints
from tfdenoise.io import photo
from tfdenoise.predict import folder, pipelined, stopping

OPTIONS = folder.PredictOptions(tile=48, overlap=8, skip_clean=1.5)


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return checkpoints.load_model(tiny_model_path)


@pytest.fixture
def scans(tmp_path):
    root = tmp_path / "scans"
    for index in range(8):  # small: same-size pairs batched together
        save(root / f"s{index}.png", photo_like(24, 32 + 8 * (index // 2), seed=index))
    save(root / "sub" / "large.jpg", photo_like(100, 70, seed=20), quality=95)  # tiled
    save(root / "sub" / "clean.png", photo_like(40, 40, seed=21, noise=0))  # copied as clean
    save(root / "sub" / "z.png", photo_like(30, 30, seed=22))
    write_bad_files(root / "bad")
    return root


def rows(report):
    return [
        (r.input.name, r.output.name, r.status, r.width, r.height, r.sigma_before, r.error)
        for r in report.results
    ]


def test_same_outputs_and_report_as_the_serial_path(scans, tmp_path, model):
    save(tmp_path / "serial" / "s3.png", photo_like(8, 8))  # existing outputs are kept
    save(tmp_path / "piped" / "s3.png", photo_like(8, 8))
    serial = folder.predict_folder(model, scans, tmp_path / "serial", OPTIONS)
    piped = pipelined.predict_folder_pipelined(model, scans, tmp_path / "piped", OPTIONS)
    assert rows(piped) == rows(serial)
    assert [r.sigma_after for r in piped.results] == [r.sigma_after for r in serial.results]
    assert len(piped.failed) == 3 and len(piped.kept) == 1 and len(piped.copied) == 1
    outputs = sorted(p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial").rglob("*.*"))
    assert len(outputs) == 11
    for name in outputs:
        assert (tmp_path / "piped" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes()


def test_queues_are_bounded(tmp_path, model, monkeypatch):
    root = tmp_path / "large"
    for index in range(10):
        save(root / f"{index}.png", photo_like(60, 60, seed=index))  # > tile: one at a time
    alive, most = [0], [0]
    lock = threading.Lock()
    decode, finish = folder._decode, folder._finish

    def counted_decode(*args):
        result = decode(*args)
        with lock:
            alive[0] += 1
            most[0] = max(most[0], alive[0])
        return result

    def slow_finish(*args):
        time.sleep(0.05)  # writing is the bottleneck: decoding must not run far ahead
        result = finish(*args)
        with lock:
            alive[0] -= 1
        return result

    monkeypatch.setattr(folder, "_decode", counted_decode)
    monkeypatch.setattr(folder, "_finish", slow_finish)
    report = pipelined.predict_folder_pipelined(model, root, tmp_path / "out", OPTIONS, threads=2)
    assert len(report.written) == 10
    assert most[0] <= 2 + 1 + 2  # ahead + in the model + behind


def test_a_full_disk_stops_the_job_with_complete_outputs(scans, tmp_path, model, monkeypatch):
    save_picture, calls = photo.save_picture, [0]

    def filling_save(*args, **kwargs):
        calls[0] += 1
        if calls[0] > 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(args[1]))
        return save_picture(*args, **kwargs)

    monkeypatch.setattr(photo, "save_picture", filling_save)
    report = pipelined.predict_folder_pipelined(model, scans, tmp_path / "out", OPTIONS)
    assert report.stopped and report.stopped.startswith("No space left on device")
    assert len(report.written) == 3 and not [r for r in report.failed if "space" in r[1]]
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.png")) == sorted(
        p.name for p in report.written + report.copied
    )
    again = pipelined.predict_folder_pipelined(model, scans, tmp_path / "out", OPTIONS)
    assert len(again.kept) == len(report.written) + len(report.copied)


@pytest.mark.parametrize("engine", ["serial", "pipelined"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_the_job_with_the_report_of_what_was_done(
    scans, tmp_path, model, monkeypatch, engine, signum
):
    """Ctrl-C (KeyboardInterrupt) or SIGTERM (stopping.Interrupted, as stop_on_signals raises
    it) in the model: the writes already running end, and the report of every image finished
    comes with the interruption; no temp file is left, and a re-run keeps what was written."""
    model_outputs, calls = folder._model_outputs, [0]

    def interrupted_model(*args):
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt if signum == signal.SIGINT else stopping.Interrupted(signum)
        return model_outputs(*args)

    monkeypatch.setattr(folder, "_model_outputs", interrupted_model)
    run = pipelined.predict_folder_pipelined if engine == "pipelined" else folder.predict_folder
    out = tmp_path / "out"
    with pytest.raises(stopping.Interrupted) as stopped:
        run(model, scans, out, OPTIONS)
    assert stopped.value.signum == signum and stopped.value.exit_status == 128 + signum
    report = stopped.value.report
    done = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert done and done == sorted(p.relative_to(out) for p in report.written + report.copied)
    assert len(done) < 11 and len(report.failed) == 3  # bad/ comes first
    monkeypatch.setattr(folder, "_model_outputs", model_outputs)
    again = run(model, scans, out, OPTIONS)
    assert len(again.kept) == len(done) and len(again.written + again.copied) == 11 - len(done)


def test_an_interrupted_write_leaves_no_temp_file(scans, tmp_path, model, monkeypatch):
    save_picture, calls = photo.save_picture, [0]

    def interrupted_save(picture, path, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            path.write_bytes(b"half an image")  # into the temp file, then Ctrl-C
            raise KeyboardInterrupt
        return save_picture(picture, path, *args, **kwargs)

    monkeypatch.setattr(photo, "save_picture", interrupted_save)
    out = tmp_path / "out"
    with pytest.raises(stopping.Interrupted) as stopped:
        folder.predict_folder(model, scans, out, OPTIONS)
    report = stopped.value.report
    names = sorted(p.name for p in out.rglob("*") if p.is_file())  # no .s2.tmp-... name
    assert names == sorted(p.name for p in report.written + report.copied)
    assert len(report.written) == 2
