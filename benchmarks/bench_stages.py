"""Where the time of one photo goes in `blurcli blur` or `blurcli predict`, stage by stage.

Makes one photo-like JPEG (as bench_batch.py's "people" scene, 1920x1080 unless told), or takes
--photo, then times each stage the command runs on it (min of --repeat runs, after one warm-up),
each named by the function that runs it, on --threads threads (default 1) for ONNX Runtime (the
model pass) and OpenCV alike: a batch with -j > 1 runs the model on one thread and each worker
thread runs the rest. Decode, encode and write are the floor any photo tool pays; the rest is what
blurcli adds. `--heads auto` (the default, as the CLI) times the second look too, which a
portrait skips.

    python benchmarks/bench_stages.py [--path blur|predict] [--heads auto|single] [--photo P]
        [--width 1920] [--height 1080] [--repeat 15] [--seed 3] [--batch 8] [--threads 1] [--weights W]
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
from blurcli.files import write_file
from blurcli.pixels import Photo, to_8bit, to_rgb8
from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.render import mask_photo
from blurcli.resample import shrink
from blurcli.second_look import needs_a_second_look, second_look

T = TypeVar("T")


def best_ms(run: Callable[[], T], repeat: int) -> tuple[float, T]:
    """(fastest of `repeat` timed runs in ms, the last result), after one untimed warm-up run."""
    result = run()
    times = []
    for _ in range(repeat):
        seconds, result = timed(run)
        times.append(seconds)
    return min(times) * 1000, result


Stage = Callable[..., Any]


def render_blur(photo: Photo, low: np.ndarray, stage: Stage) -> bytes:
    """blur's stages after the model: shrink, guided filter, compositor, encode; the bytes."""
    colour, options, refine = photo.colour, BlurOptions(), RefineOptions()
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
    return stage(
        "encode",
        "encode.encode_photo",
        lambda: encode_photo(photo.with_colour(blurred), ".jpg", QUALITY),
        floor=True,
    )


def render_predict(photo: Photo, low: np.ndarray, stage: Stage) -> bytes:
    """predict's stages after the model: the full-resolution mask, then its PNG; the bytes."""
    mask = stage("guided filter, full size", "render.mask_photo", lambda: mask_photo(photo, low))
    return stage("encode PNG", "encode.encode_photo", lambda: encode_photo(mask, ".png"), floor=True)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="model batch (time per photo is reported)")
    parser.add_argument("--path", choices=("blur", "predict"), default="blur", help="the command timed")
    parser.add_argument("--heads", choices=("auto", "single"), default="auto", help="as the CLI's")
    parser.add_argument("--photo", type=Path, help="a photo to time instead of a generated one")
    add_threads(parser)
    parser.set_defaults(threads=1)
    add_weights(parser)
    args = parser.parse_args()
    use_threads(args.threads)
    if args.photo is not None:
        data = args.photo.read_bytes()
    else:
        bgr = photo_like(np.random.default_rng(args.seed), args.width, args.height)
        data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1].tobytes()
    segmenter = load_segmenter(args.weights)  # ONNX Runtime on --threads, as OpenCV
    rows: list[tuple[str, str, float, bool]] = []  # (stage, the function timed, ms, part of the floor)

    def stage(name: str, function: str, run: Callable[[], T], floor: bool = False, per: int = 1) -> T:
        ms, result = best_ms(run, args.repeat)
        rows.append((name, function, ms / per, floor))
        return result

    photo = stage("decode", "decode.decode_photo", lambda: decode_photo(data, "photo.jpg"), floor=True)
    prepared = stage("model input", "Segmenter.prepare", lambda: segmenter.prepare(to_rgb8(photo.pixels)))
    batch = [prepared] * args.batch
    low = stage(
        f"model pass (batch of {args.batch}, per photo)",
        "Segmenter.forward",
        lambda: segmenter.forward(batch, args.batch, subject_only=True),
        per=args.batch,
    )[0]
    image = to_rgb8(photo.pixels)
    if args.heads == "auto":
        look = "second look" if needs_a_second_look(low, True, True) else "second look (a portrait: none)"
        low = stage(look, "second_look.second_look", lambda: second_look(segmenter, image, low))
    render = render_blur if args.path == "blur" else render_predict
    encoded = render(photo, low, stage)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "out"
        stage("write", "files.write_file", lambda: write_file(target, encoded), floor=True)

    floor = sum(ms for _, _, ms, is_floor in rows if is_floor)
    extra = sum(ms for _, _, ms, is_floor in rows if not is_floor)
    height, width = photo.pixels.shape[:2]
    command = f"blurcli {args.path} --heads {args.heads}"
    print(f"{command}: one {width}x{height} photo, {threads_label()}, min of {args.repeat} runs")
    print("| stage | ms | | function timed |")
    print("| --- | --- | --- | --- |")
    for name, function, ms, is_floor in rows:
        print(f"| {name} | {ms:.2f} | {'floor' if is_floor else 'blurcli'} | {function} |")
    best = floor / (floor + extra)
    print(f"floor {floor:.1f} ms, blurcli's own stages {extra:.1f} ms: at best a ratio of {best:.2f}")
    print(f"a ratio of 0.6 allows {floor / 0.6 - floor:.1f} ms beyond the floor")


if __name__ == "__main__":
    main()
