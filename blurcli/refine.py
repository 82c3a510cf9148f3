"""Bring the model's low-resolution mask to the photo's full resolution along the photo's edges.

A guided filter (He, Sun and Tang) made of box filters fits, in every small window, the mask as a
linear function of the photo's brightness; the fitted coefficients are smooth, so they are computed
at a working resolution and enlarged, and the final mask takes its edges from the full-resolution
photo (the "fast guided filter"). Hair and ears follow the photo, not the model's coarse grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from blurcli.resample import downsample, small_shape, strips, upsample, upsample_rows


@dataclass(frozen=True)
class RefineOptions:
    """Guided-filter settings.

    `radius` is the filter window's radius in pixels of the model's output, so the same setting
    reaches as far into a 250 px face as into a 12 MP one (4 was best on LFW validation at 1x and
    4x); `eps` is the regularisation (larger trusts the model's mask more than the photo's edges);
    the coefficients are fitted with the photo's longer side at most `working_size` pixels.
    """

    radius: float = 4.0
    eps: float = 1e-3
    working_size: int = 768


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


@dataclass(frozen=True)
class _Working:
    """The photo at the working resolution: guide, model output resized to it, and filter radius."""

    factor: int
    guide: np.ndarray  # (h, w) float32 in [0, 1]
    low: np.ndarray  # (h, w[, C]) float32, the model's output at the same size
    radius: int


def _working(low: np.ndarray, guide: np.ndarray, options: RefineOptions) -> _Working:
    height, width = guide.shape
    factor = working_factor(height, width, options.working_size)
    rows, cols = small_shape(height, width, factor)
    small_guide = downsample(lambda part: _unit(guide[part]), height, width, factor)
    small_low = cv2.resize(low.astype(np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR)
    radius = max(1, round(options.radius * max(rows, cols) / max(low.shape[:2])))
    return _Working(factor, small_guide, small_low.reshape(rows, cols, *low.shape[2:]), radius)


def _unit(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) * (1 / 255)


def _follow_edges(decided: np.ndarray, work: _Working, guide: np.ndarray, eps: float) -> np.ndarray:
    """A decided 0/1 map at working size -> (H, W) float32 in [0, 1], soft only along the photo's edges.

    The model decides where the subject is, the photo where exactly its edge runs.
    """
    coef_a, coef_b = guided_coefficients(work.guide, decided.astype(np.float32), work.radius, eps)
    height, width = guide.shape
    if work.factor == 1:
        return np.clip(coef_a * work.guide + coef_b, 0.0, 1.0)
    out = np.empty((height, width), np.float32)
    for rows in strips(height):
        strip = upsample_rows(coef_a, work.factor, rows, width) * _unit(guide[rows])
        strip += upsample_rows(coef_b, work.factor, rows, width)
        np.clip(strip, 0.0, 1.0, out=out[rows])
    return out


def refine_mask(low: np.ndarray, guide: np.ndarray, options: RefineOptions = RefineOptions()) -> np.ndarray:
    """Low-resolution mask (h, w) in [0, 1] + full-resolution (H, W) uint8 guide -> (H, W) float32 mask.

    The low mask covers the whole photo (any size, any aspect); the result lies in [0, 1].
    """
    work = _working(low, guide, options)
    return _follow_edges(work.low > 0.5, work, guide, options.eps)


def refine_classes(
    probs: np.ndarray, guide: np.ndarray, options: RefineOptions = RefineOptions()
) -> np.ndarray:
    """(h, w, C) class probabilities + (H, W) uint8 guide -> (H, W) uint8 class map on the photo's edges."""
    work = _working(probs, guide, options)
    labels = work.low.argmax(axis=-1)
    return _running_argmax(
        _follow_edges(labels == c, work, guide, options.eps) for c in range(probs.shape[-1])
    )


def _running_argmax(maps: Iterator[np.ndarray]) -> np.ndarray:
    """Index of the largest of several (H, W) maps, holding only two of them at a time."""
    best = next(maps)
    classes = np.zeros(best.shape, np.uint8)
    for index, candidate in enumerate(maps, start=1):
        classes[candidate > best] = index
        np.maximum(best, candidate, out=best)
    return classes


def enlarge_mask(low: np.ndarray, guide: np.ndarray, refine: RefineOptions | None) -> np.ndarray:
    """(h, w) mask -> (H, W) float32 at the guide's size: guided when `refine` is set, else bilinear."""
    if refine is None:
        return np.clip(upsample(low.astype(np.float32), guide.shape), 0.0, 1.0)
    return refine_mask(low, guide, refine)


def enlarge_classes(probs: np.ndarray, guide: np.ndarray, refine: RefineOptions | None) -> np.ndarray:
    """(h, w, C) class probabilities -> (H, W) uint8 class map at the guide's size (guided or bilinear)."""
    if refine is not None:
        return refine_classes(probs, guide, refine)
    channels = range(probs.shape[-1])
    return _running_argmax(upsample(np.ascontiguousarray(probs[..., c]), guide.shape) for c in channels)
