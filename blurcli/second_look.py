"""Heads anywhere in the frame: find every person in a wider look, then segment each one framed as
LFW frames faces (or, for the person subject, framed around the whole person as the person model
learnt people), and merge the close-ups into one mask for the whole photo.

The model learnt faces centred and filling a 250 px crop; shrunk into its 192 px input, a head
that spans a twelfth of a group photo is a few pixels wide and is lost. So: the usual single pass
first; if it shows one subject filling the frame (a portrait), that is the answer. Otherwise the
same fully convolutional network looks at the photo at a larger size (`detect_size`), where small
heads are as large as its zoomed-out training views; every subject blob it finds becomes a square
crop framed like LFW, segmented at the model's own input size; close-ups that show a head where
LFW has one are blended into the single pass with tapered weights, so overlapping crops and crop
borders leave no seams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from blurcli.resample import upsample
from blurcli.segment import Segmenter

HeadMode = Literal["auto", "single"]
# LFW framing (medians over the train split's labels): skin + hair spans 53 % of the crop's width
# and starts 12 % below its top.
_LFW_WIDTH = 0.53
_LFW_TOP = 0.12


@dataclass(frozen=True)
class HeadOptions:
    """How to look for heads: the wide look's side in pixels, what counts as a subject blob there,
    when the single pass is trusted, how many heads at most get a close-up, the merge resolution."""

    detect_size: int = 576
    threshold: float = 0.5
    min_side: int = 16  # blobs smaller than this in the wide look (1/36 of it) are noise, not heads
    # A wide-look blob needs this mean probability for a close-up: 0.7 skips most clothes and
    # backdrops the model half-believes and loses nothing on LFW validation composites (bench_heads).
    blob_confidence: float = 0.7
    portrait_width: float = 0.3  # a subject this wide (fraction of the shorter side): a portrait
    portrait_confidence: float = 0.9
    head_confidence: float = 0.8
    max_skin: float = 0.36  # an LFW-framed head is at most 36 % skin (99.5th percentile, train split)
    max_heads: int = 12
    canvas_size: int = 1024
    taper: float = 0.15  # fraction of a crop's side over which its weight fades to its border


def head_options(mode: HeadMode) -> HeadOptions | None:
    """`--heads auto` looks again at people not framed like a portrait; `single` never does."""
    return HeadOptions() if mode == "auto" else None


@dataclass(frozen=True)
class Crop:
    """A square region of the photo, in photo pixels; it may reach past the photo's border."""

    left: int
    top: int
    side: int


def _labelled_blobs(prob: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, w) probability -> (the blob index of every pixel; stats rows x, y, width, height, area;
    mean probability) of the blobs over `threshold`, 8-connected; blob 0 is the background. The
    means take one pass over the map, not one per blob."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        (prob > threshold).astype(np.uint8), connectivity=8
    )
    sums = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=len(stats))
    return labels, stats, sums / np.maximum(stats[:, cv2.CC_STAT_AREA], 1)


