"""Image IO: clear one-line errors for bad files, faithful round trips, atomic writes."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from blurcli.decode import decode_image, decode_photo
from blurcli.encode import encode_image, encode_photo
from blurcli.errors import BlurcliError
from blurcli.files import write_bytes_atomic
from blurcli.metadata import exif_orientation, image_size, sniff_format
from blurcli.photo import Photo, read_image, write_image

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def _gradient(height: int = 24, width: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return np.stack([yy * 8, xx * 6, (yy + xx) * 3], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_lossless_formats_round_trip_exactly(tmp_path: Path, ext: str) -> None:
    image = _gradient()
    write_image(tmp_path / f"x{ext}", image)
    np.testing.assert_array_equal(read_image(tmp_path / f"x{ext}"), image)


def test_images_are_rgb(tmp_path: Path) -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 255  # red in RGB
    write_image(tmp_path / "red.png", image)
    assert read_image(tmp_path / "red.png")[0, 0].tolist() == [255, 0, 0]


def test_jpeg_quality_changes_size() -> None:
    image = read_image(EXAMPLE)
    assert len(encode_image(image, ".jpg", 30)) < len(encode_image(image, ".jpg", 95))


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(BlurcliError, match=r"nope\.jpg: no such file"):
        read_image(tmp_path / "nope.jpg")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(BlurcliError, match="is a directory"):
        read_image(tmp_path)


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("hello")
    with pytest.raises(BlurcliError, match=r"notes\.jpg: not an image"):
        read_image(tmp_path / "notes.jpg")


def test_empty_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BlurcliError, match="empty file"):
        read_image(tmp_path / "empty.png")


def test_truncated_jpeg_is_reported() -> None:
    data = EXAMPLE.read_bytes()
    with pytest.raises(BlurcliError, match="truncated JPEG"):
        decode_image(data[: len(data) // 2], "cut.jpg")


def test_truncated_png_is_reported() -> None:
    data = encode_image(_gradient(), ".png")
    with pytest.raises(BlurcliError, match="truncated PNG"):
        decode_image(data[:-20], "cut.png")


def test_bytes_after_a_pngs_end_are_ignored_as_libpng_does() -> None:
    data = encode_image(_gradient(), ".png")
    trailer = b"\x00" * 100 + b"an app's trailer after IEND"
    np.testing.assert_array_equal(decode_image(data + trailer, "x.png"), decode_image(data, "x.png"))


def test_unreadable_file_is_reported(tmp_path: Path, lock: Callable[[Path], None]) -> None:
    path = tmp_path / "locked.jpg"
    path.write_bytes(EXAMPLE.read_bytes())
    lock(path)
    with pytest.raises(BlurcliError, match="permission denied"):
        read_image(path)


def test_sniff_format_recognises_common_formats() -> None:
    image = _gradient()
    for ext in (".jpg", ".png", ".bmp", ".webp", ".tif"):
        assert sniff_format(encode_image(image, ext)) == ext
    assert sniff_format(b"hello") is None


def test_unknown_output_format_is_a_clear_error() -> None:
    with pytest.raises(BlurcliError, match=r"cannot write '\.xyz'"):
        encode_image(_gradient(), ".xyz")


def test_atomic_write_leaves_no_temp_file_and_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_bytes_atomic(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failed_encode_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(BlurcliError):
        write_image(tmp_path / "x.xyz", _gradient())
    assert list(tmp_path.iterdir()) == []


def exif_with_orientation(orientation: int, big_endian: bool = False) -> bytes:
    """A minimal EXIF blob (TIFF structure, IFD0 with an Orientation SHORT and a Make string)."""
    order = ">" if big_endian else "<"
    make = b"blurcli\x00"
    entries = struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0)
    entries += struct.pack(order + "HHII", 0x010F, 2, len(make), 8 + 2 + 2 * 12 + 4)
    ifd = struct.pack(order + "H", 2) + entries + struct.pack(order + "I", 0)
    head = b"MM\x00*" if big_endian else b"II*\x00"
    return head + struct.pack(order + "I", 8) + ifd + make


def icc_profile() -> bytes:
    """A small well-formed ICC header with one tag: enough for encoders to embed it."""
    body = b"XYZ \x00\x00\x00\x00" + struct.pack(">iii", 63190, 65536, 54061)
    table = struct.pack(">I", 1) + b"wtpt" + struct.pack(">II", 144, len(body))
    header = bytearray(128)
    struct.pack_into(">I", header, 0, 128 + len(table) + len(body))
    header[12:24] = b"mntrRGB XYZ "
    header[36:40] = b"acsp"
    struct.pack_into(">I", header, 8, 0x02100000)
    return bytes(header) + table + body


def _asymmetric(height: int = 30, width: int = 40) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:8, :12] = (250, 20, 20)  # a red block in the top-left corner
    image[-6:, :] = (20, 20, 250)  # a blue band along the bottom
    return image


def _upright_as_opencv_reads_it(data: bytes) -> np.ndarray:
    """The RGB pixels OpenCV's imdecode gives (it applies the EXIF orientation itself): the
    reference blurcli's own orientation table is checked against."""
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_exif_orientation_is_applied_like_opencv_does(ext: str, orientation: int) -> None:
    data = encode_image(_asymmetric(), ext, 100, exif=exif_with_orientation(orientation))
    photo = decode_photo(data, "x")
    np.testing.assert_array_equal(photo.pixels, _upright_as_opencv_reads_it(data))
    assert photo.pixels.shape[:2] == ((40, 30) if orientation >= 5 else (30, 40))
    assert exif_orientation(photo.exif) == 1  # pixels are upright now; the copy must say so
    assert photo.exif is not None and b"blurcli" in photo.exif  # the rest of the EXIF survives


