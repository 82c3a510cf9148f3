"""Throughput of `blurcli blur` on a folder against the floor any photo tool pays, and peak memory.

Generates photo-like JPEGs (the example portrait, re-framed, re-lit and with sensor noise, at
1920x1080, plus a few 12 MP ones), then times in the same run:
  (a) the floor: read, decode, encode at the same JPEG quality and write, with OpenCV, on as many
      threads as blurcli gets (--jobs);
  (b) `blurcli blur DIR -o OUT` as a user runs it (a fresh process; model loading included, and
      reported apart).
It prints images/s of both and the ratio b/a (the target is >= 0.6), then the peak RSS of
`blurcli blur` on one 50 MP photo.

    python benchmarks/bench_batch.py [--images 40] [--large 3] [--jobs 2] [--skip-50mp] [--heads single]
        [--scene people|crops] [--width 1920] [--height 1080] [--weights W]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import QUALITY, add_weights, argument_parser, peak_rss, photo_like, timed


def make_folder(
    folder: Path, count: int, large: int, size: tuple[int, int], scene: str = "people", seed: int = 0
) -> None:
    """`count` photo-like JPEGs in `folder`: the first `large` of them 12 MP, the rest `size` (w, h)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        width, height = (4000, 3000) if index < large else size
        cv2.imwrite(
            str(folder / f"photo{index:03d}.jpg"),
            photo_like(rng, width, height, scene),
            [cv2.IMWRITE_JPEG_QUALITY, QUALITY],
        )


def floor(folder: Path, out: Path, jobs: int) -> float:
    """Seconds to read, decode, encode and write every JPEG in `folder` on `jobs` threads."""
    out.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> None:
        pixels = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
        _, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        (out / path.name).write_bytes(data.tobytes())

    paths = sorted(folder.glob("*.jpg"))

    def run_all() -> None:
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, paths))

    return timed(run_all)[0]


def blurcli(*args: str) -> tuple[float, str]:
    """Run the blurcli command; (wall seconds, stderr)."""
    command = [sys.executable, "-m", "blurcli", *args]
    seconds, done = timed(lambda: subprocess.run(command, capture_output=True, text=True, check=False))
    if done.returncode != 0:
        raise SystemExit(f"blurcli failed ({done.returncode}): {done.stderr}")
    return seconds, done.stderr


def startup_seconds(folder: Path, out: Path, model: list[str]) -> float:
    """Process start + imports + model load: blur of one tiny image, minus nothing (an upper bound)."""
    tiny = folder.parent / "tiny"
    tiny.mkdir(exist_ok=True)
    cv2.imwrite(str(tiny / "t.jpg"), np.full((8, 8, 3), 128, np.uint8))
    seconds, _ = blurcli("blur", str(tiny), "-o", str(out), "-q", *model)
    return seconds


def peak_rss_50mp(work: Path, heads: str = "auto", model: tuple[str, ...] = ()) -> float:
    """Peak RSS in MB of `blurcli blur` on one 50 MP photo (8660 x 5773), in a fresh process."""
    path = work / "big" / "photo50.jpg"
    path.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(path), photo_like(np.random.default_rng(7), 8660, 5773), [cv2.IMWRITE_JPEG_QUALITY, 90])
    command = [sys.executable, "-m", "blurcli", "blur", str(path)]
    command += ["-o", str(work / "big-out"), "-q", "--heads", heads, *model]
    seconds, megabytes, done = peak_rss(command)
    if done.returncode != 0:
        raise SystemExit(f"blurcli failed on the 50 MP photo: {done.stderr}")
    print(f"50 MP photo: {seconds:.1f} s wall")
    return megabytes


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argument_parser(__doc__)
    parser.add_argument("--images", type=int, default=40, help="photos in the folder")
    parser.add_argument("--large", type=int, default=3, help="how many of them are 12 MP")
    parser.add_argument("--width", type=int, default=1920, help="width of the others")
    parser.add_argument("--height", type=int, default=1080, help="height of the others")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-50mp", action="store_true")
    parser.add_argument("--heads", default="auto", help="blurcli's --heads (auto or single)")
    parser.add_argument(
        "--scene",
        default="people",
        choices=["people", "crops"],
        help="what the photos show (see common.photo_like)",
    )
    add_weights(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    model = ["--weights", args.weights] if args.weights else []  # passed on to blurcli blur
    work = Path(tempfile.mkdtemp(prefix="blurcli-bench-"))
    try:
        folder = work / "in"
        make_folder(folder, args.images, args.large, (args.width, args.height), args.scene)
        rss = None if args.skip_50mp else peak_rss_50mp(work, args.heads, tuple(model))
        count = args.images
        sizes = f"{args.large} of 12 MP, the rest {args.width}x{args.height}"
        print(f"{count} JPEGs ({sizes}), quality {QUALITY}, ", end="")
        print(f"{args.jobs} threads, --heads {args.heads}, scene {args.scene}")
        on = (
            f"single-threaded passes on those threads, up to {min(2, args.jobs)} at once"
            if args.jobs > 1 and count > 1
            else "ONNX Runtime's default threads (one per physical core)"
        )
        print(
            f"threads: the floor decodes and encodes on {args.jobs}; blurcli blur -j {args.jobs} decodes, "
            f"encodes and runs the model on {args.jobs}: {on} (the batch engine's rule)"
        )
        floor(folder, work / "warm", args.jobs)  # warm the page cache and OpenCV
        floor_s = floor(folder, work / "floor", args.jobs)
        startup = startup_seconds(folder, work / "tiny-out", model)
        command = ["blur", str(folder), "-o", str(work / "out"), "-j", str(args.jobs), "--heads", args.heads]
        total, stderr = blurcli(*command, *model)
        reported = re.search(r"in ([\d.]+) s", stderr)
        batch_s = float(reported.group(1)) if reported else total
        floor_rate, total_rate, batch_rate = count / floor_s, count / total, count / batch_s
        print(f"(a) decode + encode floor:      {floor_rate:6.1f} images/s ({floor_s:.2f} s)")
        print(
            f"(b) blurcli blur, whole command: {total_rate:6.1f} images/s ({total:.2f} s, "
            f"of which ~{startup:.1f} s start-up and model load)"
        )
        print(f"    blurcli blur, batch only:   {batch_rate:6.1f} images/s ({batch_s:.2f} s)")
        print(
            f"ratio b/a: {total_rate / floor_rate:.2f} (whole command), {batch_rate / floor_rate:.2f} "
            "(batch only); target >= 0.6"
        )
        if rss is not None:
            print(f"peak RSS, one 50 MP photo: {rss:.0f} MB (limit 1536 MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
