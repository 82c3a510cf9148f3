"""Steady masks over the frames of a video: average each frame's mask with the previous frame's
where the picture is still, so edges stop flickering, and let the new mask win where it moves.

Pure numpy and OpenCV, no video library: `render` applies a `Steadier` after refining a mask,
at whatever size it refines (the photo shrunk by the feather's factor when blurring), and the video
code keeps one per clip.
"""

from __future__ import annotations

import cv2
import numpy as np

CUT = 0.25  # mean grey change (0..1) above which a frame starts a new scene: nothing is carried over
NOISE = 0.02  # a pixel whose small grey changed by this much keeps 37 % of `steady` (bench_video)
_JUDGE = 4  # the change is judged on the picture shrunk 4x further: above the camera's noise


def steady_mask(
    mask: np.ndarray, grey: np.ndarray, previous: tuple[np.ndarray, np.ndarray] | None, steady: float
) -> np.ndarray:
    """A frame's mask averaged with the previous frame's (`previous`: its steadied mask and small
    grey picture, in [0, 1]) where the picture is still; `grey` is this frame's small picture."""
    if previous is None or previous[0].shape != mask.shape or previous[1].shape != grey.shape or steady <= 0:
        return mask
    change = np.abs(grey - previous[1])
    if float(change.mean()) >= CUT:
        return mask
    keep = steady * np.exp(-change / NOISE)
    if keep.shape != mask.shape:
        keep = cv2.resize(keep, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
    return (keep * previous[0] + (1.0 - keep) * mask).astype(np.float32)


def small_grey(picture: np.ndarray, factor: int = _JUDGE) -> np.ndarray:
    """(H, W[, 3]) uint8 -> grey in [0, 1] shrunk by `factor` (area average), for judging change."""
    grey = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY) if picture.ndim == 3 else picture
    size = (max(1, grey.shape[1] // factor), max(1, grey.shape[0] // factor))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


class Steadier:
    """The state of one clip: the previous frame's steadied mask and picture. Frames in order."""

    def __init__(self, steady: float) -> None:
        self.steady = steady
        self.previous: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, mask: np.ndarray, picture: np.ndarray) -> np.ndarray:
        """This frame's mask, refined at `picture`'s size (uint8 RGB or grey), steadied."""
        grey = small_grey(picture)
        mask = steady_mask(mask, grey, self.previous, self.steady)
        self.previous = (mask, grey)
        return mask
