"""Draw docs/naive_vs_ours.jpg: the naive portrait blend beside blurcli's compositor on the example.

Naive: the model's mask enlarged bilinearly, `mask * photo + (1 - mask) * GaussianBlur(photo)`:
the blur of the whole photo drags the subject's colours out into the background (a halo) and the
mask's coarse edge cuts through hair. Ours: the same model output refined against the photo
(guided filter), the background blurred without the subject (normalised convolution), feathered
blend. Both at the same strength; each panel has a 2x close-up of the hair's edge below it.

    python benchmarks/figure_compose.py [--strength 0.03] [--out docs/naive_vs_ours.jpg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from blurcli.compose import BlurOptions, composite, diagonal_sigma
from blurcli.photo import read_image, write_image
from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.segment import Segmenter

ROOT = Path(__file__).resolve().parents[1]
CLOSE_UP = (0, 128, 150, 406)  # top, bottom, left, right: the top of her hair against the wall


def naive(photo: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """The textbook blend: the whole photo blurred, subject included."""
    blurred = cv2.GaussianBlur(photo.astype(np.float32), (0, 0), sigma)
    weight = alpha[..., None]
    return np.clip(weight * photo + (1 - weight) * blurred + 0.5, 0, 255).astype(np.uint8)


def panel(image: np.ndarray, title: str) -> np.ndarray:
    """The image with its 2x close-up below and a title on top."""
    top, bottom, left, right = CLOSE_UP
    close = cv2.resize(image[top:bottom, left:right], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    close = cv2.resize(close, (image.shape[1], round(close.shape[0] * image.shape[1] / close.shape[1])))
    out = np.vstack([image, np.full((6, image.shape[1], 3), 255, np.uint8), close])
    cv2.rectangle(out, (0, 0), (image.shape[1], 34), (255, 255, 255), -1)
    cv2.putText(out, title, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "astronaut.jpg")
    parser.add_argument("--strength", type=float, default=0.03)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "naive_vs_ours.jpg")
    args = parser.parse_args()
    photo = read_image(args.image)
    low = Segmenter.load(None, "cpu").probabilities([photo], subject_only=True)[0]
    guide = grey_guide(photo)
    sigma = diagonal_sigma(photo.shape, args.strength)
    left = naive(photo, enlarge_mask(low, guide, None), sigma)
    right = composite(photo, enlarge_mask(low, guide, RefineOptions()), BlurOptions(strength=args.strength))
    first, second = panel(left, "naive blend"), panel(right, "blurcli")
    gap = np.full((first.shape[0], 8, 3), 255, np.uint8)
    write_image(args.out, np.hstack([first, gap, second]), quality=90)
    print(f"wrote {args.out} (strength {args.strength}, sigma {sigma:.1f} px)")


if __name__ == "__main__":
    main()
