"""Video: accuracy, flicker and speed on clips made from the example portrait with known motion.

The portrait is cut out along the model's own refined mask of the still photo, and that cut-out is
the truth: pasted on a defocused room, the true mask of every frame is known exactly. Two motions:
"pan" (the person still, the room sliding behind), "walk" (the person crossing a still room). For
each clip: subject IoU and edge flicker (mean absolute change of the mask between consecutive
frames, on a band around the true edge where the true mask does not change; and the same seen from
the walking person, the last frame moved along with them) for per-frame masks and for steadied
ones (steady.Steadier: motion-following averaging). A third clip, "crowd" (three small people
walking), compares one pass per frame, the second look on every frame and the followed second
look (follow.py): IoU, flicker and the look's cost per frame. Then frames per second of `blur`'s
work on an encoded clip at 720p and 1080p (and on the crowd at the first size): `process_video`,
what `blurcli blur clip.mp4` runs once its model is loaded (process start and model load are not
counted: bench_startup.py has them), with the second look on as the CLI has it, beside the decode +
encode floor (the same clip decoded and re-encoded with the same x264 settings, no model), measured
in the same run. The model runs in ONNX Runtime on --threads threads (default: its own default,
one per physical core, as the CLI runs videos), OpenCV on as many; x264's threads and blurcli's
reader and writer threads are as the CLI has them, in the floor too.

    python benchmarks/bench_video.py                    # 60 frames, 720p and 1080p
    python benchmarks/bench_video.py --frames 30 --sizes 1280x720 [--threads N] [--weights W]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import (
    add_threads,
    add_weights,
    argument_parser,
    example_rgb,
    load_segmenter,
    room_backdrop,
    threads_label,
    use_threads,
)
from blurcli.follow import Follower
from blurcli.pixels import Photo
from blurcli.render import BlurTask, Mask, PredictTask
from blurcli.second_look import HeadOptions, second_look
from blurcli.segment import Segmenter
from blurcli.steady import Steadier
from blurcli.video import VideoOptions, process_video


def portrait_cutout(segmenter: Segmenter) -> np.ndarray:
    """The example portrait cut out along the model's refined mask: (H, W, 4) float32, RGB in
    0..255 and the mask in 0..1, the truth every clip is made of."""
    example = example_rgb()
    return np.dstack([example.astype(np.float32), segmenter.foreground(example)])


def clip(
    kind: str, width: int, height: int, frames: int, cutout: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """(RGB frame, true mask, how far the first person moved right since the last frame) of a `kind`
    clip: "pan" (the person still, the room sliding
    behind), "walk" (the person crossing a still room) or "crowd" (three small people, a third of
    the frame tall, walking at different speeds: what the second look is for)."""
    rng = np.random.default_rng(0)
    room = cv2.GaussianBlur(room_backdrop(rng, width * 2, height), (0, 0), height / 60)
    if kind == "crowd":
        side = int(height * 0.34)
        starts, speeds = (width // 10, width // 2 - side // 2, width * 3 // 4), (3, -2, 4)
    else:
        side = int(height * 0.9)
        starts, speeds = (width // 4,), ((6 if kind == "walk" else 0),)
    person = cv2.resize(cutout, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    lefts = [
        [int(np.clip(start + index * speed, 0, width - side)) for index in range(frames)]
        for start, speed in zip(starts, speeds, strict=True)
    ]
    for index in range(frames):
        shift = (index * 4) % width if kind == "pan" else 0
        frame = room[:, shift : shift + width].astype(np.float32)
        alpha = np.zeros((height, width), np.float32)
        for number, places in enumerate(lefts):
            left = places[index]
            top = height - side - (number * side // 4 if kind == "crowd" else 0)
            alpha[top : top + side, left : left + side] = np.maximum(
                alpha[top : top + side, left : left + side], person[..., 3]
            )
            region = frame[top : top + side, left : left + side]
            region += person[..., 3:] * (person[..., :3] - region)
        frame += rng.normal(0, 4.0, frame.shape).astype(np.float32)  # a camera's noise, new each frame
        move = lefts[0][index] - lefts[0][max(index - 1, 0)]
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8), alpha > 0.5, move


def masks(
    segmenter: Segmenter,
    frames: list[np.ndarray],
    steady: float,
    look: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[list[np.ndarray], float]:
    """Full-resolution masks as `predict` makes them of a clip (one pass, as `--heads single`, unless
    `look`), each frame alone (steady 0) or steadied as `blur` steadies them (render.Mask's steady),
    after `look` (a second look: frame, single pass -> map); and the look's milliseconds per frame."""
    lows = segmenter.forward([segmenter.prepare(frame) for frame in frames], 8, subject_only=True)
    started = time.perf_counter()
    if look is not None:
        lows = [look(frame, low) for frame, low in zip(frames, lows, strict=True)]
    ms = (time.perf_counter() - started) * 1000 / len(frames)
    steadier = Steadier(steady)
    task = PredictTask()
    return [
        task(Photo(f), Mask(low, steady=steadier)).photo.pixels / 255.0
        for f, low in zip(frames, lows, strict=True)
    ], ms


def iou_and_flicker(
    predicted: list[np.ndarray], truth: list[np.ndarray], moves: list[int] | None = None
) -> tuple[float, float]:
    """Mean subject IoU, and the mean absolute change of the mask between consecutive frames on a
    13 px band around the true edge where the true mask did not change; with `moves` (the subject's
    shift right since the last frame), seen from the subject: the last frame moved along first."""
    ious = [
        np.logical_and(p > 0.5, t).sum() / max(np.logical_or(p > 0.5, t).sum(), 1)
        for p, t in zip(predicted, truth, strict=True)
    ]
    changes = []
    kernel = np.ones((13, 13), np.uint8)
    for index in range(1, len(truth)):
        move = 0 if moves is None else moves[index]
        before, true_before = (np.roll(x[index - 1], move, axis=1) for x in (predicted, truth))
        now = truth[index].astype(np.uint8)
        band = (cv2.dilate(now, kernel) - cv2.erode(now, kernel) > 0) & (truth[index] == true_before)
        band[:, : max(move, 0)] = False  # what the roll brought round from the other side
        changes.append(float(np.abs(predicted[index] - before)[band].mean()))
    return float(np.mean(ious)), float(np.mean(changes))


def write_clip(
    path: Path, frames: Iterator[np.ndarray], width: int, height: int, options: VideoOptions
) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(options.crf), "preset": options.preset}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def floor_fps(source: Path, target: Path, options: VideoOptions) -> float:
    """Decode and re-encode with the same settings, no model: what any tool pays."""
    import av

    started = time.perf_counter()
    count = 0
    with av.open(str(source)) as container, av.open(str(target), "w") as out:
        video = container.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.options = {"crf": str(options.crf), "preset": options.preset}
        for frame in container.decode(video):
            image = frame.to_ndarray(format="rgb24")
            out_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            out_frame.pts, out_frame.time_base = frame.pts, frame.time_base
            for packet in stream.encode(out_frame):
                out.mux(packet)
            count += 1
        for packet in stream.encode():
            out.mux(packet)
    return count / (time.perf_counter() - started)