@pytest.mark.parametrize("orientation", range(1, 9))
def test_big_endian_exif_orientation_is_applied_like_opencv_does(orientation: int) -> None:
    """Each of the eight orientations, read from big-endian ("MM") EXIF, turns the pixels as it
    does from little-endian: the red corner and blue band land where OpenCV puts them."""
    data = encode_image(_asymmetric(), ".jpg", 100, exif=exif_with_orientation(orientation, big_endian=True))
    np.testing.assert_array_equal(decode_photo(data, "x").pixels, _upright_as_opencv_reads_it(data))


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_exif_and_icc_are_carried_to_the_output(ext: str) -> None:
    source = Photo(_asymmetric(), exif=exif_with_orientation(1), icc=icc_profile())
    again = decode_photo(encode_photo(source, ext), "x")
    assert again.icc == icc_profile()
    assert again.exif is not None and b"blurcli" in again.exif


@pytest.mark.parametrize("ext", [".png", ".tif", ".jpg", ".bmp"])  # WebP has no grey mode
def test_grey_stays_grey(ext: str) -> None:
    grey = _gradient()[..., 0]
    photo = decode_photo(encode_image(grey, ext, 100), "x")
    assert photo.pixels.shape == grey.shape
    assert photo.pixels.dtype == np.uint8


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [0, 3, 4])
def test_16_bit_round_trips_exactly(ext: str, channels: int) -> None:
    rng = np.random.default_rng(0)
    shape = (20, 30) if channels == 0 else (20, 30, channels)
    pixels = rng.integers(0, 65536, shape, dtype=np.uint16)
    photo = decode_photo(encode_image(pixels, ext), "x")
    assert photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, pixels)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_alpha_round_trips_exactly(ext: str) -> None:
    rgba = np.dstack([_gradient(), np.linspace(0, 255, 24 * 32).reshape(24, 32).astype(np.uint8)])
    photo = decode_photo(encode_image(rgba, ext), "x")
    assert photo.has_alpha
    np.testing.assert_array_equal(photo.pixels, rgba)
    np.testing.assert_array_equal(photo.colour, rgba[..., :3])


def test_webp_keeps_alpha() -> None:
    rgba = np.dstack([_gradient(), np.full((24, 32), 77, np.uint8)])
    photo = decode_photo(encode_image(rgba, ".webp", 101), "x")  # quality > 100: lossless
    np.testing.assert_array_equal(photo.pixels, rgba)


def test_formats_that_cannot_hold_it_drop_alpha_and_16_bit() -> None:
    rgba16 = np.full((8, 8, 4), 65535, np.uint16)
    photo = decode_photo(encode_image(rgba16, ".jpg"), "x")
    assert photo.pixels.shape == (8, 8, 3) and photo.pixels.dtype == np.uint8
    assert photo.pixels.min() >= 250


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".tif", ".webp"])
def test_image_size_reads_the_header(ext: str) -> None:
    assert image_size(encode_image(_gradient(24, 32), ext)) == (32, 24)


def test_webp_sizes_for_lossless_and_extended_files() -> None:
    rgba = np.dstack([_gradient(24, 32), np.full((24, 32), 9, np.uint8)])
    assert image_size(encode_image(rgba, ".webp", 101)) == (32, 24)
    assert image_size(encode_image(_gradient(24, 32), ".webp", exif=exif_with_orientation(1))) == (32, 24)


def test_pixel_limit_refuses_a_bomb_before_decoding() -> None:
    data = encode_image(np.zeros((100, 200, 3), np.uint8), ".png")
    with pytest.raises(
        BlurcliError, match=r"bomb\.png: 200x100 is 20,000 pixels, over the limit of 19,999 pixels"
    ):
        decode_photo(data, "bomb.png", max_pixels=19_999)
    assert decode_photo(data, "ok.png", max_pixels=20_000).pixels.shape == (100, 200, 3)


def test_decode_image_is_upright_rgb() -> None:
    data = encode_image(_asymmetric(), ".png", exif=exif_with_orientation(8))
    image = decode_image(data, "x")
    assert image.shape == (40, 30, 3)
