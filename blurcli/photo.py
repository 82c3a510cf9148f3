"""Read and write images as users have them: any common format, grey/alpha/16-bit kept, EXIF
orientation applied, EXIF/ICC carried over, bombs refused, clear errors, atomic writes."""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, TypeVar

import cv2
import numpy as np

from blurcli.codec_messages import capturing, is_damage, plain, watched
from blurcli.errors import BlurcliError
from blurcli.metadata import (
    MAX_METADATA_BYTES,
    MetadataTooLarge,
    exif_orientation,
    image_size,
    png_chunk,
    png_icc_profile,
    png_problem,
    sniff_format,
    tiff_tags,
    webp_lossless,
    with_upright_orientation,
)
from blurcli.paths import os_reason, temp_path

T = TypeVar("T")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")  # read and written
READ_ONLY_EXTENSIONS = (".heic", ".heif", ".avif")  # phone formats: read, written as JPEG
INPUT_EXTENSIONS = IMAGE_EXTENSIONS + READ_ONLY_EXTENSIONS
DEFAULT_MAX_PIXELS = 120_000_000  # above any phone or most cameras; a bigger file is likely a bomb
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
_FORMAT_NAMES = {".jpg": "JPEG", ".png": "PNG", ".webp": "WebP", ".bmp": "BMP", ".tif": "TIFF"}
_SAME_FORMAT = {".jpeg": ".jpg", ".tiff": ".tif"}
_ORIENT = {  # EXIF orientation -> how to make the stored pixels upright
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: a.swapaxes(0, 1)[::-1],
}


@dataclass(frozen=True)
class Photo:
    """A decoded photo, upright, with the metadata worth keeping.

    `pixels` is (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 or uint16; `exif` (orientation
    already reset to upright) and `icc` are raw blobs or None; `format` is the source's extension.
    """

    pixels: np.ndarray
    exif: bytes | None = None
    icc: bytes | None = None
    format: str | None = None
    grey: bool = False  # RGBA whose colour is grey (a grey + alpha PNG): written back as grey + alpha
    lossless: bool = False  # a lossless WebP: written back lossless

    @property
    def colour(self) -> np.ndarray:
        """The colour channels without alpha: (H, W) or (H, W, 3)."""
        return self.pixels[..., :3] if self.has_alpha else self.pixels

    @property
    def has_alpha(self) -> bool:
        return self.pixels.ndim == 3 and self.pixels.shape[2] == 4

    def with_colour(self, colour: np.ndarray) -> Photo:
        """The same photo with new colour channels; alpha (if any) is kept untouched."""
        if self.has_alpha:
            colour = np.concatenate([colour, self.pixels[..., 3:]], axis=-1)
        return replace(self, pixels=colour)


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Any photo's pixels -> (H, W, 3) uint8 RGB, what the model sees (alpha dropped)."""
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[..., :3]
    pixels = to_8bit(pixels)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(pixels)


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 with rounding (65535 -> 255); uint8 passes through."""
    if pixels.dtype == np.uint8:
        return pixels
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


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


def check_size(
    data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS, size: tuple[int, int] | None = None
) -> None:
    """Refuse an image whose header declares more than `max_pixels`, before decoding anything;
    `size` (width, height) for formats whose size `metadata.image_size` cannot read. A file of a
    format whose header says its size, but whose header does not, is refused too: the decoder
    might still find one, unchecked."""
    size = size or image_size(data)
    fmt = sniff_format(data)
    if size is None and fmt in _FORMAT_NAMES:
        raise BlurcliError(f"{source}: damaged {_FORMAT_NAMES[fmt]} (no image size in its header)")
    if size is not None:
        check_pixels(*size, source, max_pixels)


def check_pixels(width: int, height: int, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuse a picture (a photo, or a video's frames) of more than `max_pixels`, in one line."""
    if width * height > max_pixels:
        raise BlurcliError(
            f"{source}: {width}x{height} is {_pixels(width * height)}, over the limit of "
            f"{_pixels(max_pixels)} (raise it with --max-pixels if the file is trusted)"
        )


def _pixels(count: int) -> str:
    """A pixel count for people: '12.2 MP' for photos, '3,072 pixels' below a megapixel."""
    return f"{count / 1e6:.1f} MP" if count >= 1_000_000 else f"{count:,} pixels"


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
        from blurcli.heif import decode_heif  # optional libraries; heif.py builds on this module

        return decode_heif(data, source, max_pixels)
    check_size(data, source, max_pixels)
    problem = png_problem(data) if fmt == ".png" else None
    if problem:
        raise BlurcliError(f"{source}: damaged PNG ({problem})")
    try:
        png_icc = png_icc_profile(data) if fmt == ".png" else None
    except MetadataTooLarge as error:
        raise BlurcliError(f"{source}: {error}") from None
    pixels, kinds, blobs = _decoded(lambda: _imdecode(data), source, _FORMAT_NAMES.get(fmt or "", "image"))
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


def input_limit(max_pixels: int) -> int:
    """The most bytes one input may hold: its pixels stored raw at 16-bit RGBA, plus room for
    metadata; a pipe or file longer than that is no photo --max-pixels admits."""
    return 8 * max_pixels + 4 * MAX_METADATA_BYTES


