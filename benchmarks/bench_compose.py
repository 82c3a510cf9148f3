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

    python benchmarks/bench_compose.py [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np

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

HEIGHT, WIDTH = 3000, 4000


def photo_like(height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured 8-bit RGB scene with a few small bright lights, and an oval subject's alpha."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (height // 16, width // 16, 3)).astype(np.float32)
    scene = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.5), (width, height), interpolation=cv2.INTER_CUBIC)
    scene += rng.normal(0, 6, (height, width, 3)).astype(np.float32)  # fine texture and sensor noise
    for y, x in rng.integers(0, (height, width), (40, 2)):
        cv2.circle(scene, (int(x), int(y)), 6, (255, 250, 235), -1)
    alpha = np.zeros((height, width), np.float32)
    cv2.ellipse(alpha, (width // 2, height // 2), (width // 6, height // 3), 0, 0, 360, 1.0, -1)
    return np.clip(scene, 0, 255).astype(np.uint8), alpha


def median_ms(run: Callable[[], object], repeat: int, budget_s: float = 20.0) -> float:
    """Median wall time of up to `repeat` runs; stops early once `budget_s` is spent (slow baselines)."""
    times: list[float] = []
    while len(times) < repeat and sum(times) < budget_s * 1000:
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="OpenCV threads (0: all cores).")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.004, DEFAULT_STRENGTH, 0.04])
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    image, alpha = photo_like()
    print(f"12 MP photo ({WIDTH}x{HEIGHT}), OpenCV threads {cv2.getNumThreads()}, median of {args.repeat}")
    print(
        f"{'strength':>8} {'sigma px':>8} {'GaussianBlur ms':>15} {'kernel':>8} {'full mask ms':>12} "
        f"{'shrunk mask ms':>14} {'ratio':>6} {'bg PSNR dB':>10}"
    )
    for strength in args.strengths:
        sigma = diagonal_sigma(image.shape, strength)
        baseline = median_ms(lambda s=sigma: cv2.GaussianBlur(image, (0, 0), s), args.repeat)
        for kernel in ("gaussian", "disc"):
            options = BlurOptions(strength=strength, kernel=kernel)  # type: ignore[arg-type]
            factor = hidden_factor(image.shape, options)
            small = shrink(alpha, factor)
            full_ms = median_ms(lambda o=options: composite(image, alpha, o), args.repeat)
            ms = median_ms(lambda o=options, f=factor, a=small: composite(image, a, o, f), args.repeat)
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
