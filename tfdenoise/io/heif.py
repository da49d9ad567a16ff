"""HEIF containers: HEIC photos (what phones save) through pillow-heif, and AVIF's brand.

Pillow has no HEVC decoder; pillow-heif registers one with Pillow. It is optional (`pip install
'tfdenoise[heif]'`), so a HEIC file without it is skipped with that instruction rather than as
"not an image". The decoder is registered on the first HEIC file met: processes that never see
one never load libheif. pillow-heif applies the container's rotation while decoding and resets
EXIF Orientation to 1, so the upright pixels are not turned a second time.

Files are recognised by their `ftyp` box, not their suffix: the major brand, or for the
generic `mif1`/`msf1` brands the compatible ones (HEIC files from some phones say `mif1`,
`heic`; AVIF files `mif1`, `avif`).
"""

from __future__ import annotations

import functools
import struct

HEAD_BYTES = 64  # enough of a file for its ftyp box's brands
HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})
MISSING_DECODER = "HEIC photo: reading it needs pillow-heif (pip install 'tfdenoise[heif]')"


def brands(head: bytes) -> tuple[bytes, ...]:
    """The major and compatible brands of a file starting with an ISO BMFF ftyp box; () else."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return ()
    size = min(struct.unpack(">I", head[:4])[0], len(head))
    compatible = [head[offset : offset + 4] for offset in range(16, size - 3, 4)]
    return (head[8:12], *compatible)


def _is_kind(head: bytes, kind: frozenset[bytes]) -> bool:
    found = brands(head)
    if not found:
        return False
    major, compatible = found[0], found[1:]
    return major in kind or (major in GENERIC_BRANDS and any(b in kind for b in compatible))


def is_hevc(head: bytes) -> bool:
    """Whether a file's first bytes say HEIC (HEVC-coded HEIF)."""
    return _is_kind(head, HEVC_BRANDS)


def is_avif(head: bytes) -> bool:
    """Whether a file's first bytes say AVIF (AV1-coded HEIF, which Pillow 11.3+ decodes)."""
    return _is_kind(head, AVIF_BRANDS)


@functools.cache
def decoder_available() -> bool:
    """Whether Pillow can open HEIC files: pillow-heif is installed (and now registered)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True
