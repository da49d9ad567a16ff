"""The fuzz targets of tools/fuzz.py for a short budget each, and every finding's reproducer.

CI runs each target for a few seconds (atheris, coverage-guided); a longer campaign is
`python tools/fuzz.py TARGET --seconds 1800` (see docs/reliability.md).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import load_tool
from PIL import Image

from tfdenoise.io import files, photo
from tfdenoise.io.records.folder import MANIFEST, read_manifest
from tfdenoise.io.records.plan import PLAN, load_plan
from tfdenoise.io.records.schema import parse_features

pytest.importorskip("atheris")

REPO = Path(__file__).resolve().parent.parent
REGRESSIONS = Path(__file__).resolve().parent / "fuzz_regressions"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
SECONDS = 2  # of fuzzing per target, after start-up (TF import, seeds): about 60 s in all

fuzz = load_tool("fuzz")


@pytest.fixture(scope="module")
def image_seeds(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("seeds")
    fuzz.TARGETS["image"].seeds(folder)  # shared by the three image targets: made once
    return folder


# On Linux a child's peak RSS (ru_maxrss, what libFuzzer's -rss_limit_mb checks) starts at its
# parent's RSS at the fork and survives exec: run from a pytest process holding GBs of
# TensorFlow state, every target "ran out of memory" at once. One launcher process in between
# forks the fuzzer from a small process, so the limit measures the fuzzer alone.
LAUNCH = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _fuzz(target: str, corpus: Path, findings: Path, seconds: float = SECONDS, tool=None):
    command = [sys.executable, *(tool or [str(REPO / "tools" / "fuzz.py")]), target]
    command += ["--seconds", str(seconds), "--corpus", str(corpus), "--findings", str(findings)]
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *command],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_list_names_every_target():
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "fuzz.py"), "--list"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == list(fuzz.TARGETS)
    assert {"image", "picture", "metadata_roundtrip", "tfrecord_example", "plan"} <= set(names)


@pytest.mark.parametrize("target", list(fuzz.TARGETS))
def test_target_finds_nothing_in_a_short_run(target, image_seeds, tmp_path):
    corpus, findings = tmp_path / "corpus", tmp_path / "findings"
    if fuzz.TARGETS[target].seeds is fuzz._write_image_seeds:
        shutil.copytree(image_seeds, corpus)
    result = _fuzz(target, corpus, findings)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "Done" in log and "stat::number_of_executed_units" in log, log[-2000:]
    assert not list(findings.glob("*")), log[-4000:]
    # guided by coverage: libFuzzer prints "cov:" only when the parsers are instrumented
    inited = re.search(r"INITED cov: (\d+)", log)
    assert inited and int(inited.group(1)) > 0, log[-2000:]


def test_parsers_imported_before_instrumentation_are_refused():
    """A module imported before atheris instruments it would be fuzzed blind (this test
    process has imported tfdenoise.io already): the harness must say so, not run blind."""
    with pytest.raises(RuntimeError, match="before instrumentation"):
        fuzz.instrument(fuzz.TARGETS["image"])


BROKEN = """
    import struct, sys
    sys.path.insert(0, sys.argv[1])
    import fuzz

    def orientation_of(data: bytes) -> int:  # a parser that trusts the input's length
        offset = 2 if data[:2] == b"II" else 4
        return struct.unpack_from("<H", data, offset + 8)[0]

    def seeds(folder):
        fuzz._add_seed(folder, b"II*\\x00\\x08\\x00\\x00\\x00\\x01\\x00\\x12\\x01\\x03\\x00")

    broken = fuzz.Target("broken", orientation_of, fuzz._image_errors, seeds)
    sys.exit(fuzz.main(sys.argv[2:], {"broken": broken}))
