"""The compositor: blur the background without the subject, then blend under the soft mask.

Works on grey or RGB, 8- or 16-bit photos of any size: full-resolution work runs a strip of rows
at a time and wide blurs run on a reduced copy, so cost and memory do not grow with blur strength.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from blurcli.resample import downsample, small_shape, strips, upsample_rows

DEFAULT_STRENGTH = 0.012
DEFAULT_FEATHER = 0.002
# Blurs wider than this (in pixels) run on a downscaled copy: same look, cost independent of sigma.
_PYRAMID_SIGMA = 6.0
_WEIGHT_FLOOR = 1e-3  # deep inside the subject, where no background is in reach, fall back to a plain blur


@dataclass(frozen=True)
class BlurOptions:
    """Blur strength and mask feather, as fractions of the image diagonal (resolution independent)."""

    strength: float = DEFAULT_STRENGTH
    feather: float = DEFAULT_FEATHER


def diagonal_sigma(shape: tuple[int, ...], fraction: float) -> float:
    """A Gaussian sigma in pixels for a fraction of the (H, W, ...) image's diagonal."""
    return fraction * math.hypot(shape[0], shape[1])


def pyramid_factor(sigma: float, height: int, width: int) -> int:
    """How much to shrink an image before blurring it by `sigma` (1: blur at full resolution)."""
    factor = int(sigma // (_PYRAMID_SIGMA / 2)) if sigma > _PYRAMID_SIGMA else 1
    return max(1, min(factor, height // 4, width // 4))


def _residual_sigma(sigma: float, factor: int) -> float:
    """The blur left to do on the image shrunk by `factor`: area averaging already spread each
    pixel over a box of variance factor^2 / 12."""
    return math.sqrt(max(sigma**2 - factor**2 / 12.0, 0.25)) / factor


def _blur(values: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(values, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W[, C]) float32 -> Gaussian-blurred copy; large sigmas are computed at reduced size."""
    if sigma <= 0:
        return image.copy()
    height, width = image.shape[:2]
    factor = pyramid_factor(sigma, height, width)
    if factor == 1:
        return _blur(image, sigma)
    small = downsample(lambda rows: image[rows], height, width, factor)
    small = _blur(small, _residual_sigma(sigma, factor))
    return np.concatenate([upsample_rows(small, factor, rows, width) for rows in strips(height)])


def background_weight(alpha: np.ndarray) -> np.ndarray:
    """Trust for each pixel as background: 1 where alpha < 0.05, 0 from alpha 0.5 up, linear between."""
    return np.clip((0.5 - alpha) / 0.45, 0.0, 1.0).astype(np.float32)


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 -> `dtype`, rounded and clipped to its range for integer types."""
    if np.issubdtype(dtype, np.integer):
        return np.clip(values + 0.5, 0, np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype, copy=False)


def normalized_blur(
    image: np.ndarray, weight: np.ndarray, sigma: float, dtype: np.dtype | None = None
) -> np.ndarray:
    """Blur of `image` that only averages pixels where `weight` is high (normalised convolution).

    (H, W[, C]) image of any dtype, (H, W) float32 weight in [0, 1] -> the blur as `dtype` (float32
    by default). Where no weighted pixel is within reach (deep inside the subject) it falls back
    to the plain blur, via a tiny floor weight. Works a strip at a time; wide blurs run shrunk.
    """
    height, width = weight.shape
    out = np.empty(image.shape, dtype or np.float32)

    def weight_rows(rows: slice) -> np.ndarray:
        return weight[rows] + _WEIGHT_FLOOR

    def weighted_rows(rows: slice) -> np.ndarray:
        w = weight_rows(rows)
        return image[rows].astype(np.float32) * (w[..., None] if image.ndim == 3 else w)

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return numerator / (denominator[..., None] if numerator.ndim == 3 else denominator)

    factor = pyramid_factor(sigma, height, width)
    if factor == 1:
        halo = math.ceil(4 * sigma) + 1  # OpenCV's float kernel reaches 4 sigma
        for rows in strips(height):
            outer = slice(max(0, rows.start - halo), min(height, rows.stop + halo))
            inner = slice(rows.start - outer.start, rows.stop - outer.start)
            blurred = ratio(_blur(weighted_rows(outer), sigma), _blur(weight_rows(outer), sigma))
            out[rows] = _cast(blurred[inner], out.dtype)
        return out
    residual = _residual_sigma(sigma, factor)
    numerator = _blur(downsample(weighted_rows, height, width, factor), residual)
    denominator = _blur(downsample(weight_rows, height, width, factor), residual)
    small = ratio(numerator, denominator)
    assert small.shape[:2] == small_shape(height, width, factor)
    for rows in strips(height):
        out[rows] = _cast(upsample_rows(small, factor, rows, width), out.dtype)
    return out


def feather_alpha(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Soften the mask edge by a Gaussian of `sigma` pixels; (H, W) float32 in [0, 1]."""
    return np.clip(gaussian_blur(alpha, sigma), 0.0, 1.0) if sigma > 0.3 else alpha


def composite(image: np.ndarray, alpha: np.ndarray, options: BlurOptions = BlurOptions()) -> np.ndarray:
    """Portrait-mode blend: (H, W[, 3]) uint8/uint16 photo, (H, W) float32 subject alpha -> same as photo."""
    if image.shape[:2] != alpha.shape:
        raise ValueError(f"alpha {alpha.shape} does not match image {image.shape[:2]}")
    sigma = diagonal_sigma(image.shape, options.strength)
    if sigma <= 0:
        return image.copy()
    alpha = feather_alpha(alpha.astype(np.float32, copy=False), diagonal_sigma(image.shape, options.feather))
    out = normalized_blur(image, background_weight(alpha), sigma, image.dtype)
    for rows in strips(image.shape[0]):
        weight = alpha[rows][..., None] if image.ndim == 3 else alpha[rows]
        background = out[rows].astype(np.float32)
        out[rows] = _cast(background + weight * (image[rows].astype(np.float32) - background), out.dtype)
    return out
