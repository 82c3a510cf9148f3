"""Score a segmenter on a labelled split: pooled confusion matrix, boundary F and cross-entropy."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from blurcli.refine import RefineOptions, grey_guide, refine_classes
from blurcli.resample import upsample
from blurcli.segment import Segmenter
from blurcli.training.lfw import SplitData
from blurcli.training.metrics import SegmentationMetrics


def evaluate(
    segmenter: Segmenter,
    split: SplitData,
    batch_size: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
    refine: RefineOptions | None = RefineOptions(),
) -> dict:
    """Predict at model size, bring the prediction to each mask's size, then score the whole split.

    With `refine` (the default), class maps follow the photo's edges as `blurcli blur` and
    `predict` do; with None, probabilities are resized bilinearly. Returns
    SegmentationMetrics.compute()'s dict plus `loss` (mean per-pixel cross-entropy of the bilinearly
    resized probabilities) and `images`.
    """
    metrics = SegmentationMetrics(class_names=segmenter.classes)
    total_nll, total_pixels = 0.0, 0
    count = len(split.names)
    for start in range(0, count, batch_size):
        images = split.images[start : start + batch_size]
        masks = split.masks[start : start + batch_size]
        batch = segmenter.probabilities(list(images), batch_size)
        for image, probs, mask in zip(images, batch, masks, strict=True):
            full = upsample(probs, mask.shape)
            picked = np.take_along_axis(full, mask[..., None].astype(np.intp), axis=-1)
            total_nll += float(-np.log(np.clip(picked, 1e-7, 1.0)).sum())
            total_pixels += mask.size
            if refine is None:
                metrics.update(full.argmax(axis=-1).astype(np.uint8), mask)
            else:
                guide = grey_guide(cv2.resize(image, mask.shape[::-1], interpolation=cv2.INTER_AREA))
                metrics.update(refine_classes(probs, guide, refine), mask)
        if on_progress:
            on_progress(min(start + batch_size, count), count)
    result = metrics.compute()
    result["loss"] = total_nll / max(total_pixels, 1)
    result["images"] = count
    return result
