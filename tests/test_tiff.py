"""TIFF in and out (8/16-bit, channels, pages, ICC, DPI, broken files) and --strength."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tifffile
from click.testing import CliRunner
from conftest import photo_like
from faults import tiff_bomb
from PIL import Image, ImageCms

from tfdenoise import checkpoints, cli, evaluate, inference
from tfdenoise.data import pipeline
from tfdenoise.io import files, metadata, photo, tiff
from tfdenoise.io.metadata import Metadata
from tfdenoise.io.records.convert import convert_folder
from tfdenoise.io.records.schema import parse_features
from tfdenoise.predict import folder

RGB = photo_like(40, 56, seed=4)
RGB16 = RGB.astype(np.uint16) * 256 + np.arange(56, dtype=np.uint16)[:, None]  # low byte too
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def write16(path, samples, **kwargs):
    photometric = "rgb" if samples.ndim == 3 and samples.shape[2] >= 3 else "minisblack"
    if samples.ndim == 3 and samples.shape[2] in (2, 4):
        kwargs.setdefault("extrasamples", ("unassalpha",))
    if kwargs.get("planarconfig") == "separate":  # one plane per sample: S x H x W
        samples = np.moveaxis(samples, -1, 0)
    tifffile.imwrite(path, samples, photometric=photometric, **kwargs)
    return path


# --- reading every kind --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, options",
    [
        ("rgb", {"compression": "lzw"}),
        ("rgb", {"compression": "zlib", "tile": (16, 16)}),
        ("rgb", {"compression": "packbits", "planarconfig": "separate"}),
        ("rgba", {"compression": "lzw"}),
        ("gray", {"compression": "zlib", "rowsperstrip": 7}),
    ],
)
def test_16_bit_tiffs_keep_every_sample_through_a_round_trip(tmp_path, kind, options):
    alpha = (np.arange(40 * 56, dtype=np.uint16).reshape(40, 56) * 29) % 65535
    samples = {
        "rgb": RGB16,
        "rgba": np.dstack([RGB16, alpha]),
        "gray": RGB16[..., 1],
    }[kind]
    source = write16(tmp_path / "scan.tif", samples, **options)
    picture = photo.load_picture(source)
    assert picture.bits == 16 and picture.format == "TIFF" and picture.rgb.dtype == np.uint16
    assert picture.grayscale == kind.startswith("gray")
    assert (picture.alpha is not None) == (kind in ("rgba", "gray_alpha"))
    colour = samples if samples.ndim == 2 else samples[..., : 1 if picture.grayscale else 3]
    np.testing.assert_array_equal(picture.rgb.reshape(colour.shape), colour)

    photo.save_picture(photo.load_picture(source), tmp_path / "out.tif", "tiff", 16)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), samples)


@pytest.mark.parametrize(
    "mode, compression",
    [
        ("RGB", "tiff_lzw"),
        ("RGB", "jpeg"),
        ("L", "tiff_deflate"),
        ("RGBA", "packbits"),
        ("CMYK", "tiff_lzw"),
        ("P", "packbits"),
    ],
)
def test_8_bit_tiffs_of_every_mode_decode_like_pil(tmp_path, mode, compression):
    path = tmp_path / "scan.tiff"
    Image.fromarray(RGB).convert(mode).save(path, compression=compression)
    picture = photo.load_picture(path)
    assert picture.bits == 8 and picture.rgb.dtype == np.uint8
    assert picture.grayscale == (mode == "L")
    assert (picture.alpha is not None) == (mode == "RGBA")
    with Image.open(path) as image:
        np.testing.assert_array_equal(picture.rgb, files.to_rgb8(image))
    np.testing.assert_array_equal(files.load_rgb8(path), picture.rgb)
    assert files.probe(path).decoder == files.Decoder.PIL
    photo.save_picture(picture, tmp_path / "out.tif", "tiff", 8)
    again = photo.load_picture(tmp_path / "out.tif")
    np.testing.assert_array_equal(again.rgb, picture.rgb)  # lossless
    assert again.grayscale == picture.grayscale


def test_icc_dpi_xmp_and_descriptive_tags_are_kept(tmp_path):
    source = write16(
        tmp_path / "scan.tif",
        RGB16,
        compression="zlib",
        iccprofile=SRGB,
        resolution=(600, 600),
        resolutionunit="INCH",
        extratags=[(271, "s", 0, "ScanCo", True), (700, "B", 9, b"<x:xmp/>\n", True)],
    )
    picture = photo.load_picture(source)
    assert picture.metadata.icc_profile == SRGB and picture.metadata.dpi == (600.0, 600.0)
    for output_format, name in (("tiff", "out.tif"), ("png", "out.png")):
        photo.save_picture(picture, tmp_path / name, output_format, 16)
        again = photo.load_picture(tmp_path / name)
        assert again.metadata.icc_profile == SRGB, output_format
        assert again.metadata.dpi == pytest.approx((600, 600), abs=0.01)  # PNG: per metre
        assert again.metadata.xmp == b"<x:xmp/>\n", output_format
        assert again.bits == 16
    with Image.open(tmp_path / "out.tif") as image:
        assert image.tag_v2[271] == "ScanCo"  # make, from the source's directory
    stripped = photo.output_metadata(picture, "tiff", strip=True)
    assert stripped == Metadata(dpi=(600.0, 600.0))


def test_jpeg_exif_make_reaches_a_tiff_output(tmp_path):
    image = Image.fromarray(RGB)
    exif = image.getexif()
    exif[271] = "CameraCo"
    image.save(tmp_path / "photo.jpg", exif=exif.tobytes(), dpi=(300, 300), quality=95)
    picture = photo.load_picture(tmp_path / "photo.jpg")
    photo.save_picture(picture, tmp_path / "photo.tif", "tiff", 8)
    with Image.open(tmp_path / "photo.tif") as written:
        assert written.tag_v2[271] == "CameraCo"
        assert written.info["dpi"] == (300.0, 300.0)


def test_pages_load_one_at_a_time_and_write_back_as_pages(tmp_path):
    path = tmp_path / "book.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(RGB16, photometric="rgb", compression="zlib")
        writer.write(RGB[:20], photometric="rgb")
        writer.write(RGB16[..., 0], photometric="minisblack")
    pictures = [photo.load_picture(path, page=page) for page in range(3)]
    assert [p.pages for p in pictures] == [3, 3, 3]
    assert [(p.bits, p.grayscale, p.rgb.shape) for p in pictures] == [
        (16, False, (40, 56, 3)),
        (8, False, (20, 56, 3)),
        (16, True, (40, 56, 1)),
    ]
    with pytest.raises(files.ImageError, match="no page 4"):
        photo.load_picture(path, page=3)
    count = photo.save_tiff_pages(tmp_path / "out.tif", [(p, p.bits) for p in pictures])
    assert count == 3
    with tifffile.TiffFile(tmp_path / "out.tif") as written:
        np.testing.assert_array_equal(written.pages[0].asarray(), RGB16)
        np.testing.assert_array_equal(written.pages[1].asarray(), RGB[:20])
        np.testing.assert_array_equal(written.pages[2].asarray(), RGB16[..., 0])


def test_a_tiff_no_reader_decodes_is_skipped_with_its_kind(tmp_path):
    path = tmp_path / "signed.tif"
    tifffile.imwrite(path, RGB16.astype(np.int16), photometric="rgb")  # signed samples
    with pytest.raises(files.ImageError, match="unsupported TIFF kind: 16-bit, 3 samples"):
        files.probe(path)


UNIT = np.random.default_rng(5).random((40, 56, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "name, samples, alpha",
    [
        ("float32 RGB (an HDR merge)", UNIT, False),
        ("float16 gray", UNIT[..., 0].astype(np.float16), False),
        ("32-bit RGB", np.round(UNIT.astype(np.float64) * 4294967295).astype(np.uint32), False),
        ("16-bit gray + alpha", np.dstack([RGB16[..., 1], RGB16[..., 2]]), True),
    ],
)
def test_tiffs_pillow_cannot_open_are_read_with_tifffile(tmp_path, name, samples, alpha):
    path = tmp_path / "scan.tif"
    gray = samples.ndim == 2 or samples.shape[2] == 2
    extra = {"extrasamples": ("unassalpha",)} if alpha else {}
    tifffile.imwrite(path, samples, photometric="minisblack" if gray else "rgb", **extra)
    assert files.probe(path).mode == files.TIFFFILE_MODE
    unit = samples.astype(np.float64)
    unit = unit / np.iinfo(samples.dtype).max if samples.dtype.kind == "u" else unit
    colour = unit[..., :1] if alpha else unit.reshape(40, 56, -1)
    picture = photo.load_picture(path)
    assert picture.bits == 16 and picture.grayscale == gray and (picture.alpha is not None) == alpha
    # float32 arithmetic: within one level of the exact value
    np.testing.assert_allclose(picture.rgb, np.round(colour * 65535), atol=1)
    rgb8 = files.load_rgb8(path)
    want8 = np.round(np.repeat(colour, 3 // colour.shape[2], axis=2) * 255)
    np.testing.assert_allclose(rgb8, want8, atol=1)
    encoded = pipeline.encoded_files(files.scan(tmp_path, fractions=(1, 0, 0)).files, False, True)
    spec = pipeline.PipelineSpec(batch_size=1, eval_size=32)
    crop = next(iter(pipeline.eval_pipeline(encoded, spec)))["clean"].numpy()[0]
    np.testing.assert_array_equal(crop, rgb8[4:36, 12:44])  # the same reader inside tf.data
    photo.save_picture(picture, tmp_path / "out.tif", "tiff", 16)
    np.testing.assert_array_equal(photo.load_picture(tmp_path / "out.tif").rgb, picture.rgb)


RAMP = np.tile(np.linspace(0.1, 0.9, 56), (40, 1))  # a gray ramp in [0, 1]


@pytest.mark.parametrize(
    "name, samples",
    [
        ("float32 with highlights above 1", np.where(RAMP > 0.85, 1.05, RAMP).astype(np.float32)),
        ("float32 in [0, 1]", RAMP.astype(np.float32)),
        ("32-bit unsigned", np.round(RAMP * 4294967295).astype(np.uint32)),
    ],
)
def test_32_bit_gray_tiffs_pillow_opens_are_read_with_tifffile(tmp_path, name, samples):
    # Pillow opens these (modes F and I) without knowing their range: one value above 1 made
    # the whole float image be divided by 255 (black), unsigned samples above 2**31 wrapped
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "scan.tif"
    tifffile.imwrite(
        path, samples, photometric="minisblack", resolution=(300, 300), resolutionunit="INCH"
    )
    assert Image.open(path).mode in ("F", "I")  # the files this is about
    unit = np.clip(RAMP if samples.dtype.kind == "u" else samples.astype(np.float64), 0, 1)
    files.probe(path)
    picture = photo.load_picture(path)
    assert picture.bits == 16 and picture.grayscale and picture.rgb.shape == (40, 56, 1)
    np.testing.assert_allclose(picture.rgb[..., 0], np.round(unit * 65535), atol=1)
    assert picture.metadata.dpi == (300.0, 300.0)  # Pillow still reads the tags
    photo.copy_clean(path, tmp_path / "clean.jpg", picture, "jpeg", False)  # --skip-clean
    copied = np.asarray(Image.open(tmp_path / "clean.jpg"), dtype=np.float64)
    assert np.abs(copied - unit * 255).mean() < 1.5
    rgb8 = files.load_rgb8(path)  # fit, make-tfrecords, evaluate
    np.testing.assert_allclose(rgb8, np.round(np.repeat(unit[..., None], 3, axis=2) * 255), atol=1)
    scanned = files.scan(tmp_path / "in", fractions=(1, 0, 0)).files
    encoded = pipeline.encoded_files(scanned, False, True)
    spec = pipeline.PipelineSpec(batch_size=1, eval_size=32)
    crop = next(iter(pipeline.eval_pipeline(encoded, spec)))["clean"].numpy()[0]
    np.testing.assert_array_equal(crop, rgb8[4:36, 12:44])


@pytest.mark.parametrize(
    "name, stored",
    [
        ("16-bit", np.round((1 - RAMP) * 65535).astype(np.uint16)),
        ("16-bit + alpha", np.dstack([np.round((1 - RAMP) * 65535), RAMP * 0 + 65535])),
        ("float32", (1 - RAMP).astype(np.float32)),
    ],
)
def test_white_is_zero_tiffs_deeper_than_8_bits_are_not_negatives(tmp_path, name, stored):
    # Pillow inverts 8-bit white-is-zero only: a 16-bit scan came out as its negative
    path = tmp_path / "scan.tif"
    extra = {"extrasamples": ("unassalpha",)} if stored.ndim == 3 else {}
    stored = stored.astype(np.uint16) if stored.ndim == 3 else stored
    tifffile.imwrite(path, stored, photometric="miniswhite", **extra)
    files.probe(path)
    picture = photo.load_picture(path)  # the gray as displayed: RAMP, 0 black
    assert picture.bits == 16 and picture.grayscale
    np.testing.assert_allclose(picture.rgb[..., 0], np.round(RAMP * 65535), atol=1)
    if stored.ndim == 3:
        assert picture.alpha is not None and picture.alpha.min() == 65535  # alpha not inverted
    rgb8 = files.load_rgb8(path)  # fit, make-tfrecords, evaluate
    np.testing.assert_allclose(rgb8, np.round(np.repeat(RAMP[..., None], 3, axis=2) * 255), atol=1)
    photo.save_picture(picture, tmp_path / "out.tif", "tiff", 16)  # ordinary black-is-zero
    with tifffile.TiffFile(tmp_path / "out.tif") as written:
        assert written.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
        np.testing.assert_array_equal(
            written.asarray().reshape(40, 56, -1)[..., 0], picture.rgb[..., 0]
        )


@pytest.mark.parametrize(
    "name, samples, photometric",
    [
        ("float32 RGB, which Pillow cannot open", RGB / 255, "rgb"),
        ("float32 gray, which Pillow misreads", RGB[..., 1] / 255, "minisblack"),
        ("16-bit gray + alpha", RGB[..., 1:].astype(np.uint16) * 257, "minisblack"),
    ],
)
@pytest.mark.parametrize("orientation", [6, 7])
def test_tiffs_read_with_tifffile_are_turned_by_their_orientation(
    tmp_path, name, samples, photometric, orientation
):
    tag = [(metadata.ORIENTATION, "H", 1, orientation, True)]
    exif = Image.Exif()
    exif[metadata.ORIENTATION] = orientation
    Image.fromarray(RGB).save(tmp_path / "pillow.tif", exif=exif)
    upright = files.load_rgb8(tmp_path / "pillow.tif")  # what Pillow's TIFF path shows
    assert upright.shape == (56, 40, 3)
    path = tmp_path / "scan.tif"
    dtype = np.uint16 if samples.dtype == np.uint16 else np.float32
    extra = {"extrasamples": ("unassalpha",)} if samples.ndim == 3 and samples.shape[2] == 2 else {}
    tifffile.imwrite(path, samples.astype(dtype), photometric=photometric, extratags=tag, **extra)
    gray = photometric == "minisblack"
    want = upright[..., 1:2] if gray else upright
    picture = photo.load_picture(path)  # predict
    np.testing.assert_array_equal(np.round(picture.rgb / 257), want)
    if extra:
        np.testing.assert_array_equal(picture.alpha // 257, upright[..., 2])
    np.testing.assert_array_equal(files.load_rgb8(path), np.repeat(want, 3 // want.shape[2], 2))
    stored = files.load_rgb8(path, apply_orientation=False)  # records keep the file's layout
    np.testing.assert_array_equal(stored[..., 1], RGB[..., 1])


def test_a_float_tiff_clips_hdr_highlights_and_checks_every_page(tmp_path):
    path = tmp_path / "hdr.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(np.full((8, 8, 3), 4.0, np.float32), photometric="rgb")  # above white
        writer.write(np.full((300, 400, 3), 0.5, np.float32), photometric="rgb")
    assert photo.load_picture(path).rgb.min() == 65535 and photo.load_picture(path).pages == 2
    assert photo.load_picture(path, page=1).rgb.shape == (300, 400, 3)
    with pytest.raises(files.ImageError, match="page 2: too large"):
        photo.load_picture(path, max_pixels=1000, page=1)


# --- broken TIFFs: one-line reasons, limits from the header ---------------------------------


def test_a_huge_later_page_is_refused_from_its_header(tmp_path):
    bomb = tiff_bomb(tmp_path / "bomb.tif")
    with pytest.raises(files.ImageError, match="too large"):
        files.probe(bomb)
    path = tmp_path / "two.tif"
    small = Image.fromarray(RGB)
    small.save(path, save_all=True, append_images=[small])
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tiff:  # page 2's width and height entries
        offsets = {tag: tiff.pages[1].tags[tag].offset for tag in (256, 257)}
    for tag, offset in offsets.items():  # declared 100000 x 100000
        struct.pack_into("<HHII", data, offset, tag, 4, 1, 100_000)
    path.write_bytes(bytes(data))
    with pytest.raises(files.ImageError, match="page 2: too large"):
        files.probe(path)


# --- every command lists TIFFs ----------------------------------------------------------------


def test_every_command_lists_tiffs(tmp_path):
    root = tmp_path / "scans"
    root.mkdir()
    for index, name in enumerate(["a.tif", "b.TIF", "c.tiff", "d.TIFF"] * 3):
        path = root / f"{index:02d}{name}"
        Image.fromarray(photo_like(36, 44, seed=index)).save(path, compression="tiff_lzw")
    write16(root / "sixteen.tif", RGB16, compression="lzw")
    listed = files.list_image_files(root)
    assert len(listed) == 13
    scan = files.scan(root)  # fit's folder source and make-tfrecords' plan
    assert len(scan.files) == 13 and not scan.skipped
    assert len(evaluate.evaluation_files(root, use_all=True)[0]) == 13
    data = (root / "sixteen.tif").read_bytes()
    decoded = pipeline.decode_full(tf.constant(data), tf.constant(int(files.Decoder.PIL)))
    np.testing.assert_array_equal(decoded.numpy(), files.load_rgb8(root / "sixteen.tif"))

    report = convert_folder(root, tmp_path / "records", workers=1)
    assert report.manifest["skipped"] == []
    stored = 0
    for shard in sorted((tmp_path / "records").glob("*.tfrecord")):
        for serialized in tf.data.TFRecordDataset(str(shard)):
            features = parse_features(serialized)
            assert features["format"].numpy() == b"png"  # converted losslessly, 8-bit RGB
            stored += 1
    assert stored == 13


# --- predict: formats, pages, strength ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    return checkpoints.load_model(tiny_model_path)


def test_predict_keeps_tiff_16_bit_and_pages(tmp_path, tiny_model):
    source = tmp_path / "in"
    source.mkdir()
    write16(
        source / "scan.tif",
        RGB16,
        compression="lzw",
        iccprofile=SRGB,
        resolution=(1200, 1200),
        resolutionunit="INCH",
    )
    with tifffile.TiffWriter(source / "book.tiff") as writer:
        writer.write(RGB16, photometric="rgb")
        writer.write(RGB, photometric="rgb")
    options = folder.PredictOptions(output_format="same", bit_depth="same")
    report = folder.predict_folder(tiny_model, source, tmp_path / "same", options)
    assert not report.failed
    scan = photo.load_picture(tmp_path / "same" / "scan.tif")
    assert scan.bits == 16 and scan.metadata.icc_profile == SRGB
    assert scan.metadata.dpi == (1200.0, 1200.0)
    with tifffile.TiffFile(tmp_path / "same" / "book.tiff") as book:
        assert [page.dtype for page in book.pages] == [np.uint16, np.uint8]

    report = folder.predict_folder(
        tiny_model, source, tmp_path / "png", folder.PredictOptions(bit_depth="same")
    )
    assert not report.failed
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["book.p001.png", "book.p002.png", "scan.png"]
    assert photo.load_picture(tmp_path / "png" / "book.p001.png").bits == 16
    again = folder.predict_folder(
        tiny_model, source, tmp_path / "png", folder.PredictOptions(bit_depth="same")
    )
    assert [r.status for r in again.results] == ["kept", "kept"]  # page files exist


def test_blend_in_integer_samples():
    source = np.array([[[0, 100, 255]]], np.uint8)
    model = np.array([[[255, 50, 0]]], np.uint8)
    assert inference.blend(source, model.copy(), 1.0).tolist() == model.tolist()
    assert inference.blend(source, model.copy(), 0.0).tolist() == source.tolist()
    assert inference.blend(source, model.copy(), 0.5).tolist() == [[[128, 75, 128]]]
    gray16 = np.array([[[1000]]], np.uint16)
    out16 = np.array([[[3000, 3000, 3000]]], np.uint16)
    assert inference.blend(gray16, out16.copy(), 0.0).tolist() == [[[1000] * 3]]
    eight_to_16 = inference.blend(source, model.astype(np.uint16) * 257, 0.0)
    assert eight_to_16.tolist() == (source.astype(np.uint16) * 257).tolist()
    with pytest.raises(ValueError, match="strength"):
        inference.blend(source, model.copy(), 1.5)


def test_strength_0_returns_the_input_and_1_the_model_output(tmp_path, tiny_model):
    source = tmp_path / "in"
    source.mkdir()
    write16(source / "scan.tif", RGB16, compression="zlib")
    Image.fromarray(RGB).save(source / "photo.png")
    outputs = {}
    for strength in (0.0, 0.5, 1.0):
        out = tmp_path / f"s{strength}"
        options = folder.PredictOptions(output_format="same", bit_depth="same", strength=strength)
        assert not folder.predict_folder(tiny_model, source, out, options).failed
        outputs[strength] = (
            tifffile.imread(out / "scan.tif"),
            np.asarray(Image.open(out / "photo.png")),
        )
    np.testing.assert_array_equal(outputs[0.0][0], RGB16)  # exactly the input's samples
    np.testing.assert_array_equal(outputs[0.0][1], RGB)
    expected16 = inference.denoise_image(tiny_model, RGB16, out_dtype=np.uint16)
    np.testing.assert_array_equal(outputs[1.0][0], expected16)
    np.testing.assert_array_equal(outputs[1.0][1], inference.denoise_rgb8(tiny_model, RGB))
    for index in (0, 1):
        low = np.minimum(outputs[0.0][index], outputs[1.0][index]).astype(np.int64)
        high = np.maximum(outputs[0.0][index], outputs[1.0][index]).astype(np.int64)
        half = outputs[0.5][index].astype(np.int64)
        assert np.all(low <= half) and np.all(half <= high)
        assert np.abs(half - (low + high) / 2).max() <= 1


def test_cli_strength_and_tiff_format(tmp_path, tiny_model_path):
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(RGB).save(source / "photo.jpg", quality=95)
    runner = CliRunner()
    result = runner.invoke(
        cli.predict_command,
        [
            str(source),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(tiny_model_path),
            "--format",
            "tiff",
            "--bit-depth",
            "16",
            "--strength",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert tifffile.imread(tmp_path / "out" / "photo.tif").dtype == np.uint16
    result = runner.invoke(cli.predict_command, [str(source), "--strength", "1.5"])
    assert result.exit_code == 2


def test_non_ascii_tag_text_keeps_its_bytes(tmp_path):
    text = "© Jürgen".encode()  # UTF-8 in an "ASCII" tag, as many writers do
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, RGB, photometric="rgb", extratags=[(33432, "s", 0, text, True)])
    photo.save_picture(photo.load_picture(path), tmp_path / "out.tif", "tiff", 8)
    with open(tmp_path / "out.tif", "rb") as stream:
        assert text in stream.read()


# --- fuzz findings in the TIFF writer (reproducers in tests/fuzz_regressions/) --------------

FUZZ_REGRESSIONS = Path(__file__).resolve().parent / "fuzz_regressions" / "metadata_roundtrip"


def test_non_ascii_exif_text_of_every_descriptive_tag_writes_byte_for_byte(tmp_path):
    """Found by fuzzing: `ValueError: TIFF strings must be 7-bit ASCII` from tifffile when a
    JPEG's EXIF make/model/software/date/artist/copyright/description held non-ASCII bytes
    (Latin-1, UTF-8, or none). Each tag's bytes now reach the TIFF output unchanged."""
    data = (FUZZ_REGRESSIONS / "tiff-output-non-ascii-exif-text.jpg").read_bytes()
    with Image.open(io.BytesIO(data)) as source:  # PIL reads "ASCII" tags as Latin-1
        expected = {tag: source.getexif()[tag].encode("latin-1") for tag in tiff.DESCRIPTIVE_TAGS}
    assert all(max(raw) > 127 for raw in expected.values())
    picture = photo.load_picture(data)
    for bits in (8, 16):
        out = tmp_path / f"out{bits}.tif"
        photo.save_picture(picture, out, "tiff", bits)
        with Image.open(out) as written:
            kept = {tag: written.tag_v2[tag].encode("latin-1") for tag in tiff.DESCRIPTIVE_TAGS}
        assert kept == expected, bits
        again = photo.load_picture(out)  # and on from the TIFF into any other output
        assert dict(tiff.descriptive_tags(again.metadata.exif)) == {
            tag: raw.decode("latin-1") for tag, raw in expected.items()
        }


