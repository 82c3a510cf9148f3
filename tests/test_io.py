"""Image IO: clear one-line errors for bad files, faithful round trips, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from blurcli.errors import BlurcliError
from blurcli.io import decode_image, encode_image, read_image, sniff_format, write_bytes_atomic, write_image

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


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "locked.jpg"
    path.write_bytes(EXAMPLE.read_bytes())
    path.chmod(0)
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