"""


def test_a_target_raising_an_undocumented_exception_is_a_finding(tmp_path):
    """The harness itself: a deliberately broken parser (struct.error on short input) must be
    reported, exit non-zero, with its reproducer saved."""
    findings = tmp_path / "findings"
    tool = ["-c", textwrap.dedent(BROKEN), str(REPO / "tools")]
    result = _fuzz("broken", tmp_path / "corpus", findings, seconds=20, tool=tool)
    log = result.stdout + result.stderr
    assert result.returncode != 0, log[-2000:]
    assert "unpack_from requires a buffer" in log  # the struct.error, reported
    (reproducer,) = findings.glob("crash-*")
    with pytest.raises(struct.error):  # the saved input reproduces it
        _orientation_of(reproducer.read_bytes())


def _orientation_of(data: bytes) -> int:  # the same broken parser, in this process
    offset = 2 if data[:2] == b"II" else 4
    return struct.unpack_from("<H", data, offset + 8)[0]


# --- every finding's reproducer ---------------------------------------------------------------

REPRODUCERS = sorted(REGRESSIONS.glob("*/*"))


@pytest.mark.parametrize("path", REPRODUCERS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reproducer_is_a_documented_rejection_now(path):
    fuzz.one_input(fuzz.TARGETS[path.parent.name])(path.read_bytes())


def _png_with_exif(exif: bytes) -> bytes:
    stream = io.BytesIO()
    Image.new("RGB", (4, 4)).save(stream, "PNG", exif=exif)
    return stream.getvalue()


@pytest.mark.parametrize(
    "name",
    ["truncated-tiff-header.exif", "unreadable-tag-262.exif", "ascii-tag-holding-a-number.exif"],
)
def test_png_with_a_broken_exif_block_is_skipped_with_a_reason(name, tmp_path):
    """Found by fuzzing: struct.error (truncated EXIF), KeyError (a tag PIL cannot read back)
    and AttributeError (an ASCII tag whose entry holds a number, which PIL's writer cannot
    encode; found by CI's short run on 2026-12-07) escaped from load_picture; predict, fit and
    make-tfrecords crashed on such files."""
    data = _png_with_exif((REGRESSIONS / "exif_patch" / name).read_bytes())
    with pytest.raises(files.ImageError, match="corrupt or truncated"):
        photo.load_picture(data)
    path = tmp_path / "broken_exif.png"
    path.write_bytes(data)
    with pytest.raises(files.ImageError, match="corrupt or truncated"):
        photo.load_picture(path)


def test_png_without_image_data_is_skipped_by_scan(tmp_path):
    """Found by fuzzing: IHDR then IEND, no IDAT -> IndexError inside PIL's verify, which
    crashed the whole scan (fit, make-tfrecords) instead of skipping the file."""
    shutil.copy(REGRESSIONS / "image" / "png-without-idat.png", tmp_path / "empty.png")
    scan = files.scan(tmp_path)
    assert not scan.files
    (skipped,) = scan.skipped
    assert skipped.reason.startswith("corrupt or truncated")


@pytest.mark.parametrize(
    "name", ["tiff-missing-dimensions.tif", "tiff-second-page-unknown-compression.tif"]
)
def test_broken_tiff_is_skipped_with_a_reason(name):
    """Found by fuzzing: TypeError('Missing dimensions') and KeyError (a second page with an
    unknown compression, met while counting pages) from PIL's TIFF reader."""
    data = (REGRESSIONS / "picture" / name).read_bytes()
    for load in (files.probe, files.load_rgb8, photo.load_picture):
        with pytest.raises(files.ImageError, match="corrupt or truncated"):
            load(data)


def test_corrupt_example_raises_invalid_argument_not_unicode_error():
    """Found by fuzzing: TF quotes the bad bytes in its message and fails to decode them."""
    import tensorflow as tf

    data = (REGRESSIONS / "tfrecord_example" / "non-utf8-error-message.bin").read_bytes()
    with pytest.raises(tf.errors.InvalidArgumentError):
        parse_features(tf.constant(data))


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "[]",
        '{"format_version": 1}',
        '{"format_version": 1, "counts": {}, "split_fractions": [1, 0, 0], "shards": [1], '
        '"skipped": []}',
        '{"format_version": 1, "counts": {"train": "x"}, "split_fractions": [1, 0, 0], '
        '"shards": [], "skipped": []}',
        "\xff",
    ],
)
def test_damaged_manifest_is_a_value_error_naming_the_file(text, tmp_path):
    """Found by fuzzing: AttributeError/KeyError/TypeError from read_manifest and its users."""
    (tmp_path / MANIFEST).write_text(text, encoding="latin-1")
    with pytest.raises(ValueError, match="manifest.json"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    "text",
    ["1", "[]", '{"format_version": 1}', '{"format_version": 1, "shards": [{"files": 1}]}'],
)
def test_damaged_plan_is_a_value_error_naming_the_file(text, tmp_path):
    """Found by fuzzing: the stored plan of an unfinished run raised AttributeError/KeyError;
    make-tfrecords now refuses it as a usage error that names the file."""
    (tmp_path / PLAN).write_text(text)
    with pytest.raises(ValueError, match=r"\.plan\.json"):
        load_plan(tmp_path)


