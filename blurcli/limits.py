"""How big an input may be: photos of more pixels than --max-pixels refused from their headers,
before anything is decoded (bombs), and the bytes one input may hold."""

from __future__ import annotations

from blurcli.errors import BlurcliError
from blurcli.formats import FORMAT_NAMES
from blurcli.metadata import MAX_METADATA_BYTES, image_size, sniff_format

DEFAULT_MAX_PIXELS = 120_000_000  # above any phone or most cameras; a bigger file is likely a bomb


def check_size(
    data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS, size: tuple[int, int] | None = None
) -> None:
    """Refuse an image whose header declares more than `max_pixels`, before decoding anything;
    `size` (width, height) for formats whose size `metadata.image_size` cannot read. A file of a
    format whose header says its size, but whose header does not, is refused too: the decoder
    might still find one, unchecked."""
    size = size or image_size(data)
    fmt = sniff_format(data)
    if size is None and fmt in FORMAT_NAMES:
        raise BlurcliError(f"{source}: damaged {FORMAT_NAMES[fmt]} (no image size in its header)")
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


def input_limit(max_pixels: int) -> int:
    """The most bytes one input may hold: its pixels stored raw at 16-bit RGBA, plus room for
    metadata; a pipe or file longer than that is no photo --max-pixels admits."""
    return 8 * max_pixels + 4 * MAX_METADATA_BYTES
