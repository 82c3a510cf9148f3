"""Person masks scored as users get them: `predict`'s full-resolution mask, decided at 0.5, pooled
over a set of photos (and over its close-ups apart), timed per photo. The benchmark against
MediaPipe and the shipped model's real-data tests both score through here."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.render import segment_photo
from blurcli.second_look import HeadOptions
from blurcli.segment import Segmenter
from blurcli.training.ccp import PersonSplit
from blurcli.training.metrics import binary_metrics

TOLERANCE = 3  # boundary F tolerance in pixels of the photo
CLOSE_UP = 0.3  # a close-up: the person fills more than this fraction of the frame

# (H, W, 3) uint8 RGB -> (H, W) float person probability at the photo's full resolution.
Method = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Scores:
    """One method's figures over a set: pooled person IoU, boundary F, pixel accuracy, the IoU
    pooled over close-ups alone (nan without any), and the median ms per photo."""

    iou: float
    boundary_f: float
    accuracy: float
    close_up_iou: float
    ms: float


def predicted_person(
    segmenter: Segmenter, heads: HeadOptions | None, refine: RefineOptions | None = RefineOptions()
) -> Method:
    """The person probability `blurcli predict` writes as alpha (x 255), unrounded."""

    def person(image: np.ndarray) -> np.ndarray:
        low = segment_photo(segmenter, image, True, heads).values
        return enlarge_mask(low, grey_guide(image), refine)

    return person


def _figure(value: float | None) -> float:
    return math.nan if value is None else value


def score_person(method: Method, split: PersonSplit) -> Scores:
    """Decide each photo's person at 0.5 (predict's alpha >= 128), pool the scores over the set and
    over its close-ups; time each photo once, after one warm-up call."""
    scorer, close_ups = binary_metrics(TOLERANCE), binary_metrics(TOLERANCE)
    method(split.images[0])  # warm-up: first-call allocations, graph start
    times = []
    for image, truth in zip(split.images, split.masks, strict=True):
        started = time.perf_counter()
        probability = method(image)
        times.append((time.perf_counter() - started) * 1000)
        decided = (probability >= 0.5).astype(np.uint8)
        scorer.update(decided, truth)
        if truth.mean() > CLOSE_UP:
            close_ups.update(decided, truth)
    figures = scorer.compute()
    return Scores(
        _figure(figures["subject_iou"]),  # undefined (nan) only where neither truth nor decision has a person
        _figure(figures["subject_boundary_f"]),
        _figure(figures["pixel_accuracy"]),
        _figure(close_ups.compute()["subject_iou"]) if close_ups.cm.any() else math.nan,
        statistics.median(times),
    )
