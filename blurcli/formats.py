"""Which image formats blurcli reads and writes, by extension: the tables, and the one spelling of each."""

from __future__ import annotations

from blurcli.errors import BlurcliError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")  # read and written
READ_ONLY_EXTENSIONS = (".heic", ".heif", ".avif")  # phone formats: read, written as JPEG
INPUT_EXTENSIONS = IMAGE_EXTENSIONS + READ_ONLY_EXTENSIONS
FORMAT_NAMES = {".jpg": "JPEG", ".png": "PNG", ".webp": "WebP", ".bmp": "BMP", ".tif": "TIFF"}
_SAME_FORMAT = {".jpeg": ".jpg", ".tiff": ".tif"}


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


def same_format(first: str | None, second: str | None) -> bool:
    """Whether two extensions name one format ('.jpeg' is '.jpg')."""
    return first is not None and _SAME_FORMAT.get(first, first) == _SAME_FORMAT.get(second or "", second)