def _exif_with(tags: dict[int, object]) -> bytes:
    exif = Image.Exif()
    exif.update(tags)
    return exif.tobytes()


EXIF_REGRESSIONS = FUZZ_REGRESSIONS.parent / "exif_patch"


@pytest.mark.parametrize(
    "exif",
    [
        b"Exif\x00\x00II*\x00",  # header cut short
        b"Exif\x00\x00\x89PNG\r\n\x1a\n",  # not TIFF-structured at all
        _exif_with({0x010F: "maker"})[:-9],  # the tag's entry cut off
        *(path.read_bytes() for path in sorted(EXIF_REGRESSIONS.iterdir())),
    ],
)
def test_descriptive_tags_of_damaged_exif_are_none(exif):
    """The TIFF writer copies make, model, date... from the EXIF; damaged EXIF (fuzzing
    found such files) gives no tags rather than an error, so the picture is still written."""
    assert tiff.descriptive_tags(exif) == []


def test_descriptive_tags_keep_only_text_tags():
    exif = _exif_with({0x010F: "maker", 0x0110: "", 0x0112: 6})  # make, empty model
    assert tiff.descriptive_tags(exif) == [(0x010F, "maker")]
    assert tiff.descriptive_tags(exif.removeprefix(b"Exif\x00\x00")) == [(0x010F, "maker")]


