"""Formats beyond JPEG/PNG/TIFF/WebP that real folders hold: JPEG under Windows' suffixes,
Netpbm from scanners (16-bit at full precision), JPEG 2000, AVIF and HEIC -- listed, decoded
eagerly and inside tf.data, and denoised by predict."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import netpbm_bytes, photo_like, write_format_zoo
from PIL import Image

from tfdenoise import cli
from tfdenoise.data import pipeline
from tfdenoise.io import files as image_files
from tfdenoise.io import heif, netpbm, photo
from tfdenoise.io.records.convert import convert_folder

ZOO_KINDS = ("jfif", "jpe", "ppm", "pgm", "jp2", "ppm16", "pgm12", "avif", "heic")
HEIC_HEAD = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"


@pytest.fixture
def zoo(tmp_path):
    return write_format_zoo(tmp_path / "zoo")


def test_every_format_is_listed(zoo, tmp_path):
    found = image_files.list_image_files(tmp_path / "zoo")
    assert sorted(found) == sorted(zoo.values())


@pytest.mark.parametrize("kind", ZOO_KINDS)
def test_every_format_decodes_to_rgb8(zoo, kind):
    if kind not in zoo:
        pytest.skip(f"this Pillow / pillow-heif cannot write {kind}")
    array = image_files.load_rgb8(zoo[kind])
    assert array.dtype == np.uint8 and array.shape == (48, 64, 3)
    reference = photo_like(48, 64, seed=1).astype(np.float64)
    if kind.startswith("pgm"):
        reference = np.repeat(reference.mean(axis=2, keepdims=True), 3, axis=2)
    tolerance = {"avif": 6, "heic": 6}.get(kind, 3)
    assert np.abs(array - reference).mean() < tolerance  # not darker, not another image


def test_jpeg_under_any_suffix_is_decoded_by_tf(zoo):
    assert image_files.probe(zoo["jfif"]).decoder == image_files.Decoder.JPEG
    assert image_files.probe(zoo["jpe"]).decoder == image_files.Decoder.JPEG
    assert image_files.probe(zoo["ppm"]).decoder == image_files.Decoder.PIL


def test_deep_netpbm_keeps_every_bit(zoo):
    rgb = photo_like(48, 64, seed=1)
    picture = photo.load_picture(zoo["ppm16"])
    assert picture.bits == 16 and not picture.grayscale
    np.testing.assert_array_equal(picture.rgb, rgb.astype(np.uint16) * 257)
    gray12 = photo.load_picture(zoo["pgm12"])  # maxval 4095: rescaled, not 16x too dark
    assert gray12.grayscale and gray12.rgb.shape == (48, 64, 1)
    want = np.round(np.round(rgb.mean(axis=2).astype(np.uint8) * (4095 / 255)) * (65535 / 4095))
    np.testing.assert_array_equal(gray12.rgb[..., 0], want)


def test_netpbm_header_and_truncation():
    samples = np.arange(12, dtype=np.uint16).reshape(2, 2, 3) * 1000
    data = netpbm_bytes(samples, 65535)
    assert netpbm.is_deep(data) and not netpbm.is_deep(data.replace(b"65535", b"255"))
    np.testing.assert_array_equal(netpbm.read_samples16(data), samples)
    with pytest.raises(ValueError, match="truncated"):
        netpbm.read_samples16(data[:-1])
    assert not netpbm.is_deep(b"P3\n2 2\n65535\n")  # plain (text) PPM: left to Pillow


def test_truncated_deep_netpbm_gets_a_reason(tmp_path):
    path = tmp_path / "cut.ppm"
    path.write_bytes(netpbm_bytes(np.zeros((20, 30, 3), np.uint16), 65535)[:-100])
    with pytest.raises(image_files.ImageError, match="corrupt or truncated"):
        image_files.probe(path)


def test_heif_brands():
    assert heif.is_hevc(HEIC_HEAD) and not heif.is_avif(HEIC_HEAD)
    generic_heic = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic"
    generic_avif = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif"
    assert heif.is_hevc(generic_heic) and not heif.is_avif(generic_heic)
    assert heif.is_avif(generic_avif) and not heif.is_hevc(generic_avif)
    assert not heif.is_hevc(b"\x89PNG\r\n\x1a\n" + bytes(20)) and not heif.brands(b"ftyp")


def test_heic_without_pillow_heif_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(heif, "decoder_available", lambda: False)
    path = tmp_path / "phone.heic"
    path.write_bytes(HEIC_HEAD + bytes(200))
    with pytest.raises(image_files.ImageError, match=r"pip install 'tfdenoise\[heif\]'"):
        image_files.probe(path)
    scan = image_files.scan(tmp_path)
    assert [s.reason for s in scan.skipped] == [heif.MISSING_DECODER] and not scan.files


def test_every_format_flows_through_tf_data(zoo, tmp_path):
    scan = image_files.scan(tmp_path / "zoo", fractions=(1, 0, 0))
    assert not scan.skipped and len(scan.files) == len(zoo)
    spec = pipeline.PipelineSpec(batch_size=len(zoo), eval_size=32)
    encoded = pipeline.encoded_files(scan.files, False, True)
    batch = next(iter(pipeline.eval_pipeline(encoded, spec)))["clean"].numpy()
    for index, image_file in enumerate(scan.files):
        eager = image_files.load_rgb8(image_file.path, apply_orientation=False)[8:40, 16:48]
        difference = np.abs(batch[index].astype(int) - eager)
        if image_file.info.decoder == image_files.Decoder.JPEG:  # TF's IDCT and upsampling
            assert difference.mean() < 2.0
        else:  # decoded by the same PIL code inside tf.data
            assert difference.max() == 0, image_file.relpath


def test_predict_writes_every_format(zoo, tmp_path, identity_model_path):
    out = tmp_path / "out"
    args = [str(tmp_path / "zoo"), "-o", str(out), "--model", str(identity_model_path)]
    result = CliRunner().invoke(
        cli.main, ["predict", *args, "--format", "same", "--bit-depth", "same"]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir())
    expected = ["old.JPE", "windows.jfif"]  # JPEG stays JPEG under its own suffix
    expected += [f"{path.stem}.png" for kind, path in zoo.items() if kind not in ("jfif", "jpe")]
    assert written == sorted(expected)
    assert Image.open(out / "windows.jfif").format == "JPEG"
    deep = photo.load_picture(out / "scan16.png")  # identity model: every 16-bit sample kept
    np.testing.assert_array_equal(deep.rgb, photo.load_picture(zoo["ppm16"]).rgb)
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "archive.png")), image_files.load_rgb8(zoo["jp2"])
    )


def test_records_hold_every_format(zoo, tmp_path):
    """make-tfrecords in worker processes: each registers the HEIC decoder on its own."""
    report = convert_folder(
        tmp_path / "zoo", tmp_path / "records", (1, 0, 0), workers=2, executor="process"
    )
    assert report.manifest["skipped"] == [] and report.images_written == len(zoo)
