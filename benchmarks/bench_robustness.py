"""Does the head stay sharp when the photo is not framed or lit like LFW? Checked on the example photo.

The example portrait is transformed the ways users' photos differ from LFW crops: shrunk to a
half or a third of a larger frame (a half-body shot) and placed off-centre over a backdrop,
rotated, darkened, over-exposed, noisy, blurred, JPEG-compressed, grey. The predicted subject mask
(made as `blur` makes it: with `--heads auto` unless told otherwise)
is warped back to the original frame and read in hand-drawn boxes: inside her face and inside her
hair the mask must stay near 1 (kept sharp), in the background corners near 0 (blurred).

    python benchmarks/bench_robustness.py [--weights W ...] [--sheet masks.png] [--heads single]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import (
    add_weights,
    argument_parser,
    defocused,
    example_rgb,
    full_size_mask,
    table_header,
    table_row,
)
from blurcli.render import segment_photo
from blurcli.second_look import HeadMode, head_options
from blurcli.segment import Segmenter, new_segmenter

# Boxes (top, bottom, left, right) in the 512x512 example.
FACE = (95, 170, 190, 260)
HAIR = (30, 60, 190, 270)
CORNERS = ((0, 90, 0, 90), (0, 90, 452, 512))


@dataclass(frozen=True)
class Variant:
    """A way a photo differs from LFW: a geometric move (2x3 matrix into a frame) and/or a look."""

    name: str
    frame: int = 512
    matrix: np.ndarray | None = None
    look: Callable[[np.ndarray], np.ndarray] | None = None


def _placed(fraction: float, where: tuple[float, float], frame: int = 1024) -> np.ndarray:
    """Matrix shrinking the 512 px photo to `fraction` of a frame, its top-left at `where` (0-1)."""
    scale = fraction * frame / 512
    room = frame - 512 * scale
    return np.array([[scale, 0, where[0] * room], [0, scale, where[1] * room]], np.float64)


def _rotated(degrees: float) -> np.ndarray:
    return cv2.getRotationMatrix2D((256, 256), degrees, 1.0)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    _, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]


def _gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    return (255 * (image / 255.0) ** gamma).astype(np.uint8)


def _noisy(image: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(0).normal(0, 15, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


VARIANTS = (
    Variant("original"),
    Variant("flipped", matrix=np.array([[-1.0, 0, 511], [0, 1, 0]])),
    Variant("half frame, centred", 1024, _placed(0.5, (0.5, 0.5))),
    Variant("half frame, top-left", 1024, _placed(0.5, (0.0, 0.0))),
    Variant("third of frame, bottom-right", 1536, _placed(1 / 3, (1.0, 1.0), 1536)),
    Variant("third of frame, top-right", 1536, _placed(1 / 3, (1.0, 0.0), 1536)),
    Variant("rotated +20", matrix=_rotated(20)),
    Variant("rotated -20", matrix=_rotated(-20)),
    Variant("dark (gamma 2.2)", look=lambda im: _gamma(im, 2.2)),
    Variant("over-exposed (gamma 0.45)", look=lambda im: _gamma(im, 0.45)),
    Variant("noise sigma 15", look=_noisy),
    Variant("blurred sigma 2", look=lambda im: cv2.GaussianBlur(im, (0, 0), 2.0)),
    Variant("JPEG quality 15", look=lambda im: _jpeg(im, 15)),
    Variant("grey", look=lambda im: np.repeat(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[..., None], 3, -1)),
)


def backdrop(photo: np.ndarray, side: int) -> np.ndarray:
    """A smooth studio-like backdrop for the frame around a shrunk photo: its wall, enlarged and blurred."""
    return defocused(photo[0:120, 300:420], side, side, side / 100)


def render(photo: np.ndarray, variant: Variant) -> np.ndarray:
    """The variant's picture of `photo`."""
    image = photo
    if variant.matrix is not None:
        image = cv2.warpAffine(
            photo,
            variant.matrix,
            (variant.frame, variant.frame),
            flags=cv2.INTER_AREA if variant.frame > 512 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT if variant.frame > 512 else cv2.BORDER_REPLICATE,
            dst=backdrop(photo, variant.frame),
        )
    return variant.look(image) if variant.look else image


def back_to_photo(alpha: np.ndarray, variant: Variant) -> np.ndarray:
    """The variant's mask seen in the original 512x512 frame."""
    if variant.matrix is None:
        return alpha
    return cv2.warpAffine(alpha, variant.matrix, (512, 512), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def box_mean(alpha: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The mean of `alpha` in `box` (top, bottom, left, right)."""
    top, bottom, left, right = box
    return float(alpha[top:bottom, left:right].mean())


def subject_alpha(segmenter: Segmenter, image: np.ndarray, heads: HeadMode) -> np.ndarray:
    """The full-resolution subject mask `blurcli blur --heads HEADS` uses for `image`."""
    return full_size_mask(segment_photo(segmenter, image, True, head_options(heads)).values, image)


def main() -> None:
    parser = argument_parser(__doc__)
    add_weights(parser, many=True)
    parser.add_argument("--sheet", type=Path, help="write the masks (in the photo's frame) as one PNG")
    parser.add_argument("--heads", default="auto", help="auto (as blur does by default) or single")
    args = parser.parse_args()
    photo = example_rgb()
    print("mean subject mask in each box (face and hair should be ~1, corners ~0)")
    for weights in args.weights or [None]:
        segmenter = new_segmenter(weights, "cpu")
        print(f"\nweights: {weights or 'shipped'}")
        print(table_header("variant", "face", "hair", "corners"))
        tiles = []
        for variant in VARIANTS:
            alpha = back_to_photo(subject_alpha(segmenter, render(photo, variant), args.heads), variant)
            scores = (box_mean(alpha, FACE), box_mean(alpha, HAIR), max(box_mean(alpha, b) for b in CORNERS))
            print(table_row(variant.name, *(f"{s:.3f}" for s in scores)))
            tiles.append(cv2.resize((alpha * 255).astype(np.uint8), (192, 192)))
        if args.sheet:
            rows = [np.hstack(tiles[i : i + 7]) for i in range(0, len(tiles), 7)]
            cv2.imwrite(str(args.sheet), np.vstack(rows))


if __name__ == "__main__":
    main()
