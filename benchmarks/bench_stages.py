"""Where the time of one photo goes in `blurcli blur --heads single`, stage by stage, on one core.

Makes one photo-like 1920x1080 JPEG (as bench_batch.py's "people" scene), then times each stage
blur runs on it (min of --repeat runs, after one warm-up), one thread for OpenCV and torch, as
each worker thread of a batch runs them. Decode and encode are the floor any photo tool pays; the
rest is what blurcli adds, to be read against the 0.6-of-the-floor target of bench_batch.py.

    python benchmarks/bench_stages.py [--width 1920] [--height 1080] [--repeat 15] [--seed 3]
        [--batch 8] [--weights W]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import QUALITY, add_weights, argument_parser, photo_like, timed
from blurcli.compose import BlurOptions, composite, hidden_factor
from blurcli.decode import decode_photo
from blurcli.encode import encode_photo
from blurcli.pixels import to_8bit
from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.resample import shrink
from blurcli.segment import Segmenter

T = TypeVar("T")


def best_ms(run: Callable[[], T], repeat: int) -> tuple[float, T]:
    """(fastest of `repeat` timed runs in ms, the last result), after one untimed warm-up run."""
    result = run()
    times = []
    for _ in range(repeat):
        seconds, result = timed(run)
        times.append(seconds)
    return min(times) * 1000, result


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="model batch (time per photo is reported)")
    add_weights(parser)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    bgr = photo_like(np.random.default_rng(args.seed), args.width, args.height)
    data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1].tobytes()
    segmenter = Segmenter.load(args.weights, "cpu")
    rows: list[tuple[str, float, bool]] = []  # (stage, ms, part of the floor)

    def stage(name: str, run: Callable[[], T], floor: bool = False, per: int = 1) -> T:
        ms, result = best_ms(run, args.repeat)
        rows.append((name, ms / per, floor))
        return result

    photo = stage("decode (io.decode_photo)", lambda: decode_photo(data, "photo.jpg"), floor=True)
    colour = photo.colour
    prepared = stage("model input (Segmenter.prepare)", lambda: segmenter.prepare(colour))
    batch = [prepared] * args.batch
    low = stage(
        f"model pass (batch of {args.batch}, per photo)",
        lambda: segmenter.forward(batch, args.batch, subject_only=True),
        per=args.batch,
    )[0]
    options, refine = BlurOptions(), RefineOptions()
    factor = hidden_factor(colour.shape, options)
    small = stage(f"shrink the photo {factor}x", lambda: shrink(colour, factor))
    alpha = stage("guided filter", lambda: enlarge_mask(low, grey_guide(to_8bit(small)), refine))
    blurred = stage("compositor", lambda: composite(colour, alpha, options, factor, small))
    stage(
        "encode (io.encode_photo)",
        lambda: encode_photo(photo.with_colour(blurred), ".jpg", QUALITY),
        floor=True,
    )

    floor = sum(ms for _, ms, is_floor in rows if is_floor)
    extra = sum(ms for _, ms, is_floor in rows if not is_floor)
    print(f"one {args.width}x{args.height} photo, one thread, min of {args.repeat} runs")
    print("| stage | ms | |")
    print("| --- | --- | --- |")
    for name, ms, is_floor in rows:
        print(f"| {name} | {ms:.2f} | {'floor' if is_floor else 'blurcli'} |")
    best = floor / (floor + extra)
    print(f"floor {floor:.1f} ms, blurcli's own stages {extra:.1f} ms: at best a ratio of {best:.2f}")
    print(f"a ratio of 0.6 allows {floor / 0.6 - floor:.1f} ms beyond the floor")


if __name__ == "__main__":
    main()