def _blobs(prob: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The stats and mean probabilities of `_labelled_blobs`."""
    return _labelled_blobs(prob, threshold)[1:]


def _large(stats: np.ndarray, shape: tuple[int, ...], options: HeadOptions, person: bool) -> np.ndarray:
    """Per blob (stats rows): as wide as a portrait's subject (`portrait_width` of the shorter
    side) or, for the person subject, half the frame tall (a standing person is narrow)."""
    large = stats[:, cv2.CC_STAT_WIDTH] >= options.portrait_width * min(shape[:2])
    if person:
        large |= stats[:, cv2.CC_STAT_HEIGHT] >= 0.5 * shape[0]
    return large


def subject_boxes(
    prob: np.ndarray, threshold: float, min_side: int, confidence: float = 0.0
) -> list[tuple[int, int, int, int]]:
    """(h, w) subject probability -> (x0, y0, x1, y1) boxes of its blobs, widest first; blobs
    under `min_side` or with a mean probability under `confidence` are left out."""
    stats, means = _blobs(prob, threshold)
    boxes = []
    for (x, y, width, height, _), mean in zip(stats[1:], means[1:], strict=True):
        if max(width, height) >= min_side and mean >= confidence:
            boxes.append((int(x), int(y), int(x + width), int(y + height)))
    return sorted(boxes, key=lambda box: box[2] - box[0], reverse=True)


def is_portrait(low: np.ndarray, options: HeadOptions = HeadOptions(), person: bool = False) -> bool:
    """A single pass's (h, w) subject map shows a subject filling a good part of the frame: a blob
    at least `portrait_width` of the shorter side wide (for the person subject, or half the frame
    tall: a standing person is narrow), and sure of itself (mean probability over
    `portrait_confidence`; backdrops mistaken for skin are wide but unsure)."""
    stats, means = _blobs(low, options.threshold)
    large = _large(stats, low.shape, options, person)
    return bool(np.any((large & (means >= options.portrait_confidence))[1:]))


def main_blob(
    close_up: np.ndarray, threshold: float, by: int
) -> tuple[tuple[float, float, float, float], float] | None:
    """The close-up's largest blob over `threshold` by the `by` statistic (width or area): its
    (centre x, centre y, width, height) as fractions of the crop, and its mean probability."""
    stats, means = _blobs(close_up, threshold)
    if len(stats) < 2:
        return None
    index = 1 + int(np.argmax(stats[1:, by]))
    x0, y0, width, height = stats[index, :4]
    rows, cols = close_up.shape
    place = ((x0 + width / 2) / cols, (y0 + height / 2) / rows, width / cols, height / rows)
    return place, float(means[index])


def looks_like_a_head(close_up: np.ndarray, threshold: float = 0.5, confidence: float = 0.8) -> bool:
    """A close-up (h, w) subject map framed like LFW shows a head where LFW has one: a blob about
    half the crop wide (a quarter to 0.85) whose middle lies in the crop's middle half, and of which
    the model is sure (mean probability over `confidence`; walls and clothes it half-believes are
    not heads)."""
    blob = main_blob(close_up, threshold, cv2.CC_STAT_WIDTH)
    if blob is None:
        return False
    (centre_x, centre_y, width, _), mean = blob
    placed = 0.25 <= width <= 0.85 and 0.25 <= centre_x <= 0.75 and 0.2 <= centre_y <= 0.8
    return placed and mean >= confidence


def looks_like_a_person(close_up: np.ndarray, threshold: float = 0.5, confidence: float = 0.8) -> bool:
    """A close-up (h, w) person map framed around one person shows one: a blob at least 40 % of the
    crop tall whose middle lies in the crop's middle half, of which the model is sure."""
    blob = main_blob(close_up, threshold, cv2.CC_STAT_AREA)
    if blob is None:
        return False
    (centre_x, _, _, height), mean = blob
    return height >= 0.4 and 0.25 <= centre_x <= 0.75 and mean >= confidence


def person_crop(box: tuple[int, int, int, int], scale: float, margin: float = 1.15) -> Crop:
    """The square crop around a person box found at `scale`, framed as the person model learnt
    whole people: the longer side of the box times `margin`, centred on it."""
    x0, y0, x1, y1 = (value / scale for value in box)
    side = max(x1 - x0, y1 - y0, 8.0) * margin
    return Crop(round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2), math.ceil(side))


def lfw_crop(box: tuple[int, int, int, int], scale: float) -> Crop:
    """The LFW-like square crop around a subject box found at `scale` (wide-look px per photo px)."""
    x0, y0, x1, y1 = (value / scale for value in box)
    side = max((x1 - x0) / _LFW_WIDTH, (y1 - y0) / 0.9, 8.0)
    left = (x0 + x1) / 2 - side / 2
    top = y0 - _LFW_TOP * side
    return Crop(round(left), round(top), math.ceil(side))


