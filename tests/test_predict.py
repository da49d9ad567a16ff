"""predict (tiling, layout, exit codes, odd modes, --skip-clean, --report), export, evaluate.

Models are tiny U-Nets built here (never the bundled model); images are generated here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tifffile  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import photo_like, save  # noqa: E402
from PIL import Image  # noqa: E402

from tfdenoise import checkpoints, cli, evaluate, export, inference, models, noise_level  # noqa: E402
from tfdenoise.io import files as image_files  # noqa: E402
from tfdenoise.predict.folder import (
    REPORT_COLUMNS,  # noqa: E402
    PredictOptions,  # noqa: E402
    predict_folder,  # noqa: E402
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    return checkpoints.load_model(tiny_model_path)


@pytest.fixture
def folder(tmp_path) -> Path:
    """Nested folder with mixed formats, plus one file that is not an image."""
    root = tmp_path / "in"
    save(root / "a.jpg", photo_like(40, 56, 1, noise=20), quality=95)
    save(root / "sub" / "b.png", photo_like(40, 56, 2, noise=20))
    save(root / "sub" / "deeper" / "c.webp", photo_like(33, 47, 3, noise=20), lossless=True)
    save(root / "d.BMP", photo_like(40, 56, 4, noise=20))
    return root


def run_predict(*args: str):
    return CliRunner().invoke(cli.main, ["predict", *args], catch_exceptions=False)


# --- tiling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length,tile,overlap,align",
    [(1000, 512, 32, 8), (150, 64, 32, 2), (977, 100, 30, 8), (64, 64, 0, 1), (65, 64, 0, 1)],
)
def test_spans_cover_once_with_half_overlap_context(length, tile, overlap, align):
    spans = inference.spans(length, tile, overlap, align)
    assert spans[0].keep_start == 0 and spans[-1].keep_stop == length
    for span in spans:
        assert span.start % align == 0
        assert (
            span.stop - span.start <= max(length, tile + align - 1)
            if len(spans) == 1
            else span.stop - span.start < tile + align
        )
    for left, right in zip(spans, spans[1:]):
        assert left.keep_stop == right.keep_start  # every pixel written exactly once
        assert left.stop - left.keep_stop >= overlap // 2  # context beyond each seam
        assert right.keep_start - right.start >= overlap // 2


@pytest.mark.parametrize(
    "length,tile,overlap,align",
    [
        (2560, 512, 32, 8),
        (1600, 512, 32, 8),
        (1000, 512, 32, 8),
        (977, 100, 30, 8),
        (150, 64, 32, 2),
        (4000, 256, 64, 16),
    ],
)
def test_spans_share_the_length_evenly(length, tile, overlap, align):
    """No more tiles than full-size ones need, and barely more pixels read than the seams
    require: full-size 512 tiles read 1.2x a 2560-pixel row (its last tile re-covers most
    of its neighbour), these 1.07x."""
    spans = inference.spans(length, tile, overlap, align)
    count = -(-(length - overlap) // ((tile - overlap) // align * align))
    assert 1 < len(spans) <= count
    read = sum(span.stop - span.start for span in spans)
    assert read <= length + (len(spans) - 1) * overlap + 2 * len(spans) * align
    assert len({span.stop - span.start for span in spans[:-1]}) <= 1  # one shape, one trace


def test_bad_tiling_is_a_value_error():
    with pytest.raises(ValueError, match="overlap"):
        inference.check_tiling(64, 32)
    with pytest.raises(ValueError, match="tile"):
        inference.check_tiling(8, 0)


def test_tiled_output_matches_whole_image(tiny_model):
    """Tiles with 16 px of context on each side of every seam exceed this model's receptive
    field radius (~14 px), so the only differences left are float re-association in convs
    of other shapes, which can flip a rounding: at most 1 grey level, on very few pixels."""
    image = photo_like(150, 173, seed=5, noise=15)
    whole = inference.denoise_rgb8(tiny_model, image, tile=512)
    tiled = inference.denoise_rgb8(tiny_model, image, tile=80, overlap=32, batch_pixels=3 * 80 * 80)
    difference = np.abs(whole.astype(int) - tiled.astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.001


def test_tiling_without_overlap_shows_seams(tiny_model):
    """The check above can fail: without context, tile borders change the output."""
    image = photo_like(150, 173, seed=5, noise=15)
    whole = inference.denoise_rgb8(tiny_model, image, tile=512)
    tiled = inference.denoise_rgb8(tiny_model, image, tile=64, overlap=0)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() > 1


# --- folder layout, exit codes, overwrite, inputs untouched --------------------------------


def test_layout_mixed_formats_and_inputs_untouched(folder, tiny_model_path, tmp_path):
    (folder / "notes.jpg").write_text("not an image")
    before = {p: digest(p) for p in folder.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    result = run_predict(str(folder), "-o", str(out), "--model", str(tiny_model_path))
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "notes.jpg: not an image" in output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "d.png", "sub/b.png", "sub/deeper/c.png"]
    assert Image.open(out / "sub/deeper/c.png").size == (47, 33)
    assert {p: digest(p) for p in folder.rglob("*") if p.is_file()} == before


def test_exit_codes(folder, tiny_model_path, tmp_path):
    ok = run_predict(str(folder), "--model", str(tiny_model_path))
    assert ok.exit_code == 0, ok.output
    assert (folder.parent / "in_denoised" / "a.png").is_file()  # default OUT beside DIR
    assert run_predict(str(tmp_path / "missing"), "--model", str(tiny_model_path)).exit_code == 2
    assert run_predict(str(folder), "--model", str(tmp_path / "no.keras")).exit_code == 2
    bad_overlap = run_predict(
        str(folder), "--model", str(tiny_model_path), "--tile", "64", "--overlap", "40"
    )
    assert bad_overlap.exit_code == 2


def test_existing_outputs_kept_unless_overwrite(folder, tiny_model_path, tmp_path):
    out = tmp_path / "out"
    target = out / "a.png"
    save(target, np.zeros((5, 5, 3), np.uint8))
    os.utime(target, (1_000_000_000, 1_000_000_000))
    content = digest(target)
    result = run_predict(str(folder), "-o", str(out), "--model", str(tiny_model_path))
    assert result.exit_code == 0
    assert digest(target) == content and target.stat().st_mtime == 1_000_000_000
    result = run_predict(
        str(folder), "-o", str(out), "--model", str(tiny_model_path), "--overwrite"
    )
    assert result.exit_code == 0
    assert Image.open(target).size == (56, 40)


# --- odd modes ------------------------------------------------------------------------------


def test_odd_modes(tiny_model, tmp_path):
    root = tmp_path / "modes"
    rgb = photo_like(36, 44, 7, noise=10)
    gray = rgb.mean(axis=2).astype(np.uint8)
    alpha = np.tile(np.arange(44, dtype=np.uint8) * 5, (36, 1))
    save(root / "gray.png", gray)
    save(root / "gray16.png", gray.astype(np.uint16) * 257)
    save(root / "rgba.png", np.dstack([rgb, alpha]))
    save(root / "la.png", np.dstack([gray, alpha]), mode="LA")
    save(root / "palette.gif", rgb)
    report = predict_folder(tiny_model, root, tmp_path / "out")
    assert not report.failed and len(report.written) == 5
    out = tmp_path / "out"
    assert Image.open(out / "gray.png").mode == "L"
    assert Image.open(out / "gray16.png").mode == "I;16"  # 16-bit in, 16-bit grayscale out
    assert Image.open(out / "palette.png").mode == "RGB"
    rgba = Image.open(out / "rgba.png")
    assert rgba.mode == "RGBA" and np.array_equal(np.asarray(rgba)[..., 3], alpha)
    la = Image.open(out / "la.png")
    assert la.mode == "LA" and np.array_equal(np.asarray(la.getchannel("A")), alpha)
    # grayscale output = mean of the RGB denoising of the replicated channels
    expected = inference.denoise_rgb8(tiny_model, np.repeat(gray[..., None], 3, axis=2))
    assert np.array_equal(
        np.asarray(Image.open(out / "gray.png")), np.round(expected.mean(axis=2)).astype(np.uint8)
    )


def test_exif_orientation_applied(tiny_model, tmp_path):
    image = Image.fromarray(photo_like(30, 50, 8, noise=0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    save_path = tmp_path / "in" / "rotated.jpg"
    save_path.parent.mkdir()
    image.save(save_path, exif=exif)
    predict_folder(tiny_model, tmp_path / "in", tmp_path / "out")
    assert Image.open(tmp_path / "out" / "rotated.png").size == (30, 50)


def test_animations_say_that_only_their_first_frame_is_denoised(identity_model_path, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    frames = [Image.fromarray(photo_like(24, 32, seed, noise=0)) for seed in range(3)]
    names = ["gif.gif", "apng.png", "webp.webp"]
    for name, options in zip(names, [{}, {}, {"lossless": True}]):
        frames[0].save(root / name, save_all=True, append_images=frames[1:], **options)
    frames[0].save(root / "still.gif")
    report_file = tmp_path / "report.csv"
    out = ("-o", str(tmp_path / "out"), "--report", str(report_file))
    result = run_predict(str(root), *out, "--model", str(identity_model_path))
    assert result.exit_code == 0, result.output
    with open(report_file, newline="") as handle:
        rows = {Path(row["input"]).name: row for row in csv.DictReader(handle)}
    for name in names:  # in the report and on the console, not passed over in silence
        assert rows[name]["status"] == "written"
        assert rows[name]["mode"].endswith(", animated: 3 frames, first frame only"), rows[name]
        assert f"note {root / name}: " in result.output
    assert rows["still.gif"]["mode"] == "P" and result.output.count("first frame only") == 3
    written = np.asarray(Image.open(tmp_path / "out" / "apng.png"), dtype=np.int16)
    assert np.abs(written - np.asarray(frames[0], dtype=np.int16)).max() <= 1  # the first frame


# --- noise estimate, --skip-clean, --report -------------------------------------------------


def test_noise_estimate_tracks_sigma():
    clean = photo_like(128, 128, 9, noise=0)
    rng = np.random.default_rng(0)
    for sigma in (10, 25):
        noisy = np.clip(np.round(clean + rng.normal(0, sigma, clean.shape)), 0, 255)
        assert abs(noise_level.estimate_sigma(noisy.astype(np.uint8)) - sigma) < 0.15 * sigma
    assert noise_level.estimate_sigma(clean) < 2.0
    assert noise_level.estimate_sigma(np.zeros((2, 9, 3), np.uint8)) == 0.0


def test_skip_clean_copies_pixels_and_report_csv(tiny_model_path, tmp_path):
    root = tmp_path / "in"
    clean = save(root / "clean.png", photo_like(40, 48, 10, noise=0))
    save(root / "noisy.jpg", photo_like(40, 48, 11, noise=25), quality=98)
    save(root / "clean16.png", photo_like(40, 48, 12, noise=0).mean(axis=2).astype(np.uint16) * 257)
    report_file = tmp_path / "report.csv"
    result = run_predict(
        str(root),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(tiny_model_path),
        "--skip-clean",
        "5",
        "--report",
        str(report_file),
    )
    assert result.exit_code == 0, result.output
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "out/clean.png")), np.asarray(Image.open(clean))
    )
    copied16 = Image.open(tmp_path / "out/clean16.png")
    assert copied16.mode.startswith("I")  # a clean copy keeps 16 bits
    with open(report_file, newline="") as handle:
        rows = {Path(row["input"]).name: row for row in csv.DictReader(handle)}
    assert list(next(iter(rows.values()))) == list(REPORT_COLUMNS)
    assert rows["clean.png"]["status"] == "copied-clean"
    assert rows["noisy.jpg"]["status"] == "written"
    assert float(rows["noisy.jpg"]["sigma_before"]) > 15
    assert rows["noisy.jpg"]["width"] == "48" and rows["noisy.jpg"]["sigma_after"] != ""


def test_report_names_a_file_whose_name_is_not_utf8(tiny_model_path, tmp_path):
    root = tmp_path / "in"
    save(Path(os.fsdecode(bytes(root) + b"/caf\xe9.jpg")), photo_like(24, 32, 1), quality=95)
    report_file = tmp_path / "report.csv"
    out = tmp_path / "out"
    model = ("--model", str(tiny_model_path))
    result = run_predict(str(root), "-o", str(out), *model, "--report", str(report_file))
    assert result.exit_code == 0, result.output
    with open(report_file, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        (row,) = csv.DictReader(handle)
    assert Path(row["input"]).exists() and Path(row["output"]).exists()  # the exact bytes
    assert os.fsencode(Path(row["output"]).name) == b"caf\xe9.png"


def test_long_file_names(tiny_model, tiny_model_path, tmp_path):
    """A legal name is written, however long (its temp name is shortened to fit); an output
    name past the 255-byte limit (a longer suffix, page numbers) fails with its reason."""
    root = tmp_path / "in"
    legal = "\u00e9" * 120 + ".jpg"  # 244 bytes
    save(root / legal, photo_like(24, 32, 1), quality=95)
    save(root / ("x" * 251 + ".png"), photo_like(24, 32, 2))  # output: 255 bytes, the limit
    with tifffile.TiffWriter(root / ("y" * 248 + ".tif")) as writer:  # y...y.p002.png: 257
        for seed in (3, 4):
            writer.write(photo_like(24, 32, seed), photometric="rgb")
    out = tmp_path / "out"
    report = predict_folder(tiny_model, root, out)
    status = {r.input.name[:3]: (r.status, r.error) for r in report.results}
    assert status == {
        "\u00e9" * 3: ("written", ""),
        "xxx": ("written", ""),
        "yyy": (
            "failed",
            "its output name is 257 bytes, more than a file name holds (255): shorten the "
            "input's name",
        ),
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["\u00e9" * 120 + ".png", "x" * 251 + ".png"]
    )
    webp = predict_folder(tiny_model, root, tmp_path / "webp", PredictOptions(output_format="webp"))
    assert [(r.input.name[:3], r.status) for r in webp.results] == [
        ("xxx", "failed"),  # x...x.webp: 256 bytes
        ("yyy", "failed"),
        ("\u00e9" * 3, "written"),
    ]
    assert webp.results[0].error.startswith("its output name is 256 bytes")
    model = ("--model", str(tiny_model_path))
    result = run_predict(str(root), "-o", str(tmp_path / "cli"), *model, "--format", "webp")
    assert result.exit_code == 1 and "1 denoised" in result.output and "2 failed" in result.output
    assert "its output name is 256 bytes" in result.output and "Traceback" not in result.output


def test_small_images_are_batched(tiny_model, tmp_path, monkeypatch):
    root = tmp_path / "in"
    for index in range(5):
        save(root / f"{index}.png", photo_like(32, 32, index, noise=10))
    save(root / "z_other.png", photo_like(24, 40, 9, noise=10))
    calls = []
    original = inference._run_model
    monkeypatch.setattr(
        inference,
        "_run_model",
        lambda model, batch, *rest: calls.append(batch.shape) or original(model, batch, *rest),
    )
    report = predict_folder(tiny_model, root, tmp_path / "out")
    assert len(report.written) == 6
    assert calls == [(5, 32, 32, 3), (1, 24, 40, 3)]


# --- export ---------------------------------------------------------------------------------


def test_export_saved_model_round_trip(tiny_model, tiny_model_path, tmp_path):
    out = tmp_path / "served"
    result = CliRunner().invoke(cli.main, ["export", str(tiny_model_path), str(out)])
    assert result.exit_code == 0, result.output
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    image = photo_like(30, 42, 13, noise=20)
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt, quality=90)
        encoded = buffer.getvalue()
        png = serve(image_bytes=tf.constant(encoded))["png"].numpy()
        served = np.asarray(Image.open(io.BytesIO(png)))
        # TF's JPEG decoder (used by the signature) differs from PIL's by a few levels,
        # so the in-process reference starts from TF's decoding of the same bytes.
        decoded = tf.io.decode_image(encoded, channels=3).numpy()
        if fmt == "PNG":
            assert np.array_equal(decoded, image_files.load_rgb8(encoded))
        expected = inference.denoise_rgb8(tiny_model, decoded)
        assert served.shape == (30, 42, 3)
        assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
    again = CliRunner().invoke(cli.main, ["export", str(tiny_model_path), str(out)])
    assert again.exit_code == 2 and "not empty" in again.output
    with pytest.raises(ValueError, match="format"):
        export.export(tiny_model, tmp_path / "x", format="onnx")


def test_export_and_predict_a_model_with_residual_blocks(tmp_path):
    tf.keras.utils.set_random_seed(5)
    model = models.built(models.UNet(widths=(4, 8), blocks=(1, 1), name="blocks"))
    for block in model.residual_layers:  # not the identity they start as
        block.outer.kernel.assign(tf.random.normal(block.outer.kernel.shape, stddev=0.1))
    path = tmp_path / "blocks.keras"
    model.save(path)
    image = photo_like(24, 20, 4, noise=20)
    expected = inference.denoise_rgb8(checkpoints.load_model(path), image)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    result = CliRunner().invoke(cli.main, ["export", str(path), str(tmp_path / "served")])
    assert result.exit_code == 0, result.output
    serve = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    png = serve(image_bytes=tf.constant(buffer.getvalue()))["png"].numpy()
    served = np.asarray(Image.open(io.BytesIO(png))).astype(int)
    assert np.abs(served - expected.astype(int)).max() <= 1


# --- evaluate -------------------------------------------------------------------------------


def test_evaluate_folder_with_installed_baselines(tiny_model_path, tmp_path):
    root = tmp_path / "photos"
    for index in range(2):
        save(root / f"p{index}.png", photo_like(40, 52, 20 + index, noise=0))
    json_file, grid_file = tmp_path / "scores.json", tmp_path / "grid.png"
    result = CliRunner().invoke(
        cli.main,
        [
            "evaluate",
            str(root),
            "--all",
            "--model",
            str(tiny_model_path),
            "--crop",
            "32",
            "--baselines",
            "skimage-nlm,opencv-nlm,cbm3d",
            "--json",
            str(json_file),
            "--grid",
            str(grid_file),
        ],
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(json_file.read_text())
    assert scores["images"] == ["p0.png", "p1.png"] and scores["crop"] == 32
    assert set(scores["scores"]) == {
        "gaussian-15",
        "gaussian-25",
        "gaussian-50",
        "prototype",
        "jpeg-noise",
        "jpeg-30",
        "correlated",
        "jpeg-mild",
        "clean",
    }
    sigma25 = scores["scores"]["gaussian-25"]
    assert 19 < sigma25["noisy"]["psnr"] < 23  # sigma 25 noise is ~20.2 dB (less: clipping)
    assert sigma25["skimage-nlm"]["psnr"] > sigma25["noisy"]["psnr"] + 3
    per_image = sigma25["skimage-nlm"]["per_image_psnr"]  # in the order of "images"
    assert len(per_image) == 2 and np.mean(per_image) == pytest.approx(
        sigma25["skimage-nlm"]["psnr"]
    )
    assert set(scores["scores"]["clean"]) == {"model"}
    assert "cbm3d" in sigma25 or any("cbm3d skipped" in n for n in scores["notes"])
    assert Image.open(grid_file).size == (2 * evaluate.GRID_CROP + 4, 3 * evaluate.GRID_CROP + 8)


def test_evaluate_some_conditions_scores_the_same_noisy_images(tiny_model_path, tmp_path):
    """A run over one condition sees exactly the noise a full run does (seeded by the
    condition's place in EVAL_CONDITIONS), so its scores join a full run's per image."""
    root = tmp_path / "photos"
    for index in range(2):
        save(root / f"p{index}.png", photo_like(40, 52, 30 + index, noise=0))
    common = [
        "evaluate",
        str(root),
        "--all",
        "--model",
        str(tiny_model_path),
        "--crop",
        "32",
        "--baselines",
        "none",
    ]
    scores = {}
    for name, extra in (("full", []), ("some", ["--conditions", "seed,gaussian-50"])):
        json_file = tmp_path / f"{name}.json"
        result = CliRunner().invoke(cli.main, [*common, *extra, "--json", str(json_file)])
        assert result.exit_code == 0, result.output
        scores[name] = json.loads(json_file.read_text())["scores"]
    assert set(scores["some"]) == {"gaussian-50", "prototype", "clean"}
    for condition in ("gaussian-50", "prototype"):
        for method in ("noisy", "model"):
            assert (
                scores["some"][condition][method]["per_image_psnr"]
                == scores["full"][condition][method]["per_image_psnr"]
            )
    assert (
        scores["full"]["gaussian-15"]["noisy"]["per_image_psnr"]
        != scores["full"]["gaussian-50"]["noisy"]["per_image_psnr"]
    )
    unknown = CliRunner().invoke(cli.main, [*common, "--conditions", "gaussian-30"])
    assert unknown.exit_code == 2 and "gaussian-15" in unknown.output
    no_grid = CliRunner().invoke(
        cli.main, [*common, "--conditions", "seed", "--grid", str(tmp_path / "grid.png")]
    )
    assert no_grid.exit_code == 2 and "gaussian-25" in no_grid.output


def test_evaluate_rejects_empty_test_split_and_unknown_baseline(tiny_model_path, tmp_path):
    root = tmp_path / "photos"
    save(root / "only.png", photo_like(20, 20, 1, noise=0))
    args = ["evaluate", str(root), "--model", str(tiny_model_path)]
    if image_files.split_of("only.png") != "test":
        result = CliRunner().invoke(cli.main, args)
        assert result.exit_code == 2 and "--all" in result.output
    result = CliRunner().invoke(cli.main, [*args, "--all", "--baselines", "magic"])
    assert result.exit_code == 2 and "unknown baseline" in result.output
