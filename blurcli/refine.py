"""Bring the model's low-resolution mask to the photo's full resolution along the photo's edges.

A guided filter (He, Sun and Tang) made of box filters fits, in every small window, the mask as a
linear function of the photo's brightness; the fitted coefficients are smooth, so they are computed
at a working resolution and enlarged, and the final mask takes its edges from the full-resolution
photo (the "fast guided filter"). Hair and ears follow the photo, not the model's coarse grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from blurcli.resample import downsample, small_shape, strips, upsample, upsample_rows


@dataclass(frozen=True)
class RefineOptions:
    """Guided-filter settings: window radius in working pixels, regularisation, working size.

    A larger `eps` trusts the model's mask more than the photo's edges (eps -> inf is plain bilinear).
    """

    radius: int = 4
    eps: float = 1e-3
    working_size: int = 768  # longer side, in pixels, at which the coefficients are fitted


def working_factor(height: int, width: int, working_size: int) -> int:
    """The whole factor that brings the photo's longer side to at most `working_size`."""
    return max(1, math.ceil(max(height, width) / working_size))


def grey_guide(pixels: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 -> (H, W) uint8 brightness, the guide's channel."""
    return pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)


def _box(values: np.ndarray, radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return cv2.boxFilter(values, -1, (size, size), borderType=cv2.BORDER_REFLECT)


def guided_coefficients(
    guide: np.ndarray, mask: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (A, B), both (h, w) float32, with mask ~ A * guide + B; inputs (h, w) float32."""
    mean_i = _box(guide, radius)
    mean_p = _box(mask, radius)
    cov_ip = _box(guide * mask, radius) - mean_i * mean_p
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box(a, radius), _box(b, radius)


def refine_mask(low: np.ndarray, guide: np.ndarray, options: RefineOptions = RefineOptions()) -> np.ndarray:
    """Low-resolution mask (h, w) in [0, 1] + full-resolution (H, W) uint8 guide -> (H, W) float32 mask.

    The low mask covers the whole photo (any size, any aspect); the result is clipped to [0, 1].
    """
    height, width = guide.shape
    factor = working_factor(height, width, options.working_size)
    small_rows, small_cols = small_shape(height, width, factor)

    def guide_rows(rows: slice) -> np.ndarray:
        return guide[rows].astype(np.float32) * (1 / 255)

    small_guide = downsample(guide_rows, height, width, factor)
    small_mask = cv2.resize(low.astype(np.float32), (small_cols, small_rows), interpolation=cv2.INTER_LINEAR)
    coef_a, coef_b = guided_coefficients(small_guide, small_mask, options.radius, options.eps)
    alpha = np.empty((height, width), np.float32)
    for rows in strips(height):
        strip = upsample_rows(coef_a, factor, rows, width) * guide_rows(rows)
        strip += upsample_rows(coef_b, factor, rows, width)
        np.clip(strip, 0.0, 1.0, out=alpha[rows])
    return alpha


def enlarge_mask(low: np.ndarray, guide: np.ndarray, refine: RefineOptions | None) -> np.ndarray:
    """(h, w) mask -> (H, W) float32 at the guide's size: guided when `refine` is set, else bilinear."""
    if refine is None:
        return np.clip(upsample(low.astype(np.float32), guide.shape), 0.0, 1.0)
    return refine_mask(low, guide, refine)


def enlarge_classes(probs: np.ndarray, guide: np.ndarray, refine: RefineOptions | None) -> np.ndarray:
    """(h, w, C) class probabilities -> (H, W) uint8 class map at the guide's size.

    Each class is enlarged like a mask and the running maximum kept, so only two full-size float
    maps exist at a time, whatever the number of classes.
    """
    best = enlarge_mask(probs[..., 0], guide, refine)
    classes = np.zeros(guide.shape, np.uint8)
    for index in range(1, probs.shape[-1]):
        candidate = enlarge_mask(probs[..., index], guide, refine)
        wins = candidate > best
        classes[wins] = index
        np.maximum(best, candidate, out=best)
    return classes