UNTERMINATED_XMP = b'<x:xmpmeta><rdf:Description tiff:Orientation="6\xde\xc7></x:xmpmeta>'


@pytest.mark.parametrize(
    "xmp",
    [
        b'<rdf:Description tiff:Orientation="6"/>',
        b"<tiff:Orientation>8</tiff:Orientation>",
        UNTERMINATED_XMP,  # the fuzz finding: PIL still reads 6 from it
        b"<rdf:Description tiff:Orientation='6'/>",
        b'<rdf:Description tiff:Orientation = "5"/>',
    ],
)
def test_upright_xmp_resets_every_orientation_a_reader_applies(xmp):
    image = Image.new("RGB", (3, 2))
    image.info["xmp"] = xmp
    if b'Orientation="' in xmp or b"Orientation>" in xmp:  # PIL reads these (else: others)
        assert image.getexif()[metadata.ORIENTATION] != 1
    reset = metadata.upright_xmp(image)
    again = Image.new("RGB", (3, 2))
    again.info["xmp"] = reset
    assert again.getexif().get(metadata.ORIENTATION, 1) == 1
    digit = next(i for i in range(xmp.index(b"Orientation"), len(xmp)) if xmp[i : i + 1].isdigit())
    assert reset == xmp[:digit] + b"1" + xmp[digit + 1 :]  # nothing else changed


