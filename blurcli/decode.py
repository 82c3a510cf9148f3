"""Encoded bytes -> Photo: EXIF orientation applied, grey/alpha/16-bit kept, EXIF and ICC carried;
bombs refused before decoding, and a file the codecs report damaged (codec_messages) fails in one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import cv2
import numpy as np

from blurcli.codec_messages import capturing, is_damage, plain, watched
from blurcli.errors import BlurcliError
from blurcli.formats import FORMAT_NAMES, READ_ONLY_EXTENSIONS
from blurcli.heif import decode_heif
from blurcli.limits import DEFAULT_MAX_PIXELS, check_size
from blurcli.metadata import (
    MetadataTooLarge,
    exif_orientation,
    png_icc_profile,
    png_problem,
    sniff_format,
    tiff_tags,
    webp_lossless,
    with_upright_orientation,
)
from blurcli.pixels import Photo, to_rgb8

T = TypeVar("T")

_ORIENT = {  # EXIF orientation -> how to make the stored pixels upright
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: a.swapaxes(0, 1)[::-1],
}

_PNG_END = b"\x00\x00\x00\x00IEND"  # the IEND chunk's length (0) and type; its CRC follows


def _truncation(data: bytes, fmt: str | None) -> str | None:
    """Why encoded bytes are visibly cut short, or None; OpenCV would decode them half grey."""
    if fmt == ".jpg":
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            return "truncated JPEG (no end-of-image marker)"
    # A PNG ends at its IEND chunk, wherever that is: bytes after it (a camera's or an app's
    # trailer) are ignored, as libpng ignores them.
    if fmt == ".png" and data.rfind(_PNG_END, 0, len(data) - 4) < 0:
        return "truncated PNG (no IEND chunk)"
    return None


def decode_photo(data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Encoded bytes -> upright Photo with grey/alpha/16-bit kept; `source` names the file in errors.

    A file the codec reports damaged (a warning on stderr, see codec_messages) fails here.
    """
    if not data:
        raise BlurcliError(f"{source}: empty file")
    fmt = sniff_format(data)
    reason = _truncation(data, fmt)
    if reason:
        raise BlurcliError(f"{source}: {reason}")
    if fmt in READ_ONLY_EXTENSIONS:
        return decode_heif(data, source, max_pixels)
    check_size(data, source, max_pixels)
    problem = png_problem(data) if fmt == ".png" else None
    if problem:
        raise BlurcliError(f"{source}: damaged PNG ({problem})")
    try:
        png_icc = png_icc_profile(data) if fmt == ".png" else None
    except MetadataTooLarge as error:
        raise BlurcliError(f"{source}: {error}") from None
    pixels, kinds, blobs = _decoded(lambda: _imdecode(data), source, FORMAT_NAMES.get(fmt or "", "image"))
    if pixels is None or pixels.size == 0:
        raise BlurcliError(f"{source}: not an image, or a format OpenCV cannot read")
    kinds = () if kinds is None else [int(kind) for kind in np.ravel(kinds)]
    found = {kind: blob.tobytes() for kind, blob in zip(kinds, blobs or (), strict=False)}
    exif = found.get(cv2.IMAGE_METADATA_EXIF)
    orientation = _tiff_orientation(data) if fmt == ".tif" else exif_orientation(exif)
    pixels = _standard_layout(pixels, source)
    if orientation in _ORIENT:
        pixels = np.ascontiguousarray(_ORIENT[orientation](pixels))
    return Photo(
        pixels=pixels,
        exif=with_upright_orientation(exif) if exif else None,
        icc=found.get(cv2.IMAGE_METADATA_ICCP) or png_icc,
        format=fmt,
        grey=fmt == ".png" and data[25:26] == b"\x04" and pixels.ndim == 3,  # IHDR colour type 4
        lossless=fmt == ".webp" and webp_lossless(data),
    )


def _imdecode(data: bytes) -> tuple[np.ndarray | None, object, object]:
    try:
        return cv2.imdecodeWithMetadata(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None, None, None


def _tiff_orientation(data: bytes) -> int:
    value = tiff_tags(data, {0x0112}).get(0x0112, (1, 0))[0]
    return value if 1 <= value <= 8 else 1


def _standard_layout(pixels: np.ndarray, source: str) -> np.ndarray:
    """OpenCV's BGR(A) uint8/uint16 -> RGB(A) or 2-D grey; other sample types are refused."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise BlurcliError(f"{source}: {pixels.dtype} samples are not supported (8- or 16-bit only)")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[..., 0]
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    raise BlurcliError(f"{source}: {pixels.shape[2]}-channel images are not supported")


def _decoded(decode: Callable[[], T], source: str, kind: str) -> T:
    """A decoder call with what the codecs print caught: a line that tells of damage fails the
    file, in one line naming it and the `kind` of file."""
    with capturing():
        result, messages = watched(decode)
    damage = [plain(line) for line in messages if is_damage(line)]
    if damage:
        raise BlurcliError(f"{source}: damaged {kind} ({damage[0]})")
    return result


def decode_pixels(data: bytes, source: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Encoded bytes -> OpenCV's pixels (BGR for colour), with what the codecs print caught as for
    photos: a damaged file is one line naming it, and nothing reaches the terminal. For datasets,
    whose files (PPM masks among them) need none of a photo's metadata."""
    pixels = _decoded(lambda: cv2.imdecode(np.frombuffer(data, np.uint8), flags), source, "image")
    if pixels is None or pixels.size == 0:
        raise BlurcliError(f"{source}: missing or not an image")
    return pixels


def decode_image(data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> (H, W, 3) uint8 RGB, upright; for code that only wants colour pixels."""
    return to_rgb8(decode_photo(data, source, max_pixels).pixels)
