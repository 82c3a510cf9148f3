"""Small valid images in every format blurcli reads, and Hypothesis strategies that damage them.

Shared by tests/test_fuzz.py (a short, reproducible run in CI) and benchmarks/fuzz_images.py (a
long run that counts outcomes and saves reproducers). A `Mutant` is a recipe, not just bytes:
`base_image(fmt, width, height, seed)` and a list of primitive steps that `apply` replays, so its
repr is a reproducer:

    from tests.image_mutations import apply, base_image
    data = apply(base_image("jpeg", 40, 30, 1), [("flip", 117, 3)])

Steps: ("truncate", n) keeps the first n bytes; ("flip", offset, bit); ("set", offset, bytes)
overwrites; ("delete", start, end); ("insert", offset, bytes).

Mutation kinds (`KINDS`): truncate, cut (a range removed from the middle, so end markers such as
JPEG's EOI and PNG's IEND survive), bitflip and overwrite (anywhere), insert (stray bytes,
anywhere or between chunks), header (the first 64 bytes), field (a structural field: PNG chunk
lengths, CRCs and IHDR; JPEG segment lengths, SOF dimensions and components, tables, scan data;
TIFF IFD entries and offsets; WebP RIFF and chunk sizes, VP8/VP8L/VP8X dimensions; EXIF inside
JPEG/PNG), chunk-drop and chunk-dup (a PNG chunk, JPEG segment, TIFF IFD entry or WebP chunk
removed or repeated, with or without fixing the count or size that covers it), metadata (an ICC
profile or EXIF blob damaged inside a well-formed container: the PNG chunk re-compressed with a
right CRC, the JPEG segment with a right length; what the codec accepts and blurcli carries to its
output), and combo (two to four of the others in a row).
"""

from __future__ import annotations

import contextlib
import functools
import resource
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from hypothesis import strategies as st

from blurcli.formats import IMAGE_EXTENSIONS
from tests.test_io import exif_with_orientation, icc_profile

Step = tuple[Any, ...]

