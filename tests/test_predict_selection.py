"""--shard I/N and --files-from: disjoint, complete shards; listed entries; usage errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from conftest import photo_like, save, write_bad_files
from PIL import Image

from tfdenoise import checkpoints, cli
from tfdenoise.predict import folder, selection


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return checkpoints.load_model(tiny_model_path)


@pytest.fixture
def scans(tmp_path):
    root = tmp_path / "scans"
    for index in range(12):
        sub = root / ("x" if index % 2 else "y")
        save(sub / f"s{index:02d}.png", photo_like(16, 24, seed=index))
    return root


def test_shards_are_disjoint_and_complete(scans, tmp_path, model):
    out = tmp_path / "out"
    everything = {e.relpath for e in selection.select(scans)}
    parts = [
        {e.relpath for e in selection.select(scans, shard=selection.Shard(i, 3))} for i in range(3)
    ]
    assert set().union(*parts) == everything
    assert all(not (parts[i] & parts[j]) for i in range(3) for j in range(i + 1, 3))
    assert all(parts)  # 12 files over 3 shards: none empty for these names
    written = []
    for i in range(3):
        entries = selection.select(scans, shard=selection.Shard(i, 3))
        report = folder.predict_folder(model, scans, out, entries=entries)
        assert not report.failed and not report.kept
        written.append({p.relative_to(out).with_suffix("").as_posix() for p in report.written})
    assert set().union(*written) == {path.removesuffix(".png") for path in everything}
    assert sum(map(len, written)) == len(everything)
    # a retried shard keeps what it wrote
    again = folder.predict_folder(
        model, scans, out, entries=selection.select(scans, shard=selection.Shard(1, 3))
    )
    assert not again.written and len(again.kept) == len(parts[1])


def test_adding_files_never_moves_others_between_shards(scans):
    before = {e.relpath: selection.shard_of(e.relpath, 4) for e in selection.select(scans)}
    save(scans / "z" / "new.png", photo_like(8, 8))
    after = {e.relpath: selection.shard_of(e.relpath, 4) for e in selection.select(scans)}
    assert {k: after[k] for k in before} == before


def test_files_from_selects_and_reports_bad_entries(scans, tmp_path, model):
    write_bad_files(scans / "bad")
    (scans / "notes.txt").write_text("not an image")
    (scans / "folder.png").mkdir()
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# wanted\n\nx/s01.png\n  y/s02.png  \n./x/s01.png\nmissing.png\nnotes.txt\n"
        "folder.png\n../outside.png\n/etc/passwd\nbad/empty.png\n"
    )
    entries = selection.select(scans, listing)
    assert [e.relpath for e in entries if e.reason is None] == [
        "bad/empty.png",
        "x/s01.png",
        "y/s02.png",
    ]
    reasons = {e.relpath: e.reason for e in entries if e.reason}
    assert reasons["missing.png"] == "listed but not found"
    assert "not an image" in reasons["notes.txt"]
    assert "not a file" in reasons["folder.png"]
    assert "outside" in reasons["../outside.png"] and "outside" in reasons["/etc/passwd"]
    out = tmp_path / "out"
    report = folder.predict_folder(model, scans, out, entries=entries)
    assert sorted(p.relative_to(out).as_posix() for p in report.written) == [
        "x/s01.png",
        "y/s02.png",
    ]
    assert len(report.failed) == 6  # 5 bad entries + the empty image
    assert not (out / "missing.png").exists()


def test_files_from_and_shard_combine(scans, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(e.relpath for e in selection.select(scans)[:8]) + "\nnope.png\n")
    union = []
    for i in range(2):
        union += [e.relpath for e in selection.select(scans, listing, selection.Shard(i, 2))]
    assert sorted(union) == sorted(e.relpath for e in selection.select(scans, listing))


@pytest.mark.parametrize("value", ["3/3", "-1/3", "1", "a/b", "0/0", "1/2/3"])
def test_bad_shard_is_a_usage_error(scans, value):
    result = CliRunner().invoke(cli.predict_command, [str(scans), "--shard", value])
    assert result.exit_code == 2, result.output
    assert "--shard" in result.output


def test_cli_files_from_and_shard(scans, tmp_path, tiny_model_path):
    listing = tmp_path / "list.txt"
    listing.write_text("x/s01.png\ny/s02.png\nmissing.png\n")
    out = tmp_path / "out"
    results = [
        CliRunner().invoke(
            cli.predict_command,
            [str(scans), "-o", str(out), "--model", str(tiny_model_path), "--ensemble", "1"]
            + ["--files-from", str(listing), "--shard", f"{i}/2"],
        )
        for i in range(2)
    ]
    assert sorted(r.exit_code for r in results) == [0, 1]  # missing.png fails in one shard
    assert "missing.png: listed but not found" in "".join(r.output for r in results)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "x/s01.png",
        "y/s02.png",
    ]


@pytest.fixture
def twins(tmp_path):
    """Inputs that share an output name: a scan saved twice, a GIF and a BMP of one picture."""
    root = tmp_path / "twins"
    for name in ("a.jpg", "a.png", "b.jpg", "c.gif", "c.bmp", "sub/c.png"):
        save(root / name, photo_like(16, 24, seed=len(name)))
    return root


def test_inputs_sharing_an_output_are_reported_not_kept(twins, tmp_path, model):
    report = folder.predict_folder(model, twins, tmp_path / "out")
    failed = {r.input.name: r.error for r in report.with_status("failed")}
    assert failed == {
        "a.jpg": "its output a.png is a.png's: rename one of the two",
        "c.gif": "its output c.png is c.bmp's: rename one of the two",
    }
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in report.written) == [
        "a.png",
        "b.png",
        "c.png",
        "sub/c.png",
    ]
    assert not report.kept
    same = folder.PredictOptions(output_format="same")  # a.jpg and a.png keep their suffixes
    report = folder.predict_folder(model, twins, tmp_path / "same", same)
    assert [r.input.name for r in report.with_status("failed")] == ["c.gif"]


def test_every_shard_agrees_on_the_owner_of_a_shared_output(twins):
    whole = {e.relpath: e.reason for e in selection.select(twins)}
    parts = {}
    for index in range(4):
        shard = selection.Shard(index, 4)
        parts.update({e.relpath: e.reason for e in selection.select(twins, shard=shard)})
    assert parts == whole and whole["a.jpg"] and whole["c.gif"] and not whole["a.png"]
    listed = twins / "list.txt"
    listed.write_text("a.jpg\nb.jpg\n")  # a.png not in the job: it still owns a.png
    reasons = {e.relpath: e.reason for e in selection.select(twins, files_from=listed)}
    assert reasons["a.jpg"] == whole["a.jpg"] and reasons["b.jpg"] is None


def test_an_output_folder_inside_the_input_is_never_read(scans, tmp_path, model):
    out = scans / "denoised"  # predict photos -o photos/denoised
    first = folder.predict_folder(model, scans, out)
    assert len(first.written) == 12
    again = folder.predict_folder(model, scans, out)  # its outputs are not new inputs
    assert len(again.kept) == 12 and not again.written and not again.failed
    assert not (out / "denoised").exists()
    listed = tmp_path / "list.txt"
    listed.write_text("x/s01.png\ndenoised/x/s01.png\n")
    reasons = {
        e.relpath: e.reason for e in selection.select(scans, files_from=listed, output_dir=out)
    }
    assert reasons == {"x/s01.png": None, "denoised/x/s01.png": "inside the output folder: refused"}


def test_cli_with_the_output_inside_the_input(scans, tiny_model_path):
    out = scans / "den"
    command = ["predict", str(scans), "-o", str(out), "--model", str(tiny_model_path)]
    for _ in range(2):
        result = CliRunner().invoke(cli.main, command, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert "12 images" in result.output and not (out / "den").exists()


def test_the_row_of_an_input_that_shares_an_output_names_that_output(twins, tmp_path, model):
    out = tmp_path / "out"
    report = folder.predict_folder(model, twins, out)
    failed = {r.input.name: r.output for r in report.with_status("failed")}
    assert failed == {"a.jpg": out / "a.png", "c.gif": out / "c.png"}  # not out/a.jpg
    folder.write_report_csv(report, tmp_path / "report.csv")
    rows = {row["input"]: row for row in csv.DictReader(open(tmp_path / "report.csv"))}
    assert rows[str(twins / "c.gif")]["output"] == str(out / "c.png")


def write_pages(path, *pages):
    with tifffile.TiffWriter(path) as writer:
        for page in pages:
            writer.write(page, photometric="rgb")


@pytest.fixture
def paged(tmp_path):
    """Two-page TIFFs beside images whose outputs are named like their pages, or not quite."""
    root = tmp_path / "paged"
    root.mkdir()
    write_pages(root / "scan.tif", photo_like(16, 24, seed=1), photo_like(16, 24, seed=2))
    save(root / "scan.p001.png", photo_like(16, 24, seed=3))  # page 1's output name
    write_pages(root / "book.tif", photo_like(16, 24, seed=4), photo_like(16, 24, seed=5))
    save(root / "book.p002.jpg", photo_like(16, 24, seed=6))  # book.p002.png: page 2's
    write_pages(root / "atlas.tif", photo_like(16, 24, seed=7), photo_like(16, 24, seed=8))
    save(root / "atlas.p003.png", photo_like(16, 24, seed=9))  # atlas has no page 3
    save(root / "atlas.p01.png", photo_like(16, 24, seed=10))  # nor is p01 a page name
    return root


@pytest.mark.parametrize("engine", ["serial", "pipelined"])
def test_a_tiff_page_never_takes_another_inputs_output(paged, tmp_path, model, engine):
    """scan.tif's first page would be written to scan.p001.png, the output of the image named
    so: the TIFF fails with that reason, instead of a page silently lost and counted written."""
    from tfdenoise.predict import pipelined

    out = tmp_path / "out"
    run = pipelined.predict_folder_pipelined if engine == "pipelined" else folder.predict_folder
    report = run(model, paged, out, folder.PredictOptions())
    failed = {r.input.name: (r.output, r.error) for r in report.with_status("failed")}
    assert failed == {
        "scan.tif": (
            out / "scan.p001.png",
            "its output scan.p001.png is scan.p001.png's: rename one of the two",
        ),
        "book.tif": (
            out / "book.p002.png",
            "its output book.p002.png is book.p002.jpg's: rename one of the two",
        ),
    }
    written = sorted(r.input.name for r in report.with_status("written"))
    assert written == [
        "atlas.p003.png",
        "atlas.p01.png",
        "atlas.tif",
        "book.p002.jpg",
        "scan.p001.png",
    ]
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "atlas.p001.png",
        "atlas.p002.png",
        "atlas.p003.png",
        "atlas.p01.png",
        "book.p002.png",
        "scan.p001.png",
    ]
    theirs = np.asarray(Image.open(out / "scan.p001.png"))
    np.testing.assert_allclose(theirs.mean(), photo_like(16, 24, seed=3).mean(), atol=8)
    # a re-run keeps the TIFF's own pages: they are no clash with itself
    again = run(model, paged, out, folder.PredictOptions())
    assert {r.input.name: r.status for r in again.results if r.status != "failed"} == {
        "atlas.p003.png": "kept",
        "atlas.p01.png": "kept",
        "atlas.tif": "kept",
        "book.p002.jpg": "kept",
        "scan.p001.png": "kept",
    }
    assert sorted(p.name for p in out.iterdir()) == names


def test_a_tiff_kept_whole_claims_no_page_names(paged, tmp_path):
    for output_format in ("same", "tiff"):
        assert not [e for e in selection.select(paged, output_format=output_format) if e.reason]


def test_cli_exit_1_when_a_tiff_page_clashes(paged, tmp_path, tiny_model_path):
    result = CliRunner().invoke(
        cli.predict_command,
        [str(paged), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path)],
    )
    assert result.exit_code == 1, result.output
    assert "2 failed" in result.output and "scan.p001.png's" in result.output
