"""Does compositing cost stay flat as the blur grows, and does the reduced-size blur look the same?

On a synthetic 12 MP photo (4000x3000, textured background, an oval subject), in one run:
- `cv2.GaussianBlur` of the whole photo at full resolution, the cost that grows with the blur;
- blurcli's compositor (`compose.composite`: feather, normalised blur of the background on a
  reduced copy, blend at full resolution), Gaussian and disc kernels, given the mask at full
  resolution and, as `blur` gives it, shrunk by `hidden_factor` (the shrinking of the photo counted);
at a small, the default and a large strength. Printed: milliseconds (median of --repeat runs, fewer
for a baseline slower than 20 s),
the ratio to the full-resolution GaussianBlur, and the PSNR of the compositor's background against
the same normalised blur computed entirely at full resolution (target: over 40 dB).

    python benchmarks/bench_compose.py [--repeat 3] [--threads 1] [--strengths 0.004 0.012 0.04]
        [--width 4000] [--height 3000]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import argument_parser, median_ms, psnr, textured_photo
from blurcli.compose import (
    DEFAULT_STRENGTH,
    BlurOptions,
    background_weight,
    composite,
    diagonal_sigma,
    disc_kernel,
    feather_alpha,
    hidden_factor,
)
from blurcli.resample import shrink

BUDGET_S = 20.0  # a baseline slower than this is timed fewer than --repeat times


def full_resolution_background(image: np.ndarray, alpha: np.ndarray, options: BlurOptions) -> np.ndarray:
    """The compositor's background layer computed without any reduction: the reference look."""
    sigma = diagonal_sigma(image.shape, options.strength)
    weight = background_weight(feather_alpha(alpha, diagonal_sigma(image.shape, options.feather))) + 1e-3
    values = image.astype(np.float32)
    if options.kernel == "disc":
        values = (values / 255) ** 2.2 * 255

        def blur(x: np.ndarray) -> np.ndarray:
            return cv2.filter2D(x, -1, disc_kernel(2 * sigma), borderType=cv2.BORDER_REFLECT)
    else:

        def blur(x: np.ndarray) -> np.ndarray:
            return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    mean = blur(values * weight[..., None]) / blur(weight)[..., None]
    if options.kernel == "disc":
        mean = (np.clip(mean, 0, None) / 255) ** (1 / 2.2) * 255
    return np.clip(mean + 0.5, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=0, help="OpenCV threads (0: all cores).")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.004, DEFAULT_STRENGTH, 0.04])
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    image, alpha = textured_photo(args.width, args.height)
    size = f"{args.width * args.height / 1e6:.2g} MP photo ({args.width}x{args.height})"
    print(f"{size}, OpenCV threads {cv2.getNumThreads()}, median of {args.repeat}")
    print(
        f"{'strength':>8} {'sigma px':>8} {'GaussianBlur ms':>15} {'kernel':>8} {'full mask ms':>12} "
        f"{'shrunk mask ms':>14} {'ratio':>6} {'bg PSNR dB':>10}"
    )
    for strength in args.strengths:
        sigma = diagonal_sigma(image.shape, strength)
        baseline = median_ms(lambda s=sigma: cv2.GaussianBlur(image, (0, 0), s), args.repeat, BUDGET_S)
        for kernel in ("gaussian", "disc"):
            options = BlurOptions(strength=strength, kernel=kernel)  # type: ignore[arg-type]
            factor = hidden_factor(image.shape, options)
            small = shrink(alpha, factor)
            full_ms = median_ms(lambda o=options: composite(image, alpha, o), args.repeat, BUDGET_S)
            ms = median_ms(
                lambda o=options, f=factor, a=small: composite(image, a, o, f), args.repeat, BUDGET_S
            )
            out = composite(image, small, options, factor)
            reference = full_resolution_background(image, alpha, options)
            # Pure background: where the feathered subject alpha is zero, the output is the blur alone.
            far = feather_alpha(alpha, diagonal_sigma(image.shape, options.feather)) < 1e-3
            quality = psnr(out[far], reference[far])
            print(
                f"{strength:>8.3f} {sigma:>8.1f} {baseline:>15.0f} {kernel:>8} {full_ms:>12.0f} "
                f"{ms:>14.0f} {ms / baseline:>6.2f} {quality:>10.1f}"
            )


if __name__ == "__main__":
    main()
