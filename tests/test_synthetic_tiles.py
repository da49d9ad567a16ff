"""tools/make_synthetic_tiles.py: clean graphics tiles (lines, text, flat fills, pixel art)."""

from __future__ import annotations

import numpy as np
from conftest import load_tool

from tfdenoise import images

tool = load_tool("make_synthetic_tiles")


def test_tiles_are_reproducible_and_varied():
    first = np.asarray(tool.render(5, seed=0, tile=64))
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, np.asarray(tool.render(5, seed=0, tile=64)))
    assert not np.array_equal(first, np.asarray(tool.render(5, seed=1, tile=64)))
    assert not np.array_equal(first, np.asarray(tool.render(6, seed=0, tile=64)))


def test_every_kind_has_flat_areas_and_sharp_edges():
    """What photos lack: many pixels equal to a neighbour, and steps of tens of grey levels."""
    for index in range(8):  # two of each of the four kinds
        tile = np.asarray(tool.render(index, seed=0, tile=128)).astype(np.int16)
        steps = np.abs(np.diff(tile, axis=1)).max(axis=-1)
        assert (steps == 0).mean() > 0.2 or (steps <= 1).mean() > 0.6, index  # flat or gradient
        assert steps.max() >= 40, index


def test_writes_valid_pngs_and_keeps_existing_files(tmp_path, capsys):
    out = tmp_path / "synthetic"
    assert tool.main([str(out), "--count", "4", "--tile", "64"]) == 0
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"synthetic-0-{i:05d}.png" for i in range(4)]
    for path in files:
        assert images.load_rgb8(path).shape == (64, 64, 3)
    mtime = files[0].stat().st_mtime_ns
    assert tool.main([str(out), "--count", "6", "--tile", "64"]) == 0
    assert "2 tiles written, 4 already there" in capsys.readouterr().out
    assert files[0].stat().st_mtime_ns == mtime and len(list(out.iterdir())) == 6
