"""A fault corpus: the messy inputs real scanner folders contain, each with its expected fate.

Usable from tests (`make_fault_corpus(folder)`) and by hand:
    python tests/faults.py OUT      # then point make-tfrecords / fit / predict at OUT
"""

from __future__ import annotations

import dataclasses
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import photo_like, save  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    relpath: str
    usable: bool  # True: must be processed; False: must be skipped with `reason`
    reason: str = ""  # substring of the one-line reason users see
    pages: int = 1  # a multi-page TIFF: predict writes NAME.p001.png, ... in single-page formats


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def png_bomb(path: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A tiny PNG whose header declares width x height pixels (2.5 GP by default)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)  # a few rows of zeros; rest missing
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows)
    path.write_bytes(data + _png_chunk(b"IEND", b""))
    return path


def _bad_crc_png(path: Path) -> Path:
    save(path, photo_like(32, 32, seed=5))
    data = bytearray(path.read_bytes())
    start = data.find(b"IDAT")
    length = struct.unpack(">I", data[start - 4 : start])[0]
    data[start + 4 + length] ^= 0xFF  # flip a byte of the IDAT chunk's CRC
    path.write_bytes(bytes(data))
    return path


def _exif_rotated_jpeg(path: Path) -> Path:
    image = Image.fromarray(photo_like(30, 60, seed=6))
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(path, exif=exif.tobytes(), quality=92)
    return path


def _patch_tiff_tag(data: bytes, tag: int, value: int) -> bytes:
    """A little-endian classic TIFF with one tag of its first directory set to `value`
    (written as a LONG)."""
    patched = bytearray(data)
    (ifd,) = struct.unpack_from("<I", patched, 4)
    (count,) = struct.unpack_from("<H", patched, ifd)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if struct.unpack_from("<H", patched, entry)[0] == tag:
            struct.pack_into("<HII", patched, entry + 2, 4, 1, value)
            return bytes(patched)
    raise KeyError(tag)


