"""Draw docs/video_still.jpg: one frame of a clip before and after `blurcli blur clip.mp4`.

The clip is bench_video.py's "walk": the example portrait, cut out along the model's mask, crossing
a defocused room at 640x360. It is encoded, blurred as the CLI does (process_video), and frame 20
of each file is put side by side.

    python benchmarks/figures/video.py [--out docs/video_still.jpg] [--weights W]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for benchmarks.common

from benchmarks.bench_video import clip, portrait_cutout, write_clip
from benchmarks.common import DOCS, add_weights, argument_parser, caption
from blurcli.render import BlurTask
from blurcli.segment import new_segmenter
from blurcli.video import VideoOptions, process_video


def frame_at(path: Path, index: int) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{path}: fewer than {index + 1} frames")


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--out", type=Path, default=DOCS / "video_still.jpg")
    add_weights(parser)
    args = parser.parse_args()
    segmenter = new_segmenter(args.weights, "cpu")
    cutout = portrait_cutout(segmenter)
    options = VideoOptions()
    with tempfile.TemporaryDirectory() as scratch:
        source, blurred = Path(scratch) / "walk.mp4", Path(scratch) / "walk_blurred.mp4"
        write_clip(source, (f for f, _, _ in clip("walk", 640, 360, 30, cutout)), 640, 360, options)
        process_video(source, blurred, segmenter, BlurTask(), options)
        before, after = frame_at(source, 20), frame_at(blurred, 20)
    before, after = np.ascontiguousarray(before), np.ascontiguousarray(after)
    caption(before, "clip.mp4, frame 20", (250, 40), 28)
    caption(after, "blurcli blur clip.mp4", (290, 40), 28)
    sheet = np.concatenate([before, np.full((360, 8, 3), 255, np.uint8), after], axis=1)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
