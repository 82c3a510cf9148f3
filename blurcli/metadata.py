"""Read what image headers say without decoding pixels: format, size, EXIF orientation.

The size lets a decompression bomb be refused before a byte of it is decoded; the orientation is
applied by us because OpenCV ignores it when it keeps alpha and 16-bit samples (IMREAD_UNCHANGED).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

TIFF_MAGIC = (b"II*\x00", b"MM\x00*")  # little- and big-endian TIFF (and EXIF blobs)
_MAGIC = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"BM", ".bmp"),
    *((magic, ".tif") for magic in TIFF_MAGIC),
)
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_ORIENTATION_TAG = 0x0112
_WIDTH_TAG, _HEIGHT_TAG = 0x0100, 0x0101
# What compressed metadata may inflate to: ICC profiles are kilobytes, rarely a few MB. A chunk
# that inflates past this is a bomb (a 1 MB PNG can hold a profile of gigabytes).
MAX_METADATA_BYTES = 16 << 20


class MetadataTooLarge(ValueError):
    """Compressed metadata inflates past MAX_METADATA_BYTES."""


_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)


def sniff_format(data: bytes) -> str | None:
    """The extension that matches the file's magic bytes ('.jpg', '.png', '.heic', ...), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), None) or heif_format(data)


def heif_format(data: bytes) -> str | None:
    """'.heic' or '.avif' from the brands of an ISO-BMFF 'ftyp' box, else None; reads no pixels."""
    size = int.from_bytes(data[:4], "big")
    if data[4:8] != b"ftyp" or not 16 <= size <= len(data):
        return None
    # major brand, then (after the 4-byte minor version) the compatible brands
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, size - 3, 4)}
    if brands & _AVIF_BRANDS:
        return ".avif"
    return ".heic" if brands & _HEIC_BRANDS else None


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
        if data[pos] != 0xFF:  # stray bytes between segments: libjpeg skips them, and so must we
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return None
            continue
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
    found: dict[int, tuple[int, int]] = {}
    try:
        order, ifd, count = _first_ifd(tiff)
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


def _first_ifd(tiff: bytes) -> tuple[str, int, int]:
    """A TIFF structure's byte order ('<' or '>'), its first IFD's offset and entry count;
    struct.error where it is no TIFF or too short to hold them."""
    if tiff[:4] not in TIFF_MAGIC:
        raise struct.error("not a TIFF structure")
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    return order, ifd, count


def png_metadata_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(kind, body) of a PNG's chunks before its pixels (IDAT), where metadata lives."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind in (b"IDAT", b"IEND"):
            return
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 12 + length


def png_problem(data: bytes) -> str | None:
    """Why a PNG's chunk structure is broken (a chunk running past the end of the file, which
    OpenCV would allocate memory for), or None."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            name = kind.decode("latin-1") if kind.isalpha() else repr(kind)
            return f"chunk {name} claims {length:,} bytes, past the end of the file"
        if kind == b"IEND":
            return None
        pos += 12 + length
    return None


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, kind, body, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def webp_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(fourcc, body) of a WebP's RIFF chunks, in order."""
    pos = 12
    while pos + 8 <= len(data):
        kind, (length,) = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)


def png_icc_profile(data: bytes) -> bytes | None:
    """The ICC profile of a PNG's iCCP chunk, or None (OpenCV's PNG reader drops it)."""
    for kind, body in png_metadata_chunks(data):
        if kind == b"iCCP":
            _name, _, rest = body.partition(b"\x00")
            return _inflate(rest[1:], "colour profile") if rest[:1] == b"\x00" else None
    return None


def _inflate(data: bytes, what: str, limit: int = MAX_METADATA_BYTES) -> bytes | None:
    """zlib data inflated to at most `limit` bytes (MetadataTooLarge past it); None if damaged."""
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    if len(inflated) > limit:
        raise MetadataTooLarge(
            f"its {what} inflates to over {limit >> 20} MiB, the limit for metadata (likely a bomb)"
        )
    return inflated


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


# blurcli marks what it writes, so a rerun over a folder (or a shell glob) tells its own outputs
# from a user's photos by content, not by name: a JPEG comment, a PNG text chunk, a WebP chunk.
_MARK = b"blurcli:"
_PNG_KEYWORD = b"blurcli"
_WEBP_CHUNK = b"BLUR"
MARKED_FORMATS = (".jpg", ".png", ".webp")


def add_output_mark(data: bytes, kind: str) -> bytes:
    """Encoded JPEG/PNG/WebP bytes with blurcli's mark (`kind`: blurred, mask) in their metadata;
    pixels and every other byte untouched. Other formats come back as they are."""
    adders = {".jpg": _mark_jpeg, ".png": _mark_png, ".webp": _mark_webp}
    adder = adders.get(sniff_format(data) or "")
    return adder(data, kind.encode("ascii")) if adder else data


