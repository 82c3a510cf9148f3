"""Heads anywhere in the frame: single pass vs the second look (blurcli/second_look.py), on LFW composites.

LFW faces with their ground truth are pasted into larger photo-like frames (1600x1200, textured
backdrops synthesised here), their crops softly blended in, at a head width (skin + hair, 53 % of
an LFW crop) of 1/3, 1/6 and 1/12 of the frame, one to five per frame at random places without
overlap. Subject IoU and boundary F (3 px per 250 px of crop) are pooled per scale, for the plain
single pass, for `--heads auto`, and for the same faces scored as plain LFW crops (the target:
within 0.03 of that at every scale). Then milliseconds per 12 MP photo with 1, 3 and 5 heads.

    python benchmarks/bench_heads.py [--split test] [--frames 60] [--weights W] [--no-timing]
        [--data ../shared/data/lfw-parts] [--detect-size 576] [--blob-confidence 0.7]
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import (
    add_data,
    add_weights,
    argument_parser,
    full_size_mask,
    median_ms,
    paste,
    resized_pair,
    room_backdrop,
    table_header,
    table_row,
    timed,
)
from blurcli.second_look import HeadOptions, second_look, taper_window
from blurcli.segment import Segmenter
from blurcli.training.lfw import SplitData, load_split
from blurcli.training.metrics import SegmentationMetrics, binary_metrics

WIDTH, HEIGHT = 1600, 1200
SCALES = {"1/3": 1 / 3, "1/6": 1 / 6, "1/12": 1 / 12}
HEADS = {"1/3": (1, 2), "1/6": (1, 3), "1/12": (1, 5)}  # heads per frame, inclusive


def compose(
    split: SplitData, indices: list[int], fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One frame with the given faces pasted at head width `fraction`: (frame, labels)."""
    frame = room_backdrop(rng, WIDTH, HEIGHT)
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    side = crop_side(fraction)
    alpha = taper_window(side, 0.08)[..., None]  # soft crop border, no hard frame
    taken: list[tuple[int, int]] = []
    for index in indices:
        for _ in range(200):
            top, left = int(rng.integers(0, HEIGHT - side + 1)), int(rng.integers(0, WIDTH - side + 1))
            if all(abs(top - t) >= side or abs(left - u) >= side for t, u in taken):
                break
        else:
            continue  # no free place left for this face
        taken.append((top, left))
        face, truth = resized_pair(split.images[index], split.masks[index], side)
        paste(frame, face, alpha, top, left)
        inside = alpha[..., 0] > 0.5
        labels[top : top + side, left : left + side][inside] = truth[inside]
    return frame, labels


def crop_side(fraction: float) -> int:
    """Side in pixels of a pasted LFW crop whose head (53 % of the crop) is `fraction` of the frame."""
    return min(round(fraction * WIDTH / 0.53), HEIGHT)


def shown(scores: SegmentationMetrics) -> str:
    """'subject IoU / boundary F' of a pooled binary scorer."""
    figures = scores.compute()
    return f"{figures['subject_iou']:.3f} / {figures['subject_boundary_f']:.3f}"


def low_mask(segmenter: Segmenter, image: np.ndarray, heads: bool, options: HeadOptions) -> np.ndarray:
    """The subject probability at model size, single pass or with the second look."""
    low = segmenter.probabilities([image], 1, subject_only=True)[0]
    return second_look(segmenter, image, low, True, options) if heads else low


def subject_mask(segmenter: Segmenter, image: np.ndarray, heads: bool, options: HeadOptions) -> np.ndarray:
    """The full-resolution 0/1 subject decision `blur` would use, single pass or with the second look."""
    return (full_size_mask(low_mask(segmenter, image, heads, options), image) > 0.5).astype(np.uint8)


def scale_row(
    segmenter: Segmenter,
    split: SplitData,
    name: str,
    frames: int,
    rng: np.random.Generator,
    options: HeadOptions,
) -> str:
    """The table row of one head width: faces, then plain crops, single pass and --heads auto scores."""
    fraction = SCALES[name]
    tolerance = max(1, round(3 * crop_side(fraction) / 250))  # 3 px per 250 px of crop, as on LFW
    plain, single, auto = binary_metrics(3), binary_metrics(tolerance), binary_metrics(tolerance)
    faces = 0
    for _ in range(frames):
        indices = list(rng.choice(len(split.names), int(rng.integers(HEADS[name][0], HEADS[name][1] + 1))))
        frame, labels = compose(split, indices, fraction, rng)
        for index in indices:
            crop = split.images[index]
            plain.update(
                subject_mask(segmenter, crop, False, options), (split.masks[index] > 0).astype(np.uint8)
            )
        faces += len(indices)
        truth = (labels > 0).astype(np.uint8)
        single.update(subject_mask(segmenter, frame, False, options), truth)
        auto.update(subject_mask(segmenter, frame, True, options), truth)
    return table_row(name, faces, shown(plain), shown(single), shown(auto))


def print_timing(segmenter: Segmenter, split: SplitData, options: HeadOptions) -> None:
    """Milliseconds per 12 MP photo with 1, 3 and 5 heads, single pass against --heads auto."""
    print("\nms per 12 MP photo (4000x3000, heads 1/12 of the width), low-resolution mask only, median of 5")
    print(table_header("heads", "single pass", "--heads auto", "extra"))
    extra = {}
    for count in (1, 3, 5):
        frame, _ = compose(split, list(range(count)), 1 / 12, np.random.default_rng(count))
        big = cv2.resize(frame, (4000, 3000), interpolation=cv2.INTER_CUBIC)
        times = {
            heads: median_ms(partial(low_mask, segmenter, big, heads, options), 5) for heads in (False, True)
        }
        extra[count] = times[True] - times[False]
        print(table_row(count, f"{times[False]:.0f}", f"{times[True]:.0f}", f"{extra[count]:.0f}"))
    plain = np.stack([split.images[0]] * 5)
    seconds, _ = timed(lambda: [segmenter.probabilities(list(plain), 1, subject_only=True) for _ in range(5)])
    one_pass = seconds * 1000 / 25
    per_head = (extra[5] - extra[1]) / 4
    print(f"extra per head beyond the first (5 vs 1): {per_head:.1f} ms; one model pass: {one_pass:.1f} ms")


def main() -> None:
    parser = argument_parser(__doc__)
    add_data(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--frames", type=int, default=60, help="Frames per scale.")
    add_weights(parser)
    parser.add_argument("--detect-size", type=int, default=HeadOptions().detect_size)
    parser.add_argument("--blob-confidence", type=float, default=HeadOptions().blob_confidence)
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    options = HeadOptions(detect_size=args.detect_size, blob_confidence=args.blob_confidence)
    split = load_split(args.data, args.split)
    segmenter = Segmenter.load(args.weights, "cpu")
    rng = np.random.default_rng(0)
    print(f"LFW {args.split} faces in {WIDTH}x{HEIGHT} frames, {args.frames} frames per scale")
    print("subject IoU / boundary F, pooled")
    print(table_header("head width", "faces", "plain LFW crops", "single pass", "--heads auto"))
    for name in SCALES:
        print(scale_row(segmenter, split, name, args.frames, rng, options), flush=True)
    if not args.no_timing:
        print_timing(segmenter, split, options)


if __name__ == "__main__":
    main()
