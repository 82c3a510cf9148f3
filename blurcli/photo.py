"""Read and write images as users have them: any common format, grey/alpha/16-bit kept, EXIF
orientation applied, EXIF/ICC carried over, bombs refused, clear errors, atomic writes.

The face over the modules that do each part: `decode` (bytes -> Photo), `encode` (Photo -> bytes),
`files` (bounded reads, atomic writes); `pixels` holds Photo itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blurcli.decode import decode_photo
from blurcli.encode import encode_image, encode_photo
from blurcli.files import read_bytes, write_file
from blurcli.limits import DEFAULT_MAX_PIXELS
from blurcli.pixels import Photo, to_rgb8

__all__ = ["Photo", "read_image", "read_photo", "write_image", "write_photo"]


def read_photo(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Image file -> upright Photo (see decode_photo)."""
    return decode_photo(read_bytes(path), str(path), max_pixels)


def read_image(path: Path | str) -> np.ndarray:
    """Image file -> (H, W, 3) uint8 RGB, upright."""
    return to_rgb8(read_photo(path).pixels)


def write_image(path: Path | str, image: np.ndarray, quality: int = 95) -> None:
    """Encode by `path`'s extension and write atomically."""
    path = Path(path)
    write_file(path, encode_image(image, path.suffix, quality))


def write_photo(path: Path | str, photo: Photo, quality: int = 95) -> None:
    """Encode a Photo (with its metadata) by `path`'s extension and write atomically."""
    path = Path(path)
    write_file(path, encode_photo(photo, path.suffix, quality))
