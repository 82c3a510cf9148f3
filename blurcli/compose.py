"""The compositor: blur the background without the subject, then blend under the soft mask.

Works on grey or RGB, 8- or 16-bit photos of any size: full-resolution work runs a strip of rows
at a time and wide blurs run on a reduced copy, so cost and memory do not grow with blur strength.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from blurcli.resample import downsample, enlarge, shrink, small_shape, strips, upsample_rows

DEFAULT_STRENGTH = 0.012
DEFAULT_FEATHER = 0.002
MAX_STRENGTH, MAX_FEATHER = 0.2, 0.05  # the largest --strength and --feather (CLI and server alike)
Kernel = Literal["gaussian", "disc"]
# Blurs wider than this (in pixels) run on a downscaled copy: same look, cost independent of sigma.
_PYRAMID_SIGMA = 6.0
# A disc keeps a crisp rim only if at least this many pixels of its radius are left at reduced size.
_PYRAMID_DISC = 8.0
_GAMMA = 2.2  # the disc blurs light, not sRGB code values: highlights spread into bright discs
_WEIGHT_FLOOR = 1e-3  # deep inside the subject, where no background is in reach, fall back to a plain blur


@dataclass(frozen=True)
class BlurOptions:
    """Blur strength and mask feather, as fractions of the image diagonal (resolution independent).

    `kernel` "gaussian" is a soft, even blur; "disc" is a lens's defocus: every point of light
    becomes a flat disc (bokeh), computed in linear light so bright highlights stand out as they do
    through a real lens. Both spread light equally far (a disc of radius 2 sigma has the
    Gaussian's variance), so one strength means the same blur for either.
    """

    strength: float = DEFAULT_STRENGTH
    feather: float = DEFAULT_FEATHER
    kernel: Kernel = "gaussian"


def diagonal_sigma(shape: tuple[int, ...], fraction: float) -> float:
    """A Gaussian sigma in pixels for a fraction of the (H, W, ...) image's diagonal."""
    return fraction * math.hypot(shape[0], shape[1])


def pyramid_factor(sigma: float, height: int, width: int, finest: float = _PYRAMID_SIGMA) -> int:
    """How much to shrink an image before blurring it by `sigma` (1: blur at full resolution).

    Blurs up to `finest` pixels run at full size; wider ones on a copy shrunk so that at least
    `finest / 2` pixels of blur are left to do there (over 40 dB PSNR against the full blur).
    """
    factor = int(sigma // (finest / 2)) if sigma > finest else 1
    return max(1, min(factor, height // 4, width // 4))


def _blur(values: np.ndarray, sigma: float, kernel: Kernel = "gaussian") -> np.ndarray:
    if kernel == "disc":
        return cv2.filter2D(values, -1, disc_kernel(2 * sigma), borderType=cv2.BORDER_REFLECT)
    return cv2.GaussianBlur(values, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def disc_kernel(radius: float) -> np.ndarray:
    """A flat, anti-aliased disc of `radius` pixels summing to 1: the defocus of an ideal lens."""
    reach = max(1, math.ceil(radius))
    yy, xx = np.mgrid[-reach : reach + 1, -reach : reach + 1].astype(np.float32)
    coverage = np.clip(radius + 0.5 - np.hypot(yy, xx), 0.0, 1.0)
    return coverage / coverage.sum()


def _reach(sigma: float, kernel: Kernel) -> int:
    """How many pixels away a blur still draws from (OpenCV's float Gaussian stops at 4 sigma)."""
    return math.ceil((2 if kernel == "disc" else 4) * sigma) + 1


def _finest(kernel: Kernel) -> float:
    return _PYRAMID_DISC if kernel == "disc" else _PYRAMID_SIGMA


def _residual(sigma: float, factor: int, kernel: Kernel) -> float:
    """The blur left to do on the image shrunk by `factor`. For the Gaussian, area averaging already
    spread each pixel over a box of variance factor^2 / 12; the disc keeps its full radius."""
    if kernel == "disc":
        return sigma / factor
    return math.sqrt(max(sigma**2 - factor**2 / 12.0, 0.25)) / factor


def gaussian_blur(image: np.ndarray, sigma: float, finest: float = _PYRAMID_SIGMA) -> np.ndarray:
    """(H, W[, C]) float32 -> Gaussian-blurred copy; large sigmas are computed at reduced size."""
    if sigma <= 0:
        return image.copy()
    height, width = image.shape[:2]
    factor = pyramid_factor(sigma, height, width, finest)
    if factor == 1:
        return _blur(image, sigma)
    small = _blur(shrink(image, factor), _residual(sigma, factor, "gaussian"))
    return enlarge(small, factor, height, width)


def background_weight(alpha: np.ndarray) -> np.ndarray:
    """Trust for each pixel as background: 1 where alpha < 0.05, 0 from alpha 0.5 up, linear between."""
    weight = np.subtract(0.5, alpha, dtype=np.float32)
    weight *= 1 / 0.45
    return np.clip(weight, 0.0, 1.0, out=weight)


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 -> `dtype`, rounded and clipped to its range for integer types."""
    if np.issubdtype(dtype, np.integer):
        return np.clip(values + 0.5, 0, np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype, copy=False)


def normalized_blur(
    image: np.ndarray,
    weight: np.ndarray,
    sigma: float,
    dtype: np.dtype | None = None,
    kernel: Kernel = "gaussian",
) -> np.ndarray:
    """Blur of `image` that only averages pixels where `weight` is high (normalised convolution).

    (H, W[, C]) image of any dtype, (H, W) float32 weight in [0, 1] -> the blur as `dtype` (float32
    by default). Where no weighted pixel is within reach (deep inside the subject) it falls back
    to the plain blur, via a tiny floor weight. Works a strip at a time; wide blurs run shrunk.
    """
    height, width = weight.shape
    linear = kernel == "disc"
    scale = _full_scale(image.dtype)
    factor = pyramid_factor(sigma, height, width, _finest(kernel))
    if factor == 1:
        out = np.empty(image.shape, dtype or np.float32)
        halo = _reach(sigma, kernel)
        for rows in strips(height):
            outer = slice(max(0, rows.start - halo), min(height, rows.stop + halo))
            inner = slice(rows.start - outer.start, rows.stop - outer.start)
            numerator, denominator = _weighted(image[outer], weight[outer], linear)
            mean = _ratio(_blur(numerator, sigma, kernel), _blur(denominator, sigma, kernel))[inner]
            out[rows] = _cast(_from_linear(mean, scale) if linear else mean, out.dtype)
        return out
    # Wide blurs: weigh and average on a copy halved first (1 px of mixing at the subject's edge,
    # invisible under a blur of 12 px or more, for a quarter of the full-resolution work).
    pre = 2 if factor >= 4 else 1
    factor = factor // pre * pre
    image, weight = shrink(image, pre), shrink(weight, pre)

    def weighted_rows(rows: slice) -> np.ndarray:
        return _weighted(image[rows], weight[rows], linear)[0]

    def weight_rows(rows: slice) -> np.ndarray:
        return weight[rows] + _WEIGHT_FLOOR

    residual = _residual(sigma, factor, kernel)
    numerator = _blur(downsample(weighted_rows, *weight.shape, factor // pre), residual, kernel)
    denominator = _blur(downsample(weight_rows, *weight.shape, factor // pre), residual, kernel)
    mean = _ratio(numerator, denominator)
    # Cast before enlarging: integers enlarge faster than float32.
    small = _cast(_from_linear(mean, scale) if linear else mean, dtype or np.float32)
    assert small.shape[0] == small_shape(height, width, factor)[0]
    return enlarge(small, factor, height, width)


def _full_scale(dtype: np.dtype) -> float:
    """The code value of full brightness: the integer type's maximum; float images count as 0-255."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 255.0


def _to_linear(image: np.ndarray) -> np.ndarray:
    """Code values -> linear light as float32, on the same 0..full scale (a 2.2 gamma)."""
    scale = _full_scale(image.dtype)
    if image.dtype in (np.uint8, np.uint16):  # a lookup table beats a power per pixel
        table = (np.arange(int(scale) + 1, dtype=np.float32) / scale) ** _GAMMA * scale
        return cv2.LUT(image, table) if image.dtype == np.uint8 else table[image]
    return np.power(np.clip(image, 0, None, dtype=np.float32) / scale, _GAMMA) * scale


def _from_linear(values: np.ndarray, scale: float) -> np.ndarray:
    """Linear light float32 on the 0..`scale` scale -> code values (float32)."""
    return np.power(np.clip(values / scale, 0.0, None), 1 / _GAMMA) * scale


def _weighted(image: np.ndarray, weight: np.ndarray, linear: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(image x weight as float32, weight), the weight floored so every pixel counts a little;
    `linear` converts the image to linear light first."""
    floored = weight + _WEIGHT_FLOOR
    product = _to_linear(image) if linear else image.astype(np.float32)
    product *= floored[..., None] if image.ndim == 3 else floored
    return product, floored


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return numerator / (denominator[..., None] if numerator.ndim == 3 else denominator)


def feather_alpha(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Soften the mask edge by a Gaussian of `sigma` pixels; (H, W) float32 in [0, 1].

    A mask is smooth enough to be blurred on a copy shrunk from 2 px of blur up (5x faster).
    """
    if sigma <= 0.3:
        return alpha
    blurred = gaussian_blur(alpha, sigma, finest=2.0)
    return np.clip(blurred, 0.0, 1.0, out=blurred)


def hidden_factor(shape: tuple[int, ...], options: BlurOptions = BlurOptions()) -> int:
    """How much smaller than the (H, W, ...) photo `composite` may take its mask: the largest power
    of two (OpenCV halves fast) up to the feather's sigma in pixels. A Gaussian of sigma f keeps
    under 1 % of any detail finer than a mask shrunk by f can hold, so nothing visible is lost."""
    sigma = diagonal_sigma(shape, options.feather)
    return 1 << int(math.log2(sigma)) if sigma >= 2 else 1


def composite(
    image: np.ndarray,
    alpha: np.ndarray,
    options: BlurOptions = BlurOptions(),
    factor: int = 1,
    small: np.ndarray | None = None,
) -> np.ndarray:
    """Portrait-mode blend: (H, W[, 3]) uint8/uint16 photo, subject alpha -> same as photo.

    `alpha` is float32 in [0, 1] of shape `small_shape(H, W, factor)`: the full-resolution mask
    (factor 1), or one shrunk by up to `hidden_factor`, with `small` the photo shrunk alike (made
    here if not given). Feather, background weights and the weighted blur then run shrunk, and
    only the final blend touches every pixel, and only where the mask is neither 0 nor 1.
    """
    height, width = image.shape[:2]
    if alpha.shape != small_shape(height, width, factor):
        raise ValueError(f"alpha {alpha.shape} does not match image {image.shape[:2]} shrunk by {factor}")
    sigma = diagonal_sigma(image.shape, options.strength)
    if sigma <= 0:
        return image.copy()
    feather = diagonal_sigma(image.shape, options.feather) / factor
    alpha = feather_alpha(alpha.astype(np.float32, copy=False), feather)
    small = shrink(image, factor) if small is None else small
    blurred = normalized_blur(small, background_weight(alpha), sigma / factor, image.dtype, options.kernel)
    out = blurred if factor == 1 else enlarge(blurred, factor, height, width)  # blended in place
    # Copy the subject, keep the background, blend only the runs of columns where the mask is
    # neither: about a quarter of a portrait.
    clear = 0.5 / _full_scale(image.dtype)  # closer to 0 or 1 than this, blending changes no value
    lowest, highest = cv2.erode(alpha, _NEIGHBOURS), cv2.dilate(alpha, _NEIGHBOURS)
    for rows in strips(height, _BLEND_ROWS):
        full_alpha = None
        for cols, kind in column_spans(lowest, highest, factor, rows, width, clear):
            if kind == _SUBJECT:
                out[rows, cols] = image[rows, cols]
            elif kind == _MIXED:
                if full_alpha is None:
                    full_alpha = upsample_rows(alpha, factor, rows, width)
                out[rows, cols] = blend(image[rows, cols], out[rows, cols], full_alpha[:, cols])
    return out


_BACKGROUND, _MIXED, _SUBJECT = 0, 1, 2
_BLEND_ROWS = 32  # short strips: the runs of columns that need a blend stay narrow
_NEIGHBOURS = np.ones((3, 3), np.uint8)  # a pixel of the enlarged mask draws on these of the small one


def column_spans(
    lowest: np.ndarray, highest: np.ndarray, factor: int, rows: slice, width: int, clear: float
) -> list[tuple[slice, int]]:
    """Runs of columns of the full-resolution `rows` where a mask enlarged by `factor` is all
    background (below `clear`), all subject (above 1 - `clear`) or mixed. `lowest` and `highest`
    are the small mask's 3x3 minimum and maximum, which bound every pixel enlarged from it."""
    window = slice(rows.start // factor, min(lowest.shape[0], math.ceil(rows.stop / factor)))
    low, high = lowest[window].min(axis=0), highest[window].max(axis=0)
    kinds = np.where(high < clear, _BACKGROUND, np.where(low > 1 - clear, _SUBJECT, _MIXED))
    # Full-resolution column x enlarges small column min(x // factor, last): runs change kind only
    # at multiples of `factor`, all of which lie inside the width.
    changes = np.flatnonzero(np.diff(kinds)) + 1
    edges = [0, *(changes * factor).tolist(), width]
    starts = [0, *changes.tolist()]
    return [
        (slice(begin, end), int(kinds[small]))
        for (begin, end), small in zip(itertools.pairwise(edges), starts, strict=True)
    ]


def blend(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """alpha * foreground + (1 - alpha) * background, in the images' dtype; (H, W) float32 alpha."""
    if foreground.dtype == np.uint8:  # OpenCV's fused, vectorised blend for the common case
        return cv2.blendLinear(foreground, background, alpha, 1.0 - alpha)
    weight = alpha[..., None] if foreground.ndim == 3 else alpha
    back = background.astype(np.float32)
    return _cast(back + weight * (foreground.astype(np.float32) - back), foreground.dtype)