def test_picture_wider_than_webp_allows_is_refused_before_denoising():
    """Found by fuzzing: a 10 x 63220 picture written as WebP -> ValueError from libwebp
    (16383 pixels a side at most); now an ImageError from check_writable, which predict
    calls before denoising."""
    data = (REGRESSIONS / "metadata_roundtrip" / "wider-than-webp-allows.bin").read_bytes()
    picture = photo.load_picture(data)
    with pytest.raises(files.ImageError, match="too large for WebP"):
        photo.check_writable(picture, "webp")
    photo.check_writable(picture, "png")


def test_picture_taller_than_jpeg_allows_is_refused_before_denoising():
    """Found by fuzzing: a 10 x 65531 TIFF written as JPEG -> OSError("broken data stream")
    from libjpeg (65500 pixels a side at most); now an ImageError from check_writable."""
    data = (REGRESSIONS / "metadata_roundtrip" / "taller-than-jpeg-allows.tif").read_bytes()
    picture = photo.load_picture(data)
    with pytest.raises(files.ImageError, match="too large for JPEG"):
        photo.check_writable(picture, "jpeg")
    photo.check_writable(picture, "png")
    photo.check_writable(picture, "tiff")


def test_a_resolution_no_output_can_hold_is_dropped():
    """Found by fuzzing: a TIFF saying 1 x 4013994048 DPI -> OverflowError from PIL's PNG
    writer (pHYs holds 32 bits per metre); a DPI that is not in (0, 65535] is now dropped."""
    data = (REGRESSIONS / "metadata_roundtrip" / "tiff-dpi-beyond-png-phys.tif").read_bytes()
    assert photo.load_picture(data).metadata.dpi is None


def test_sparse_rle_bitmap_is_refused_from_its_header_and_real_rle_bitmaps_still_load(tmp_path):
    """Found by fuzzing (a "hang"): 606 bytes of RLE BMP declaring 589968 x 12 pixels kept
    PIL's Python RLE decoder busy for seconds. Refused before decoding; a genuine RLE bitmap
    (runs of real pixels) still loads."""
    data = (REGRESSIONS / "image" / "sparse-rle-bmp-589968x12.bmp").read_bytes()
    with pytest.raises(files.ImageError, match="RLE bitmap declares 589968x12"):
        files.probe(data)
    # a real 8-bit RLE bitmap: 64 x 32, each row four runs of 16 pixels of one palette index
    width, height = 64, 32
    rows = b"".join(bytes([16, 1, 16, 2, 16, 3, 16, 4, 0, 0]) for _ in range(height)) + b"\0\1"
    palette = b"".join(bytes([i * 60 % 256, (255 - i * 60) % 256, 128, 0]) for i in range(256))
    header_size, info_size = 14, 40
    offset = header_size + info_size + len(palette)
    info = struct.pack(
        "<IiiHHIIiiII", info_size, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0
    )
    header = b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset)
    bitmap = header + info + palette + rows
    assert files.probe(bitmap).width == width
    pixels = files.load_rgb8(bitmap)
    assert pixels.shape == (height, width, 3) and len(np.unique(pixels.reshape(-1, 3), axis=0)) == 4
