"""Resampling by whole factors, a strip of rows at a time, so full-resolution float copies of a
50 MP photo never exist: memory stays near the size of the photo itself."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import cv2
import numpy as np

STRIP_ROWS = 256


def strips(height: int, rows: int = STRIP_ROWS, multiple: int = 1) -> Iterator[slice]:
    """Consecutive row slices covering `height`, each a multiple of `multiple` rows (the last may be less)."""
    step = max(multiple, rows // multiple * multiple)
    for start in range(0, height, step):
        yield slice(start, min(start + step, height))


def small_shape(height: int, width: int, factor: int) -> tuple[int, int]:
    """(rows, cols) of a photo reduced by `factor`: whole blocks of rows, nearest width."""
    return math.ceil(height / factor), max(1, round(width / factor))


def downsample(rows_of: Callable[[slice], np.ndarray], height: int, width: int, factor: int) -> np.ndarray:
    """Area-average the (height, width[, C]) image that `rows_of(slice)` yields strip by strip.

    Each output row averages `factor` input rows exactly; columns use OpenCV's area resampling.
    `rows_of` may compute its strip on the fly (a product, a conversion), so the full image it
    stands for is never held in memory.
    """
    small_rows, small_cols = small_shape(height, width, factor)
    parts = []
    for rows in strips(height, multiple=factor):
        strip = rows_of(rows)
        count = math.ceil((rows.stop - rows.start) / factor)
        step = factor
        # OpenCV halves 8-bit images 3-10x faster than it shrinks them by other factors
        while step % 4 == 0 and strip.dtype == np.uint8 and not (strip.shape[0] % 2 or strip.shape[1] % 2):
            strip = cv2.resize(strip, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            step //= 2
        parts.append(cv2.resize(strip, (small_cols, count), interpolation=cv2.INTER_AREA))
    small = np.concatenate(parts, axis=0)
    assert small.shape[0] == small_rows
    return small


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """The (H, W[, C]) image area-averaged to `small_shape(H, W, factor)` (itself for factor 1)."""
    return image if factor == 1 else downsample(lambda rows: image[rows], *image.shape[:2], factor)


def enlarge(small: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """`small` enlarged bilinearly by `factor` to (height, width[, C]), built a strip at a time."""
    out = np.empty((height, width, *small.shape[2:]), small.dtype)
    for rows in strips(height):
        out[rows] = upsample_rows(small, factor, rows, width)
    return out


def upsample_rows(small: np.ndarray, factor: int, rows: slice, width: int) -> np.ndarray:
    """Rows `rows` of the bilinear enlargement of `small` by `factor` (pixel centres aligned).

    Equals the same rows of `cv2.resize(small, (width, rows_small * factor))`, computed from a
    window of `small` only; neighbouring rows outside the window are included so seams vanish.
    """
    if factor == 1 and small.shape[1] == width:
        return small[rows]
    first = max(0, rows.start // factor - 1)
    last = min(small.shape[0], math.ceil(rows.stop / factor) + 1)
    window = cv2.resize(small[first:last], (width, (last - first) * factor), interpolation=cv2.INTER_LINEAR)
    offset = first * factor
    return window[rows.start - offset : rows.stop - offset]


def upsample(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (h, w[, C]) float32 map to (H, W[, C]); smooth, no blocky mask edges."""
    height, width = size
    if values.shape[:2] == (height, width):
        return values
    resized = cv2.resize(values, (width, height), interpolation=cv2.INTER_LINEAR)
    return resized.reshape(height, width, *values.shape[2:])
