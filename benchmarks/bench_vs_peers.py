"""blurcli against the peer a user would pick, whole processes as a shell runs them, on four paths.

1. `blurcli predict` over LFW Part Labels' test photos (250x250 JPEGs as published), PNG masks,
   against a MediaPipe selfie-segmenter script writing the same PNG masks: ms per photo.
2. `blurcli blur` over photo-like 1080p JPEGs, against a MediaPipe + `cv2.GaussianBlur` + blend
   script writing JPEGs: photos per second.
3. `blurcli blur` on a 720p clip of a moving portrait (the default `--heads auto`, and `single`),
   against real time (30 frames per second): frames per second, start-up included.
4. One photo in a cold process (the example portrait), against the MediaPipe script: seconds.

Each peer runs in the same run, in the interpreter --mediapipe-python names (it needs mediapipe
0.10 with its legacy `solutions` API; without it the peer's rows say so). Every command is timed
from process start to exit, median of --runs. Both sides run on the machine's cores as they come:
blurcli as its CLI does, MediaPipe on its own threads.

    python benchmarks/bench_vs_peers.py --mediapipe-python /tmp/mpv/bin/python
    python benchmarks/bench_vs_peers.py --limit 50 --photos 8 --frames 30 --runs 1   # quicker

Targets: predict at most 1.0x MediaPipe's time; blur at least 3x MediaPipe's photos/s; the
720p clip at least 30 fps with the default --heads auto; the cold start at most 1.0x.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.bench_batch import make_folder
from benchmarks.bench_startup import MEDIAPIPE_SCRIPT, has_module
from benchmarks.bench_video import clip, portrait_cutout, write_clip
from benchmarks.common import EXAMPLE, LFW_DATA, argument_parser, load_segmenter, median_ms
from blurcli.training.lfw import locate_dataset, parse_split
from blurcli.video import VideoOptions

MEDIAPIPE_FOLDER = """
import sys, pathlib, cv2, numpy as np, mediapipe as mp
out, blur = pathlib.Path(sys.argv[2]), sys.argv[3] == "blur"
with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as selfie:
    for path in sorted(pathlib.Path(sys.argv[1]).glob("*.jpg")):
        image = cv2.imread(str(path))
        mask = selfie.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).segmentation_mask
        if not blur:
            cv2.imwrite(str(out / (path.stem + ".png")), (mask * 255 + 0.5).astype(np.uint8))
            continue
        blurred = cv2.GaussianBlur(image, (0, 0), 0.012 * float(np.hypot(*image.shape[:2])))
        alpha = cv2.GaussianBlur(mask, (0, 0), 2)[..., None]
        cv2.imwrite(str(out / path.name), (image * alpha + blurred * (1 - alpha)).astype(np.uint8))
"""  # argv: photos folder, output folder, "masks" (PNG masks) or "blur" (Gaussian blur, blend)


def seconds(command: list[str], runs: int) -> float:
    """Median wall seconds of a fresh process running `command` (an untimed warm-up first)."""

    def run() -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command[:4])} ... failed ({done.returncode}): {done.stderr[-800:]}")

    run()
    return median_ms(run, runs) / 1000


def blurcli(*args: str) -> list[str]:
    return [sys.executable, "-m", "blurcli", *args, "-q", "--overwrite"]


def peer(python: str, script: str, *args: str) -> list[str]:
    return [python, "-c", script, *args]


def lfw_test_photos(data: Path, folder: Path, limit: int | None) -> int:
    """LFW Part Labels' test photos, the JPEGs as published, linked into `folder`; how many."""
    folders = locate_dataset(data)
    names = parse_split((data / "parts_test.txt").read_text(), "parts_test.txt")[:limit]
    folder.mkdir(parents=True)
    for stem in names:
        (folder / f"{stem}.jpg").symlink_to(folders.images / stem.rsplit("_", 1)[0] / f"{stem}.jpg")
    return len(names)


def portrait_clip(path: Path, frames: int) -> None:
    """A 720p clip of the example portrait walking across a room (bench_video's "walk")."""
    cutout = portrait_cutout(load_segmenter())
    images = (frame for frame, _, _ in clip("walk", 1280, 720, frames, cutout))
    write_clip(path, images, 1280, 720, VideoOptions())


def per(count: int, unit: str, scale: float) -> Callable[[float], str]:
    """Wall seconds shown per item: '10.5 ms a photo'."""
    return lambda total: f"{total / count * scale:.{2 if scale == 1 else 1}f} {unit}"