def test_tiff_output_of_a_rotated_jpeg_reads_back_upright(tmp_path):
    """Found by fuzzing: a JPEG whose only orientation is an XMP tiff:Orientation="6 cut short
    (no closing quote; EXIF has a make and an odd extra tag) was loaded rotated, as PIL reads
    it, but the XMP kept its 6 and the TIFF output had no Orientation tag: read back, PIL
    applied the 6 again, width and height swapped. Now the XMP says 1 and every TIFF output
    page carries Orientation 1."""
    data = (
        FUZZ_REGRESSIONS / "xmp-orientation-cut-short-tiff-output-rotated-twice.jpg"
    ).read_bytes()
    with Image.open(io.BytesIO(data)) as source:
        assert source.getexif()[metadata.ORIENTATION] == 6 and source.size == (10, 12)
    picture = photo.load_picture(data)
    assert picture.rgb.shape[:2] == (10, 12)  # upright: the stored 10 x 12 turned by 90
    assert b'tiff:Orientation="1' in picture.metadata.xmp
    for strip in (False, True):
        out = tmp_path / f"out-{strip}.tif"
        photo.save_picture(picture, out, "tiff", 8, strip_metadata=strip)
        with Image.open(out) as written:
            assert written.tag_v2[tiff.ORIENTATION_TAG] == 1
            assert written.getexif()[metadata.ORIENTATION] == 1
        again = photo.load_picture(out)
        assert again.rgb.shape[:2] == picture.rgb.shape[:2], strip
        np.testing.assert_array_equal(again.rgb, picture.rgb)  # lossless and not turned again


