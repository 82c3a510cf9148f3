"""Draw docs/group_heads.jpg: a made-up group photo blurred with `--heads single` and `--heads auto`.

The group is built from the public-domain example portrait only: three copies of it, shrunk to
half-body shots of different sizes, stand in front of a wide backdrop made from its own studio
wall. Top: the photo. Middle: one pass over the whole frame. Bottom: the second look.

    python benchmarks/figures/heads.py [--out docs/group_heads.jpg] [--weights W]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for benchmarks.common

from benchmarks.common import (
    DOCS,
    add_weights,
    argument_parser,
    caption,
    defocused,
    example_rgb,
    paste,
    white,
)
from blurcli.compose import BlurOptions
from blurcli.photo import write_image
from blurcli.render import blur
from blurcli.second_look import HeadOptions
from blurcli.segment import new_segmenter

WIDTH, HEIGHT = 1500, 700
PEOPLE = ((60, 330, 360), (560, 420, 280), (1030, 470, 230))  # (left, top, side) of each copy


def group_photo(portrait: np.ndarray) -> np.ndarray:
    """Three copies of `portrait` (cut at the frame's bottom) in front of its own wall, widened."""
    frame = defocused(portrait[0:300, 330:512], WIDTH, HEIGHT, 3.0, cv2.INTER_CUBIC)
    for left, top, side in PEOPLE:
        person = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
        visible = min(side, HEIGHT - top)
        ramp = np.clip(np.minimum(np.arange(side) + 0.5, side - np.arange(side) - 0.5) / (0.06 * side), 0, 1)
        alpha = np.outer(np.ones(side), ramp)[..., None]  # soft left and right edges
        paste(frame, person[:visible], alpha[:visible], top, left)
    return frame


def label(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of `image` with `text` on a white box at its top left."""
    out = image.copy()
    caption(out, text, (len(text) * 15 + 20, 36), 26)
    return out


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--out", type=Path, default=DOCS / "group_heads.jpg")
    add_weights(parser)
    args = parser.parse_args()
    photo = group_photo(example_rgb())
    segmenter = new_segmenter(args.weights, "cpu")
    options = BlurOptions()
    single = blur(photo, segmenter, options, heads=None)
    auto = blur(photo, segmenter, options, heads=HeadOptions())
    gap = white(8, WIDTH)
    rows = [
        label(photo, "photo"),
        gap,
        label(single, "--heads single"),
        gap,
        label(auto, "--heads auto (default)"),
    ]
    figure = cv2.resize(np.vstack(rows), None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    write_image(args.out, figure, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
