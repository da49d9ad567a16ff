"""Damaged `.keras` files whose zip directory is intact: a clean ModelLoadError (exit 2 from
the commands), never a traceback."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import photo_like, save

from tfdenoise import checkpoints, cli

WEIGHTS = "model.weights.h5"


def member_data_offset(archive: Path, name: str) -> int:
    """Where the stored bytes of one member start in the zip file (after its local header)."""
    with zipfile.ZipFile(archive) as opened:
        info = opened.getinfo(name)
    with open(archive, "rb") as file:
        file.seek(info.header_offset)
        header = file.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


def flip_weight_bytes(model: Path, out: Path, at: int = 4096, count: int = 16) -> Path:
    """A copy of model with bytes of its stored weights file flipped: its CRC no longer
    matches, as after a bit flip on disk; the zip directory stays intact."""
    data = bytearray(model.read_bytes())
    start = member_data_offset(model, WEIGHTS) + at
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    out.write_bytes(bytes(data))
    return out


def rewrite_weights(model: Path, out: Path, at: int, count: int = 16) -> Path:
    """A copy of model whose weights file has bytes flipped and a matching CRC: the damage
    reaches h5py."""
    with zipfile.ZipFile(model) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == WEIGHTS:
                data = bytearray(data)
                data[at : at + count] = bytes(b ^ 0xFF for b in data[at : at + count])
            target.writestr(item, bytes(data))
    return out


def test_a_bad_crc_inside_the_model_is_a_load_error(tmp_path, tiny_model_path):
    damaged = flip_weight_bytes(tiny_model_path, tmp_path / "crc.keras")
    assert zipfile.is_zipfile(damaged)
    with pytest.raises(checkpoints.ModelLoadError, match="Bad CRC-32 for file 'model.weights.h5'"):
        checkpoints.load_model(damaged)


def test_predict_with_a_bad_crc_model_exits_2_with_one_line(tmp_path, tiny_model_path):
    damaged = flip_weight_bytes(tiny_model_path, tmp_path / "crc.keras")
    inputs = tmp_path / "scans"
    save(inputs / "x.png", photo_like(32, 32))
    result = CliRunner().invoke(cli.predict_command, [str(inputs), "--model", str(damaged)])
    assert result.exit_code == 2, result.output
    assert "Bad CRC-32" in result.output
    assert "Traceback" not in result.output


def test_a_corrupt_hdf5_structure_is_a_load_error(tmp_path, tiny_model_path):
    # Offset 704 of this model's weights file is HDF5 metadata (a local heap): h5py raises
    # RuntimeError ("Unable to synchronously check link existence ...").
    damaged = rewrite_weights(tiny_model_path, tmp_path / "h5.keras", at=704)
    with pytest.raises(checkpoints.ModelLoadError, match="cannot load model") as caught:
        checkpoints.load_model(damaged)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_runtime_error_outside_h5py_is_not_hidden(tmp_path, tiny_model_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not a damaged file")

    monkeypatch.setattr(checkpoints.keras.saving, "load_model", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        checkpoints.load_model(tiny_model_path)