@pytest.mark.parametrize("kind", ["xmp", "long"])
def test_orientation_pil_rewrites_still_turns_the_pixels(kind, tmp_path):
    """The same finding's cause, in every output format: an orientation that is not a SHORT in
    EXIF's IFD0 (only XMP's, or a LONG) took the rewrite fallback, which set 1 on the image's
    own Exif before exif_transpose read it: the pixels stayed unturned."""
    if kind == "xmp":  # EXIF with a make only, the orientation in XMP
        exif = b"MM\x00*\x00\x00\x00\x08\x00\x01" + struct.pack(">HHI4s", 271, 2, 4, b"Cam\0")
        xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    else:  # orientation 6 as a LONG
        exif = b"MM\x00*\x00\x00\x00\x08\x00\x01" + struct.pack(">HHII", 274, 4, 1, 6)
        xmp = b"<x:xmpmeta/>"
    stream = io.BytesIO()
    Image.fromarray(RGB).save(stream, "JPEG", exif=b"Exif\0\0" + exif + b"\0" * 4, xmp=xmp)
    picture = photo.load_picture(stream.getvalue())
    assert picture.rgb.shape[:2] == RGB.shape[1::-1]  # 40 x 56 stored, turned by 90 degrees
    for output_format in ("tiff", "png", "jpeg"):
        out = tmp_path / f"out{photo.OUTPUT_SUFFIXES[output_format]}"
        photo.save_picture(picture, out, output_format)
        assert photo.load_picture(out).rgb.shape == picture.rgb.shape, output_format


