"""tools/make_synthetic_tiles.py: clean graphics tiles (lines, text, flat fills, pixel art)."""

from __future__ import annotations

import numpy as np
from conftest import load_tool

from tfdenoise.io import files as image_files

tool = load_tool("make_synthetic_tiles")


def test_tiles_are_reproducible_and_varied():
    first = np.asarray(tool.render(5, seed=0, tile=64))
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, np.asarray(tool.render(5, seed=0, tile=64)))
    assert not np.array_equal(first, np.asarray(tool.render(5, seed=1, tile=64)))
    assert not np.array_equal(first, np.asarray(tool.render(6, seed=0, tile=64)))


def _tiles(seed: int, count: int, size: int = 128):
    """(tile as int16, its Inks, its blur radius) for the first `count` tiles."""
    for index in range(count):
        inks, radius = tool.tile_style(index, seed)
        yield np.asarray(tool.render(index, seed, size)).astype(np.int16), inks, radius


def test_sharp_tiles_have_flat_areas_and_hard_edges():
    """What photos lack: many pixels equal to a neighbour, and steps of tens of grey levels."""
    checked = set()
    for index, (tile, inks, radius) in enumerate(_tiles(seed=0, count=40)):
        if inks.base is not None or radius:
            continue
        steps = np.abs(np.diff(tile, axis=1)).max(axis=-1)
        down = np.abs(np.diff(tile, axis=0)).max(axis=-1)
        # Flat fills and gradients: most pixels equal a neighbour across or down (the worst
        # case, fine stripes at an angle, still has a third).
        assert (np.minimum(steps[:-1], down[:, :-1]) <= 1).mean() > 0.3, index
        assert steps.max() >= 40, index
        checked.add(index % 4)
    assert checked == {0, 1, 2, 3}  # every kind was seen sharp and full-contrast


def test_faint_tiles_stay_near_their_base_colour_and_soft_ones_are_blurred():
    """Faint tiles: every pixel within the spread of the base colour, yet still structured.
    Soft tiles: no hard steps left."""
    faint = soft = 0
    for index, (tile, inks, radius) in enumerate(_tiles(seed=0, count=40)):
        steps = np.abs(np.diff(tile, axis=1)).max(axis=-1)
        if inks.base is not None:
            faint += 1
            assert tool.FAINT_SPREAD[0] <= inks.spread <= tool.FAINT_SPREAD[1]
            assert np.abs(tile - inks.base).max() <= inks.spread + 1, index
            assert tile.std(axis=(0, 1)).max() > 0.5 or steps.max() >= 2, index
        if radius and index % 4 != 3:
            soft += 1
            sharp_twin = np.asarray(tool.render(index, 0, 128)).astype(np.int16)
            assert steps.max() <= np.abs(np.diff(sharp_twin, axis=1)).max(), index
            assert steps.max() <= 0.5 * 255, index
    assert faint >= 8 and soft >= 4  # both styles are common, as the shares say


def test_writes_valid_pngs_and_keeps_existing_files(tmp_path, capsys):
    out = tmp_path / "synthetic"
    assert tool.main([str(out), "--count", "4", "--tile", "64"]) == 0
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"synthetic-0-{i:05d}.png" for i in range(4)]
    for path in files:
        assert image_files.load_rgb8(path).shape == (64, 64, 3)
    mtime = files[0].stat().st_mtime_ns
    assert tool.main([str(out), "--count", "6", "--tile", "64"]) == 0
    assert "2 tiles written, 4 already there" in capsys.readouterr().out
    assert files[0].stat().st_mtime_ns == mtime and len(list(out.iterdir())) == 6
