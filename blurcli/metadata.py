"""Read what image headers say without decoding pixels: format, size, EXIF orientation.

The size lets a decompression bomb be refused before a byte of it is decoded; the orientation is
applied by us because OpenCV ignores it when it keeps alpha and 16-bit samples (IMREAD_UNCHANGED).
"""

from __future__ import annotations

import struct
import zlib

_MAGIC = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_ORIENTATION_TAG = 0x0112
_WIDTH_TAG, _HEIGHT_TAG = 0x0100, 0x0101


def sniff_format(data: bytes) -> str | None:
    """The extension that matches the file's magic bytes ('.jpg', '.png', ...), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), None)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a JPEG, PNG, WebP, BMP or TIFF, or None if unknown."""
    reader = {
        ".jpg": _jpeg_size,
        ".png": _png_size,
        ".webp": _webp_size,
        ".bmp": _bmp_size,
        ".tif": _tiff_size,
    }.get(sniff_format(data) or "")
    try:
        return reader(data) if reader else None
    except (struct.error, IndexError, ValueError):
        return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # segments without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + length
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 ":  # lossy: 3-byte frame tag, start code, then 14-bit sizes
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature byte, then 14-bit sizes minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    tags = tiff_tags(data, {_WIDTH_TAG, _HEIGHT_TAG})
    if _WIDTH_TAG in tags and _HEIGHT_TAG in tags:
        return tags[_WIDTH_TAG][0], tags[_HEIGHT_TAG][0]
    return None


def tiff_tags(tiff: bytes, wanted: set[int]) -> dict[int, tuple[int, int]]:
    """Integer tags of a TIFF structure's first IFD (a TIFF file, or an EXIF blob).

    Returns tag -> (value, byte offset of the value) for SHORT and LONG tags with one value; the
    offset lets a caller patch a value in place. Malformed data yields what could be read.
    """
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return {}
    order = "<" if tiff[:2] == b"II" else ">"
    found: dict[int, tuple[int, int]] = {}
    try:
        (ifd,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
        for index in range(count):
            entry = ifd + 2 + 12 * index
            tag, kind, number = struct.unpack(order + "HHI", tiff[entry : entry + 8])
            if tag in wanted and number == 1 and kind in (3, 4):
                code = "H" if kind == 3 else "I"
                (value,) = struct.unpack(order + code, tiff[entry + 8 : entry + 8 + struct.calcsize(code)])
                found[tag] = (value, entry + 8)
    except struct.error:
        pass
    return found


def png_icc_profile(data: bytes) -> bytes | None:
    """The ICC profile of a PNG's iCCP chunk, or None (OpenCV's PNG reader drops it)."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"iCCP":
            _name, _, rest = data[pos + 8 : pos + 8 + length].partition(b"\x00")
            try:
                return zlib.decompress(rest[1:]) if rest[:1] == b"\x00" else None
            except zlib.error:
                return None
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def exif_orientation(exif: bytes | None) -> int:
    """The EXIF orientation (1-8) of an EXIF blob (TIFF structure, optional 'Exif' prefix); 1 if absent."""
    tiff = _strip_exif_prefix(exif or b"")
    value = tiff_tags(tiff, {_ORIENTATION_TAG}).get(_ORIENTATION_TAG, (1, 0))[0]
    return value if 1 <= value <= 8 else 1


def with_upright_orientation(exif: bytes) -> bytes:
    """A copy of the EXIF blob whose orientation says 'upright' (1): for pixels already rotated."""
    tiff = _strip_exif_prefix(exif)
    prefix = exif[: len(exif) - len(tiff)]
    tag = tiff_tags(tiff, {_ORIENTATION_TAG}).get(_ORIENTATION_TAG)
    if tag is None:
        return exif
    order = "<" if tiff[:2] == b"II" else ">"
    patched = bytearray(tiff)
    struct.pack_into(order + "H", patched, tag[1], 1)
    return prefix + bytes(patched)


def _strip_exif_prefix(exif: bytes) -> bytes:
    return exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
