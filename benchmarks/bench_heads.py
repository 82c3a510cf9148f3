"""Heads anywhere in the frame: single pass vs the second look (blurcli/heads.py), on LFW composites.

LFW faces with their ground truth are pasted into larger photo-like frames (1600x1200, textured
backdrops synthesised here), their crops softly blended in, at a head width (skin + hair, 53 % of
an LFW crop) of 1/3, 1/6 and 1/12 of the frame, one to five per frame at random places without
overlap. Subject IoU and boundary F (3 px per 250 px of crop) are pooled per scale, for the plain
single pass, for `--heads auto`, and for the same faces scored as plain LFW crops (the target:
within 0.03 of that at every scale). Then milliseconds per 12 MP photo with 1, 3 and 5 heads.

    python benchmarks/bench_heads.py [--split test] [--frames 60] [--weights W]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.second_look import HeadOptions, second_look, taper_window
from blurcli.segment import Segmenter
from blurcli.training.lfw import SplitData, load_split
from blurcli.training.metrics import SegmentationMetrics, binary_metrics

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1600, 1200
SCALES = {"1/3": 1 / 3, "1/6": 1 / 6, "1/12": 1 / 12}
HEADS = {"1/3": (1, 2), "1/6": (1, 3), "1/12": (1, 5)}  # heads per frame, inclusive


def backdrop(rng: np.random.Generator, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A defocused room-like backdrop: coarse muted colour fields, a gradient, fine noise."""
    cells = int(rng.integers(3, 9))
    coarse = rng.uniform(20, 235, (cells, cells, 3)).astype(np.float32)
    grey = coarse.mean(axis=-1, keepdims=True)
    coarse = grey + (coarse - grey) * rng.uniform(0.2, 0.8)
    scene = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    scene *= np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.9, 1.2), height, dtype=np.float32)[
        :, None, None
    ]
    scene += rng.normal(0, rng.uniform(2, 8), scene.shape).astype(np.float32)
    return np.clip(scene, 0, 255).astype(np.uint8)


def compose(
    split: SplitData, indices: list[int], fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One frame with the given faces pasted at head width `fraction`: (frame, labels)."""
    frame = backdrop(rng)
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
        face = cv2.resize(split.images[index], (side, side), interpolation=cv2.INTER_AREA)
        truth = cv2.resize(split.masks[index], (side, side), interpolation=cv2.INTER_NEAREST)
        region = frame[top : top + side, left : left + side].astype(np.float32)
        frame[top : top + side, left : left + side] = (alpha * face + (1 - alpha) * region + 0.5).astype(
            np.uint8
        )
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


def subject_mask(segmenter: Segmenter, image: np.ndarray, heads: bool, options: HeadOptions) -> np.ndarray:
    """The full-resolution 0/1 subject decision `blur` would use, single pass or with the second look."""
    low = segmenter.probabilities([image], 1, subject_only=True)[0]
    if heads:
        low = second_look(segmenter, image, low, True, options)
    return (enlarge_mask(low, grey_guide(image), RefineOptions()) > 0.5).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "lfw-parts")
    parser.add_argument("--split", default="test")
    parser.add_argument("--frames", type=int, default=60, help="Frames per scale.")
    parser.add_argument("--weights", default=None)
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
    print("| head width | faces | plain LFW crops | single pass | --heads auto |")
    print("| --- | --- | --- | --- | --- |")
    for name, fraction in SCALES.items():
        tolerance = max(1, round(3 * crop_side(fraction) / 250))  # 3 px per 250 px of crop, as on LFW
        plain, single, auto = binary_metrics(3), binary_metrics(tolerance), binary_metrics(tolerance)
        faces = 0
        for _ in range(args.frames):
            indices = list(
                rng.choice(len(split.names), int(rng.integers(HEADS[name][0], HEADS[name][1] + 1)))
            )
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
        print(f"| {name} | {faces} | {shown(plain)} | {shown(single)} | {shown(auto)} |", flush=True)
    if args.no_timing:
        return
    print("\nms per 12 MP photo (4000x3000, heads 1/12 of the width), low-resolution mask only, median of 5")
    print("| heads | single pass | --heads auto | extra |")
    print("| --- | --- | --- | --- |")
    extra = {}
    for count in (1, 3, 5):
        frame, _ = compose(split, list(range(count)), 1 / 12, np.random.default_rng(count))
        big = cv2.resize(frame, (4000, 3000), interpolation=cv2.INTER_CUBIC)
        times = {}
        for heads in (False, True):
            samples = []
            for _ in range(5):
                started = time.perf_counter()
                low = segmenter.probabilities([big], 1, subject_only=True)[0]
                if heads:
                    second_look(segmenter, big, low, True, options)
                samples.append((time.perf_counter() - started) * 1000)
            times[heads] = statistics.median(samples)
        extra[count] = times[True] - times[False]
        print(f"| {count} | {times[False]:.0f} | {times[True]:.0f} | {extra[count]:.0f} |")
    plain = np.stack([split.images[0]] * 5)
    started = time.perf_counter()
    for _ in range(5):
        segmenter.probabilities(list(plain), 1, subject_only=True)
    one_pass = (time.perf_counter() - started) * 1000 / 25
    per_head = (extra[5] - extra[1]) / 4
    print(f"extra per head beyond the first (5 vs 1): {per_head:.1f} ms; one model pass: {one_pass:.1f} ms")


if __name__ == "__main__":
    main()