def output_mark(head: bytes) -> str | None:
    """The kind blurcli marked a file with ('blurred', 'mask'), or None for anything else.

    `head` is the file's first bytes; the mark sits near the start (within 128 KiB for any file
    blurcli writes)."""
    finders = {".jpg": _jpeg_mark, ".png": _png_mark, ".webp": _webp_mark}
    finder = finders.get(sniff_format(head) or "")
    try:
        value = finder(head) if finder else None
    except (struct.error, IndexError, ValueError):
        return None
    return value.decode("ascii", "replace") if value is not None else None


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of a JPEG's segments up to the first scan."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:
            return
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        yield marker, pos, pos + 2 + length
        pos += 2 + length


def _mark_jpeg(data: bytes, kind: bytes) -> bytes:
    at = 2  # after the start-of-image, JFIF (APP0) and EXIF (APP1), which readers expect first
    for marker, _start, end in _jpeg_segments(data):
        if marker not in (0xE0, 0xE1):
            break
        at = end
    body = _MARK + kind
    return data[:at] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + data[at:]


def _jpeg_mark(data: bytes) -> bytes | None:
    for marker, start, end in _jpeg_segments(data):
        body = data[start + 4 : end]
        if marker == 0xFE and body.startswith(_MARK):
            return body[len(_MARK) :]
    return None


def _mark_png(data: bytes, kind: bytes) -> bytes:
    at = 33  # signature (8) + IHDR chunk (25)
    return data[:at] + png_chunk(b"tEXt", _PNG_KEYWORD + b"\x00" + kind) + data[at:]


def _png_mark(data: bytes) -> bytes | None:
    for kind, body in png_metadata_chunks(data):
        keyword, _, text = body.partition(b"\x00")
        if kind == b"tEXt" and keyword == _PNG_KEYWORD:
            return text
    return None


def _mark_webp(data: bytes, kind: bytes) -> bytes:
    """Add a chunk after VP8X (made first for a simple-format file, as extended format needs)."""
    body = _MARK + kind
    chunk = _WEBP_CHUNK + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) % 2)
    if data[12:16] == b"VP8X":
        head, rest = data[12:30], data[30:]
    else:
        size = _webp_size(data)
        if size is None:
            return data
        alpha = data[12:16] == b"VP8L" and bool(int.from_bytes(data[21:25], "little") >> 28 & 1)
        canvas = (size[0] - 1).to_bytes(3, "little") + (size[1] - 1).to_bytes(3, "little")
        head, rest = (
            b"VP8X" + struct.pack("<I", 10) + bytes([0x10 if alpha else 0, 0, 0, 0]) + canvas,
            data[12:],
        )
    riff = head + chunk + rest
    return b"RIFF" + struct.pack("<I", len(riff) + 4) + b"WEBP" + riff


def _webp_mark(data: bytes) -> bytes | None:
    for kind, body in webp_chunks(data):
        if kind == _WEBP_CHUNK and body.startswith(_MARK):
            return body[len(_MARK) :]
        if kind in (b"VP8 ", b"VP8L", b"ALPH", b"ANIM"):
            return None
    return None


def webp_lossless(data: bytes) -> bool:
    """Whether a WebP's image is a VP8L (lossless) bitstream."""
    return next((kind == b"VP8L" for kind, _ in webp_chunks(data) if kind in (b"VP8 ", b"VP8L")), False)


def more_frames(data: bytes) -> str | None:
    """What a photo holds beyond the one picture blurcli reads, in words (an animation's other
    frames, a TIFF's other pages), or None: said on the file's record, never dropped silently."""
    fmt = sniff_format(data)
    if fmt == ".png" and any(kind == b"acTL" for kind, _ in png_metadata_chunks(data)):
        return "an animated PNG: only its first frame was read"
    if fmt == ".webp" and any(kind in (b"ANIM", b"ANMF") for kind, _ in webp_chunks(data)):
        return "an animated WebP: only its first frame was read"
    if fmt == ".tif" and _tiff_next_page(data):
        return "a TIFF of several pages: only its first page was read"
    return None


def _tiff_next_page(tiff: bytes) -> bool:
    """Whether a TIFF's first IFD links to another (a second page)."""
    try:
        order, ifd, count = _first_ifd(tiff)
        end = ifd + 2 + 12 * count
        (following,) = struct.unpack(order + "I", tiff[end : end + 4])
    except struct.error:
        return False
    return following != 0
