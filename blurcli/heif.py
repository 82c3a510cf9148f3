"""Read phone photos: HEIC/HEIF through pillow-heif and AVIF through Pillow, upright, EXIF and ICC kept.

Both libraries are optional and imported only when such a photo arrives. HEIF stores rotation and
mirroring as irot/imir transforms, which the decoders report or apply; the EXIF orientation of a
HEIF file is informational only, so it is reset to upright and never applied a second time.
"""

from __future__ import annotations

import io

import numpy as np

from blurcli.errors import BlurcliError, first_line
from blurcli.limits import check_size
from blurcli.metadata import TIFF_MAGIC, heif_format, with_upright_orientation
from blurcli.pixels import Photo

_INSTALL = 'pip install "blurcli[heif]"'
# What pillow-heif and Pillow raise on bad input (pillow-heif documents the first five).
_DAMAGE = (ValueError, EOFError, SyntaxError, RuntimeError, OSError, IndexError)


def decode_heif(data: bytes, source: str, max_pixels: int) -> Photo:
    """HEIC/HEIF or AVIF bytes -> upright Photo (grey/alpha kept, 10/12-bit as full-range uint16)."""
    fmt = heif_format(data)
    if fmt is None:
        raise BlurcliError(f"{source}: not a HEIC/HEIF or AVIF photo")
    return (
        _decode_avif(data, source, max_pixels) if fmt == ".avif" else _decode_heic(data, source, max_pixels)
    )


def _decode_heic(data: bytes, source: str, max_pixels: int) -> Photo:
    try:
        import pillow_heif
    except ImportError:
        raise BlurcliError(f"{source}: HEIC/HEIF photos need pillow-heif: {_INSTALL}") from None
    try:  # open_heif parses the container only; np.array decodes, with irot/imir applied
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=False, hdr_to_16bit=False)
        _refuse_oversize(heif.size, source, max_pixels)
        pixels = np.array(heif)
    except _DAMAGE as error:
        raise BlurcliError(f"{source}: damaged HEIC ({first_line(error, 120)})") from None
    return Photo(
        pixels=_full_range(_standard_channels(pixels), heif.info["bit_depth"]),
        grey=pixels.ndim == 3 and pixels.shape[2] == 2,
        exif=_upright_tiff(heif.info.get("exif")),
        icc=heif.info.get("icc_profile") or None,
        format=".heic",
    )


def _decode_avif(data: bytes, source: str, max_pixels: int) -> Photo:
    try:  # Pillow before 11.2 has no AVIF plugin; 11.3 and later wheels carry libavif
        from PIL import AvifImagePlugin, ImageOps, features

        available = features.check("avif")
    except ImportError:
        available = False
    if not available:
        raise BlurcliError(f"{source}: AVIF photos need Pillow 11.3 or newer with AVIF: {_INSTALL}")
    try:  # the plugin class itself, not Image.open: Pillow's own bomb limit would pre-empt ours
        image = AvifImagePlugin.AvifImageFile(io.BytesIO(data))
        _refuse_oversize(image.size, source, max_pixels)
        exif = image.info.get("exif")
        # Pillow reports irot/imir as the EXIF orientation (overriding the file's) and leaves pixels stored
        pixels = np.array(ImageOps.exif_transpose(image))
    except _DAMAGE as error:
        raise BlurcliError(f"{source}: damaged AVIF ({first_line(error, 120)})") from None
    return Photo(
        pixels=_standard_channels(pixels),
        grey=pixels.ndim == 3 and pixels.shape[2] == 2,
        exif=_upright_tiff(exif),
        icc=image.info.get("icc_profile") or None,
        format=".avif",
    )


def _refuse_oversize(size: tuple[int, int], source: str, max_pixels: int) -> None:
    """limits.check_size with the size the container declares (metadata.image_size cannot read it)."""
    check_size(b"", source, max_pixels, size=size)


def _standard_channels(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 2) grey+alpha -> (H, W, 4) RGBA, the layouts Photo holds; others pass through."""
    return pixels[..., [0, 0, 0, 1]] if pixels.ndim == 3 and pixels.shape[2] == 2 else pixels


def _full_range(pixels: np.ndarray, bits: int) -> np.ndarray:
    """10/12-bit samples in uint16 -> the full 0..65535 range, rounded; 8-bit passes through."""
    if pixels.dtype == np.uint8:
        return pixels
    top = 2**bits - 1
    return ((pixels.astype(np.uint32) * 65535 + top // 2) // top).astype(np.uint16)


def _upright_tiff(exif: bytes | None) -> bytes | None:
    """An EXIF blob as Photo carries it, upright: bare TIFF, as OpenCV reads it from a JPEG and writes it.

    HEIF stores EXIF after a 4-byte offset; libraries return it with or without that and 'Exif\\0\\0'.
    OpenCV adds 'Exif\\0\\0' itself when it writes a JPEG, so a prefixed blob would get it twice.
    """
    exif = exif or b""
    start = next((start for start in (0, 6, 4, 10) if exif[start : start + 4] in TIFF_MAGIC), None)
    return None if start is None else with_upright_orientation(exif[start:])