def cut(image: np.ndarray, crop: Crop) -> np.ndarray:
    """The crop's pixels; parts past the photo's border repeat its edge (as the model's padding does)."""
    height, width = image.shape[:2]
    top, left = max(crop.top, 0), max(crop.left, 0)
    bottom, right = min(crop.top + crop.side, height), min(crop.left + crop.side, width)
    inner = image[top:bottom, left:right]
    pads = (top - crop.top, crop.top + crop.side - bottom, left - crop.left, crop.left + crop.side - right)
    if any(pads):
        inner = cv2.copyMakeBorder(inner, *pads, cv2.BORDER_REPLICATE)
    return inner


def taper_window(size: int, taper: float) -> np.ndarray:
    """(size, size) float32 weights: 1 in the middle, fading linearly to ~0 at the border."""
    ramp = np.minimum(np.arange(size, dtype=np.float32) + 0.5, size - np.arange(size, dtype=np.float32) - 0.5)
    ramp = np.clip(ramp / max(taper * size, 1.0), 0.0, 1.0)
    return np.outer(ramp, ramp)


def merge(
    base: np.ndarray,
    crops: list[Crop],
    close_ups: list[np.ndarray],
    photo_shape: tuple[int, int],
    options: HeadOptions = HeadOptions(),
) -> np.ndarray:
    """Blend close-up maps (h, w[, C]) into a map of the whole photo, at up to `canvas_size`.

    Each close-up counts fully in its middle and fades out towards its border, where `base` takes
    over again; overlapping close-ups average. Returns the merged map covering the whole photo.
    """
    height, width = photo_shape
    # At most half the photo's resolution: the map is still a low-resolution mask, which the guided
    # filter brings to full resolution along the photo's edges.
    scale = min(0.5, options.canvas_size / max(height, width))
    rows, cols = max(1, round(height * scale)), max(1, round(width * scale))
    merged = upsample(base.astype(np.float32), (rows, cols))
    total = np.zeros_like(merged)
    weights = np.zeros((rows, cols), np.float32)
    for crop, close_up in zip(crops, close_ups, strict=True):
        side = max(1, round(crop.side * scale))
        left, top = round(crop.left * scale), round(crop.top * scale)
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + side, rows), min(left + side, cols)
        if y0 >= y1 or x0 >= x1:
            continue
        part = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        weight = taper_window(side, options.taper)[part]
        values = upsample(close_up.astype(np.float32), (side, side))[part]
        total[y0:y1, x0:x1] += values * (weight[..., None] if values.ndim == 3 else weight)
        weights[y0:y1, x0:x1] += weight
    covered = weights > 0
    share = np.minimum(weights, 1.0)  # how much the close-ups decide; 1 inside any crop's middle
    if merged.ndim == 3:
        average = total[covered] / weights[covered][:, None]
        merged[covered] += share[covered][:, None] * (average - merged[covered])
    else:
        merged[covered] += share[covered] * (total[covered] / weights[covered] - merged[covered])
    return merged