def rate(count: int, unit: str) -> Callable[[float], str]:
    """Wall seconds shown as items per second: '12.1 photos/s'."""
    return lambda total: f"{count / total:.1f} {unit}"


def at_most(bound: float) -> Callable[[float], bool]:
    return lambda ratio: ratio <= bound


def row(name: str, ours: str, theirs: str, ratio: str, target: str, met: bool | None) -> None:
    verdict = "" if met is None else ": met" if met else ": not met"
    print(f"| {name} | {ours} | {theirs} | {ratio} | {target}{verdict} |")


def compare(
    name: str,
    ours_s: float,
    theirs_s: float | None,
    fmt: Callable[[float], str],
    target: str,
    meets: Callable[[float], bool],
) -> None:
    """One table row: blurcli's and the peer's wall seconds as `fmt` shows them, their ratio
    (blurcli's time over the peer's), and whether `meets(ratio)`."""
    if theirs_s is None:
        row(name, fmt(ours_s), "(mediapipe not installed)", "", target, None)
        return
    if target.startswith("("):  # a row for comparison, with no target of its own
        row(name, fmt(ours_s), fmt(theirs_s), f"{ours_s / theirs_s:.2f}", target, None)
        return
    ratio = ours_s / theirs_s
    row(name, fmt(ours_s), fmt(theirs_s), f"{ratio:.2f}", target, meets(ratio))


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--mediapipe-python", default=sys.executable, help="an interpreter with mediapipe")
    parser.add_argument("--data", type=Path, default=LFW_DATA, help="LFW Part Labels folder")
    parser.add_argument("--limit", type=int, help="only the first N LFW test photos (default: all 927)")
    parser.add_argument("--photos", type=int, default=30, help="1080p JPEGs for blur")
    parser.add_argument("--frames", type=int, default=150, help="frames of the 720p clip")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python = args.mediapipe_python if has_module(args.mediapipe_python, "mediapipe") else None
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        count = lfw_test_photos(args.data, work / "lfw", args.limit)
        make_folder(work / "photos", args.photos, 0, (1920, 1080))
        portrait_clip(work / "walk.mp4", args.frames)
        for out in ("masks", "blurred", "peer-masks", "peer-blurred"):
            (work / out).mkdir()
        print(f"2 paths of photos ({count} LFW test photos; {args.photos} 1080p JPEGs), a 720p clip of")
        print(f"{args.frames} frames; whole processes, median of {args.runs}; peer: MediaPipe 0.10 selfie")
        print("| path | blurcli | peer | ratio (time) | target |")
        print("| --- | --- | --- | --- | --- |")
        ours = seconds(blurcli("predict", str(work / "lfw"), "-o", str(work / "masks")), args.runs)
        theirs = python and seconds(
            peer(python, MEDIAPIPE_FOLDER, str(work / "lfw"), str(work / "peer-masks"), "masks"), args.runs
        )
        compare(
            "predict, LFW test", ours, theirs, per(count, "ms a photo", 1000), "ratio <= 1.0", at_most(1.0)
        )
        ours = seconds(blurcli("blur", str(work / "photos"), "-o", str(work / "blurred")), args.runs)
        theirs = python and seconds(
            peer(python, MEDIAPIPE_FOLDER, str(work / "photos"), str(work / "peer-blurred"), "blur"),
            args.runs,
        )
        compare(
            "blur, 1080p JPEGs", ours, theirs, rate(args.photos, "photos/s"), "ratio <= 0.33", at_most(1 / 3)
        )
        for heads in ("auto", "single"):
            command = blurcli("blur", str(work / "walk.mp4"), "-o", str(work / f"walk-{heads}.mp4"))
            ours = seconds([*command, "--heads", heads], args.runs)
            real_time = args.frames / 30.0
            target = "at least 30 fps" if heads == "auto" else "(for comparison)"
            compare(
                f"blur, 720p clip, --heads {heads}",
                ours,
                real_time,
                rate(args.frames, "fps"),
                target,
                at_most(1.0),
            )
        photo = str(EXAMPLE)
        ours = seconds(blurcli("blur", photo, "-o", str(work / "one.jpg")), args.runs)
        theirs = python and seconds(
            peer(python, MEDIAPIPE_SCRIPT, photo, str(work / "peer-one.jpg")), args.runs
        )
        compare("one photo, cold process", ours, theirs, per(1, "s", 1), "ratio <= 1.0", at_most(1.0))


if __name__ == "__main__":
    main()
