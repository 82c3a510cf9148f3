"""Heads (or whole people) anywhere in the frame: single pass vs the second look (blurcli/second_look.py).

LFW faces with their ground truth are pasted into larger photo-like frames (1600x1200, textured
backdrops synthesised here), their crops softly blended in, at a head width (skin + hair, 53 % of
an LFW crop) of 1/3, 1/6 and 1/12 of the frame, one to five per frame at random places without
overlap. Subject IoU and boundary F (3 px per 250 px of crop) are pooled per scale, for the plain
single pass, for `--heads auto`, and for the same faces scored as plain LFW crops (the target:
within 0.03 of that at every scale). Then milliseconds per 12 MP photo with 1, 3 and 5 heads.
--threads limits ONNX Runtime (every pass of the model, the second look's too) and OpenCV alike;
every timing header says which limit applied.

    python benchmarks/bench_heads.py [--split test] [--frames 60] [--weights W] [--no-timing]
        [--data ../shared/data/lfw-parts] [--detect-size 576] [--blob-confidence 0.7] [--threads N]

`--subject person` (a model with a person output) measures whole people the same way, on Clothing
Co-Parsing composites: CCP test people (every photo's one labelled person), cut out along their
masks with a soft edge (Gaussian, 0.7 px), are pasted whole into 1920x1080 frames (a landscape
street photo, the case the second look is for; landscape is also the harder orientation, as the
longer side is what shrinks to the model's input) over synthetic room backdrops, never over other
CCP photos, whose bystanders are unlabelled. Person heights are 1/1.2 of the frame's height (a
full-length shot, as CCP frames its people), 1/2 and 1/4 (people in a street scene),
1/8 (135 px, 14 px tall in the single pass: the small passer-by) and 1/16 (about 20 px tall in the
576 px wide look, near its 16 px floor for a blob), one to two (1/1.2) up to one to five (1/8,
1/16) per frame at random places without overlap. Person IoU and boundary F (3 px per 760 px of
person, the median CCP person's height: bench_person.py's 3 px at CCP's own size) are pooled per
size, for the same people as plain CCP photos (single pass: the model's home framing), for the
single pass and for `--heads auto`, with the full-resolution mask made as `blurcli blur` and
`blurcli predict` make it; then the median ms per frame, from RGB pixels to that mask.

    python benchmarks/bench_heads.py --subject person --weights W [--data ../shared/data/ccp]
        [--split test] [--frames 60] [--limit N] [--threads N] [--detect-size 576] [--blob-confidence 0.7]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from functools import partial
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import (
    CCP_DATA,
    LFW_DATA,
    add_threads,
    add_weights,
    argument_parser,
    full_size_mask,
    load_segmenter,
    median_ms,
    paste,
    resized_pair,
    room_backdrop,
    table_header,
    table_row,
    threads_label,
    timed,
    use_threads,
)
from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.render import segment_photo
from blurcli.second_look import HeadOptions, second_look, taper_window
from blurcli.segment import Segmenter
from blurcli.training.ccp import PersonSplit, load_person_split
from blurcli.training.lfw import SplitData, load_split
from blurcli.training.metrics import SegmentationMetrics, binary_metrics

WIDTH, HEIGHT = 1600, 1200
SCALES = {"1/3": 1 / 3, "1/6": 1 / 6, "1/12": 1 / 12}
HEADS = {"1/3": (1, 2), "1/6": (1, 3), "1/12": (1, 5)}  # heads per frame, inclusive

# --subject person: whole CCP people in landscape frames, by their height's share of the frame's.
PERSON_WIDTH, PERSON_HEIGHT = 1920, 1080
PERSON_SIZES = {"1/1.2": 1 / 1.2, "1/2": 1 / 2, "1/4": 1 / 4, "1/8": 1 / 8, "1/16": 1 / 16}
PEOPLE = {"1/1.2": (1, 2), "1/2": (1, 3), "1/4": (1, 4), "1/8": (1, 5), "1/16": (1, 5)}  # inclusive
CCP_PERSON = 760  # median height in px of a CCP test person in its photo (5-95 %: 731-792)
EDGE_SIGMA = 0.7  # px: the soft edge of a cut-out person in the frame


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
    print(
        "\nms per 12 MP photo (4000x3000, heads 1/12 of the width), low-resolution mask only, median of 5, "
        + threads_label()
    )
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


def cut_out(image: np.ndarray, mask: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A CCP person cut out along its mask, `height` px tall: (h, w, 3) uint8 pixels of its box (with
    2 px to spare for the edge) and their (h, w, 1) float32 alpha, the mask with a soft edge."""
    rows, cols = np.nonzero(mask)
    scale = height / (rows.max() + 1 - rows.min())
    spare = math.ceil(2 / scale)
    top, left = max(0, rows.min() - spare), max(0, cols.min() - spare)
    bottom, right = min(rows.max() + 1 + spare, mask.shape[0]), min(cols.max() + 1 + spare, mask.shape[1])
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    shrinking = scale < 1
    pixels = cv2.resize(
        image[top:bottom, left:right], size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    )
    alpha = cv2.resize(
        mask[top:bottom, left:right].astype(np.float32),
        size,
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    alpha = np.clip(cv2.GaussianBlur(alpha, (0, 0), EDGE_SIGMA), 0.0, 1.0)
    return pixels, alpha[..., None]


def compose_people(
    split: PersonSplit, indices: list[int], fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One frame with the given people pasted `fraction` of its height tall over a room backdrop:
    (frame, 0/1 person truth, the indices pasted; a person with no free place left is skipped)."""
    frame = room_backdrop(rng, PERSON_WIDTH, PERSON_HEIGHT)
    truth = np.zeros((PERSON_HEIGHT, PERSON_WIDTH), np.uint8)
    taken: list[tuple[int, int, int, int]] = []
    pasted = []
    for index in indices:
        pixels, alpha = cut_out(split.images[index], split.masks[index], round(fraction * PERSON_HEIGHT))
        height, width = (min(side, limit) for side, limit in zip(pixels.shape[:2], truth.shape, strict=True))
        pixels, alpha = pixels[:height, :width], alpha[:height, :width]
        for _ in range(200):
            top = int(rng.integers(0, PERSON_HEIGHT - height + 1))
            left = int(rng.integers(0, PERSON_WIDTH - width + 1))
            if all(top >= b or top + height <= t or left >= r or left + width <= u for t, u, b, r in taken):
                break
        else:
            continue
        taken.append((top, left, top + height, left + width))
        pasted.append(index)
        paste(frame, pixels, alpha, top, left)
        truth[top : top + height, left : left + width][alpha[..., 0] > 0.5] = 1
    return frame, truth, pasted


def person_mask(segmenter: Segmenter, image: np.ndarray, heads: HeadOptions | None) -> np.ndarray:
    """The full-resolution 0/1 person decision as `blurcli blur` and `predict` make the mask
    (`heads` None: --heads single), thresholded at 0.5."""
    low = segment_photo(segmenter, image, True, heads).values
    return (enlarge_mask(low, grey_guide(image), RefineOptions()) > 0.5).astype(np.uint8)


def person_row(
    segmenter: Segmenter,
    split: PersonSplit,
    name: str,
    frames: int,
    rng: np.random.Generator,
    options: HeadOptions,
) -> str:
    """The table row of one person height: people, plain CCP photos, single pass and --heads auto
    scores, and the median ms per frame of each."""
    fraction = PERSON_SIZES[name]
    tolerance = max(1, round(3 * fraction * PERSON_HEIGHT / CCP_PERSON))
    plain, single, auto = binary_metrics(3), binary_metrics(tolerance), binary_metrics(tolerance)
    times: dict[bool, list[float]] = {False: [], True: []}
    people = 0
    for _ in range(frames):
        count = int(rng.integers(PEOPLE[name][0], PEOPLE[name][1] + 1))
        frame, truth, pasted = compose_people(split, list(rng.choice(len(split.names), count)), fraction, rng)
        for index in pasted:
            plain.update(person_mask(segmenter, split.images[index], None), split.masks[index])
        people += len(pasted)
        for heads, scores in ((False, single), (True, auto)):
            seconds, mask = timed(partial(person_mask, segmenter, frame, options if heads else None))
            times[heads].append(seconds * 1000)
            scores.update(mask, truth)
    ms = [f"{statistics.median(times[heads]):.0f}" for heads in (False, True)]
    return table_row(name, people, shown(plain), shown(single), shown(auto), *ms)


def person_table(args: argparse.Namespace, options: HeadOptions) -> None:
    """--subject person: the table of whole CCP people at every height."""
    split = load_person_split(args.data or CCP_DATA, args.split, args.limit)
    segmenter = load_segmenter(args.weights, subject="person")
    blank = np.zeros((PERSON_HEIGHT, PERSON_WIDTH, 3), np.uint8)
    for heads in (None, options):  # warm-up: the first call of each size is slower, not for the table
        person_mask(segmenter, blank, heads)
    rng = np.random.default_rng(0)
    print(f"CCP {args.split} people in {PERSON_WIDTH}x{PERSON_HEIGHT} frames, {args.frames} frames per size")
    print(
        "person IoU / boundary F, pooled; ms per frame: RGB to full-resolution mask, median, "
        + threads_label()
    )
    names = ("person height", "people", "plain CCP photos", "single pass", "--heads auto")
    print(table_header(*names, "ms single", "ms auto"))
    for name in PERSON_SIZES:
        print(person_row(segmenter, split, name, args.frames, rng, options), flush=True)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--subject", choices=("head", "person"), default="head")
    parser.add_argument(
        "--data",
        type=Path,
        help=f"LFW Part Labels folder (default {LFW_DATA}), or with --subject person "
        f"Clothing Co-Parsing (default {CCP_DATA})",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--frames", type=int, default=60, help="Frames per scale.")
    add_weights(parser)
    parser.add_argument("--detect-size", type=int, default=HeadOptions().detect_size)
    parser.add_argument("--blob-confidence", type=float, default=HeadOptions().blob_confidence)
    parser.add_argument("--no-timing", action="store_true", help="Head mode: no 12 MP timing table.")
    parser.add_argument("--limit", type=int, help="Person mode: only the split's first N photos' people.")
    add_threads(parser)
    args = parser.parse_args()
    use_threads(args.threads)
    options = HeadOptions(detect_size=args.detect_size, blob_confidence=args.blob_confidence)
    if args.subject == "person":
        person_table(args, options)
        return
    split = load_split(args.data or LFW_DATA, args.split)
    segmenter = load_segmenter(args.weights, subject="head")
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
