"""Segmentation metrics: pooled confusion-matrix scores (IoU, F1) and a boundary F-score.

Confusion matrices have rows = ground truth and columns = prediction. Every score is computed
from counts pooled over a whole split, never by averaging per-image scores.

Boundary conventions (Csurka et al. 2013; DAVIS contour accuracy):
- The boundary of a binary mask is ``mask & ~erode(mask)`` with a 3x3 cross kernel, i.e. the
  mask's pixels that have a 4-neighbour outside it. Each edge between two labels therefore
  yields a one-pixel line on either side of it, and diagonal contact alone is not an edge.
- The image border is not a boundary: erosion replicates the border (``BORDER_REPLICATE``).
- Pixels whose target is ignored never create a boundary (they count as inside every mask
  when eroding) and are never counted themselves.
- A boundary pixel is matched when the other map has a boundary pixel within ``tolerance``
  pixels, Euclidean distance (dilation with the exact disc of radius ``tolerance``).
- F-score when totals are zero: no boundary in prediction nor target scores 1.0, a boundary in
  only one of them scores 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _valid_mask(target: np.ndarray, num_classes: int, ignore_index: int | None) -> np.ndarray:
    """Same shape as target -> bool: pixels whose label is a real class and not ignored."""
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid &= target != ignore_index
    return valid


def _check_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn pred/target into integer arrays of one shape; a mismatch is a programming error."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    for name, arr in (("pred", pred), ("target", target)):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    return pred, target


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Any shape pair of class maps -> (C, C) int64 counts, rows = target, columns = prediction.

    Target pixels outside [0, C) or equal to ``ignore_index`` are left out.
    """
    pred, target = _check_pair(pred, target)
    valid = _valid_mask(target, num_classes, ignore_index)
    if not valid.all():
        pred, target = pred[valid], target[valid]
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"pred holds class ids outside [0, {num_classes})")
    cells = target.astype(np.int64) * num_classes + pred
    counts = np.bincount(cells.ravel(), minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise num / den as float64, NaN where den is 0 (the score is undefined there)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def pixel_accuracy(cm: np.ndarray) -> float:
    """(C, C) -> fraction of counted pixels labelled correctly; NaN for an empty matrix."""
    return float(_ratio(np.trace(cm), cm.sum()))


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """(C, C) -> (C,) float64 TP / (TP + FP + FN); NaN where a class is in neither map."""
    tp = np.diag(cm)
    return _ratio(tp, cm.sum(axis=1) + cm.sum(axis=0) - tp)


def mean_iou(cm: np.ndarray) -> float:
    """(C, C) -> mean IoU over the classes present in prediction or target (NaNs skipped)."""
    iou = iou_per_class(cm)
    return float(np.mean(iou[~np.isnan(iou)])) if np.any(~np.isnan(iou)) else float("nan")


def frequency_weighted_iou(cm: np.ndarray) -> float:
    """(C, C) -> IoU per class weighted by its share of target pixels; NaN for an empty matrix."""
    total = cm.sum()
    if total == 0:
        return float("nan")
    freq = cm.sum(axis=1) / total
    return float(np.sum(freq * np.nan_to_num(iou_per_class(cm), nan=0.0)))


def f1_per_class(cm: np.ndarray) -> np.ndarray:
    """(C, C) -> (C,) float64 Dice/F1 2TP / (2TP + FP + FN); NaN where a class is in neither map."""
    return _ratio(2 * np.diag(cm), cm.sum(axis=1) + cm.sum(axis=0))


def merge_classes(cm: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """(C, C) -> (G, G) int64: sum the counts of each group of classes into one class.

    Classes in no group are dropped; a class in two groups is an error (it would count twice).
    """
    num_classes = cm.shape[0]
    members = np.zeros((len(groups), num_classes), dtype=np.int64)
    for g, group in enumerate(groups):
        for c in group:
            if not 0 <= c < num_classes:
                raise ValueError(f"class {c} outside [0, {num_classes})")
            members[g, c] = 1
    if np.any(members.sum(axis=0) > 1):
        raise ValueError(f"groups overlap: {groups}")
    return members @ np.asarray(cm, dtype=np.int64) @ members.T


def _rest(num_classes: int, subject: Sequence[int]) -> list[int]:
    """The classes that are not subject (the background side of a subject/rest split)."""
    members = set(subject)
    return [c for c in range(num_classes) if c not in members]


def subject_iou(cm: np.ndarray, subject: Sequence[int] = (1, 2)) -> float:
    """(C, C) -> IoU of the union of the subject classes against everything else."""
    merged = merge_classes(cm, [_rest(cm.shape[0], subject), list(subject)])
    return float(iou_per_class(merged)[1])


@dataclass(frozen=True, eq=False)
class BoundaryCounts:
    """Boundary pixel counts per class, each (C,) int64; add two to pool images or splits."""

    pred_matched: np.ndarray
    pred_total: np.ndarray
    gt_matched: np.ndarray
    gt_total: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int) -> BoundaryCounts:
        """Counts for no image at all, the start of a sum."""
        return cls(*(np.zeros(num_classes, dtype=np.int64) for _ in range(4)))

    def as_array(self) -> np.ndarray:
        """(4, C): pred_matched, pred_total, gt_matched, gt_total."""
        return np.stack([self.pred_matched, self.pred_total, self.gt_matched, self.gt_total])

    def __add__(self, other: BoundaryCounts) -> BoundaryCounts:
        """Pool two sets of counts (same classes) by adding them field by field."""
        return BoundaryCounts(
            self.pred_matched + other.pred_matched,
            self.pred_total + other.pred_total,
            self.gt_matched + other.gt_matched,
            self.gt_total + other.gt_total,
        )


def _disc(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) uint8 kernel of the pixels within Euclidean distance r of the centre."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def _edges(mask: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """(H, W) bool mask -> (H, W) bool: its valid pixels with a 4-neighbour outside it."""
    if valid is None:
        eroded = cv2.erode(mask.view(np.uint8), _CROSS, borderType=cv2.BORDER_REPLICATE)
        return mask & (eroded == 0)
    keep = mask | ~valid  # ignored pixels never end a region
    eroded = cv2.erode(keep.view(np.uint8), _CROSS, borderType=cv2.BORDER_REPLICATE)
    return mask & valid & (eroded == 0)


def _near(edges: np.ndarray, disc: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) bool: pixels within the disc's radius of an edge pixel."""
    grown = cv2.dilate(edges.view(np.uint8), disc, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return grown > 0


def binary_boundary_counts(
    pred_mask: np.ndarray,
    gt_mask: np.ndarray,
    tolerance: int = 3,
    valid: np.ndarray | None = None,
) -> tuple[int, int, int, int]:
    """Two (H, W) bool masks -> (pred_matched, pred_total, gt_matched, gt_total) edge pixels.

    ``valid`` (H, W) bool marks the pixels whose target counts; all pixels when None.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    pred_mask = np.ascontiguousarray(pred_mask, dtype=bool)
    gt_mask = np.ascontiguousarray(gt_mask, dtype=bool)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        valid = None if valid.all() else valid
    disc = _disc(tolerance)
    pred_edges, gt_edges = _edges(pred_mask, valid), _edges(gt_mask, valid)
    return (
        int(np.count_nonzero(pred_edges & _near(gt_edges, disc))),
        int(np.count_nonzero(pred_edges)),
        int(np.count_nonzero(gt_edges & _near(pred_edges, disc))),
        int(np.count_nonzero(gt_edges)),
    )


def _as_batch(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) or (N, H, W) pair of integer class maps -> (N, H, W) pair."""
    pred, target = _check_pair(pred, target)
    if pred.ndim == 2:
        return pred[None], target[None]
    if pred.ndim != 3:
        raise ValueError(f"expected (H, W) or (N, H, W) class maps, got shape {pred.shape}")
    return pred, target


def _counts_from_masks(
    masks: Sequence[tuple[np.ndarray, np.ndarray]], valid: np.ndarray | None, tolerance: int
) -> BoundaryCounts:
    """One (pred_mask, gt_mask) pair per class, all (H, W) -> BoundaryCounts of shape (K,)."""
    rows = [binary_boundary_counts(p, g, tolerance, valid) for p, g in masks]
    columns = np.array(rows, dtype=np.int64).reshape(len(masks), 4).T
    return BoundaryCounts(*columns)


def boundary_counts(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    tolerance: int = 3,
    ignore_index: int | None = None,
) -> BoundaryCounts:
    """(H, W) or (N, H, W) class maps -> per-class boundary counts (C,), pooled over the batch."""
    total = BoundaryCounts.zeros(num_classes)
    for p, t in zip(*_as_batch(pred, target), strict=True):
        valid = _valid_mask(t, num_classes, ignore_index)
        masks = [(p == c, t == c) for c in range(num_classes)]
        total = total + _counts_from_masks(masks, valid, tolerance)
    return total


def subject_boundary_counts(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int = 3,
    subject: Sequence[int] = (1, 2),
    tolerance: int = 3,
    ignore_index: int | None = None,
) -> BoundaryCounts:
    """(H, W) or (N, H, W) class maps -> boundary counts (1,) of the subject-classes union."""
    total = BoundaryCounts.zeros(1)
    ids = np.asarray(list(subject))
    for p, t in zip(*_as_batch(pred, target), strict=True):
        valid = _valid_mask(t, num_classes, ignore_index)
        total = total + _counts_from_masks([(np.isin(p, ids), np.isin(t, ids))], valid, tolerance)
    return total


def boundary_f_score(counts: BoundaryCounts) -> np.ndarray:
    """(C,) counts -> (C,) float64 boundary F; 1.0 if neither map has a boundary, 0.0 if one has."""
    precision = _ratio(counts.pred_matched, counts.pred_total)
    recall = _ratio(counts.gt_matched, counts.gt_total)
    f_score = np.nan_to_num(_ratio(2 * precision * recall, precision + recall), nan=0.0)
    both_empty = (counts.pred_total == 0) & (counts.gt_total == 0)
    return np.where(both_empty, 1.0, f_score)


def _plain(value: float) -> float | None:
    """A float for JSON: NaN (undefined score) becomes None."""
    return None if np.isnan(value) else float(value)


@dataclass
class SegmentationMetrics:
    """Accumulates one confusion matrix and boundary counts over a split, then scores it."""

    num_classes: int = 3
    class_names: Sequence[str] = ("background", "skin", "hair")
    subject: Sequence[int] = (1, 2)
    boundary_tolerance: int = 3
    ignore_index: int | None = None
    cm: np.ndarray = field(init=False, repr=False)
    boundary: BoundaryCounts = field(init=False, repr=False)
    subject_boundary: BoundaryCounts = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        self.cm = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.boundary = BoundaryCounts.zeros(self.num_classes)
        self.subject_boundary = BoundaryCounts.zeros(1)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one (H, W) or a batch (N, H, W) of integer class maps to the pooled counts."""
        pred, target = _as_batch(pred, target)
        self.cm = self.cm + confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.boundary = self.boundary + boundary_counts(
            pred, target, self.num_classes, self.boundary_tolerance, self.ignore_index
        )
        self.subject_boundary = self.subject_boundary + subject_boundary_counts(
            pred, target, self.num_classes, self.subject, self.boundary_tolerance, self.ignore_index
        )

    def counts(self) -> np.ndarray:
        """Every count as one float64 vector (exact below 2**53), to be summed across processes."""
        parts = [self.cm, self.boundary.as_array(), self.subject_boundary.as_array()]
        return np.concatenate([part.ravel() for part in parts]).astype(np.float64)

    def set_counts(self, counts: np.ndarray) -> None:
        """Replace every count with those of a vector from `counts()` (e.g. summed over ranks)."""
        values = np.rint(counts).astype(np.int64)
        size = self.num_classes**2
        self.cm = values[:size].reshape(self.cm.shape)
        boundary = values[size : size + 4 * self.num_classes].reshape(4, self.num_classes)
        self.boundary = BoundaryCounts(*boundary)
        self.subject_boundary = BoundaryCounts(*values[size + 4 * self.num_classes :].reshape(4, 1))

    def compute(self) -> dict[str, Any]:
        """Scores of everything seen so far as a JSON-ready dict; undefined scores are None."""
        names = list(self.class_names)
        boundary_f = boundary_f_score(self.boundary)
        return {
            "pixel_accuracy": _plain(pixel_accuracy(self.cm)),
            "mean_iou": _plain(mean_iou(self.cm)),
            "fw_iou": _plain(frequency_weighted_iou(self.cm)),
            "subject_iou": _plain(subject_iou(self.cm, self.subject)),
            "iou": dict(zip(names, map(_plain, iou_per_class(self.cm)), strict=True)),
            "f1": dict(zip(names, map(_plain, f1_per_class(self.cm)), strict=True)),
            "boundary_f": dict(zip(names, map(_plain, boundary_f), strict=True)),
            "mean_boundary_f": _plain(float(np.mean(boundary_f))),
            "subject_boundary_f": _plain(float(boundary_f_score(self.subject_boundary)[0])),
            "pixels": int(self.cm.sum()),
            "confusion_matrix": self.cm.tolist(),
        }


def binary_metrics(tolerance: int = 3) -> SegmentationMetrics:
    """A pooled scorer of 0/1 subject maps against 0/1 truths: its `subject_iou` and
    `subject_boundary_f` are the subject's IoU and boundary F (`tolerance` px)."""
    return SegmentationMetrics(2, ("background", "subject"), (1,), tolerance)
