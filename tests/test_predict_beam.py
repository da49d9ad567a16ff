"""--runner beam on the DirectRunner in multi-processing mode: the same pixels as a local run,
bad files reported the same way; without Apache Beam, a usage error that says how to install."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import photo_like, save, write_bad_files
from PIL import Image

from tfdenoise import cli
from tfdenoise.predict import folder

MULTI_PROCESSING = "--direct_running_mode=multi_processing --direct_num_workers=2"
HAS_BEAM = importlib.util.find_spec("apache_beam") is not None


@pytest.fixture
def scans(tmp_path):
    root = tmp_path / "scans"
    for index in range(5):
        save(root / f"s{index}.png", photo_like(24 + 8 * index, 40, seed=index))
    save(root / "sub" / "large.jpg", photo_like(150, 90, seed=9), quality=95)
    write_bad_files(root / "bad")
    return root


def run(args):
    return CliRunner().invoke(cli.predict_command, [str(a) for a in args])


@pytest.mark.skipif(HAS_BEAM, reason="checks the message shown when Apache Beam is missing")
def test_without_beam_runner_beam_says_how_to_install(scans, tmp_path):
    result = run([scans, "-o", tmp_path / "out", "--runner", "beam"])
    assert result.exit_code == 2, result.output
    assert "pip install 'tfdenoise[beam]'" in result.output


@pytest.mark.distributed
def test_beam_direct_runner_matches_the_local_run(scans, tmp_path, tiny_model_path, monkeypatch):
    pytest.importorskip("apache_beam", reason="the 'beam' extra is not installed")
    monkeypatch.chdir(tmp_path)  # relative DIR and OUT, as users type them
    common = ["--model", tiny_model_path, "--ensemble", "1", "--precision", "float32"]
    common += ["--tile", "64", "--overlap", "8"]  # large.jpg is tiled
    local = run([scans, "-o", tmp_path / "local", *common])
    beam = run(
        ["scans", "-o", "beam", *common, "--runner", "beam", "--beam-args"] + [MULTI_PROCESSING]
    )
    assert local.exit_code == beam.exit_code == 1, beam.output  # the 3 bad files
    assert "3 failed" in beam.output and "truncated.jpg" in beam.output
    names = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.png"))
    assert len(names) == 6
    assert sorted(p.relative_to(tmp_path / "beam") for p in (tmp_path / "beam").rglob("*")) == [
        *sorted({n.parent for n in names if n.parent.name} | set(names))
    ]
    for name in names:
        a = np.asarray(Image.open(tmp_path / "local" / name))
        b = np.asarray(Image.open(tmp_path / "beam" / name))
        np.testing.assert_array_equal(a, b)


@pytest.mark.distributed
def test_beam_report_collects_failures_from_the_workers(scans, tmp_path, tiny_model_path):
    pytest.importorskip("apache_beam", reason="the 'beam' extra is not installed")
    from tfdenoise.predict import beam, selection

    listing = tmp_path / "list.txt"
    listing.write_text("s0.png\ns1.png\nbad/empty.png\nmissing.png\n")
    save(tmp_path / "out" / "s1.png", photo_like(8, 8))  # written by an earlier try: kept
    report = beam.predict_folder_beam(
        scans,
        tmp_path / "out",
        folder.PredictOptions(),
        beam.ModelSpec(str(tiny_model_path), precision="float32", ensemble=1),
        selection.select(scans, listing),
        MULTI_PROCESSING,
    )
    assert [r.status for r in report.results] == ["failed", "failed", "written", "kept"]
    assert report.megapixels == pytest.approx(24 * 40 / 1e6)
    reasons = {r.input.name: r.error for r in report.results}
    assert reasons["missing.png"] == "listed but not found"
    assert reasons["empty.png"]
    assert not (tmp_path / "out" / beam.RESULTS_DIR).exists()
