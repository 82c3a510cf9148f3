"""What the network sees: a photo resized to the model's input (aspect kept, padded) and normalised.

Shared by inference (`segment.py`) and training (`training/dataset.py`), so both feed the network
the same way; the normalisation is stored in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

CLASSES = ("background", "skin", "hair")
SUBJECTS = ("person", "head")  # what stays sharp: the whole person (default), or LFW's head
# Mean and spread of RGB in [0, 1]: a fixed, dataset-independent normalisation stored in checkpoints.
NORMALIZATION: Mapping[str, tuple[float, float, float]] = {
    "mean": (0.5, 0.5, 0.5),
    "std": (0.25, 0.25, 0.25),
}


def normalize(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(N, H, W, 3) or (H, W, 3) uint8 RGB -> (N, 3, H, W) or (3, H, W) float32, normalised."""
    pixels = batch.astype(np.float32) * np.float32(1 / 255.0)
    pixels = (pixels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(np.moveaxis(pixels, -1, -3))


def model_shape(height: int, width: int, input_size: int, multiple: int) -> tuple[int, int]:
    """(h, w) an image is resized to: aspect kept, longer side `input_size`, at least `multiple`."""
    scale = input_size / max(height, width)
    return max(multiple, round(height * scale)), max(multiple, round(width * scale))


def resize_for_model(image: np.ndarray, input_size: int, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W, 3) uint8 -> (padded (h', w', 3) uint8 with sides % multiple == 0, (h, w) before padding).

    The picture is resized (aspect kept, longer side = input_size) and padded bottom/right by
    replicating its edge, so the network sees no artificial border.
    """
    height, width = model_shape(image.shape[0], image.shape[1], input_size, multiple)
    while image.shape[0] >= 4 * height and image.shape[1] >= 4 * width:
        # Halving first is area averaging too, and 6x faster than one big non-integer step.
        half = ((image.shape[1] + 1) // 2, (image.shape[0] + 1) // 2)
        image = cv2.resize(image, half, interpolation=cv2.INTER_AREA)
    interpolation = cv2.INTER_AREA if height < image.shape[0] else cv2.INTER_LINEAR
    resized = cv2.resize(image, (width, height), interpolation=interpolation)
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        resized = cv2.copyMakeBorder(resized, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
    return resized, (height, width)
