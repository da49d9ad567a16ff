"""What a restored file keeps from its source besides pixels: ICC profile, EXIF, XMP and DPI.

Archives need all of it: the ICC profile says what the RGB numbers mean (dropping it shifts
colours in every colour-managed viewer), EXIF and XMP are the capture and rights record. The
pixels predict writes are already upright, so the orientation in EXIF and XMP is reset to 1;
EXIF is patched in place (maker notes hold absolute offsets that re-serialising can break).
"""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib

from PIL import Image

from tfdenoise.io import png
from tfdenoise.io.errors import ImageError

EXIF_HEADER = b"Exif\x00\x00"  # the APP1 prefix; PIL's JPEG writer expects it, PNG/WebP strip it
ORIENTATION = 0x0112  # EXIF tag: how a viewer must rotate/flip the stored pixels
X_RESOLUTION = 282  # TIFF tag: pixels per resolution unit across
TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # these swap width and height


@dataclasses.dataclass(frozen=True)
class Metadata:
    """What a restored file must keep from its source besides pixels (archives need all of it).

    The ICC profile says what the RGB numbers mean: dropping it shifts colours for every
    colour-managed viewer (Adobe RGB read as sRGB looks dull). EXIF is the capture record.
    """

    icc_profile: bytes | None = None  # the source's embedded profile, byte for byte
    exif: bytes | None = None  # EXIF_HEADER + TIFF bytes, orientation reset to 1
    dpi: tuple[float, float] | None = None  # (x, y) of the upright image
    xmp: bytes | None = None  # UTF-8 XMP packet (captions, rights), orientation reset to 1

    def stripped(self) -> Metadata:
        """--strip-metadata: no profile, EXIF or XMP; DPI is a property of the scan, kept."""
        return Metadata(dpi=self.dpi)


def _set_orientation_in_place(tiff: bytes) -> bytes | None:
    """TIFF (EXIF) bytes with IFD0's orientation set to 1, every other byte unchanged, or None
    when the tag is not where the format puts it.

    Patching in place keeps maker notes and thumbnails intact, which re-serialising through
    PIL's Exif can break (maker notes hold absolute offsets).
    """
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return None
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for index in range(count):
            entry = ifd + 2 + 12 * index
            tag, kind = struct.unpack_from(order + "HH", tiff, entry)
            if tag == ORIENTATION and kind == 3:  # SHORT: the value sits in the entry itself
                patched = bytearray(tiff)
                struct.pack_into(order + "H", patched, entry + 8, 1)
                return bytes(patched)
    except struct.error:
        return None
    return None


def upright_exif(image: Image.Image) -> bytes | None:
    """The source's EXIF for an output whose pixels are already upright (orientation 1)."""
    raw = image.info.get("exif")
    if not raw:
        return None
    tiff = raw[len(EXIF_HEADER) :] if raw.startswith(EXIF_HEADER) else raw
    if image.getexif().get(ORIENTATION, 1) == 1:
        return EXIF_HEADER + tiff
    patched = _set_orientation_in_place(tiff)
    if patched is not None:
        return EXIF_HEADER + patched
    # unusual layout (no SHORT orientation in IFD0: a LONG one, or only XMP's): let PIL
    # rewrite a copy. Never image.getexif() itself: exif_transpose reads that very object
    # afterwards, and an orientation set to 1 there left the pixels unturned (found by fuzzing)
    exif = Image.Exif()
    try:
        exif.load(tiff)
        exif[ORIENTATION] = 1  # said explicitly: it also overrides any orientation in XMP
        return exif.tobytes()
    except (AttributeError, KeyError, struct.error, TypeError, ValueError) as error:  # fuzzing
        # a tag PIL listed but cannot read back, or cannot write back (AttributeError: an ASCII
        # tag whose damaged entry holds a number): the EXIF is damaged; writing it without the
        # orientation reset would rotate the upright output twice, dropping it loses the record
        raise ImageError(f"corrupt or truncated: unreadable EXIF ({error!r})") from None


