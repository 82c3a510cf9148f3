"""The compositor keeps the subject sharp, blurs the background, and does not bleed one into the other."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from blurcli.compose import (
    BlurOptions,
    background_weight,
    blend,
    column_spans,
    composite,
    diagonal_sigma,
    disc_kernel,
    feather_alpha,
    gaussian_blur,
    hidden_factor,
    normalized_blur,
)
from blurcli.resample import enlarge, shrink


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def _checkerboard(size: int = 96, cell: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    board = (((yy // cell) + (xx // cell)) % 2 * 200 + 20).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def test_subject_pixels_are_unchanged_where_alpha_is_one() -> None:
    image = _checkerboard()
    alpha = np.zeros(image.shape[:2], np.float32)
    alpha[32:64, 32:64] = 1.0
    out = composite(image, alpha, BlurOptions(strength=0.03, feather=0.0))
    np.testing.assert_array_equal(out[32:64, 32:64], image[32:64, 32:64])


def test_background_is_blurred_where_alpha_is_zero() -> None:
    image = _checkerboard()
    out = composite(image, np.zeros(image.shape[:2], np.float32), BlurOptions(strength=0.03))
    assert out[:20, :20].std() < 0.2 * image[:20, :20].std()


def test_zero_strength_returns_the_input() -> None:
    image = _checkerboard()
    alpha = np.full(image.shape[:2], 0.3, np.float32)
    np.testing.assert_array_equal(composite(image, alpha, BlurOptions(strength=0.0, feather=0.0)), image)


def test_subject_colour_does_not_bleed_into_the_background() -> None:
    image = np.full((120, 120, 3), 20, np.uint8)
    image[40:80, 40:80] = 250  # bright subject on a dark background
    alpha = np.zeros(image.shape[:2], np.float32)
    alpha[40:80, 40:80] = 1.0
    options = BlurOptions(strength=0.05, feather=0.0)
    out = composite(image, alpha, options)
    ring = out[30:38, 40:80].astype(np.float32)  # background just outside the subject
    assert np.abs(ring - 20).max() < 3
    naive = alpha[..., None] * image + (1 - alpha[..., None]) * gaussian_blur(
        image.astype(np.float32), diagonal_sigma(image.shape, options.strength)
    )
    assert np.abs(naive[30:38, 40:80] - 20).max() > 30  # the naive blend does show a halo


@pytest.mark.parametrize("factor", [1, 2])
@pytest.mark.parametrize("kernel", ["gaussian", "disc"])
def test_background_beside_the_subject_matches_the_background_only_blur(kernel: str, factor: int) -> None:
    """No halo: around a bright subject the result equals the blur of the scene without the subject
    (to within a few levels); the naive blend of a blurred photo misses by tens of levels."""
    size = 240
    scene = _smooth_noise(np.random.default_rng(5), size) * 0.4 - 20  # dark texture, about 30 +- 5
    scene += np.linspace(0, 20, size, dtype=np.float32)[None, :, None]  # and a gentle gradient
    scene = np.clip(scene, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    alpha = (np.hypot(yy - size / 2, xx - size / 2) < 50).astype(np.float32)
    photo = scene.copy()
    photo[alpha > 0] = (250, 240, 230)  # a bright subject in front
    options = BlurOptions(strength=0.03, feather=0.0, kernel=kernel)  # type: ignore[arg-type]
    sigma = diagonal_sigma(photo.shape, options.strength)
    reference = normalized_blur(scene, np.ones(alpha.shape, np.float32), sigma, np.float32, options.kernel)
    ring = (alpha == 0) & (np.hypot(yy - size / 2, xx - size / 2) < 58)  # 8 px just outside
    ours = composite(photo, shrink(alpha, factor), options, factor).astype(np.float32)
    assert np.abs(ours[ring] - reference[ring]).max() < 6
    naive_blur = normalized_blur(photo, np.ones(alpha.shape, np.float32), sigma, np.float32, options.kernel)
    naive = alpha[..., None] * photo + (1 - alpha[..., None]) * naive_blur
    assert np.abs(naive[ring] - reference[ring]).max() > 40


def test_normalized_blur_ignores_zero_weight_pixels() -> None:
    image = np.zeros((40, 40, 3), np.float32)
    image[:, 20:] = 100.0
    weight = np.ones((40, 40), np.float32)
    weight[:, 20:] = 0.0
    out = normalized_blur(image, weight, sigma=4.0)
    assert np.abs(out[:, :18]).max() < 0.5


@pytest.mark.parametrize("sigma", [8.0, 20.0, 45.0])
def test_large_blurs_match_the_full_resolution_blur(sigma: float) -> None:
    image = _smooth_noise(np.random.default_rng(0), 400)
    reference = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    assert _psnr(gaussian_blur(image, sigma), reference) > 40


def test_disc_kernel_is_a_flat_normalised_disc() -> None:
    kernel = disc_kernel(6.0)
    assert kernel.shape == (13, 13) and kernel.sum() == pytest.approx(1.0)
    assert kernel[6, 6] == kernel[6, 9] == kernel.max()  # flat inside
    assert kernel[0, 0] == 0 and kernel[6, 0] > 0  # round: corners empty, rim reached


def _point_lights(size: int = 201) -> np.ndarray:
    """A dark frame with one small bright light in the middle (1/60 of the frame wide)."""
    image = np.full((size, size, 3), 10, np.uint8)
    half = size // 120
    image[size // 2 - half : size // 2 + half + 1, size // 2 - half : size // 2 + half + 1] = 255
    return image


@pytest.mark.parametrize("size", [201, 801])  # full resolution and the reduced-size (pyramid) path
def test_the_disc_turns_a_point_of_light_into_a_flat_disc_the_gaussian_into_a_bell(size: int) -> None:
    image = _point_lights(size)
    options = BlurOptions(strength=0.02, feather=0.0)
    radius = 2 * diagonal_sigma(image.shape, options.strength)
    background = np.zeros(image.shape[:2], np.float32)
    centre = size // 2
    disc = composite(image, background, BlurOptions(options.strength, 0.0, "disc"))[centre, :, 0].astype(
        float
    )
    bell = composite(image, background, options)[centre, :, 0].astype(float)
    glow = disc[centre - int(0.6 * radius) : centre + int(0.6 * radius) + 1] - 10
    assert glow.min() > 0.75 * glow.max() and glow.min() > 15  # a flat, clearly visible highlight
    rim = int(radius) + size // 60 + 2  # the disc, widened by the light itself
    assert np.abs(disc[: centre - rim] - 10).max() <= 1  # a crisp rim: nothing beyond it
    assert bell[centre] - 10 > 2 * (bell[centre - int(0.8 * radius)] - 10)  # the Gaussian is a bell


@pytest.mark.parametrize("sigma", [12.0, 40.0])
def test_large_disc_blurs_match_the_full_resolution_disc(sigma: float) -> None:
    image = np.clip(_smooth_noise(np.random.default_rng(1), 400), 0, 255).astype(np.uint8)
    weight = np.ones(image.shape[:2], np.float32)
    linear = (image.astype(np.float32) / 255) ** 2.2
    full = cv2.filter2D(linear, -1, disc_kernel(2 * sigma), borderType=cv2.BORDER_REFLECT)
    reference = np.clip(full ** (1 / 2.2) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert _psnr(normalized_blur(image, weight, sigma, np.uint8, "disc"), reference) > 40


def _smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    noise = rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def test_strength_is_a_fraction_of_the_diagonal() -> None:
    assert diagonal_sigma((300, 400, 3), 0.01) == pytest.approx(5.0)


def test_composite_rejects_a_mask_of_another_size() -> None:
    with pytest.raises(ValueError):
        composite(_checkerboard(), np.zeros((10, 10), np.float32))


def test_strip_wise_normalised_blur_equals_the_whole_image_formula() -> None:
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 255, (700, 90, 3)).astype(np.float32)  # taller than one strip of rows
    weight = rng.uniform(0, 1, (700, 90)).astype(np.float32)
    sigma = 4.0
    w = weight + 1e-3
    blur = lambda x: cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    expected = blur(image * w[..., None]) / blur(w)[..., None]
    np.testing.assert_allclose(normalized_blur(image, weight, sigma), expected, atol=1e-2)


@pytest.mark.parametrize("shape", [(80, 90), (80, 90, 3)])
def test_sixteen_bit_and_grey_photos_are_composited_in_kind(shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(4).integers(0, 65536, shape, dtype=np.uint16)
    alpha = np.zeros(shape[:2], np.float32)
    alpha[20:60, 30:60] = 1.0
    out = composite(image, alpha, BlurOptions(strength=0.05, feather=0.0))
    assert out.dtype == np.uint16 and out.shape == image.shape
    np.testing.assert_array_equal(out[20:60, 30:60], image[20:60, 30:60])
    assert out[:10, :10].astype(float).std() < 0.3 * image[:10, :10].astype(float).std()


def _portrait(height: int = 600, width: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo and a soft, head-like subject mask (float32) at full resolution."""
    photo = np.clip(_smooth_noise(np.random.default_rng(3), max(height, width))[:height, :width], 0, 255)
    yy, xx = np.mgrid[:height, :width]
    inside = np.hypot((yy - height * 0.45) / 1.3, xx - width / 2) < height * 0.25
    alpha = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 2.0)
    photo = photo.astype(np.uint8)
    photo[inside] = 255 - photo[inside]  # a subject unlike its background
    return photo, alpha


