"""Phone photos (HEIC/HEIF, AVIF): sniffed by brand, decoded upright once, metadata kept, clear errors."""

from __future__ import annotations

import io
import struct
import sys
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from blurcli.decode import decode_photo
from blurcli.encode import encode_image, encode_photo
from blurcli.errors import BlurcliError
from blurcli.heif import decode_heif
from blurcli.metadata import exif_orientation, heif_format

RED, BLUE = (255, 0, 0), (0, 0, 255)
PIP = 'pip install "blurcli[heif]"'


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    """An ftyp box as a HEIF file begins."""
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body


def _halves(height: int = 16, width: int = 32) -> np.ndarray:
    """(H, W, 3) uint8: red left half, blue right half; any rotation or mirroring shows."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:, : width // 2], pixels[:, width // 2 :] = RED, BLUE
    return pixels


def _exif(orientation: int) -> bytes:
    """An EXIF blob ('Exif\\0\\0' + TIFF) with an orientation and a camera maker."""
    exif = pytest.importorskip("PIL.Image").Exif()
    exif[0x0112], exif[0x010F] = orientation, "Maker"
    return exif.tobytes()


def _icc() -> bytes:
    image_cms = pytest.importorskip("PIL.ImageCms")
    return image_cms.ImageCmsProfile(image_cms.createProfile("sRGB")).tobytes()


def _heic(pixels: np.ndarray, mode: str = "RGB", **save: object) -> bytes:
    """Pixels encoded as HEIC by pillow-heif (x265); an EXIF orientation in `save` becomes irot/imir."""
    pillow_heif = pytest.importorskip("pillow_heif")
    out = io.BytesIO()
    pillow_heif.from_bytes(mode, (pixels.shape[1], pixels.shape[0]), pixels.tobytes()).save(out, **save)
    return out.getvalue()


def _avif(pixels: np.ndarray, **save: object) -> bytes:
    """Pixels encoded as AVIF by Pillow; skips where Pillow has no AVIF encoder."""
    image, features = pytest.importorskip("PIL.Image"), pytest.importorskip("PIL.features")
    if not features.check("avif"):
        pytest.skip("Pillow has no AVIF support here")
    out = io.BytesIO()
    try:
        image.fromarray(pixels).save(out, "AVIF", **save)
    except (OSError, ValueError) as error:
        pytest.skip(f"no AVIF encoder: {error}")
    return out.getvalue()


def _assert_close(actual: np.ndarray, expected: tuple[int, ...], tolerance: float = 12) -> None:
    """Mean colour within `tolerance` of `expected`: HEVC and AV1 are lossy."""
    mean = actual.reshape(-1, actual.shape[-1]).mean(axis=0)
    assert np.abs(mean - np.array(expected)).max() <= tolerance, (mean, expected)


# --- sniffing: pure, no library


@pytest.mark.parametrize(
    ("ftyp", "expected"),
    [
        (_ftyp(b"heic", b"mif1", b"heic", b"miaf"), ".heic"),  # what pillow-heif and iPhones write
        (_ftyp(b"heix", b"mif1"), ".heic"),
        (_ftyp(b"hevc", b"msf1"), ".heic"),
        (_ftyp(b"mif1", b"heic"), ".heic"),
        (_ftyp(b"mif1"), ".heic"),
        (_ftyp(b"avif", b"avif", b"mif1", b"miaf"), ".avif"),  # what Pillow writes
        (_ftyp(b"mif1", b"avif", b"miaf"), ".avif"),  # generic major brand, AVIF compatible
        (_ftyp(b"avis", b"msf1"), ".avif"),
    ],
)
def test_heif_brands_are_sniffed(ftyp: bytes, expected: str) -> None:
    assert heif_format(ftyp + b"\x00\x00\x00\x08meta") == expected


@pytest.mark.parametrize(
    "data",
    [
        encode_image(_halves(), ".jpg"),
        encode_image(_halves(), ".png"),
        _ftyp(b"isom", b"isom", b"mp42"),  # an MP4 video has an ftyp too
        _ftyp(b"crx ", b"isom"),  # a Canon CR3 raw
        b"",
    ],
)
def test_other_files_are_not_heif(data: bytes) -> None:
    assert heif_format(data) is None


@pytest.mark.parametrize("cut", [7, 10, 15, 20])
def test_truncated_ftyp_is_not_heif(cut: int) -> None:
    assert heif_format(_ftyp(b"heic", b"mif1", b"heic")[:cut]) is None


# --- HEIC through pillow-heif


def test_heic_decodes_to_rgb_uint8_with_its_colours() -> None:
    photo = decode_heif(_heic(_halves(), quality=90), "x.heic", 10**6)
    assert photo.pixels.shape == (16, 32, 3)
    assert photo.pixels.dtype == np.uint8
    assert photo.format == ".heic"
    _assert_close(photo.pixels[:, 2:14], RED)
    _assert_close(photo.pixels[:, 18:30], BLUE)


def test_heic_alpha_is_kept_as_rgba() -> None:
    rgba = np.dstack([_halves(), np.full((16, 32), 100, np.uint8)])
    photo = decode_heif(_heic(rgba, "RGBA", quality=90), "x.heic", 10**6)
    assert photo.pixels.shape == (16, 32, 4)
    _assert_close(photo.pixels[:, 2:14], (*RED, 100))


def test_grey_heic_stays_grey() -> None:
    grey = np.full((16, 32), 77, np.uint8)
    photo = decode_heif(_heic(grey, "L", quality=90), "x.heic", 10**6)
    assert photo.pixels.shape == (16, 32)
    assert abs(photo.pixels.mean() - 77) < 4


def test_irot_is_applied_once_and_the_exif_says_upright() -> None:
    # A phone stores the sensor's pixels, an irot transform and EXIF orientation 6 (turn 90° clockwise).
    data = _heic(_halves(), quality=90, exif=_exif(6))
    assert b"irot" in data
    photo = decode_heif(data, "x.heic", 10**6)
    assert photo.pixels.shape == (32, 16, 3)  # portrait: turned once, not twice
    _assert_close(photo.pixels[2:14], RED)  # the stored left half is now on top
    _assert_close(photo.pixels[18:30], BLUE)
    assert exif_orientation(photo.exif) == 1
    assert b"Maker" in photo.exif


def test_heic_exif_orientation_without_irot_is_not_applied() -> None:
    # HEIF readers display the pixels as stored unless irot/imir say otherwise; EXIF is informational.
    upright, sideways = _exif(1)[6:], _exif(6)[6:]
    data = _heic(_halves(), quality=90, exif=_exif(1))
    assert b"irot" not in data and upright in data
    photo = decode_heif(data.replace(upright, sideways), "x.heic", 10**6)
    assert photo.pixels.shape == (16, 32, 3)
    _assert_close(photo.pixels[:, 2:14], RED)
    assert exif_orientation(photo.exif) == 1


def test_heic_icc_profile_is_kept() -> None:
    icc = _icc()
    assert decode_heif(_heic(_halves(), quality=90, icc_profile=icc), "x.heic", 10**6).icc == icc


def test_heic_exif_embeds_into_a_jpeg_once() -> None:
    photo = decode_heif(_heic(_halves(), quality=90, exif=_exif(6)), "x.heic", 10**6)
    jpeg = encode_photo(photo, ".jpg")
    app1 = jpeg.find(b"\xff\xe1")
    assert jpeg[app1 + 4 : app1 + 12] in (b"Exif\x00\x00MM", b"Exif\x00\x00II")  # no doubled header
    _, kinds, blobs = cv2.imdecodeWithMetadata(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    exif = dict(zip([int(kind) for kind in np.ravel(kinds)], blobs, strict=True))[cv2.IMAGE_METADATA_EXIF]
    assert exif_orientation(exif.tobytes()) == 1
    assert b"Maker" in exif.tobytes()
    assert decode_photo(jpeg, "x.jpg").pixels.shape == (32, 16, 3)  # stays portrait


def test_10_bit_heic_is_uint16_over_the_full_range() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pixels = np.zeros((16, 16, 3), np.uint16)
    pixels[..., 0], pixels[..., 1] = 40000, 65535
    try:
        data = _heic(pixels, "RGB;16", quality=-1, chroma=444)
    except (RuntimeError, ValueError) as error:
        pytest.skip(f"no 10-bit HEVC encoder: {error}")
    if pillow_heif.open_heif(data, convert_hdr_to_8bit=False).info["bit_depth"] != 10:
        pytest.skip("the encoder did not write 10 bits")
    photo = decode_heif(data, "x.heic", 10**6)
    assert photo.pixels.dtype == np.uint16
    assert photo.pixels[..., 1].min() == 65535  # 1023 -> 65535, not 65472 as a 6-bit shift gives
    assert photo.pixels[..., 2].max() == 0
    assert abs(int(photo.pixels[..., 0].mean()) - 40000) < 200


def test_heic_over_the_pixel_limit_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    data = _heic(_halves(), quality=90)

    def decode(_image: object) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(pillow_heif.heif.BaseImage, "load", decode)
    with pytest.raises(BlurcliError, match=r"^bomb\.heic: 32x16 is 512 pixels, over the limit"):
        decode_heif(data, "bomb.heic", max_pixels=511)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-50],  # cut inside the coded pixels
        lambda data: data[:40],  # cut inside the header
        lambda data: data[:100] + bytes(len(data) - 100),  # garbled boxes
    ],
)
def test_damaged_heic_is_one_line_naming_the_file(damage: Callable[[bytes], bytes]) -> None:
    data = damage(_heic(_halves(), quality=90))
    with pytest.raises(BlurcliError) as caught:
        decode_heif(data, "broken.heic", 10**6)
    message = str(caught.value)
    assert message.startswith("broken.heic: damaged HEIC (") and message.endswith(")")
    assert "\n" not in message


def test_missing_pillow_heif_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    with pytest.raises(BlurcliError) as caught:
        decode_heif(_ftyp(b"heic", b"mif1", b"heic"), "x.heic", 10**6)
    assert str(caught.value) == f"x.heic: HEIC/HEIF photos need pillow-heif: {PIP}"


def test_a_file_that_is_not_heif_is_refused() -> None:
    with pytest.raises(BlurcliError, match=r"^x\.png: not a HEIC/HEIF or AVIF photo$"):
        decode_heif(encode_image(_halves(), ".png"), "x.png", 10**6)


# --- AVIF through Pillow


def test_avif_decodes_upright_with_its_colours_exif_and_icc() -> None:
    icc = _icc()
    data = _avif(_halves(), quality=90, exif=_exif(6), icc_profile=icc)  # orientation -> irot
    photo = decode_heif(data, "x.avif", 10**6)
    assert photo.format == ".avif"
    assert photo.pixels.shape == (32, 16, 3)
    assert photo.pixels.dtype == np.uint8
    _assert_close(photo.pixels[2:14], RED)
    _assert_close(photo.pixels[18:30], BLUE)
    assert exif_orientation(photo.exif) == 1
    assert b"Maker" in photo.exif
    assert photo.icc == icc


def test_avif_alpha_is_kept_as_rgba() -> None:
    rgba = np.dstack([_halves(), np.full((16, 32), 100, np.uint8)])
    photo = decode_heif(_avif(rgba, quality=90), "x.avif", 10**6)
    assert photo.pixels.shape == (16, 32, 4)
    _assert_close(photo.pixels[:, 2:14], (*RED, 100))


def test_avif_over_the_pixel_limit_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _avif(_halves(), quality=90)
    from PIL import AvifImagePlugin

    def decode(_image: object) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(AvifImagePlugin.AvifImageFile, "load", decode)
    with pytest.raises(BlurcliError, match=r"^bomb\.avif: 32x16 is 512 pixels, over the limit"):
        decode_heif(data, "bomb.avif", max_pixels=511)


@pytest.mark.parametrize("cut", [40, -20])
def test_damaged_avif_is_one_line_naming_the_file(cut: int) -> None:
    with pytest.raises(BlurcliError) as caught:
        decode_heif(_avif(_halves(), quality=90)[:cut], "broken.avif", 10**6)
    message = str(caught.value)
    assert message.startswith("broken.avif: damaged AVIF (") and "\n" not in message


def test_missing_avif_support_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL._avif", None)  # what PIL.features.check("avif") imports
    with pytest.raises(BlurcliError) as caught:
        decode_heif(_ftyp(b"avif", b"mif1", b"miaf"), "x.avif", 10**6)
    assert str(caught.value).startswith("x.avif: AVIF photos need Pillow")
    assert str(caught.value).endswith(PIP)