# Every tiff:Orientation value a reader may apply: PIL's own pattern (Image.getexif) is
# `tiff:Orientation(="|>)([0-9])` -- no closing quote or tag needed -- so an attribute cut
# short (found by fuzzing: `tiff:Orientation="6\xde\xc7>`) still rotates; spaces and single
# quotes are accepted as XML allows them.
XMP_ORIENTATION = re.compile(rb"""(tiff:Orientation\s*(?:=\s*["']|>)\s*)[0-9]+""")


def upright_xmp(image: Image.Image) -> bytes | None:
    """The source's XMP packet with every tiff:Orientation set to 1 (PIL applies it too when
    EXIF has none), as UTF-8 bytes (PIL reads JPEG's as bytes, PNG's as text)."""
    xmp = image.info.get("xmp")
    if not xmp:
        return None
    packet = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    return XMP_ORIENTATION.sub(rb"\g<1>1", packet)


MAX_DPI = 65535.0  # JFIF's 16-bit density; PNG's pHYs (32-bit per metre) holds less than 1.1e8


def _usable_dpi(dpi) -> tuple[float, float] | None:
    """(x, y) DPI every output format can hold, or None: a resolution that is not positive,
    not finite or beyond MAX_DPI is damage, not a scan's (found by fuzzing: a TIFF saying
    4e9 DPI made PIL's PNG writer raise OverflowError)."""
    try:
        values = tuple(float(d) for d in dpi) if dpi else ()
    except (TypeError, ValueError):
        return None
    if len(values) != 2 or not all(0.0 < value <= MAX_DPI for value in values):
        return None
    return values


def _stated_dpi(image: Image.Image):
    """The DPI the file states. PIL reports 1 DPI for a TIFF without resolution tags (Pillow's
    own and OpenCV's TIFFs have none): carried over, it would tell every print and layout
    program that a 3000-pixel scan is 3000 inches wide."""
    if image.format == "TIFF" and X_RESOLUTION not in getattr(image, "tag_v2", {}):
        return None
    return image.info.get("dpi")


def read_metadata(image: Image.Image) -> Metadata:
    """ICC profile, EXIF and XMP (orientations reset) and DPI of an opened, not yet transposed
    image."""
    dpi = _stated_dpi(image)
    if dpi and image.getexif().get(ORIENTATION, 1) in TRANSPOSING_ORIENTATIONS:
        dpi = (dpi[1], dpi[0])
    return Metadata(
        icc_profile=image.info.get("icc_profile") or None,
        exif=upright_exif(image),
        dpi=_usable_dpi(dpi),
        xmp=upright_xmp(image),
    )


def profile_fits(icc_profile: bytes, grayscale_output: bool) -> bool:
    """Whether a profile describes the output's channels (ICC header bytes 16-19: the data
    colour space), i.e. GRAY for one-channel outputs and RGB for colour ones."""
    return icc_profile[16:20] == (b"GRAY" if grayscale_output else b"RGB ")


PNG_XMP_KEYWORD = "XML:com.adobe.xmp"  # the iTXt keyword XMP lives under in PNG


def png_chunks(metadata: Metadata) -> bytes:
    """iCCP, eXIf, pHYs and XMP (iTXt) chunks, as PIL writes them, to follow IHDR."""
    chunks = b""
    if metadata.icc_profile:
        chunks += png.chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(metadata.icc_profile))
    if metadata.exif:
        chunks += png.chunk(b"eXIf", metadata.exif.removeprefix(EXIF_HEADER))
    if metadata.dpi:
        per_metre = [round(value / 0.0254) for value in metadata.dpi]
        chunks += png.chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1))
    if metadata.xmp:  # keyword, uncompressed, no language or translated keyword, text
        chunks += png.chunk(b"iTXt", PNG_XMP_KEYWORD.encode() + b"\0\0\0\0\0" + metadata.xmp)
    return chunks
