"""What a decoded photo is (Photo: its pixels as the user has them, with the EXIF and ICC worth
keeping) and the view the model takes of it (to_rgb8)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class Photo:
    """A decoded photo, upright, with the metadata worth keeping.

    `pixels` is (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 or uint16; `exif` (orientation
    already reset to upright) and `icc` are raw blobs or None; `format` is the source's extension.
    """

    pixels: np.ndarray
    exif: bytes | None = None
    icc: bytes | None = None
    format: str | None = None
    grey: bool = False  # RGBA whose colour is grey (a grey + alpha PNG): written back as grey + alpha
    lossless: bool = False  # a lossless WebP: written back lossless

    @property
    def colour(self) -> np.ndarray:
        """The colour channels without alpha: (H, W) or (H, W, 3)."""
        return self.pixels[..., :3] if self.has_alpha else self.pixels

    @property
    def has_alpha(self) -> bool:
        return self.pixels.ndim == 3 and self.pixels.shape[2] == 4

    def with_colour(self, colour: np.ndarray) -> Photo:
        """The same photo with new colour channels; alpha (if any) is kept untouched."""
        if self.has_alpha:
            colour = np.concatenate([colour, self.pixels[..., 3:]], axis=-1)
        return replace(self, pixels=colour)


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Any photo's pixels -> (H, W, 3) uint8 RGB, what the model sees (alpha dropped)."""
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[..., :3]
    pixels = to_8bit(pixels)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(pixels)


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 with rounding (65535 -> 255); uint8 passes through."""
    if pixels.dtype == np.uint8:
        return pixels
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
