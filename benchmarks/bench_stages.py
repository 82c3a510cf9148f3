"""Where the time of one photo goes in `blurcli blur --heads single`, stage by stage, on one core.

Makes one photo-like 1920x1080 JPEG (as bench_batch.py's "people" scene), then times each stage
blur runs on it (min of --repeat runs, after one warm-up), each named by the function that runs
it, on --threads threads (default 1) for ONNX Runtime (the model pass) and OpenCV alike: a batch
with -j > 1 runs the model on one thread and each worker thread runs the rest. Decode and encode
are the floor any photo tool pays; the rest is what blurcli adds, to be read against the
0.6-of-the-floor target of bench_batch.py.

    python benchmarks/bench_stages.py [--width 1920] [--height 1080] [--repeat 15] [--seed 3]
        [--batch 8] [--threads 1] [--weights W]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import (
    QUALITY,
    add_threads,
    add_weights,
    argument_parser,
    load_segmenter,
    photo_like,
    threads_label,
    timed,
    use_threads,
)
from blurcli.compose import BlurOptions, composite, hidden_factor
from blurcli.decode import decode_photo
from blurcli.encode import encode_photo
from blurcli.pixels import to_8bit, to_rgb8
from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.resample import shrink

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
    add_threads(parser)
    parser.set_defaults(threads=1)
    add_weights(parser)
    args = parser.parse_args()
    use_threads(args.threads)
    bgr = photo_like(np.random.default_rng(args.seed), args.width, args.height)
    data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1].tobytes()
    segmenter = load_segmenter(args.weights)  # ONNX Runtime on --threads, as OpenCV
    rows: list[tuple[str, str, float, bool]] = []  # (stage, the function timed, ms, part of the floor)

    def stage(name: str, function: str, run: Callable[[], T], floor: bool = False, per: int = 1) -> T:
        ms, result = best_ms(run, args.repeat)
        rows.append((name, function, ms / per, floor))
        return result

    photo = stage("decode", "decode.decode_photo", lambda: decode_photo(data, "photo.jpg"), floor=True)
    colour = photo.colour
    prepared = stage("model input", "Segmenter.prepare", lambda: segmenter.prepare(to_rgb8(photo.pixels)))
    batch = [prepared] * args.batch
    low = stage(
        f"model pass (batch of {args.batch}, per photo)",
        "Segmenter.forward",
        lambda: segmenter.forward(batch, args.batch, subject_only=True),
        per=args.batch,
    )[0]
    options, refine = BlurOptions(), RefineOptions()
    factor = hidden_factor(colour.shape, options)
    small = stage(f"shrink the photo {factor}x", "resample.shrink", lambda: shrink(colour, factor))
    alpha = stage(
        "guided filter",
        "refine.grey_guide, refine.enlarge_mask",
        lambda: enlarge_mask(low, grey_guide(to_8bit(small)), refine),
    )
    blurred = stage(
        "compositor", "compose.composite", lambda: composite(colour, alpha, options, factor, small)
    )
    stage(
        "encode",
        "encode.encode_photo",
        lambda: encode_photo(photo.with_colour(blurred), ".jpg", QUALITY),
        floor=True,
    )

    floor = sum(ms for _, _, ms, is_floor in rows if is_floor)
    extra = sum(ms for _, _, ms, is_floor in rows if not is_floor)
    print(f"one {args.width}x{args.height} photo, {threads_label()}, min of {args.repeat} runs")
    print("| stage | ms | | function timed |")
    print("| --- | --- | --- | --- |")
    for name, function, ms, is_floor in rows:
        print(f"| {name} | {ms:.2f} | {'floor' if is_floor else 'blurcli'} | {function} |")
    best = floor / (floor + extra)
    print(f"floor {floor:.1f} ms, blurcli's own stages {extra:.1f} ms: at best a ratio of {best:.2f}")
    print(f"a ratio of 0.6 allows {floor / 0.6 - floor:.1f} ms beyond the floor")


if __name__ == "__main__":
    main()