def test_a_mask_shrunk_by_the_hidden_factor_gives_the_full_resolution_result() -> None:
    photo, alpha = _portrait()
    options = BlurOptions()
    factor = hidden_factor(photo.shape, options)
    assert factor == 2  # the feather is 2 px on this diagonal of 1000 px
    full = composite(photo, alpha, options)
    assert _psnr(composite(photo, shrink(alpha, factor), options, factor), full) > 40
    assert _psnr(composite(photo, shrink(alpha, 4), options, 4), full) < _psnr(
        composite(photo, shrink(alpha, factor), options, factor), full
    )


def test_hidden_factor_is_the_feather_as_a_power_of_two() -> None:
    assert hidden_factor((250, 250), BlurOptions()) == 1  # LFW-sized: the feather is under 1 px
    assert hidden_factor((1080, 1920), BlurOptions()) == 4  # 4.4 px
    assert hidden_factor((3000, 4000), BlurOptions()) == 8  # 10 px
    assert hidden_factor((3000, 4000), BlurOptions(feather=0.0)) == 1


@pytest.mark.parametrize("factor", [1, 4])
def test_copying_clear_runs_equals_blending_every_pixel(factor: int) -> None:
    """The compositor blends only where the mask is neither 0 nor 1 and copies elsewhere; that must
    equal blending every pixel (to the rounding of one level)."""
    photo, alpha = _portrait(403, 517)  # sizes no factor divides
    options = BlurOptions(strength=0.03)
    small_alpha, small = shrink(alpha, factor), shrink(photo, factor)
    ours = composite(photo, small_alpha, options, factor)
    feathered = feather_alpha(small_alpha, diagonal_sigma(photo.shape, options.feather) / factor)
    sigma = diagonal_sigma(photo.shape, options.strength) / factor
    background = normalized_blur(small, background_weight(feathered), sigma, photo.dtype)
    height, width = photo.shape[:2]
    reference = blend(
        photo, enlarge(background, factor, height, width), enlarge(feathered, factor, height, width)
    )
    assert np.abs(ours.astype(int) - reference).max() <= 1
    subject, rest = feathered.min(), feathered.max()
    assert subject == 0.0 and rest == 1.0  # the photo has clear runs of both kinds


@pytest.mark.parametrize("factor", [1, 3, 4, 8])
def test_column_spans_cover_the_width_and_classify_every_column(factor: int) -> None:
    rng = np.random.default_rng(factor)
    for width in (1, 7, 61, 200):
        small = rng.choice([0.0, 1.0, 0.5], size=(6, max(1, round(width / factor)))).astype(np.float32)
        rows = slice(factor, 4 * factor)
        spans = column_spans(small, small, factor, rows, width, 0.01)
        assert spans[0][0].start == 0 and spans[-1][0].stop == width
        window = small[1:4]  # the small rows that full rows factor..4*factor-1 enlarge from
        for cols, kind in spans:
            for x in range(cols.start, cols.stop):
                column = window[:, min(x // factor, small.shape[1] - 1)]
                expected = 0 if column.max() < 0.01 else 2 if column.min() > 0.99 else 1
                assert kind == expected
