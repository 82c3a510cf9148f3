"""Score a segmenter on a labelled split: pooled confusion matrix, boundary F and cross-entropy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from blurcli.errors import UsageError
from blurcli.refine import RefineOptions, grey_guide, refine_classes
from blurcli.resample import upsample
from blurcli.segment import Segmenter, check_subject
from blurcli.training.ccp import PersonSplit, is_ccp, load_person_split
from blurcli.training.distributed import Ranks, sum_across
from blurcli.training.lfw import SplitData, check_folder, load_split
from blurcli.training.metrics import SegmentationMetrics
from blurcli.training.people import is_people_folder, load_people


def evaluate(
    segmenter: Segmenter,
    split: SplitData | PersonSplit,
    batch_size: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
    refine: RefineOptions | None = RefineOptions(),
    ranks: Ranks = Ranks(),
) -> dict:
    """Predict at model size, bring the prediction to each mask's size, then score the whole split.

    With `refine` (the default), class maps follow the photo's edges as `blurcli blur` and
    `predict` do; with None, probabilities are resized bilinearly. Returns
    SegmentationMetrics.compute()'s dict plus `loss` (mean per-pixel cross-entropy of the bilinearly
    resized probabilities) and `images`. Under torchrun (`ranks`), each rank scores its shard and the
    counts of all ranks are summed: the figures are those of one process scoring the whole split.
    """
    classes = segmenter.output_classes
    metrics = SegmentationMetrics(len(classes), classes, tuple(range(1, len(classes))))
    total_nll, total_pixels = 0.0, 0
    mine = ranks.shard(len(split.names))
    count = len(mine)
    for start in range(0, count, batch_size):
        images = [split.images[i] for i in mine[start : start + batch_size]]
        masks = [split.masks[i] for i in mine[start : start + batch_size]]
        batch = segmenter.probabilities(images, batch_size)
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
    if ranks.world > 1:
        counts = sum_across(np.concatenate([metrics.counts(), [total_nll, total_pixels, count]]))
        metrics.set_counts(counts[:-3])
        total_nll, total_pixels, count = float(counts[-3]), int(counts[-2]), int(counts[-1])
    result = metrics.compute()
    result["loss"] = total_nll / max(total_pixels, 1)
    result["images"] = count
    return result


def load_labelled(
    root: Path, split: str, subject: str | None = None, limit: int | None = None
) -> tuple[SplitData | PersonSplit, str]:
    """A labelled split and the subject it scores: Clothing Co-Parsing and a folder of photos and
    person masks (people-dev's layout, which has no splits) score the person, LFW Part Labels the
    head; asking a dataset for the other subject is a usage error."""
    if subject is not None:
        check_subject(subject)
    check_folder(Path(root))
    if is_people_folder(Path(root)):
        if subject == "head":
            raise UsageError(f"--subject head: {root} holds person masks (use --subject person)")
        return load_people(Path(root), limit), "person"
    person = is_ccp(Path(root))
    scored = "person" if person else "head"
    if subject is not None and subject != scored:
        kind = "Clothing Co-Parsing" if person else "LFW Part Labels"
        raise UsageError(
            f"--subject {subject}: {root} is {kind}, which labels the {scored} (use --subject {scored})"
        )
    data = load_person_split(root, split, limit) if person else load_split(root, split, limit=limit)
    return data, scored
