"""The photos that calibrate an int8 model (`blurcli export --int8`): a fixed pick from the training
sets only (LFW's train split, CCP's train photos 0001-0800; never a validation or test photo, never
people-dev), fed as `blur` feeds them: resized and padded as `Segmenter.prepare` does, normalised
as `preprocess.normalize` does, at the model's input size and, for some, at the second look's wide
size (the network runs at both, and int8 ranges taken at one size alone miss the other).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blurcli.preprocess import normalize, resize_for_model
from blurcli.second_look import HeadOptions
from blurcli.spec import NetworkSpec
from blurcli.training.ccp import load_person_split
from blurcli.training.lfw import load_split

PHOTOS_PER_SET = 64
# Every 23rd of LFW's 1,500 train photos (split file order), every 12th of CCP's 800 (by number):
# 64 of each, spread over the whole set rather than its first photos.
STEPS = (23, 12)
# Seen at the wide look's size too: every 4th CCP photo and every 8th LFW photo (16 and 8). Without
# LFW's faces there, masks moved more (docs/int8.md).
WIDE_EVERY = (8, 4)
BATCH, WIDE_BATCH = 8, 4


@dataclass(frozen=True)
class CalibrationSet:
    """Training photos, (H, W, 3) uint8 RGB, that calibrate an int8 model: `photos` at the model's
    input size, `wide` at the second look's wide size too; `batches` makes the network's input."""

    photos: tuple[np.ndarray, ...]
    wide: tuple[np.ndarray, ...] = ()
    wide_size: int = HeadOptions().detect_size

    def batches(self, spec: NetworkSpec) -> list[np.ndarray]:
        """Normalised (N, 3, h, w) float32 batches, each of one shape: the photos at the spec's
        input size, then the wide ones at `wide_size`."""
        at_size = _batches(self.photos, spec, spec.input_size, BATCH)
        return at_size + _batches(self.wide, spec, self.wide_size, WIDE_BATCH)


def calibration_set(
    lfw_root: Path, ccp_root: Path | None = None, count: int = PHOTOS_PER_SET, steps: tuple[int, int] = STEPS
) -> CalibrationSet:
    """`count` photos of LFW's train split, every `steps[0]`th, and with `ccp_root` `count` of CCP's
    train photos, every `steps[1]`th (deterministic: the same files give the same set); some of
    them at the wide size too (`WIDE_EVERY`)."""
    lfw = load_split(Path(lfw_root), "train", count, step=steps[0]).images
    if ccp_root is None:
        return CalibrationSet(tuple(lfw), tuple(lfw[:: WIDE_EVERY[0]]))
    ccp = load_person_split(Path(ccp_root), "train", count, step=steps[1]).images
    return CalibrationSet((*lfw, *ccp), (*ccp[:: WIDE_EVERY[1]], *lfw[:: WIDE_EVERY[0]]))


def _batches(photos: Sequence[np.ndarray], spec: NetworkSpec, size: int, batch: int) -> list[np.ndarray]:
    """Photos resized to longer side `size`, padded to the spec's multiple, grouped by shape (in
    order of first appearance) and normalised in batches of up to `batch`."""
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for photo in photos:
        padded, _ = resize_for_model(photo, size, spec.multiple)
        groups.setdefault(padded.shape, []).append(padded)
    return [
        normalize(np.stack(group[start : start + batch]), spec.mean, spec.std)
        for group in groups.values()
        for start in range(0, len(group), batch)
    ]