# name -> (extension, what the encoder is given, encoder parameters, EXIF blob, ICC blob)
_FORMATS: dict[str, tuple[str, str, list[int], bytes | None, bytes | None]] = {
    "jpeg": (".jpg", "rgb8", [cv2.IMWRITE_JPEG_QUALITY, 90], None, None),
    "jpeg-progressive": (
        ".jpg",
        "rgb8",
        [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
        None,
        None,
    ),
    "jpeg-grey-rst": (
        ".jpg",
        "grey8",
        [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_RST_INTERVAL, 2],
        None,
        None,
    ),
    "jpeg-exif": (".jpg", "rgb8", [cv2.IMWRITE_JPEG_QUALITY, 90], exif_with_orientation(6), icc_profile()),
    "png-rgb8": (".png", "rgb8", [], None, None),
    "png-rgb16": (".png", "rgb16", [], None, None),
    "png-grey": (".png", "grey8", [], None, None),
    "png-rgba": (".png", "rgba8", [], None, None),
    "png-meta": (".png", "rgb8", [], exif_with_orientation(8, big_endian=True), icc_profile()),
    "webp-lossy": (".webp", "rgb8", [cv2.IMWRITE_WEBP_QUALITY, 80], None, None),
    "webp-lossy-alpha": (".webp", "rgba8", [cv2.IMWRITE_WEBP_QUALITY, 80], None, None),
    "webp-lossless": (".webp", "rgb8", [cv2.IMWRITE_WEBP_QUALITY, 101], None, None),
    "tiff-rgb8": (".tif", "rgb8", [], None, None),
    "tiff-rgba16": (
        ".tif",
        "rgba16",
        [cv2.IMWRITE_TIFF_COMPRESSION, cv2.IMWRITE_TIFF_COMPRESSION_NONE],
        None,
        None,
    ),
}
FORMATS: tuple[str, ...] = tuple(_FORMATS)
KINDS = (
    "truncate",
    "cut",
    "bitflip",
    "overwrite",
    "insert",
    "header",
    "field",
    "metadata",
    "chunk-drop",
    "chunk-dup",
    "combo",
)
# Widths and heights of the base images: small enough to be fast, big enough for a few JPEG MCUs.
WIDTHS, HEIGHTS, SEEDS = (32, 64), (24, 48), 4


def extension(fmt: str) -> str:
    """The file extension of format `fmt` ('.jpg', '.png', '.webp', '.tif')."""
    return _FORMATS[fmt][0]


# Base images


def picture(width: int, height: int, seed: int, kind: str = "rgb8") -> np.ndarray:
    """A small picture with structure (gradients, shapes, noise, an alpha oval), BGR(A) as OpenCV
    writes it; `kind` is rgb8, rgb16, grey8, rgba8 or rgba16."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height) + 64], axis=-1)
    for _ in range(3):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.circle(image, centre, int(rng.integers(3, max(4, height // 3))), colour, -1)
    top_left = (int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2)))
    cv2.rectangle(image, top_left, (top_left[0] + width // 3, top_left[1] + height // 4), (30, 200, 90), -1)
    cv2.line(image, (0, height - 1), (width - 1, 0), (250, 250, 250), 1)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    image = np.clip(image, 0, 255)
    deep = kind.endswith("16")
    if deep:
        image = np.clip(image * 257 + rng.uniform(-128, 128, image.shape), 0, 65535).astype(np.uint16)
    else:
        image = image.astype(np.uint8)
    if kind.startswith("grey"):
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if kind.startswith("rgba"):
        alpha = np.zeros((height, width), np.float32)
        cv2.ellipse(alpha, (width // 2, height // 2), (width // 3, height // 3), 0, 0, 360, 1.0, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 2) * (65535 if deep else 255)
        return np.dstack([image, alpha.astype(image.dtype)])
    return image


@functools.lru_cache(maxsize=1024)
def base_image(fmt: str, width: int, height: int, seed: int) -> bytes:
    """A valid encoded image of format `fmt` (see FORMATS): width x height, content from `seed`."""
    ext, kind, params, exif, icc = _FORMATS[fmt]
    pixels = picture(width, height, seed, kind)
    kinds, blobs = [], []
    for meta_kind, blob in ((cv2.IMAGE_METADATA_EXIF, exif), (cv2.IMAGE_METADATA_ICCP, icc)):
        if blob:
            kinds.append(meta_kind)
            blobs.append(np.frombuffer(blob, np.uint8))
    if kinds:
        ok, buffer = cv2.imencodeWithMetadata(ext, pixels, kinds, blobs, params)
    else:
        ok, buffer = cv2.imencode(ext, pixels, params)
    assert ok, f"OpenCV could not encode {fmt}"
    return buffer.tobytes()


# Replaying steps


def apply(data: bytes, steps: Sequence[Step]) -> bytes:
    """`data` with `steps` applied in order (see the module's docstring); offsets past the end clip."""
    out = bytearray(data)
    for step in steps:
        op = step[0]
        if op == "truncate":
            del out[step[1] :]
        elif op == "flip":
            if step[1] < len(out):
                out[step[1]] ^= 1 << step[2]
        elif op == "set":
            offset, blob = step[1], step[2][: max(0, len(out) - step[1])]
            out[offset : offset + len(blob)] = blob
        elif op == "delete":
            del out[step[1] : step[2]]
        elif op == "insert":
            out[step[1] : step[1]] = step[2]
        else:
            raise ValueError(f"unknown step {step!r}")
    return bytes(out)


@dataclass(frozen=True)
class Mutant:
    """A damaged image: the base image's recipe, the mutation kind and the steps that damaged it."""

    fmt: str
    width: int
    height: int
    seed: int
    kind: str
    steps: tuple[Step, ...]
    labels: tuple[str, ...] = field(default=(), compare=False)  # what each step aimed at, for people

    @property
    def base(self) -> bytes:
        return base_image(self.fmt, self.width, self.height, self.seed)

    @property
    def data(self) -> bytes:
        return apply(self.base, self.steps)

    @property
    def extension(self) -> str:
        return extension(self.fmt)

    def reproducer(self) -> str:
        """Python that rebuilds the bytes (run from the repository root)."""
        return (
            "from tests.image_mutations import apply, base_image\n"
            f"data = apply(base_image({self.fmt!r}, {self.width}, {self.height}, {self.seed}), "
            f"{list(self.steps)!r})\n"
            f"# {self.kind}: {'; '.join(self.labels)}\n"
        )

    def __repr__(self) -> str:
        return (
            f"Mutant({self.fmt!r}, {self.width}, {self.height}, {self.seed}, {self.kind!r}, "
            f"{self.steps!r}, labels={self.labels!r})"
        )


# Where the structure is: fields worth damaging and chunks worth dropping or repeating


@dataclass(frozen=True)
class Region:
    """Bytes worth damaging: a number (`order` '>' or '<', `size` 1-4 bytes) or a blob (order None)."""

    label: str
    start: int
    size: int
    order: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A unit of the file's structure, data[start:end]; `fixups` are (offset, size, order, delta per
    copy): counts or sizes that cover the chunk, which a careful tool would adjust."""

    label: str
    start: int
    end: int
    fixups: tuple[tuple[int, int, str, int], ...] = ()


def layout(fmt: str, data: bytes) -> tuple[list[Region], list[Chunk]]:
    """The regions and chunks of `data` as far as they can be parsed; never raises."""
    parse = {".jpg": _jpeg_layout, ".png": _png_layout, ".webp": _webp_layout, ".tif": _tiff_layout}
    regions: list[Region] = []
    chunks: list[Chunk] = []
    with contextlib.suppress(struct.error, IndexError, ValueError):
        parse[extension(fmt)](data, regions, chunks)
    size = len(data)
    regions = [r for r in regions if 0 <= r.start < size and r.size > 0]
    regions = [Region(r.label, r.start, min(r.size, size - r.start), r.order) for r in regions]
    regions = [r for r in regions if r.order is None or r.start + r.size <= size]
    chunks = [c for c in chunks if 0 <= c.start < c.end <= size]
    return regions, chunks


def _png_layout(data: bytes, regions: list[Region], chunks: list[Chunk]) -> None:
    regions.append(Region("png signature", 0, 8))
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        name = kind.decode("latin-1")
        body, end = pos + 8, pos + 12 + length
        regions += [
            Region(f"png {name} length", pos, 4, ">"),
            Region(f"png {name} type", pos + 4, 4),
            Region(f"png {name} crc", body + length, 4, ">"),
        ]
        if kind == b"IHDR":
            regions += [
                Region("png IHDR width", body, 4, ">"),
                Region("png IHDR height", body + 4, 4, ">"),
                Region("png IHDR bit depth", body + 8, 1, ">"),
                Region("png IHDR colour type", body + 9, 1, ">"),
                Region("png IHDR compression/filter/interlace", body + 10, 3),
            ]
        elif kind == b"IDAT":
            regions += [Region("png IDAT zlib header", body, 2, ">"), Region("png IDAT data", body, length)]
        elif kind == b"eXIf":
            _tiff_structure(data, body, "png eXIf", regions, [])
        elif length:
            regions.append(Region(f"png {name} data", body, length))
        chunks.append(Chunk(f"png {name}", pos, min(end, len(data))))
        if kind == b"IEND":
            break
        pos = end


_JPEG_NAMES = {0xC4: "DHT", 0xDB: "DQT", 0xDA: "SOS", 0xDD: "DRI", 0xFE: "COM"}
_JPEG_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_layout(data: bytes, regions: list[Region], chunks: list[Chunk]) -> None:
    regions.append(Region("jpeg SOI", 0, 2))
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == 0xD9:
            regions.append(Region("jpeg EOI", pos, 2))
            return
        name = _JPEG_NAMES.get(marker) or (
            f"SOF{marker - 0xC0}"
            if marker in _JPEG_SOF
            else f"APP{marker - 0xE0}"
            if marker >= 0xE0
            else f"{marker:02X}"
        )
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        regions += [
            Region(f"jpeg {name} marker", pos + 1, 1, ">"),
            Region(f"jpeg {name} length", pos + 2, 2, ">"),
        ]
        if marker in _JPEG_SOF:
            count = data[pos + 9]
            regions += [
                Region(f"jpeg {name} precision", pos + 4, 1, ">"),
                Region(f"jpeg {name} height", pos + 5, 2, ">"),
                Region(f"jpeg {name} width", pos + 7, 2, ">"),
                Region(f"jpeg {name} components", pos + 9, 1, ">"),
            ]
            for index in range(count):
                regions += [
                    Region(f"jpeg {name} component {index} sampling", pos + 11 + 3 * index, 1, ">"),
                    Region(f"jpeg {name} component {index} table", pos + 12 + 3 * index, 1, ">"),
                ]
        elif marker == 0xDD:
            regions.append(Region("jpeg DRI interval", pos + 4, 2, ">"))
        elif marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            _tiff_structure(data, pos + 10, "jpeg EXIF", regions, [])
        elif length > 2:
            regions.append(Region(f"jpeg {name} body", pos + 4, length - 2))
        if marker == 0xDA:  # the scan's entropy-coded data runs to the next marker that is not RSTn
            scan = end
            while True:
                scan = data.find(b"\xff", scan)
                if scan < 0 or scan + 1 >= len(data):
                    scan = len(data)
                    break
                if data[scan + 1] == 0 or 0xD0 <= data[scan + 1] <= 0xD7:
                    scan += 2
                    continue
                break
            regions.append(Region("jpeg scan data", end, scan - end))
            chunks.append(Chunk("jpeg SOS+scan", pos, scan))
            pos = scan
            continue
        chunks.append(Chunk(f"jpeg {name}", pos, min(end, len(data))))
        pos = end


def jpeg_scan_ranges(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each scan's entropy-coded data in a JPEG."""
    regions, _ = layout("jpeg", data)
    return [(r.start, r.start + r.size) for r in regions if r.label == "jpeg scan data"]


_TIFF_TAGS = {
    256: "width",
    257: "height",
    258: "bits per sample",
    259: "compression",
    262: "photometric",
    273: "strip offsets",
    274: "orientation",
    277: "samples per pixel",
    278: "rows per strip",
    279: "strip byte counts",
    284: "planar config",
    317: "predictor",
    338: "extra samples",
    339: "sample format",
}
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def _tiff_layout(data: bytes, regions: list[Region], chunks: list[Chunk]) -> None:
    _tiff_structure(data, 0, "tiff", regions, chunks)


def _tiff_structure(data: bytes, base: int, name: str, regions: list[Region], chunks: list[Chunk]) -> None:
    """A TIFF structure at `base` (a TIFF file, or EXIF inside a JPEG or PNG): header, first IFD,
    its entries (each a chunk whose count is the IFD's entry count) and the data they point to."""
    head = data[base : base + 4]
    if head not in (b"II*\x00", b"MM\x00*"):
        return
    order = "<" if head[:2] == b"II" else ">"
    regions += [Region(f"{name} byte order", base, 4), Region(f"{name} IFD offset", base + 4, 4, order)]
    (ifd,) = struct.unpack(order + "I", data[base + 4 : base + 8])
    at = base + ifd
    (count,) = struct.unpack(order + "H", data[at : at + 2])
    regions.append(Region(f"{name} IFD entry count", at, 2, order))
    strips: dict[int, tuple[int, int, int]] = {}
    for index in range(min(count, 64)):
        entry = at + 2 + 12 * index
        tag, kind, number = struct.unpack(order + "HHI", data[entry : entry + 8])
        label = f"{name} {_TIFF_TAGS.get(tag, f'tag {tag}')}"
        regions += [
            Region(f"{label} tag", entry, 2, order),
            Region(f"{label} type", entry + 2, 2, order),
            Region(f"{label} count", entry + 4, 4, order),
            Region(
                f"{label} value",
                entry + 8,
                4 if _TIFF_TYPE_SIZES.get(kind, 1) * number > 4 or kind == 4 else 2,
                order,
            ),
        ]
        chunks.append(Chunk(f"{label} entry", entry, entry + 12, ((at, 2, order, 1),)))
        if tag in (273, 279) and number == 1 and kind in (3, 4):
            code = "H" if kind == 3 else "I"
            (value,) = struct.unpack(order + code, data[entry + 8 : entry + 8 + struct.calcsize(code)])
            strips[tag] = (value, entry, kind)
        elif _TIFF_TYPE_SIZES.get(kind, 1) * number > 4:  # the values live elsewhere: damage them too
            (pointer,) = struct.unpack(order + "I", data[entry + 8 : entry + 12])
            regions.append(Region(f"{label} values", base + pointer, _TIFF_TYPE_SIZES.get(kind, 1) * number))
    regions.append(Region(f"{name} next IFD offset", at + 2 + 12 * count, 4, order))
    if 273 in strips and 279 in strips:
        regions.append(Region(f"{name} strip data", base + strips[273][0], strips[279][0]))


def _webp_layout(data: bytes, regions: list[Region], chunks: list[Chunk]) -> None:
    regions += [Region("webp RIFF", 0, 4), Region("webp RIFF size", 4, 4, "<"), Region("webp WEBP", 8, 4)]
    pos = 12
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        name = fourcc.decode("latin-1").strip()
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body, end = pos + 8, pos + 8 + size + (size & 1)
        regions += [Region(f"webp {name} fourcc", pos, 4), Region(f"webp {name} size", pos + 4, 4, "<")]
        if fourcc == b"VP8 ":
            regions += [
                Region("webp VP8 frame tag", body, 3, "<"),
                Region("webp VP8 start code", body + 3, 3),
                Region("webp VP8 width", body + 6, 2, "<"),
                Region("webp VP8 height", body + 8, 2, "<"),
                Region("webp VP8 partitions", body + 10, size - 10),
            ]
        elif fourcc == b"VP8L":
            regions += [
                Region("webp VP8L signature", body, 1, "<"),
                Region("webp VP8L size bits", body + 1, 4, "<"),
                Region("webp VP8L data", body + 5, size - 5),
            ]
        elif fourcc == b"VP8X":
            regions += [
                Region("webp VP8X flags", body, 1, "<"),
                Region("webp VP8X canvas width", body + 4, 3, "<"),
                Region("webp VP8X canvas height", body + 7, 3, "<"),
            ]
        elif fourcc == b"ALPH":
            regions += [
                Region("webp ALPH header", body, 1, "<"),
                Region("webp ALPH data", body + 1, size - 1),
            ]
        else:
            regions.append(Region(f"webp {name} data", body, size))
        chunks.append(Chunk(f"webp {name}", pos, min(end, len(data)), ((4, 4, "<", end - pos),)))
        pos = end


# Strategies

_INTERESTING_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)
Draw = Callable[[st.SearchStrategy[Any]], Any]