def agree(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two maps of one photo -> the subject only where both see it: the smaller subject probability
    (h, w); for class probabilities (h, w, C), the first's split of its subject among the classes,
    scaled down to that, and the rest background."""
    if first.ndim == 2:
        return np.minimum(first, second)
    subject = np.minimum(1.0 - first[..., 0], 1.0 - second[..., 0])
    scale = subject / np.maximum(1.0 - first[..., 0], 1e-6)
    out = first * scale[..., None]
    out[..., 0] = 1.0 - subject
    return out


def _framed(close_up: np.ndarray, person: bool, options: HeadOptions) -> bool:
    """Whether a close-up's class probabilities show what its crop was framed around: a whole
    person, or a head where LFW has one with no more skin than an LFW-framed head."""
    subject = 1.0 - close_up[..., 0]
    if person:
        return looks_like_a_person(subject, options.threshold, options.head_confidence)
    skin = float((close_up.argmax(axis=-1) == 1).mean())
    return looks_like_a_head(subject, options.threshold, options.head_confidence) and skin <= options.max_skin


def look_wide(
    segmenter: Segmenter, image: np.ndarray, subject_only: bool, options: HeadOptions = HeadOptions()
) -> tuple[np.ndarray, list[Crop]]:
    """The wide look at `detect_size`: its map, and a crop around each sure subject blob it finds,
    framed as the model learnt its subject (widest first, at most `max_heads`)."""
    wide = segmenter.at_size(options.detect_size).probabilities([image], 1, subject_only)[0]
    subject = wide if subject_only else 1.0 - wide[..., 0]
    scale = subject.shape[1] / image.shape[1]
    boxes = subject_boxes(subject, options.threshold, options.min_side, options.blob_confidence)
    frame = person_crop if segmenter.subject == "person" else lfw_crop
    return wide, [frame(box, scale) for box in boxes[: options.max_heads]]


def look_closer(
    segmenter: Segmenter, image: np.ndarray, crops: list[Crop], options: HeadOptions = HeadOptions()
) -> list[tuple[Crop, np.ndarray]]:
    """Each crop's close-up (class probabilities at the model's input size), for the crops whose
    close-up shows what they were framed around; the others are dropped."""
    if not crops:
        return []
    classes = segmenter.probabilities([cut(image, crop) for crop in crops], len(crops), subject_only=False)
    person = segmenter.subject == "person"
    return [
        (crop, close_up)
        for crop, close_up in zip(crops, classes, strict=True)
        if _framed(close_up, person, options)
    ]


def large_subjects(subject: np.ndarray, options: HeadOptions = HeadOptions()) -> np.ndarray:
    """(h, w) bool: the pixels of a single pass's subject blobs that are large (as wide as a portrait's
    subject, or half the frame tall) and fairly sure (mean over `blob_confidence`). The wide look
    sees such a person far larger than any it learnt, so it cannot veto them."""
    labels, stats, means = _labelled_blobs(subject, options.threshold)
    keep = _large(stats, subject.shape, options, person=True) & (means >= options.blob_confidence)
    keep[0] = False  # the background
    return keep[labels]


def combine(
    first: np.ndarray,
    wide: np.ndarray,
    heads: list[tuple[Crop, np.ndarray]],
    photo_shape: tuple[int, int],
    subject_only: bool,
    options: HeadOptions = HeadOptions(),
    person: bool = False,
) -> np.ndarray:
    """The single pass, the wide look and the close-ups as one map of the photo: inside the
    close-ups they decide; outside, a subject must be seen by both looks (single-pass false
    positives on backdrops such as skin-coloured walls go, and so do blobs whose close-up showed
    no head), except, for the person, a large person the single pass is fairly sure of."""
    agreed = agree(first, upsample(wide, first.shape[:2]))
    if person:
        kept = large_subjects(first if subject_only else 1.0 - first[..., 0], options)
        agreed[kept] = first[kept]
    maps = [1.0 - close_up[..., 0] if subject_only else close_up for _, close_up in heads]
    return merge(agreed, [crop for crop, _ in heads], maps, photo_shape, options)


def needs_a_second_look(
    first: np.ndarray, subject_only: bool, person: bool, options: HeadOptions = HeadOptions()
) -> bool:
    """Whether a single pass's output shows anything but a portrait (which it answers alone)."""
    return not is_portrait(first if subject_only else 1.0 - first[..., 0], options, person)


def second_look(
    segmenter: Segmenter,
    image: np.ndarray,
    first: np.ndarray,
    subject_only: bool = True,
    options: HeadOptions = HeadOptions(),
) -> np.ndarray:
    """Improve a single pass's output `first` for a photo whose people are not framed like LFW.

    (H, W, 3) uint8 RGB photo; `first` and the result are subject probability (h, w) or class
    probabilities (h, w, C), as `subject_only` says. A portrait keeps `first` (no extra cost).
    Close-ups that do not show a head framed like LFW are dropped; where none is left, and outside
    the close-ups, the single pass stands.
    """
    if not needs_a_second_look(first, subject_only, segmenter.subject == "person", options):
        return first
    wide, crops = look_wide(segmenter, image, subject_only, options)
    if not crops:
        return first
    heads = look_closer(segmenter, image, crops, options)
    person = segmenter.subject == "person"
    return combine(first, wide, heads, image.shape[:2], subject_only, options, person)
