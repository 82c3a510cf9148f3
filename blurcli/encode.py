"""Photo or pixels -> encoded bytes in the format an extension names, with EXIF and ICC where the
format holds them; what a format cannot hold (alpha, 16-bit) is dropped first."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

from blurcli.codec_messages import capturing, watched
from blurcli.errors import BlurcliError
from blurcli.formats import normalize_extension
from blurcli.metadata import png_chunk
from blurcli.pixels import Photo, to_8bit

# Formats OpenCV writes EXIF and ICC metadata into; its TIFF and BMP encoders take none.
_METADATA_FORMATS = (".jpg", ".jpeg", ".png", ".webp")
# What each output format can hold: (alpha channel, 16-bit samples).
_CAPABILITIES = {
    ".jpg": (False, False),
    ".jpeg": (False, False),
    ".webp": (True, False),
    ".bmp": (True, False),
    ".png": (True, True),
    ".tif": (True, True),
    ".tiff": (True, True),
}
_EXIF, _ICC = cv2.IMAGE_METADATA_EXIF, cv2.IMAGE_METADATA_ICCP


def fit_to_format(pixels: np.ndarray, ext: str) -> np.ndarray:
    """Drop what the format cannot hold: alpha for JPEG, 16-bit samples for JPEG, WebP and BMP."""
    keeps_alpha, keeps_16bit = _CAPABILITIES[normalize_extension(ext)]
    if not keeps_alpha and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[..., :3]
    return pixels if keeps_16bit else to_8bit(pixels)


def encode_image(
    image: np.ndarray,
    ext: str,
    quality: int = 95,
    exif: bytes | None = None,
    icc: bytes | None = None,
) -> bytes:
    """(H, W[, 3|4]) uint8/uint16 RGB(A) or grey -> bytes in the format named by `ext`.

    EXIF and ICC blobs are embedded where OpenCV can (JPEG, PNG, WebP); `quality` is JPEG/WebP's.
    Metadata the encoder refuses (an ICC profile libpng finds invalid) is left out, not fatal.
    """
    ext = normalize_extension(ext)
    pixels = fit_to_format(image, ext)
    if pixels.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
        pixels = cv2.cvtColor(pixels, code)
    params = {
        ".jpg": [cv2.IMWRITE_JPEG_QUALITY, quality],
        ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality],
        ".webp": [cv2.IMWRITE_WEBP_QUALITY, quality],
    }.get(ext, [])
    metadata = {
        kind: blob for kind, blob in ((_EXIF, exif), (_ICC, icc)) if blob and ext in _METADATA_FORMATS
    }
    # An encoder that refuses the metadata (libpng a bad profile) gets less: no ICC, then nothing.
    tries = [metadata] + ([{k: v for k, v in metadata.items() if k != _ICC}] if _ICC in metadata else [])
    tries += [{}] if tries[-1] else []
    with capturing():  # what the encoder prints is kept off the terminal; no line fails an encode
        for kept in tries:
            (buffer, failure), _ = watched(lambda kept=kept: _imencode(ext, pixels, kept, params), _never)
            if buffer is not None:
                return buffer
    raise BlurcliError(f"could not encode the image as {ext}" + (f" ({failure})" if failure else ""))


def _never(line: str) -> bool:
    """No encoder line decides anything (a failed encode returns no buffer)."""
    return False


def _imencode(
    ext: str, pixels: np.ndarray, metadata: dict[int, bytes], params: list[int]
) -> tuple[bytes | None, str | None]:
    """OpenCV's encoder -> (bytes, None), or (None, why) where it refuses."""
    try:
        if metadata:
            blobs = [np.frombuffer(blob, np.uint8) for blob in metadata.values()]
            ok, buffer = cv2.imencodeWithMetadata(ext, pixels, list(metadata), blobs, params)
        else:
            ok, buffer = cv2.imencode(ext, pixels, params)
    except cv2.error as error:
        return None, str(error.err)
    return (buffer.tobytes(), None) if ok else (None, None)


def encode_photo(photo: Photo, ext: str, quality: int = 95) -> bytes:
    """A Photo -> encoded bytes, carrying its EXIF and ICC where the format allows; grey + alpha
    and lossless WebP sources are written the same way back."""
    ext = normalize_extension(ext)
    pixels = photo.pixels
    if photo.grey and pixels.ndim == 3:
        if ext == ".png" and pixels.shape[2] == 4:
            return encode_grey_alpha_png(pixels[..., 0], pixels[..., 3], photo.icc)
        pixels = fit_to_format(pixels, ext)[..., 0] if not _CAPABILITIES[ext][0] else pixels
    if ext == ".webp" and photo.lossless:
        quality = 101  # OpenCV: above 100 is lossless
    return encode_image(pixels, ext, quality, photo.exif, photo.icc)


def encode_grey_alpha_png(grey: np.ndarray, alpha: np.ndarray, icc: bytes | None = None) -> bytes:
    """(H, W) grey and alpha, 8- or 16-bit -> a PNG of colour type 4, which OpenCV cannot write."""
    height, width = grey.shape
    samples = np.stack([grey, alpha], axis=-1).astype(grey.dtype.newbyteorder(">"))
    rows = samples.reshape(height, -1).view(np.uint8)
    step = 2 * grey.dtype.itemsize  # bytes per pixel: the 'Sub' filter predicts from the left pixel
    filtered = rows.copy()
    filtered[:, step:] -= rows[:, :-step]
    scanlines = np.concatenate([np.ones((height, 1), np.uint8), filtered], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8 * grey.dtype.itemsize, 4, 0, 0, 0)
    chunks = [(b"IHDR", header)]
    if icc:
        chunks.append((b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    chunks += [(b"IDAT", zlib.compress(scanlines.tobytes(), 6)), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(kind, body) for kind, body in chunks)
