"""Draw docs/group_heads.jpg: a made-up group photo blurred with `--heads single` and `--heads auto`.

The group is built from the public-domain example portrait only: three copies of it, shrunk to
half-body shots of different sizes, stand in front of a wide backdrop made from its own studio
wall. Top: the photo. Middle: one pass over the whole frame. Bottom: the second look.

    python benchmarks/figure_heads.py [--out docs/group_heads.jpg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from blurcli.compose import BlurOptions
from blurcli.photo import read_image, write_image
from blurcli.render import blur
from blurcli.second_look import HeadOptions
from blurcli.segment import Segmenter

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1500, 700
PEOPLE = ((60, 330, 360), (560, 420, 280), (1030, 470, 230))  # (left, top, side) of each copy


def group_photo(portrait: np.ndarray) -> np.ndarray:
    """Three copies of `portrait` (cut at the frame's bottom) in front of its own wall, widened."""
    wall = cv2.resize(portrait[0:300, 330:512], (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    frame = cv2.GaussianBlur(wall, (0, 0), 3.0)
    for left, top, side in PEOPLE:
        person = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
        visible = min(side, HEIGHT - top)
        ramp = np.clip(np.minimum(np.arange(side) + 0.5, side - np.arange(side) - 0.5) / (0.06 * side), 0, 1)
        alpha = np.outer(np.ones(side), ramp)[..., None]  # soft left and right edges
        region = frame[top : top + visible, left : left + side].astype(np.float32)
        mixed = alpha[:visible] * person[:visible] + (1 - alpha[:visible]) * region
        frame[top : top + visible, left : left + side] = (mixed + 0.5).astype(np.uint8)
    return frame


def label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (0, 0), (len(text) * 15 + 20, 36), (255, 255, 255), -1)
    cv2.putText(out, text, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "group_heads.jpg")
    args = parser.parse_args()
    photo = group_photo(read_image(ROOT / "examples" / "astronaut.jpg"))
    segmenter = Segmenter.load(None, "cpu")
    options = BlurOptions()
    single = blur(photo, segmenter, options, heads=None)
    auto = blur(photo, segmenter, options, heads=HeadOptions())
    gap = np.full((8, WIDTH, 3), 255, np.uint8)
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
