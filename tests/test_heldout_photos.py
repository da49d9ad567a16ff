"""tools/make_heldout_photos.py: the photos the training tiles leave out, whole and downscaled."""

from __future__ import annotations

import sys

import numpy as np
from conftest import load_tool, photo_like, save
from PIL import Image

from tfdenoise.io import files

tool = load_tool("make_heldout_photos")


def test_writes_exactly_the_test_split_photos_named_in_the_list_at_half_scale(
    tmp_path, monkeypatch
):
    source = tmp_path / "photos"
    names = [f"photo{index:02d}.jpg" for index in range(40)]
    for index, name in enumerate(names):
        save(source / name, photo_like(40, 64, seed=index), quality=95)
    held_out = [name for name in names if files.split_of(name) == "test"]
    assert 2 <= len(held_out) < len(names)  # the hash split holds some out, not all
    listed = tmp_path / "list.txt"
    listed.write_text(
        "# the camera photos\n" + "\n".join(held_out[1:]) + "\nphoto00-not-there.jpg\n"
    )
    out = tmp_path / "held-out"
    monkeypatch.setattr(sys, "argv", ["x", str(source), str(out), "--only", str(listed)])
    assert tool.main() == 0
    written = sorted(path.name for path in out.iterdir())
    assert written == sorted(name.replace(".jpg", ".png") for name in held_out[1:])
    first = np.asarray(Image.open(out / written[0]))
    assert first.shape == (20, 32, 3)  # half of 40 x 64, lossless PNG
