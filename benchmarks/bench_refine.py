"""Do masks refined against the photo (guided filter) have cleaner edges than plain bilinear upsampling?

Scored on LFW Part Labels (default: the test split) with its ground truth: the shipped model
predicts each face at its input size, the subject mask is brought to the photo's resolution both
ways, and the subject IoU and boundary F-score (tolerance 3 px at 250 px, scaled with the photo)
are pooled over the split. At 4x and 8x the photo and its labels are enlarged first (bicubic /
nearest) to stand in for the high-resolution photos users blur: the model sees the same 192 px
input, so only the upsampling differs.

    python benchmarks/bench_refine.py [--data ../shared/data/lfw-parts] [--split test] [--scales 1 4]
        [--weights W] [--limit N]
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import add_data, add_weights, argument_parser, full_size_mask, timed
from blurcli.refine import RefineOptions
from blurcli.segment import new_segmenter
from blurcli.training.lfw import load_split
from blurcli.training.metrics import binary_metrics


def decision(low: np.ndarray, image: np.ndarray, refine: RefineOptions | None) -> np.ndarray:
    """The subject mask at the photo's size, decided (> 0.5): the step that is timed."""
    return full_size_mask(low, image, refine) > 0.5


def score(
    images: list[np.ndarray],
    truths: list[np.ndarray],
    lows: list[np.ndarray],
    scale: int,
    refine: RefineOptions | None,
) -> tuple[float, float, float]:
    """(subject IoU, boundary F, ms per image for the upsampling) over the split at `scale`."""
    scores = binary_metrics(3 * scale)
    seconds = 0.0
    for image, truth, low in zip(images, truths, lows, strict=True):
        if scale != 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            truth = cv2.resize(truth, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        spent, mask = timed(partial(decision, low, image, refine))
        seconds += spent
        scores.update(mask.astype(np.uint8), (truth > 0).astype(np.uint8))
    figures = scores.compute()
    return figures["subject_iou"], figures["subject_boundary_f"], 1000 * seconds / len(images)


def main() -> None:
    parser = argument_parser(__doc__)
    add_data(parser)
    parser.add_argument("--split", default="test")
    add_weights(parser)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--limit", type=int, default=None, help="Only the first N images.")
    args = parser.parse_args()

    split = load_split(args.data, args.split, limit=args.limit)
    segmenter = new_segmenter(args.weights, "cpu")
    lows = segmenter.probabilities(list(split.images), subject_only=True)
    truths = list(split.masks)
    print(
        f"LFW {args.split}: {len(truths)} images; subject mask at the photo's resolution; ms/img: the "
        f"upsampling alone (the model ran before the clock), OpenCV on {cv2.getNumThreads()} threads"
    )
    print(f"{'scale':>5} {'upsampling':>10} {'subject IoU':>11} {'boundary F':>10} {'ms/img':>7}")
    for scale in args.scales:
        for name, refine in (("bilinear", None), ("guided", RefineOptions())):
            iou, boundary, ms = score(list(split.images), truths, lows, scale, refine)
            print(f"{scale:>4}x {name:>10} {iou:>11.4f} {boundary:>10.4f} {ms:>7.2f}")


if __name__ == "__main__":
    main()
