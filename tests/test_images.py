"""Listing, split stability, probing and decoding of every mode to 8-bit RGB."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import photo_like, save, write_bad_files, write_mode_zoo
from faults import png_bomb
from PIL import Image

from tfdenoise.io import files as image_files


def test_listing_is_recursive_case_insensitive_and_ignores_other_files(tmp_path):
    save(tmp_path / "a" / "b" / "deep.JPEG", photo_like(8, 8))
    save(tmp_path / "top.PnG", photo_like(8, 8))
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "folder.jpg").mkdir()  # a directory named like an image
    found = [p.relative_to(tmp_path).as_posix() for p in image_files.list_image_files(tmp_path)]
    assert found == ["a/b/deep.JPEG", "top.PnG"]


def test_appledouble_companions_are_not_listed(tmp_path):
    photo = save(tmp_path / "scan.jpg", photo_like(8, 8))
    (tmp_path / "._scan.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    assert image_files.list_image_files(tmp_path) == [photo]


def test_other_files_are_counted_by_suffix_without_folder_metadata(tmp_path):
    save(tmp_path / "scan.jpg", photo_like(8, 8))
    for name in ("a.pdf", "sub/b.PDF", "sub/c.nef", "notes.txt", "README"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    for name in (".DS_Store", "._scan.jpg", "Thumbs.db", "sub/desktop.ini"):
        (tmp_path / name).write_bytes(b"x")  # what file managers leave: not the user's files
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "log.txt").write_text("excluded, like predict's OUT inside DIR")
    os.symlink(".", tmp_path / "sub" / "loop")  # not followed
    counts = image_files.other_files(tmp_path, exclude=tmp_path / "out")
    assert counts == collections.Counter({".pdf": 2, ".nef": 1, ".txt": 1, "": 1})
    assert image_files.other_files(tmp_path)[".txt"] == 2


def test_names_that_are_not_utf8_are_scanned_and_split(tmp_path):
    latin1 = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jpg"))  # an old archive's name
    save(latin1, photo_like(8, 8))
    scan = image_files.scan(tmp_path)
    assert [f.path for f in scan.files] == [str(latin1)] and not scan.skipped
    assert scan.files[0].split == image_files.split_of(latin1.name)
    # UTF-8 names hash their UTF-8 bytes, as before: no file moves between splits
    assert image_files.split_of("café.jpg") == image_files.split_of(
        os.fsdecode("café".encode() + b".jpg")
    )


def test_split_is_stable_when_files_are_added():
    names = [f"photos/{i:05d}.jpg" for i in range(3000)]
    before = {name: image_files.split_of(name) for name in names}
    more = names + [f"photos/new/{i:05d}.jpg" for i in range(3000)]
    after = {name: image_files.split_of(name) for name in more}
    assert all(after[name] == split for name, split in before.items())


def test_split_fractions_are_respected():
    counts = collections.Counter(image_files.split_of(f"{i}.png") for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.7) < 0.02
    assert abs(counts["val"] / 20000 - 0.1) < 0.02
    assert abs(counts["test"] / 20000 - 0.2) < 0.02
    custom = collections.Counter(image_files.split_of(f"{i}.png", (1, 0, 1)) for i in range(2000))
    assert custom["val"] == 0 and 900 < custom["train"] < 1100


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError):
        image_files.split_of("a.png", (0.5, 0.5))


@pytest.mark.parametrize(
    "kind",
    [
        "rgb_jpeg",
        "gray_jpeg",
        "cmyk_jpeg",
        "rgb_png",
        "gray_png",
        "rgba_png",
        "palette_png",
        "bmp",
        "gif",
        "webp",
        "gray16_png",
    ],
)
def test_every_mode_decodes_to_rgb8(tmp_path, kind):
    path = write_mode_zoo(tmp_path)[kind]
    array = image_files.load_rgb8(path)
    assert array.dtype == np.uint8 and array.shape == (48, 64, 3)
    reference = photo_like(48, 64, seed=1).astype(np.float64)
    if kind.startswith("gray"):
        reference = np.repeat(reference.mean(axis=2, keepdims=True), 3, axis=2)
    tolerance = {"palette_png": 20, "gif": 20, "cmyk_jpeg": 8}.get(kind, 4)
    assert np.abs(array.astype(np.float64) - reference).mean() < tolerance


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    array = image_files.load_rgb8(path)
    assert array.min() == 0 and array.max() == 255
    assert len(np.unique(array[..., 0])) > 200  # the full range survives, not a clipped plateau


def test_probe_reports_decoder_choice(tmp_path):
    zoo = write_mode_zoo(tmp_path)
    assert image_files.probe(zoo["rgb_jpeg"]).decoder == image_files.Decoder.JPEG
    assert image_files.probe(zoo["gray_jpeg"]).decoder == image_files.Decoder.JPEG
    assert image_files.probe(zoo["cmyk_jpeg"]).decoder == image_files.Decoder.PIL
    assert image_files.probe(zoo["rgb_png"]).decoder == image_files.Decoder.TF_IMAGE
    assert image_files.probe(zoo["webp"]).decoder == image_files.Decoder.PIL


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("truncated_jpeg", "corrupt or truncated"),
        ("empty", "empty file"),
        ("text", "not an image"),
    ],
)
def test_bad_files_get_a_reason(tmp_path, kind, reason):
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(image_files.ImageError, match=reason):
        image_files.probe(path)
    with pytest.raises(image_files.ImageError, match=reason):
        image_files.load_rgb8(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = png_bomb(tmp_path / "bomb.png", 50_000, 50_000)  # declares 2.5 GP in 50 KB
    assert path.stat().st_size < 100_000
    with pytest.raises(image_files.ImageError, match="too large"):
        image_files.probe(path, max_pixels=100_000_000)
    with pytest.raises(image_files.ImageError, match="too large"):
        image_files.load_rgb8(path)
    small = png_bomb(tmp_path / "small.png", 20, 20)
    with pytest.raises(image_files.ImageError, match="too large"):
        image_files.probe(small, max_pixels=100)  # the limit is configurable


def test_scan_splits_good_files_and_counts_bad_ones(image_folder):
    result = image_files.scan(image_folder)
    assert len(result.files) == 24
    assert sorted(s.path.split("/")[-1] for s in result.skipped) == [
        "empty.png",
        "notes.jpg",
        "truncated.jpg",
    ]
    assert sum(len(result.split(s)) for s in image_files.SPLITS) == 24
    for image_file in result.files:
        assert image_file.split == image_files.split_of(image_file.relpath)
