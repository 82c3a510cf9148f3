"""The compositor: blur the background without the subject, then blend under the soft mask."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_STRENGTH = 0.012
DEFAULT_FEATHER = 0.002
# Blurs wider than this (in pixels) run on a downscaled copy: same look, cost independent of sigma.
_PYRAMID_SIGMA = 6.0


@dataclass(frozen=True)
class BlurOptions:
    """Blur strength and mask feather, as fractions of the image diagonal (resolution independent)."""

    strength: float = DEFAULT_STRENGTH
    feather: float = DEFAULT_FEATHER


def diagonal_sigma(shape: tuple[int, ...], fraction: float) -> float:
    """A Gaussian sigma in pixels for a fraction of the (H, W, ...) image's diagonal."""
    return fraction * math.hypot(shape[0], shape[1])


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W[, C]) float32 -> Gaussian-blurred copy; large sigmas are computed at reduced size."""
    if sigma <= 0:
        return image.copy()
    height, width = image.shape[:2]
    factor = int(sigma // (_PYRAMID_SIGMA / 2)) if sigma > _PYRAMID_SIGMA else 1
    factor = max(1, min(factor, height // 4, width // 4))
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    small_size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
    # Area downsampling already spreads each pixel over a box of variance factor^2 / 12.
    residual = math.sqrt(max(sigma**2 - factor**2 / 12.0, 0.25)) / factor
    small = cv2.GaussianBlur(small, (0, 0), residual, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def background_weight(alpha: np.ndarray) -> np.ndarray:
    """Trust for each pixel as background: 1 where alpha < 0.05, 0 from alpha 0.5 up, linear between."""
    return np.clip((0.5 - alpha) / 0.45, 0.0, 1.0).astype(np.float32)


def normalized_blur(image: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Blur of `image` that only averages pixels where `weight` is high (normalised convolution).

    (H, W, C) float32, (H, W) float32 in [0, 1] -> (H, W, C) float32. Where no weighted pixel is
    within reach (deep inside the subject) it falls back to the plain blur, via a tiny floor weight.
    """
    floor = 1e-3
    weight = weight + floor
    numerator = gaussian_blur(image * weight[..., None], sigma)
    denominator = gaussian_blur(weight, sigma)
    return numerator / denominator[..., None]


def feather_alpha(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Soften the mask edge by a Gaussian of `sigma` pixels; (H, W) float32 in [0, 1]."""
    return np.clip(gaussian_blur(alpha, sigma), 0.0, 1.0) if sigma > 0.3 else alpha


def composite(image: np.ndarray, alpha: np.ndarray, options: BlurOptions = BlurOptions()) -> np.ndarray:
    """Portrait-mode blend: (H, W, 3) uint8 photo, (H, W) float32 subject alpha -> (H, W, 3) uint8."""
    if image.shape[:2] != alpha.shape:
        raise ValueError(f"alpha {alpha.shape} does not match image {image.shape[:2]}")
    pixels = image.astype(np.float32)
    alpha = feather_alpha(alpha.astype(np.float32), diagonal_sigma(image.shape, options.feather))
    sigma = diagonal_sigma(image.shape, options.strength)
    background = normalized_blur(pixels, background_weight(alpha), sigma)
    alpha3 = alpha[..., None]
    blended = alpha3 * pixels + (1.0 - alpha3) * background
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
