"""The compositor keeps the subject sharp, blurs the background, and does not bleed one into the other."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from blurcli.compose import BlurOptions, composite, diagonal_sigma, gaussian_blur, normalized_blur


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