def second_looks(
    segmenter: Segmenter, cutout: np.ndarray, frames: int, size: str, options: VideoOptions
) -> None:
    """The "crowd" clip (small people) with one pass per frame, the second look on every frame,
    and the followed second look (its wide look every `wide_every` frames): IoU, flicker, cost."""
    width, height = (int(v) for v in size.split("x"))
    pairs = list(clip("crowd", width, height, frames, cutout))
    images, truth = [p[0] for p in pairs], [p[1] for p in pairs]
    follower = Follower(segmenter, True, HeadOptions(), options.wide_every)
    looks: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray] | None] = {
        "one pass": None,
        "second look, every frame": lambda image, low: second_look(segmenter, image, low),
        f"second look, followed (wide every {options.wide_every})": follower,
    }
    print(
        f"second look: crowd, {frames} frames at {width}x{height}, steady {options.steady}, {threads_label()}"
    )
    print("| masks | subject IoU | edge flicker | look ms/frame |")
    print("| --- | --- | --- | --- |")
    for name, look in looks.items():
        predicted, ms = masks(segmenter, images, options.steady, look)
        iou, flicker = iou_and_flicker(predicted, truth)
        print(f"| {name} | {iou:.4f} | {flicker:.4f} | {ms:.1f} |")
    print(f"wide looks in the followed run: {follower.wide_looks} of {frames} frames")


def main() -> None:
    parser = argument_parser(__doc__)
    add_weights(parser)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="WxH,... for the speed runs")
    parser.add_argument("--quality-size", default="640x360", help="WxH of the accuracy clips")
    parser.add_argument("--crowd-size", default="1280x720", help="WxH of the second-look clip")
    parser.add_argument("--steady", type=float, default=VideoOptions.steady, help="steadying to compare")
    add_threads(parser)
    args = parser.parse_args()
    use_threads(args.threads)
    segmenter = load_segmenter(args.weights)
    cutout = portrait_cutout(segmenter)
    width, height = (int(v) for v in args.quality_size.split("x"))
    options = VideoOptions(steady=args.steady)
    print(f"accuracy: {args.frames} frames at {width}x{height}, steady {options.steady}")
    print("| clip | masks | subject IoU | edge flicker | flicker seen from the subject |")
    print("| --- | --- | --- | --- | --- |")
    for kind in ("pan", "walk"):
        pairs = list(clip(kind, width, height, args.frames, cutout))
        frames, truth, moves = ([p[i] for p in pairs] for i in range(3))
        figures = {}
        for name, steady in (("per frame", 0.0), ("steadied", options.steady)):
            predicted = masks(segmenter, frames, steady)[0]
            iou, flicker = iou_and_flicker(predicted, truth)
            figures[name] = (iou, flicker, iou_and_flicker(predicted, truth, moves)[1])
            print(f"| {kind} | {name} | {iou:.4f} | {flicker:.4f} | {figures[name][2]:.4f} |")
        ratios = [figures["steadied"][i] / max(figures["per frame"][i], 1e-9) for i in (1, 2)]
        print(f"| {kind} | ratio | | {ratios[0]:.2f} | {ratios[1]:.2f} |")
    second_looks(segmenter, cutout, args.frames, args.crowd_size, options)
    print(
        f"speed: {args.frames} frames, x264 {options.preset} crf {options.crf}; blurcli: process_video "
        f"with the model loaded (start-up not counted), {threads_label()}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        runs = [("walk", size) for size in args.sizes.split(",")] + [("crowd", args.sizes.split(",")[0])]
        for kind, size in runs:
            width, height = (int(v) for v in size.split("x"))
            source = Path(scratch) / f"{kind}-{height}.mp4"
            frames = (f for f, _, _ in clip(kind, width, height, args.frames, cutout))
            write_clip(source, frames, width, height, options)
            floor = floor_fps(source, Path(scratch) / "floor.mp4", options)
            started = time.perf_counter()
            result = process_video(
                source, Path(scratch) / "blurred.mp4", segmenter, BlurTask(), options, heads=HeadOptions()
            )
            ours = result.frames / (time.perf_counter() - started)
            print(
                f"{size} {kind}: blurcli {ours:.1f} fps, decode + encode floor {floor:.1f} fps"
                f" ({ours / floor:.2f})"
            )


if __name__ == "__main__":
    main()
