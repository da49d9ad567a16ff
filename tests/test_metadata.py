"""Issue #8: predict keeps ICC profiles, EXIF and DPI; output formats and 16-bit PNG; the
colour-shift (low-pass CIEDE2000) score of evaluate.

Models are built here: an exact identity (a U-Net whose noise head is zeroed: output = input,
so pixels can be compared exactly) and the tiny random U-Net of test_predict. Images are
generated here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import photo_like  # noqa: E402
from PIL import Image, ImageCms, ImageOps  # noqa: E402

from tfdenoise import cli, metrics  # noqa: E402
from tfdenoise.io import photo, png  # noqa: E402
from tfdenoise.io.metadata import png_chunks  # noqa: E402
from tfdenoise.predict.folder import PredictOptions  # noqa: E402

MAKE, DATE_TIME_ORIGINAL, EXIF_IFD = 0x010F, 0x9003, 0x8769
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def profile_for(space: bytes) -> bytes:
    """Valid ICC bytes whose header claims another data colour space (GRAY, CMYK): enough for
    the files' containers, which do not check the profile's content."""
    return SRGB_PROFILE[:16] + space + SRGB_PROFILE[20:]


GRAY_PROFILE = profile_for(b"GRAY")


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
    b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/" tiff:Orientation="{orientation}" '
    b'dc:rights="Archive \xc2\xa9 2024"/></rdf:RDF></x:xmpmeta>'
)


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[MAKE] = "ScanCo"
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = "2024:05:06 07:08:09"
    return exif


@pytest.fixture
def scanned_jpeg(tmp_path) -> Path:
    """A 30 x 50 JPEG stored sideways (orientation 6) with an ICC profile, EXIF and 300x150 dpi."""
    path = tmp_path / "in" / "scan.jpg"
    path.parent.mkdir()
    Image.fromarray(photo_like(30, 50, 1, noise=8)).save(
        path,
        quality=95,
        icc_profile=SRGB_PROFILE,
        exif=exif_with_orientation(6),
        dpi=(300, 150),
        xmp=XMP.replace(b"{orientation}", b"6"),
    )
    return path


def run_predict(model: Path, source: Path, out: Path, *args: str):
    return CliRunner().invoke(
        cli.main,
        ["predict", str(source), "-o", str(out), "--model", str(model), *args],
        catch_exceptions=False,
    )


# --- metadata -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output_format,suffix", [("png", ".png"), ("jpeg", ".jpg"), ("webp", ".webp")]
)
def test_icc_and_exif_survive_orientation_reset(
    scanned_jpeg, tiny_model_path, tmp_path, output_format, suffix
):
    out = tmp_path / "out"
    result = run_predict(tiny_model_path, scanned_jpeg.parent, out, "--format", output_format)
    assert result.exit_code == 0, result.output
    written = Image.open(out / f"scan{suffix}")
    assert written.format == photo.PIL_FORMATS[output_format]
    assert written.size == (30, 50)  # rotated upright
    assert written.info["icc_profile"] == SRGB_PROFILE
    exif = written.getexif()
    assert exif[0x0112] == 1 and exif[MAKE] == "ScanCo"
    assert exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] == "2024:05:06 07:08:09"
    assert written.info["xmp"] == XMP.replace(b"{orientation}", b"1")
    if output_format != "webp":  # PIL writes no DPI into WebP
        # swapped with the axes; PNG stores whole pixels per metre (0.0254 dpi steps)
        assert np.allclose(written.info["dpi"], (150, 300), atol=0.03)


def test_exif_bytes_change_only_in_orientation(scanned_jpeg):
    """Patched in place: maker notes and offsets stay valid, two bytes differ."""
    source = Image.open(scanned_jpeg).info["exif"]
    kept = photo.load_picture(scanned_jpeg).metadata.exif
    assert len(kept) == len(source)
    differing = [i for i, (a, b) in enumerate(zip(source, kept)) if a != b]
    assert 1 <= len(differing) <= 2
    assert Image.open(scanned_jpeg).getexif()[0x0112] == 6


def test_pixels_are_the_upright_source(scanned_jpeg, identity_model_path, tmp_path):
    out = tmp_path / "out"
    assert run_predict(identity_model_path, scanned_jpeg.parent, out).exit_code == 0
    upright = np.asarray(ImageOps.exif_transpose(Image.open(scanned_jpeg)).convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(out / "scan.png")), upright)


def test_strip_metadata_drops_profile_and_exif(scanned_jpeg, tiny_model_path, tmp_path):
    out = tmp_path / "out"
    result = run_predict(tiny_model_path, scanned_jpeg.parent, out, "--strip-metadata")
    assert result.exit_code == 0, result.output
    written = Image.open(out / "scan.png")
    assert "icc_profile" not in written.info and "xmp" not in written.info
    assert len(written.getexif()) == 0
    assert written.size == (30, 50)


def test_skip_clean_same_format_copies_bytes_else_keeps_metadata(
    scanned_jpeg, tiny_model_path, tmp_path
):
    same = run_predict(
        tiny_model_path,
        scanned_jpeg.parent,
        tmp_path / "same",
        "--format",
        "same",
        "--skip-clean",
        "1000",
    )
    assert same.exit_code == 0, same.output
    assert (tmp_path / "same/scan.jpg").read_bytes() == scanned_jpeg.read_bytes()
    png = run_predict(
        tiny_model_path, scanned_jpeg.parent, tmp_path / "png", "--skip-clean", "1000"
    )
    assert png.exit_code == 0, png.output
    written = Image.open(tmp_path / "png/scan.png")
    assert written.size == (30, 50) and written.info["icc_profile"] == SRGB_PROFILE
    assert written.getexif()[0x0112] == 1


def test_profiles_that_would_misstate_colours_are_dropped(tiny_model_path, tmp_path):
    """PIL converts CMYK to RGB without the profile, so a CMYK profile no longer describes the
    pixels; WebP has no grayscale, so a GRAY profile cannot describe its RGB."""
    root = tmp_path / "in"
    root.mkdir()
    rgb = photo_like(24, 32, 3, noise=10)
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.jpg", icc_profile=profile_for(b"CMYK"))
    Image.fromarray(rgb[..., 1]).save(root / "gray.png", icc_profile=GRAY_PROFILE)
    out = tmp_path / "out"
    assert run_predict(tiny_model_path, root, out).exit_code == 0
    assert "icc_profile" not in Image.open(out / "cmyk.png").info
    assert Image.open(out / "gray.png").info["icc_profile"] == GRAY_PROFILE
    webp = tmp_path / "webp"
    assert run_predict(tiny_model_path, root, webp, "--format", "webp").exit_code == 0
    assert "icc_profile" not in Image.open(webp / "gray.webp").info


# --- formats and bit depth ------------------------------------------------------------------


def test_format_same_keeps_format_and_suffix(tiny_model_path, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    image = Image.fromarray(photo_like(24, 32, 2, noise=10))
    image.save(root / "a.jpg", quality=90)
    image.save(root / "b.JPEG", quality=90)
    image.save(root / "c.png")
    image.save(root / "d.webp", lossless=True)
    image.save(root / "e.gif")
    image.save(root / "f.bmp")
    out = tmp_path / "out"
    result = run_predict(tiny_model_path, root, out, "--format", "same")
    assert result.exit_code == 0, result.output
    formats = {p.name: Image.open(p).format for p in out.iterdir()}
    assert formats == {
        "a.jpg": "JPEG",
        "b.JPEG": "JPEG",
        "c.png": "PNG",
        "d.webp": "WEBP",
        "e.png": "PNG",
        "f.png": "PNG",
    }


def test_jpeg_quality_and_alpha_refused(tiny_model_path, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    Image.fromarray(photo_like(64, 64, 3, noise=10)).save(root / "a.png")
    sizes = {}
    for quality in ("40", "98"):
        out = tmp_path / f"q{quality}"
        result = run_predict(tiny_model_path, root, out, "--format", "jpeg", "--quality", quality)
        assert result.exit_code == 0, result.output
        assert Image.open(out / "a.jpg").format == "JPEG"
        sizes[quality] = (out / "a.jpg").stat().st_size
    assert sizes["40"] < 0.7 * sizes["98"]
    rgba = np.dstack([photo_like(20, 20, 4, noise=0), np.full((20, 20), 128, np.uint8)])
    Image.fromarray(rgba).save(root / "b.png")
    result = run_predict(tiny_model_path, root, tmp_path / "alpha", "--format", "jpeg")
    assert result.exit_code == 1 and "transparency" in " ".join(result.output.split())
    assert not (tmp_path / "alpha" / "b.jpg").exists()


def test_bad_output_option_combinations_are_usage_errors(tiny_model_path, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    Image.fromarray(photo_like(16, 16, noise=0)).save(root / "a.png")
    result = run_predict(
        tiny_model_path, root, tmp_path / "out", "--format", "jpeg", "--bit-depth", "16"
    )
    assert result.exit_code == 2 and "16-bit" in result.output
    assert run_predict(tiny_model_path, root, tmp_path / "out", "--quality", "0").exit_code == 2
    with pytest.raises(ValueError, match="format"):
        PredictOptions(output_format="heic")  # tiff is an output format since issue 18


def gray16(height: int = 40, width: int = 56) -> np.ndarray:
    """A 16-bit ramp with fine steps: thousands of levels, far more than 8 bits hold."""
    ramp = np.linspace(1000, 64000, height * width).reshape(height, width)
    return np.round(ramp).astype(np.uint16)


def test_gray16_round_trips_at_16_bits(identity_model_path, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    source = gray16()
    Image.fromarray(source).save(root / "g.png", icc_profile=GRAY_PROFILE, dpi=(600, 600))
    for depth in ("16", "same", None):  # None: the default keeps a 16-bit input's depth
        out = tmp_path / f"out{depth}"
        flags = ("--bit-depth", depth) if depth else ()
        result = run_predict(identity_model_path, root, out, *flags)
        assert result.exit_code == 0, result.output
        written = Image.open(out / "g.png")
        assert written.mode == "I;16"
        pixels = np.asarray(written)
        assert len(np.unique(pixels)) > 256
        assert np.array_equal(pixels, source)  # denoised in float, never quantised to 8 bits
        assert written.info["icc_profile"] == GRAY_PROFILE
        assert np.allclose(written.info["dpi"], (600, 600), atol=0.03)
    out = tmp_path / "out8"
    assert run_predict(identity_model_path, root, out, "--bit-depth", "8").exit_code == 0
    written = Image.open(out / "g.png")
    assert written.mode == "L"
    assert np.abs(np.asarray(written).astype(int) - np.round(source / 257)).max() <= 1


def test_rgb_with_alpha_as_16_bit_png(identity_model_path, tmp_path):
    """PIL cannot hold 16-bit RGB: TF's decoder checks every sample of the written PNG."""
    root = tmp_path / "in"
    root.mkdir()
    rgb, alpha = photo_like(20, 28, 5, noise=0), np.tile(np.arange(28, dtype=np.uint8) * 9, (20, 1))
    Image.fromarray(np.dstack([rgb, alpha])).save(root / "a.png")
    out = tmp_path / "out"
    assert run_predict(identity_model_path, root, out, "--bit-depth", "16").exit_code == 0
    decoded = tf.io.decode_png((out / "a.png").read_bytes(), dtype=tf.uint16).numpy()
    assert decoded.shape == (20, 28, 4)
    assert np.array_equal(decoded, np.dstack([rgb, alpha]).astype(np.uint16) * 257)


