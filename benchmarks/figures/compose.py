"""Draw docs/naive_vs_ours.jpg: the naive portrait blend beside blurcli's compositor on the example.

Naive: the model's mask enlarged bilinearly, `mask * photo + (1 - mask) * GaussianBlur(photo)`:
the blur of the whole photo drags the subject's colours out into the background (a halo) and the
mask's coarse edge cuts through hair. Ours: the same model output refined against the photo
(guided filter), the background blurred without the subject (normalised convolution), feathered
blend. Both at the same strength; each panel has a 2x close-up of the hair's edge below it.

    python benchmarks/figures/compose.py [--strength 0.03] [--out docs/naive_vs_ours.jpg] [--weights W]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for benchmarks.common

from benchmarks.common import DOCS, EXAMPLE, add_weights, argument_parser, caption, full_size_mask, white
from blurcli.compose import BlurOptions, composite, diagonal_sigma
from blurcli.photo import read_image, write_image
from blurcli.segment import new_segmenter

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
    out = np.vstack([image, white(6, image.shape[1]), close])
    caption(out, title, (image.shape[1], 34), 25)
    return out


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--image", type=Path, default=EXAMPLE)
    parser.add_argument("--strength", type=float, default=0.03)
    parser.add_argument("--out", type=Path, default=DOCS / "naive_vs_ours.jpg")
    add_weights(parser)
    args = parser.parse_args()
    photo = read_image(args.image)
    low = new_segmenter(args.weights, "cpu").probabilities([photo], subject_only=True)[0]
    sigma = diagonal_sigma(photo.shape, args.strength)
    left = naive(photo, full_size_mask(low, photo, None), sigma)
    right = composite(photo, full_size_mask(low, photo), BlurOptions(strength=args.strength))
    first, second = panel(left, "naive blend"), panel(right, "blurcli")
    write_image(args.out, np.hstack([first, white(first.shape[0], 8), second]), quality=90)
    print(f"wrote {args.out} (strength {args.strength}, sigma {sigma:.1f} px)")


if __name__ == "__main__":
    main()