def _byte_damage(draw: Draw, start: int, end: int) -> tuple[Step, str]:
    """One bit flip or short overwrite at an offset in [start, end)."""
    offset = draw(st.integers(start, end - 1))
    if draw(st.booleans()):
        return ("flip", offset, draw(st.integers(0, 7))), f"flip at {offset}"
    blob = draw(
        st.one_of(
            st.sampled_from(_INTERESTING_BYTES).map(lambda b: bytes([b])),
            st.binary(min_size=1, max_size=4),
            st.tuples(st.sampled_from(_INTERESTING_BYTES), st.integers(2, 4)).map(
                lambda t: bytes([t[0]]) * t[1]
            ),
        )
    )
    return ("set", offset, blob), f"set {len(blob)} bytes at {offset}"


def _number_value(draw: Draw, size: int, current: int) -> int:
    top = (1 << (8 * size)) - 1
    special = [0, 1, 2, top, top >> 1, (top >> 1) + 1, current + 1, current - 1, current * 2, current // 2]
    if size >= 2:
        special += [0x3FFF, 0x4000, 0x7FFF, 0xFFFF, 0xFFF0, current + 16, current - 16, current * 16]
    if size >= 3:
        special += [0x10000, 0xFFFFFF, 0x100000, current * 256]
    return draw(st.one_of(st.sampled_from(special), st.integers(0, top))) & top


def _truncate(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    keep = draw(st.integers(0, len(data) - 1))
    return [("truncate", keep)], [f"truncated to {keep} of {len(data)} bytes"]


def _cut(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    start = draw(st.integers(0, len(data) - 2))
    end = draw(st.integers(start + 1, min(len(data) - 1, start + max(1, len(data) // 2))))
    return [("delete", start, end)], [f"cut {start}:{end} of {len(data)}"]


def _bitflip(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    flips = draw(
        st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), min_size=1, max_size=8)
    )
    return [("flip", offset, bit) for offset, bit in flips], [f"{len(flips)} bit flips"]


def _overwrite(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    damage = [_byte_damage(draw, 0, len(data)) for _ in range(draw(st.integers(1, 4)))]
    return [step for step, _ in damage], [label for _, label in damage]


def _insert(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    _, chunks = layout(fmt, data)
    places = sorted({c.start for c in chunks} | {c.end for c in chunks})
    at = draw(st.sampled_from(places)) if places and draw(st.booleans()) else draw(st.integers(0, len(data)))
    blob = draw(
        st.one_of(
            st.sampled_from(_INTERESTING_BYTES).map(lambda b: bytes([b])),
            st.binary(min_size=1, max_size=8),
        )
    )
    return [("insert", at, blob)], [f"inserted {len(blob)} bytes at {at}"]


def _header(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    end = min(64, len(data))
    damage = [_byte_damage(draw, 0, end) for _ in range(draw(st.integers(1, 4)))]
    return [step for step, _ in damage], [f"header: {label}" for _, label in damage]


def _field(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    regions, _ = layout(fmt, data)
    if not regions:
        return _overwrite(draw, fmt, data)
    region = draw(st.sampled_from(regions))
    if region.order is None:
        step, label = _byte_damage(draw, region.start, region.start + region.size)
        return [step], [f"{region.label}: {label}"]
    raw = data[region.start : region.start + region.size]
    current = int.from_bytes(raw, "big" if region.order == ">" else "little")
    value = _number_value(draw, region.size, current)
    blob = value.to_bytes(region.size, "big" if region.order == ">" else "little")
    return [("set", region.start, blob)], [f"{region.label} {current} -> {value}"]


def _fixups(draw: Draw, chunk: Chunk, data: bytes, sign: int) -> tuple[list[Step], str]:
    """Steps that adjust the counts/sizes covering `chunk` (each at an offset before it), or none."""
    if not chunk.fixups or not draw(st.booleans()):
        return [], " (sizes left as they were)" if chunk.fixups else ""
    steps = []
    for offset, size, order, delta in chunk.fixups:
        endian = "big" if order == ">" else "little"
        value = (int.from_bytes(data[offset : offset + size], endian) + sign * delta) % (1 << (8 * size))
        steps.append(("set", offset, value.to_bytes(size, endian)))
    return steps, " (sizes fixed)"


def _payload_damage(draw: Draw, payload: bytes) -> tuple[bytes, str]:
    """A metadata payload (ICC profile, EXIF) damaged: cut short, bytes flipped or a number set."""
    how = draw(st.sampled_from(["truncate", "flip", "number", "zero"] if payload else ["zero"]))
    if how == "truncate":
        keep = draw(st.integers(0, len(payload) - 1))
        return payload[:keep], f"cut to {keep} of {len(payload)} bytes"
    if how == "flip":
        out = bytearray(payload)
        offsets = draw(st.lists(st.integers(0, len(payload) - 1), min_size=1, max_size=4))
        for offset in offsets:
            out[offset] ^= 1 << draw(st.integers(0, 7))
        return bytes(out), f"{len(offsets)} bit flips"
    if how == "number":
        offset = draw(st.integers(0, len(payload) - 1))
        size = min(len(payload) - offset, draw(st.sampled_from([1, 2, 4])))
        value = _number_value(draw, size, 0).to_bytes(size, draw(st.sampled_from(["big", "little"])))
        return payload[:offset] + value + payload[offset + size :], f"{size} bytes at {offset} set"
    size = draw(st.integers(0, 300))
    return bytes(size), f"{size} zero bytes"


def _metadata(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    _, chunks = layout(fmt, data)
    wrapped = [c for c in chunks if c.label in ("png iCCP", "png eXIf", "jpeg APP1", "jpeg APP2")]
    if not wrapped:
        return _field(draw, fmt, data)
    chunk = draw(st.sampled_from(wrapped))
    raw = data[chunk.start : chunk.end]
    if chunk.label == "png iCCP":
        name, _, rest = raw[8:-4].partition(b"\x00")
        try:
            profile = zlib.decompress(rest[1:])
        except zlib.error:
            return _field(draw, fmt, data)
        damaged, note = _payload_damage(draw, profile)
        body = name + b"\x00\x00" + zlib.compress(damaged)
        new = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    elif chunk.label == "png eXIf":
        damaged, note = _payload_damage(draw, raw[8:-4])
        new = struct.pack(">I", len(damaged)) + b"eXIf" + damaged
        new += struct.pack(">I", zlib.crc32(b"eXIf" + damaged))
    else:  # APP1 "Exif\0\0" + TIFF, or APP2 "ICC_PROFILE\0" + sequence number + count + profile
        head = 10 if raw[4:10] == b"Exif\x00\x00" else 18 if raw[4:16] == b"ICC_PROFILE\x00" else 4
        damaged, note = _payload_damage(draw, raw[head:])
        body = raw[4:head] + damaged
        if len(body) + 2 > 0xFFFF:
            return _field(draw, fmt, data)
        new = raw[:2] + struct.pack(">H", len(body) + 2) + body
    steps: list[Step] = [("delete", chunk.start, chunk.end), ("insert", chunk.start, new)]
    return steps, [f"{chunk.label} payload: {note}"]


def _chunk_drop(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    _, chunks = layout(fmt, data)
    if not chunks:
        return _cut(draw, fmt, data)
    chunk = draw(st.sampled_from(chunks))
    fixes, note = _fixups(draw, chunk, data, -1)
    return [*fixes, ("delete", chunk.start, chunk.end)], [f"dropped {chunk.label}{note}"]


def _chunk_dup(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    _, chunks = layout(fmt, data)
    if not chunks:
        return _overwrite(draw, fmt, data)
    chunk = draw(st.sampled_from(chunks))
    places = sorted({c.start for c in chunks} | {c.end for c in chunks})
    at = draw(st.sampled_from(places)) if draw(st.booleans()) else chunk.end  # mostly right after itself
    fixes, note = _fixups(draw, chunk, data, +1)
    return [*fixes, ("insert", at, data[chunk.start : chunk.end])], [f"repeated {chunk.label} at {at}{note}"]


_SINGLE = {
    "truncate": _truncate,
    "cut": _cut,
    "bitflip": _bitflip,
    "overwrite": _overwrite,
    "insert": _insert,
    "header": _header,
    "field": _field,
    "metadata": _metadata,
    "chunk-drop": _chunk_drop,
    "chunk-dup": _chunk_dup,
}


def _combo(draw: Draw, fmt: str, data: bytes) -> tuple[list[Step], list[str]]:
    steps: list[Step] = []
    labels: list[str] = []
    for _ in range(draw(st.integers(2, 4))):
        if len(data) < 2:
            break
        kind = draw(st.sampled_from([k for k in _SINGLE if k != "truncate"]))
        more, notes = _SINGLE[kind](draw, fmt, data)
        data = apply(data, more)
        steps += more
        labels += notes
    return steps, labels


_MUTATORS = {**_SINGLE, "combo": _combo}


@st.composite
def mutants(draw: Draw, formats: Sequence[str] = FORMATS, kinds: Sequence[str] = KINDS) -> Mutant:
    """A damaged image: one of `formats` (see FORMATS), damaged one of the `kinds` of ways (KINDS)."""
    fmt = draw(st.sampled_from(list(formats)))
    width = draw(st.integers(*WIDTHS))
    height = draw(st.integers(*HEIGHTS))
    seed = draw(st.integers(0, SEEDS - 1))
    kind = draw(st.sampled_from(list(kinds)))
    steps, labels = _MUTATORS[kind](draw, fmt, base_image(fmt, width, height, seed))
    return Mutant(fmt, width, height, seed, kind, tuple(steps), tuple(labels))


# The contract every damaged input must keep, as reasons (None: kept), for tests/test_fuzz.py to
# assert and benchmarks/fuzz_images.py to count.


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def photo_problem(photo: object, max_pixels: int) -> str | None:
    """Why a decoded Photo is not sane (pixels, size, format, metadata types), or None."""
    pixels = getattr(photo, "pixels", None)
    if not isinstance(pixels, np.ndarray):
        return "no pixel array"
    if pixels.dtype not in (np.uint8, np.uint16):
        return f"dtype {pixels.dtype}"
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (3, 4)):
        return f"shape {pixels.shape}"
    if not 0 < pixels.shape[0] * pixels.shape[1] <= max_pixels:
        return f"{pixels.shape[1]}x{pixels.shape[0]} pixels"
    if getattr(photo, "format", None) not in (*IMAGE_EXTENSIONS, None):
        return f"format {getattr(photo, 'format', None)!r}"
    for name in ("exif", "icc"):
        if not isinstance(getattr(photo, name, None), (bytes, type(None))):
            return f"{name} is not bytes"
    return None


def error_problem(message: str, source: str) -> str | None:
    """Why a BlurcliError's message is not a clean one-line error naming `source`, or None."""
    if "\n" in message or "\r" in message:
        return f"message spans lines: {message!r}"
    if not message.startswith(source):
        return f"message does not start with the file's name: {message!r}"
    return None


def files_problem(results: Sequence[Any], source: Path, out: Path, data: bytes) -> str | None:
    """Why the results of blur_files/predict_files on one input `source` (written from `data`, its
    outputs under `out`) break the contract, or None: one result, 'done' with its output, or
    'failed' in one line naming the file with nothing left; the input untouched, no temp file."""
    left = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    if source.read_bytes() != data:
        return "the input file changed"
    if any(name.endswith(".part") for name in left):
        return f"temp file left: {left}"
    if len(results) != 1:
        return f"{len(results)} results for one input"
    result = results[0]
    if result.status == "done":
        return None if result.output and Path(result.output).is_file() else f"done without output: {result}"
    if result.status != "failed":
        return f"status {result.status!r}"
    if not result.error or "\n" in result.error or str(source) not in result.error:
        return f"error not one line naming the file: {result.error!r}"
    return f"failed but left {left}" if left else None