# --- colour shift ---------------------------------------------------------------------------


def scanned_page(height: int = 96, width: int = 128, seed: int = 6) -> np.ndarray:
    """What the archive holds: off-white paper, dark text lines, a muted photo below."""
    page = np.empty((height, width, 3))
    page[:] = (236, 231, 220)
    y, x = np.mgrid[0:height, 0:width]
    text = ((y // 6) % 3 == 0) & ((x // 4) % 5 != 0) & (x > 8) & (x < width - 8) & (y < height // 2)
    page[text] = (45, 42, 50)
    top, bottom = height // 2 + 4, height - 6
    picture = photo_like(bottom - top, width - 16, seed, noise=0)
    page[top:bottom, 8 : width - 8] = 0.6 * picture + 0.4 * 127
    return np.round(page).astype(np.uint8)


def redder(image: np.ndarray, levels: int = 10) -> np.ndarray:
    shifted = image.copy()
    shifted[..., 0] = np.clip(image[..., 0].astype(int) + levels, 0, 255)
    return shifted


def test_colour_shift_zero_for_identity_large_for_shift():
    clean = scanned_page()
    assert metrics.colour_shift(clean, clean) == 0.0
    assert metrics.colour_shift(clean, redder(clean)) > 3.0


def test_colour_shift_is_insensitive_to_zero_mean_noise():
    """Noise of std 8 reads as a large Delta E pixel by pixel, a small one after the low-pass:
    well under what a +10 red cast scores."""
    clean = scanned_page(seed=7)
    rng = np.random.default_rng(0)
    noisy = np.clip(np.round(clean + rng.normal(0, 8, clean.shape)), 0, 255).astype(np.uint8)
    without_low_pass = metrics.colour_shift(clean, noisy, sigma=0.01)
    with_low_pass = metrics.colour_shift(clean, noisy)
    assert without_low_pass > 5.0
    assert with_low_pass < 0.25 * without_low_pass
    assert with_low_pass < 0.4 * metrics.colour_shift(clean, redder(clean))


def test_colour_shift_stripes_match_whole_image(monkeypatch):
    clean, other = photo_like(70, 40, 8, noise=0), photo_like(70, 40, 9, noise=0)
    whole = metrics.colour_shift(clean, other)
    monkeypatch.setattr(metrics, "COLOUR_STRIPE_ROWS", 16)
    assert metrics.colour_shift(clean, other) == pytest.approx(whole, rel=1e-6)


def test_evaluate_reports_delta_e(identity_model_path, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for index in range(2):
        Image.fromarray(photo_like(40, 48, 10 + index, noise=0)).save(root / f"p{index}.png")
    json_file = tmp_path / "scores.json"
    result = CliRunner().invoke(
        cli.main,
        [
            "evaluate",
            str(root),
            "--all",
            "--model",
            str(identity_model_path),
            "--crop",
            "32",
            "--baselines",
            "none",
            "--json",
            str(json_file),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ΔE" in result.output
    scores = json.loads(json_file.read_text())["scores"]
    assert scores["clean"]["model"]["delta_e"] == pytest.approx(0.0, abs=1e-9)
    sigma50 = scores["gaussian-50"]
    assert sigma50["noisy"]["delta_e"] > 1.0  # identity: model output = noisy input
    assert sigma50["model"]["delta_e"] == pytest.approx(sigma50["noisy"]["delta_e"], rel=1e-6)


def test_rgb16_png_denoised_from_all_16_bits(identity_model_path, tmp_path):
    """PIL reads 16-bit colour PNGs as 8 bits: these are decoded by TF, every sample kept, and
    EXIF orientation is applied to them as to every other image."""
    root = tmp_path / "in"
    root.mkdir()
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 65536, (12, 20, 4), dtype=np.uint16)
    encoded = tf.io.encode_png(samples).numpy()
    exif = exif_with_orientation(6).tobytes()
    xmp = XMP.replace(b"{orientation}", b"6")
    chunks = png_chunks(photo.Metadata(SRGB_PROFILE, exif, (300.0, 300.0), xmp))
    (root / "scan.png").write_bytes(png.insert_after_header(encoded, chunks))
    out = tmp_path / "out"
    result = run_predict(identity_model_path, root, out, "--bit-depth", "same")
    assert result.exit_code == 0, result.output
    written = (out / "scan.png").read_bytes()
    decoded = tf.io.decode_png(written, dtype=tf.uint16).numpy()
    assert np.array_equal(decoded, np.rot90(samples, -1))  # orientation 6: 90 deg clockwise
    assert len(np.unique(decoded[..., :3])) > 256
    reread = Image.open(out / "scan.png")
    assert reread.info["icc_profile"] == SRGB_PROFILE and reread.getexif()[0x0112] == 1
    assert reread.info["xmp"] == XMP.replace(b"{orientation}", b"1")
    default = run_predict(identity_model_path, root, tmp_path / "out8")  # 8 bits, from 16
    rgba8 = np.asarray(Image.open(tmp_path / "out8" / "scan.png"))
    assert np.abs(rgba8.astype(int) - np.round(np.rot90(samples, -1) / 257)).max() <= 1
    assert default.exit_code == 0
    copied = run_predict(
        identity_model_path, root, tmp_path / "copied", "--skip-clean", "1e9", "--strip-metadata"
    )  # re-encoded upright, still 16 bits
    assert copied.exit_code == 0, copied.output
    written = (tmp_path / "copied" / "scan.png").read_bytes()
    assert np.array_equal(tf.io.decode_png(written, dtype=tf.uint16).numpy(), np.rot90(samples, -1))
    assert "icc_profile" not in Image.open(tmp_path / "copied" / "scan.png").info


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pil(orientation):
    pixels = np.arange(3 * 5 * 2, dtype=np.uint8).reshape(3, 5, 2)
    image = Image.fromarray(pixels[..., 0])
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(photo.orient(pixels, orientation)[..., 0], expected)
