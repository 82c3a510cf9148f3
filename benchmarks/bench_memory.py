"""Peak memory of `blurcli blur` on a folder of large 16-bit RGBA PNGs, with and without a memory
budget (issue 27: a folder of 100 MP 16-bit RGBA PNGs took 7.9 GB for four and was estimated at
15-20 GB for ten).

Writes `--photos` PNGs of `--megapixels` each (16-bit RGBA, a smooth picture with noise, so they
are real work to decode), then runs `blurcli blur DIR -o OUT` in fresh processes, in one run:
  (a) on one tiny photo: the process's own memory (model, ONNX Runtime, libraries), which no
      budget covers;
  (b) with `--max-memory` a budget that fits about two photos (default: 2.5 x one photo's count);
  (c) with a budget far above the folder (what a machine with plenty of free memory gets): every
      photo the pipeline reads ahead (batch + jobs) is in memory at once.
It prints each peak RSS, the photos' share of it (peak minus (a)), and whether (b) kept that
share under its budget, with the ratio (b)/(c).

    python benchmarks/bench_memory.py [--photos 6] [--megapixels 24] [--budget-mb MB] [--jobs 2]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import argument_parser, peak_rss
from blurcli.memory import BYTES_PER_PIXEL


def write_photos(folder: Path, count: int, megapixels: float) -> tuple[int, int]:
    """`count` 16-bit RGBA PNGs of about `megapixels` each (4:3); returns (width, height)."""
    height = int((megapixels * 1e6 * 3 / 4) ** 0.5)
    width = int(height * 4 / 3)
    rows = np.linspace(0, 50000, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 12000, width, dtype=np.float32)[None, :]
    base = rows + cols
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        noise = rng.integers(0, 64, (height, width), dtype=np.uint16)
        grey = (base + 1000 * index).astype(np.uint16) + noise
        picture = np.stack([grey, grey // 2 + 8000, 60000 - grey // 2, np.full_like(grey, 65535)], axis=-1)
        cv2.imwrite(str(folder / f"big{index}.png"), picture, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return width, height


def blur_peak(folder: Path, out: Path, jobs: int, budget_mb: int | None) -> float:
    """Peak RSS (MB) of `blurcli blur folder -o out` in a fresh process."""
    command = [sys.executable, "-m", "blurcli", "blur", str(folder), "-o", str(out), "-q", "--overwrite"]
    command += ["--jobs", str(jobs), "--heads", "single", "--device", "cpu"]
    command += [] if budget_mb is None else ["--max-memory", str(budget_mb)]
    seconds, megabytes, done = peak_rss(command)
    if done.returncode != 0:
        raise SystemExit(f"blurcli failed: {done.stderr}")
    print(f"  {seconds:.1f} s wall", flush=True)
    return megabytes


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--budget-mb", type=int, help="the budget of run (b); default 2.5 photos' count")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        work = Path(scratch)
        width, height = write_photos(work / "big", args.photos, args.megapixels)
        write_photos(work / "tiny", 1, 0.01)
        one_mb = width * height * BYTES_PER_PIXEL / 2**20
        budget = args.budget_mb or max(1, int(2.5 * one_mb))
        print(f"{args.photos} photos of {width}x{height} (16-bit RGBA PNG), each counted {one_mb:.0f} MB")
        print("(a) one tiny photo:")
        base = blur_peak(work / "tiny", work / "out-tiny", args.jobs, None)
        print(f"(b) --max-memory {budget}:")
        bounded = blur_peak(work / "big", work / "out", args.jobs, budget)
        print("(c) a budget above the folder:")
        unbounded = blur_peak(work / "big", work / "out", args.jobs, 1 << 20)
    print("| run | peak RSS (MB) | photos' share (MB) | budget (MB) |")
    print("| --- | --- | --- | --- |")
    print(f"| (a) one tiny photo | {base:.0f} | | |")
    print(f"| (b) budget | {bounded:.0f} | {bounded - base:.0f} | {budget} |")
    print(f"| (c) no effective budget | {unbounded:.0f} | {unbounded - base:.0f} | |")
    verdict = "under" if bounded - base <= budget else "over"
    print(f"photos' share with the budget: {verdict} it; (b)/(c) peak RSS {bounded / unbounded:.2f}")


if __name__ == "__main__":
    main()