def tiff_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny TIFF whose directory declares width x height pixels (10 GP by default)."""
    Image.fromarray(photo_like(16, 16, seed=11)).save(path, compression="tiff_deflate")
    data = _patch_tiff_tag(path.read_bytes(), 256, width)
    path.write_bytes(_patch_tiff_tag(data, 257, height))
    return path


def _tiff_faults(root: Path, rgb: np.ndarray, good, bad) -> None:
    """Scanner TIFFs: 16-bit, multi-page, CMYK JPEG-in-TIFF, float; and five unusable ones."""
    import tifffile

    scans = root / "scans"
    scans.mkdir()
    sixteen = rgb.astype(np.uint16) * 257 + 100
    tifffile.imwrite(scans / "scan16.tif", sixteen, photometric="rgb", compression="zlib")
    good("16-bit RGB TIFF (deflate)", "scans/scan16.tif")
    first, second = Image.fromarray(rgb), Image.fromarray(rgb[::-1].copy())
    first.save(scans / "pages.TIFF", save_all=True, append_images=[second], compression="tiff_lzw")
    good("multi-page TIFF (LZW)", "scans/pages.TIFF", pages=2)
    Image.fromarray(rgb).convert("CMYK").save(scans / "cmyk.tif", compression="jpeg")
    good("CMYK JPEG-in-TIFF", "scans/cmyk.tif")
    hdr = rgb.astype(np.float32) / 200.0  # above 1 in the highlights
    tifffile.imwrite(scans / "hdr.tif", hdr, photometric="rgb", compression="zlib")
    good("float32 RGB TIFF (an HDR merge: tifffile only)", "scans/hdr.tif")
    signed = scans / "signed.tif"
    tifffile.imwrite(signed, sixteen.astype(np.int16), photometric="rgb")
    bad("signed 16-bit TIFF", "scans/signed.tif", "unsupported TIFF kind: 16-bit, 3 samples")

    tifffile.imwrite(root / "truncated.tif", sixteen, photometric="rgb")  # strips after the IFD
    data = (root / "truncated.tif").read_bytes()
    (root / "truncated.tif").write_bytes(data[: len(data) // 2])
    bad("truncated TIFF", "truncated.tif", "corrupt or truncated")
    Image.fromarray(rgb).save(root / "bad_ifd.tif", compression="tiff_deflate")
    data = bytearray((root / "bad_ifd.tif").read_bytes())
    struct.pack_into("<I", data, 4, 10**9)  # the first directory's offset, past the end
    (root / "bad_ifd.tif").write_bytes(bytes(data))
    bad(
        "TIFF with a bad IFD offset",
        "bad_ifd.tif",
        "corrupt or truncated: TIFF without a readable page (bad IFD offset)",
    )
    tiff_bomb(root / "bomb.tif")
    bad("TIFF declaring 100000x100000 pixels", "bomb.tif", "too large")
    Image.fromarray(rgb).save(root / "compression.tif", compression="tiff_deflate")
    data = _patch_tiff_tag((root / "compression.tif").read_bytes(), 259, 12345)
    (root / "compression.tif").write_bytes(data)
    bad("TIFF with an unknown compression", "compression.tif", "unsupported TIFF compression")


def make_fault_corpus(root: Path, patch_size: int = 32) -> list[Fault]:
    """Write the corpus under root; return what each file is and what must happen to it."""
    root.mkdir(parents=True, exist_ok=True)
    faults: list[Fault] = []

    def good(name: str, relpath: str, pages: int = 1) -> None:
        faults.append(Fault(name, relpath, True, pages=pages))

    def bad(name: str, relpath: str, reason: str) -> None:
        faults.append(Fault(name, relpath, False, reason))

    rgb = photo_like(48, 64, seed=7)
    for index in range(6):  # enough ordinary photos for every split
        save(root / "ok" / f"photo{index}.jpg", photo_like(64, 80, seed=20 + index), quality=90)
        good(f"photo{index}", f"ok/photo{index}.jpg")

    source = save(root / "truncated.jpg", rgb, quality=90)
    source.write_bytes(source.read_bytes()[:600])
    bad("truncated JPEG", "truncated.jpg", "corrupt or truncated")
    (root / "zero.png").write_bytes(b"")
    bad("zero-byte file", "zero.png", "empty file")
    (root / "notes.jpeg").write_text("meeting notes, not a picture\n")
    bad("text file with an image suffix", "notes.jpeg", "not an image")
    _bad_crc_png(root / "badcrc.png")
    bad("PNG with a bad CRC", "badcrc.png", "corrupt or truncated")
    png_bomb(root / "bomb.png")
    bad("decompression bomb", "bomb.png", "too large")

    save(root / "modes" / "gray.jpg", rgb.mean(axis=2).astype(np.uint8), quality=90)
    good("grayscale JPEG", "modes/gray.jpg")
    save(root / "modes" / "rgba.png", np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]))
    good("RGBA PNG", "modes/rgba.png")
    save(root / "modes" / "cmyk.jpg", rgb, mode="CMYK", quality=90)
    good("CMYK JPEG", "modes/cmyk.jpg")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(root / "modes" / "gray16.png")
    good("16-bit PNG", "modes/gray16.png")
    save(root / "modes" / "palette.gif", rgb)
    good("palette GIF", "modes/palette.gif")
    _exif_rotated_jpeg(root / "modes" / "rotated.jpg")
    good("EXIF-rotated JPEG", "modes/rotated.jpg")
    save(root / "tiny" / "one_pixel.png", np.full((1, 1, 3), 90, np.uint8))
    good("1x1 image", "tiny/one_pixel.png")
    save(root / "tiny" / "small.jpg", photo_like(patch_size // 2, patch_size // 3), quality=90)
    good("image smaller than the patch", "tiny/small.jpg")

    (root / "folder.jpg").mkdir()  # a directory named like an image: walked, never a file
    save(root / "folder.jpg" / "inside.png", photo_like(40, 40, seed=8))
    good("image inside a directory named like an image", "folder.jpg/inside.png")
    os.symlink("loop_b.jpg", root / "loop_a.jpg")
    os.symlink("loop_a.jpg", root / "loop_b.jpg")
    bad("symlink loop", "loop_a.jpg", "unreadable")
    bad("symlink loop", "loop_b.jpg", "unreadable")
    os.symlink(".", root / "ok" / "self_loop_dir")  # a directory symlink loop: not followed
    _tiff_faults(root, rgb, good, bad)

    locked = save(root / "locked.png", photo_like(32, 32, seed=9))
    os.chmod(locked, 0)
    if os.geteuid() == 0:  # root reads it anyway: the case cannot be tested as root
        good("unreadable file (chmod 000, readable by root)", "locked.png")
    else:
        bad("unreadable file (chmod 000)", "locked.png", "permission denied")
    return faults


if __name__ == "__main__":
    corpus = make_fault_corpus(Path(sys.argv[1]))
    for fault in corpus:
        print(f"{'usable' if fault.usable else 'skipped':8} {fault.relpath:32} {fault.name}")