def read_stream(stream: BinaryIO | None, source: str, limit: int | None = None) -> bytes:
    """A stream's bytes (stdin, a pipe) read to its end, but never more than `limit`: one line
    instead of reading /dev/zero or an endless pipe until the kernel ends the process."""
    if stream is None or getattr(stream, "closed", False):
        raise BlurcliError(f"{source}: standard input is closed")
    chunks, size = [], 0
    try:
        while chunk := stream.read(1 << 20 if limit is None else min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                megabytes = limit / 2**20
                raise BlurcliError(
                    f"{source}: more than {megabytes:,.0f} MB, more than any photo --max-pixels admits"
                )
    except (OSError, ValueError) as error:  # ValueError: a stream closed under us
        raise BlurcliError(
            f"{source}: cannot read ({os_reason(error) if isinstance(error, OSError) else error})"
        ) from None
    return b"".join(chunks)


def read_bytes(path: Path | str, limit: int | None = None) -> bytes:
    """A file's bytes, with one-line errors for the usual ways reading fails. Devices are refused
    and pipes read up to `limit` bytes; a file larger than `limit` is refused unread."""
    try:
        mode = Path(path).stat()
        kind = _special_kind(mode.st_mode)
        if kind is not None:
            raise BlurcliError(f"{path}: {kind}, not a photo file")
        if stat.S_ISFIFO(mode.st_mode):
            with open(path, "rb") as pipe:
                return read_stream(pipe, str(path), limit)
        if limit is not None and mode.st_size > limit:
            raise BlurcliError(
                f"{path}: {mode.st_size / 2**20:,.0f} MB, more than any photo --max-pixels admits"
            )
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BlurcliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BlurcliError(f"{path}: is a directory") from None
    except PermissionError:
        raise BlurcliError(f"{path}: permission denied") from None
    except OSError as error:
        raise BlurcliError(f"{path}: cannot read ({error.strerror or error})") from None


def _special_kind(mode: int) -> str | None:
    """What a file that is neither a regular file nor a pipe is, in words (None for those two)."""
    for test, kind in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None


def read_photo(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Image file -> upright Photo (see decode_photo)."""
    return decode_photo(read_bytes(path), str(path), max_pixels)


def read_image(path: Path | str) -> np.ndarray:
    """Image file -> (H, W, 3) uint8 RGB, upright."""
    return to_rgb8(read_photo(path).pixels)


def normalize_extension(ext: str) -> str:
    """'PNG', 'png' or '.png' -> '.png'; an unsupported format is a clear error."""
    ext = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
    if ext not in IMAGE_EXTENSIONS:
        raise BlurcliError(f"cannot write '{ext}' images (use one of {', '.join(IMAGE_EXTENSIONS)})")
    return ext


def writable_format(ext: str, keep_case: bool = False) -> str:
    """The output extension for an input's: itself, or '.jpg' for formats blurcli only reads
    (HEIC, AVIF). `keep_case` keeps '.JPG' as the user wrote it (for names), else normalised."""
    if ext.lower() in READ_ONLY_EXTENSIONS:
        return ".jpg"
    return ext if keep_case else normalize_extension(ext)


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


_EXIF, _ICC = cv2.IMAGE_METADATA_EXIF, cv2.IMAGE_METADATA_ICCP


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


def same_format(first: str | None, second: str | None) -> bool:
    """Whether two extensions name one format ('.jpeg' is '.jpg')."""
    return first is not None and _SAME_FORMAT.get(first, first) == _SAME_FORMAT.get(second or "", second)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path` (`temp_path`), then rename: readers never see a
    half-written file. The file gets the usual permissions (0666 minus the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_parts(targets: Iterable[Path]) -> list[Path]:
    """Delete temp files of these outputs left by blurcli processes that no longer run (killed
    mid-write); those of a live process (another run writing now) are left alone. Each folder is
    listed once. Returns what was removed."""
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        by_folder.setdefault(target.parent, set()).add(target.name)
    removed: list[Path] = []
    for folder, names in by_folder.items():
        try:
            parts = [entry for entry in folder.iterdir() if entry.name.endswith(".part")]
        except OSError:
            continue
        for part in parts:
            name, _, fields = part.name[1 : -len(".part")].rpartition(".")[0].rpartition(".")
            if not part.name.startswith(".") or name not in names or not fields.isdigit():
                continue
            if not _process_alive(int(fields)):
                with contextlib.suppress(OSError):
                    part.unlink()
                    removed.append(part)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def write_file(path: Path, data: bytes) -> None:
    """write_bytes_atomic with a one-line error naming the file."""
    try:
        write_bytes_atomic(path, data)
    except OSError as error:
        raise BlurcliError(f"{path}: cannot write ({os_reason(error, path)})") from None


def write_image(path: Path | str, image: np.ndarray, quality: int = 95) -> None:
    """Encode by `path`'s extension and write atomically."""
    path = Path(path)
    write_file(path, encode_image(image, path.suffix, quality))


def write_photo(path: Path | str, photo: Photo, quality: int = 95) -> None:
    """Encode a Photo (with its metadata) by `path`'s extension and write atomically."""
    path = Path(path)
    write_file(path, encode_photo(photo, path.suffix, quality))
