"""Steady masks over the frames of a video: average each frame's mask with the previous frame's,
moved along the picture's motion (optical flow), where the picture agrees with the moved previous
one, so edges stop flickering, still or moving; where the flow cannot explain the change, the new
mask wins.

Pure numpy and OpenCV, no video library: `render` applies a `Steadier` after refining a mask,
at whatever size it refines (the photo shrunk by the feather's factor when blurring), and the video
code keeps one per clip.
"""

from __future__ import annotations

import cv2
import numpy as np

CUT = 0.25  # mean grey change (0..1) above which a frame starts a new scene: nothing is carried over
NOISE = 0.02  # a pixel whose small grey changed by this much keeps 37 % of `steady` (bench_video)
_JUDGE = 4  # change and motion are judged on the picture shrunk 4x further: above the camera's noise


def follow_motion(values: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """(h, w) map of the previous frame -> where its pixels are in this frame: `motion` (h', w', 2)
    says, for each pixel of this frame at its own size, where it was in the previous one."""
    height, width = values.shape
    if motion.shape[:2] != (height, width):
        scale = np.float32(width / motion.shape[1])
        motion = cv2.resize(motion, (width, height), interpolation=cv2.INTER_LINEAR) * scale
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(
        values, xs + motion[..., 0], ys + motion[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def steady_mask(
    mask: np.ndarray,
    grey: np.ndarray,
    previous: tuple[np.ndarray, np.ndarray] | None,
    steady: float,
    motion: np.ndarray | None = None,
) -> np.ndarray:
    """A frame's mask averaged with the previous frame's (`previous`: its steadied mask and small
    grey picture, in [0, 1]), moved by `motion` (see `follow_motion`; None: still), where this
    frame's small picture `grey` matches the moved previous one."""
    if previous is None or previous[0].shape != mask.shape or previous[1].shape != grey.shape or steady <= 0:
        return mask
    before, before_grey = previous
    if float(np.abs(grey - before_grey).mean()) >= CUT:
        return mask
    if motion is not None:
        before, before_grey = follow_motion(before, motion), follow_motion(before_grey, motion)
    keep = steady * np.exp(-np.abs(grey - before_grey) / NOISE)
    if keep.shape != mask.shape:
        keep = cv2.resize(keep, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
    return (keep * before + (1.0 - keep) * mask).astype(np.float32)


def small_grey(picture: np.ndarray, factor: int = _JUDGE) -> np.ndarray:
    """(H, W[, 3]) uint8 -> grey in [0, 1] shrunk by `factor` (area average), for judging change."""
    grey = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY) if picture.ndim == 3 else picture
    size = (max(1, grey.shape[1] // factor), max(1, grey.shape[0] // factor))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


class Steadier:
    """The state of one clip: the previous frame's steadied mask and picture, and the optical flow
    (DIS, OpenCV's; 2 ms a frame on the small picture) that finds the motion between them."""

    def __init__(self, steady: float) -> None:
        self.steady = steady
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def __call__(self, mask: np.ndarray, picture: np.ndarray) -> np.ndarray:
        """This frame's mask, refined at `picture`'s size (uint8 RGB or grey), steadied."""
        grey = small_grey(picture)
        motion = None
        if (
            self.previous is not None and self.previous[1].shape == grey.shape and min(grey.shape) >= 16
        ):  # DIS needs 12 px
            motion = self._flow.calc(_bytes(grey), _bytes(self.previous[1]), None)
        mask = steady_mask(mask, grey, self.previous, self.steady, motion)
        self.previous = (mask, grey)
        return mask


def _bytes(grey: np.ndarray) -> np.ndarray:
    return np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8)