@pytest.mark.parametrize("extra, alpha", [("unspecified", False), ("unassalpha", True)])
def test_an_infrared_channel_is_not_alpha(tmp_path, extra, alpha):
    """Scanners' 64-bit RGBI files: 16-bit RGB plus an unspecified infrared sample."""
    infrared = np.full((40, 56), 1000, np.uint16)
    source = write16(tmp_path / "scan.tif", np.dstack([RGB16, infrared]), extrasamples=(extra,))
    picture = photo.load_picture(source)
    np.testing.assert_array_equal(picture.rgb, RGB16)
    assert (picture.alpha is not None) == alpha
    assert picture.mode == ("RGBA;16" if alpha else "RGB;16")
    photo.save_picture(picture, tmp_path / "out.png", "png", 16)
    assert Image.open(tmp_path / "out.png").mode == ("RGBA" if alpha else "RGB")


def test_a_tiff_without_resolution_tags_gets_no_invented_dpi(tmp_path):
    """PIL reports 1 DPI for a TIFF that states none (Pillow's and OpenCV's write none); carried
    over, every output would say the picture is one inch per pixel."""
    Image.fromarray(RGB).save(tmp_path / "plain.tif")
    picture = photo.load_picture(tmp_path / "plain.tif")
    assert picture.metadata.dpi is None
    for output_format, name in (("tiff", "out.tif"), ("png", "out.png"), ("jpeg", "out.jpg")):
        photo.save_picture(picture, tmp_path / name, output_format, 8)
        with Image.open(tmp_path / name) as written:
            assert written.info.get("dpi", (0, 0))[0] != 1, output_format
            assert "dpi" not in written.info or output_format == "tiff", output_format
    Image.fromarray(RGB).save(tmp_path / "stated.tif", dpi=(72, 72))
    assert photo.load_picture(tmp_path / "stated.tif").metadata.dpi == (72.0, 72.0)
