"""Score a segmenter on a labelled split: pooled confusion matrix, boundary F and cross-entropy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from blurcli.data import SplitData
from blurcli.metrics import SegmentationMetrics
from blurcli.resample import upsample
from blurcli.segment import Segmenter


def evaluate(
    segmenter: Segmenter,
    split: SplitData,
    batch_size: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Predict at model size, resize probabilities to each mask's size, then score the whole split.

    Returns SegmentationMetrics.compute()'s dict plus `loss` (mean per-pixel cross-entropy at
    label resolution) and `images`.
    """
    metrics = SegmentationMetrics(class_names=segmenter.classes)
    total_nll, total_pixels = 0.0, 0
    count = len(split.names)
    for start in range(0, count, batch_size):
        images = split.images[start : start + batch_size]
        masks = split.masks[start : start + batch_size]
        for probs, mask in zip(segmenter.probabilities(list(images), batch_size), masks, strict=True):
            full = upsample(probs, mask.shape)
            picked = np.take_along_axis(full, mask[..., None].astype(np.intp), axis=-1)
            total_nll += float(-np.log(np.clip(picked, 1e-7, 1.0)).sum())
            total_pixels += mask.size
            metrics.update(full.argmax(axis=-1).astype(np.uint8), mask)
        if on_progress:
            on_progress(min(start + batch_size, count), count)
    result = metrics.compute()
    result["loss"] = total_nll / max(total_pixels, 1)
    result["images"] = count
    return result
