"""How well a model keeps heads that are framed unlike LFW: smaller and off-centre.

Each LFW test image (with its ground truth) is shrunk so its 250 px crop spans a fraction of a
larger frame and pasted at a random position over a backdrop that is not LFW (crops of the
example photo's studio background, blurred). Subject IoU (skin + hair vs background) is scored
on the whole frame, pooled over images, beside the same images scored as plain LFW crops; in
brackets the share of the true subject that is kept (recall): a missed head is what users see,
while a false positive on an already defocused backdrop barely changes the blurred photo.

    python benchmarks/bench_framing.py [--weights W] [--images 200] [--data ../shared/data/lfw-parts]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import (
    add_data,
    add_weights,
    argument_parser,
    defocused,
    example_rgb,
    resized_pair,
    table_header,
    table_row,
)
from blurcli.segment import Segmenter, new_segmenter
from blurcli.training.evaluate import evaluate
from blurcli.training.lfw import SplitData, load_split
from blurcli.training.metrics import merge_classes

FRAME = 500
FRACTIONS = (1.0, 0.5, 1 / 3)


def backdrop(rng: np.random.Generator, photo: np.ndarray) -> np.ndarray:
    """A FRAME x FRAME backdrop from the example photo's right half (studio wall, shuttle model)."""
    side = int(rng.integers(150, 250))
    top = int(rng.integers(0, 512 - side))
    left = int(rng.integers(300, 512 - side + 1)) if side < 212 else 300
    return defocused(photo[top : top + side, left : left + side], FRAME, FRAME, float(rng.uniform(0.5, 3)))


def compose(split: SplitData, fraction: float, photo: np.ndarray, seed: int = 0) -> SplitData:
    """Paste every image (and its mask) at `fraction` of the frame side, anywhere, over a backdrop."""
    rng = np.random.default_rng(seed)
    side = round(FRAME * fraction)
    images, masks = [], []
    for image, mask in zip(split.images, split.masks, strict=True):
        frame = backdrop(rng, photo)
        labels = np.zeros((FRAME, FRAME), np.uint8)
        top, left = (int(v) for v in rng.integers(0, FRAME - side + 1, 2))
        where = np.s_[top : top + side, left : left + side]
        frame[where], labels[where] = resized_pair(image, mask, side)
        images.append(frame)
        masks.append(labels)
    return SplitData(split.names, np.stack(images), np.stack(masks))


def score(segmenter: Segmenter, split: SplitData) -> str:
    """'IoU (recall)' of the subject, pooled over the split."""
    figures = evaluate(segmenter, split)
    merged = merge_classes(np.asarray(figures["confusion_matrix"]), [[0], [1, 2]])  # rows: truth
    return f"{figures['subject_iou']:.3f} ({merged[1, 1] / merged[1].sum():.3f})"


def main() -> None:
    parser = argument_parser(__doc__)
    add_weights(parser, many=True)
    parser.add_argument("--images", type=int, default=200)
    add_data(parser)
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: LFW Part Labels not found")
    test = load_split(args.data, "test", limit=args.images)
    photo = example_rgb()
    composites = {fraction: compose(test, fraction, photo) for fraction in FRACTIONS}
    print(f"{len(test.names)} LFW test images; subject IoU pooled per setting")
    print(table_header("weights", "plain LFW crop", *(f"crop = {f:.2f} of frame" for f in FRACTIONS)))
    for weights in args.weights or [None]:
        segmenter = new_segmenter(weights, "cpu")
        cells = [score(segmenter, split) for split in (test, *composites.values())]
        print(table_row(weights or "shipped", *cells))


if __name__ == "__main__":
    main()
