"""Read and write images: clear errors for bad files, atomic writes, bytes in and out for pipelines."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import cv2
import numpy as np

from blurcli.errors import BlurcliError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_MAGIC = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def sniff_format(data: bytes) -> str | None:
    """The extension that matches the file's magic bytes ('.jpg', '.png', ...), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), None)


def _truncation(data: bytes, fmt: str | None) -> str | None:
    """Why encoded bytes are visibly cut short, or None; OpenCV would decode them half grey."""
    if fmt == ".jpg":
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            return "truncated JPEG (no end-of-image marker)"
    if fmt == ".png" and b"IEND" not in data[-64:]:
        return "truncated PNG (no IEND chunk)"
    return None


def decode_image(data: bytes, source: str) -> np.ndarray:
    """Encoded bytes -> (H, W, 3) uint8 RGB; `source` names the file in errors."""
    if not data:
        raise BlurcliError(f"{source}: empty file")
    fmt = sniff_format(data)
    reason = _truncation(data, fmt)
    if reason:
        raise BlurcliError(f"{source}: {reason}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BlurcliError(f"{source}: not an image, or a format OpenCV cannot read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_bytes(path: Path) -> bytes:
    """A file's bytes, with one-line errors for the usual ways reading fails."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BlurcliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BlurcliError(f"{path}: is a directory") from None
    except PermissionError:
        raise BlurcliError(f"{path}: permission denied") from None
    except OSError as error:
        raise BlurcliError(f"{path}: cannot read ({error.strerror or error})") from None


def read_image(path: Path) -> np.ndarray:
    """Image file -> (H, W, 3) uint8 RGB (EXIF orientation applied by OpenCV)."""
    return decode_image(read_bytes(path), str(path))


def encode_image(image: np.ndarray, ext: str, quality: int = 95) -> bytes:
    """(H, W, 3) uint8 RGB or (H, W) uint8 -> encoded bytes in the format named by `ext`."""
    ext = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
    if ext not in IMAGE_EXTENSIONS:
        raise BlurcliError(f"cannot write '{ext}' images (use one of {', '.join(IMAGE_EXTENSIONS)})")
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    params = {
        ".jpg": [cv2.IMWRITE_JPEG_QUALITY, quality],
        ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality],
        ".webp": [cv2.IMWRITE_WEBP_QUALITY, quality],
    }.get(ext, [])
    ok, buffer = cv2.imencode(ext, pixels, params)
    if not ok:
        raise BlurcliError(f"could not encode the image as {ext}")
    return buffer.tobytes()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, then rename: readers never see a half-written file.

    The file gets the usual permissions (0666 minus the umask), not mkstemp's private 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_image(path: Path, image: np.ndarray, quality: int = 95) -> None:
    """Encode by `path`'s extension and write atomically."""
    try:
        write_bytes_atomic(path, encode_image(image, path.suffix, quality))
    except OSError as error:
        raise BlurcliError(f"{path}: cannot write ({error.strerror or error})") from None
