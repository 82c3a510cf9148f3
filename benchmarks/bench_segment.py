"""Time segmenting one 250x250 photo on the CPU: preprocess + forward + mask upsample.

Prints the median of many runs after warm-up, at 1 thread and at torch's default count (one per
physical core), each count given to ONNX Runtime (the session's intra-op threads), torch and
OpenCV (the guided filter) alike: the model in ONNX Runtime as `blur` and `predict` run it, with
bilinear masks and with the guided filter `blur` uses, and the same weights in torch (what
training runs). --ablation adds torch's own inference choices (channels-last, BatchNorm folding):
they concern torch alone, since the ONNX export always has BatchNorm folded and ONNX Runtime picks
its own memory layout. When `mediapipe==0.10.14` is installed, MediaPipe's selfie segmenter (its
.tflite ships in the wheel) is timed on the same images in the same run and the ratio printed;
MediaPipe keeps its own threads (its model runs on one XNNPACK thread on desktop Linux unless told
otherwise), which the counts above do not reach.

    python benchmarks/bench_segment.py                      # the shipped default model
    python benchmarks/bench_segment.py --weights runs/m.pt  # any checkpoint
    python benchmarks/bench_segment.py --arch 8,4,2,160     # an untrained architecture (speed only)
    python benchmarks/bench_segment.py --runs 200 --images 50 --data ../shared/data/lfw-parts --ablation
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import add_data, add_weights, argument_parser, example_rgb, timed, use_threads
from blurcli.checkpoint import Checkpoint, load_checkpoint
from blurcli.model import UNet, UNetConfig, count_parameters
from blurcli.segment import Segmenter, model_bytes, new_segmenter
from blurcli.torch_network import TorchNetwork
from blurcli.weights import resolve_checkpoint, resolve_weights


def sample_images(count: int, data: Path) -> list[np.ndarray]:
    """250x250 RGB photos: LFW test images when the data is there, else crops of the example photo."""
    if data.is_dir():
        from blurcli.training.lfw import load_split

        return list(load_split(data, "test", limit=count).images)
    photo = example_rgb()
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(count):
        side = int(rng.integers(300, 512))
        top, left = (int(v) for v in rng.integers(0, 512 - side + 1, 2))
        crops.append(cv2.resize(photo[top : top + side, left : left + side], (250, 250)))
    return crops


def median_ms_per_image(
    function: Callable[[np.ndarray], object], images: list[np.ndarray], runs: int
) -> float:
    """Median wall time in ms of `function(image)` over `runs` calls cycling through the images."""
    for image in images[:10]:  # warm-up
        function(image)
    calls = (partial(function, images[index % len(images)]) for index in range(runs))
    return statistics.median(timed(call)[0] * 1000 for call in calls)


def mediapipe_segmenter() -> Callable[[np.ndarray], np.ndarray] | None:
    """MediaPipe's selfie segmenter (general model) as image -> mask, or None when not installed."""
    try:
        import mediapipe as mp  # type: ignore[import-not-found]
    except ImportError:
        return None
    selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    return lambda image: selfie.process(image).segmentation_mask


def build_checkpoint(weights: str | None, arch: str | None) -> tuple[Checkpoint, str]:
    """The checkpoint to time and a label for it."""
    if arch:
        width, depth, stem, size = (int(v) for v in arch.split(","))
        config = UNetConfig(width=width, depth=depth, stem_stride=stem)
        checkpoint = Checkpoint(config=config, state_dict=UNet(config).state_dict(), input_size=size)
        label = f"untrained w{width} d{depth} stem{stem} @{size}"
    else:
        path = resolve_checkpoint(weights)
        checkpoint = load_checkpoint(path)
        label = path.name
    parameters = count_parameters(UNet(checkpoint.config))
    return checkpoint, f"{label} ({parameters:,} parameters)"


def main() -> None:
    parser = argument_parser(__doc__)
    add_weights(parser)
    parser.add_argument("--arch", help="width,depth,stem_stride,input_size of an untrained model")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--images", type=int, default=50)
    add_data(parser)
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also time torch without channels-last, and without BatchNorm folding (torch only: the "
        "ONNX export is always folded)",
    )
    args = parser.parse_args()

    images = sample_images(args.images, args.data)
    checkpoint, label = build_checkpoint(args.weights, args.arch)
    # The ONNX model blur runs: the shipped .onnx, or a checkpoint's (cached) export; an --arch's export.
    if args.arch:
        segmenter, source = new_segmenter(checkpoint, "cpu", backend="onnx", source=label), "its export"
    else:
        model, source = model_bytes(resolve_weights(args.weights))
        segmenter, source = new_segmenter(model, "cpu", source=label), Path(source).name
    in_torch = new_segmenter(checkpoint, "cpu", backend="torch", source=label)
    variants = {
        "blurcli": (segmenter, partial(segmenter.foreground, refine=None)),
        "  + guided-filter refinement (blur's default)": (segmenter, segmenter.foreground),
        "  in torch (as training runs it)": (in_torch, partial(in_torch.foreground, refine=None)),
    }
    if args.ablation:
        for name, settings in {
            "  in torch, without channels-last": {"channels_last": False},
            "  in torch, without channels-last, BN not folded": {"fuse": False, "channels_last": False},
        }.items():
            # The torch backend's own settings, switched off one by one: the same spec and subject.
            network = TorchNetwork.from_checkpoint(checkpoint, "cpu", label, **settings)
            other = Segmenter(network, in_torch.spec, in_torch.subject)
            variants[name] = (other, partial(other.foreground, refine=None))
    mediapipe = mediapipe_segmenter()
    print(f"model: {label}, input {checkpoint.input_size}, {len(images)} images of 250x250, {args.runs} runs")
    print(f"blurcli: the ONNX model ({source}) in ONNX Runtime, as blur runs it; bilinear mask unless said")
    print("in torch: the same weights in torch, BatchNorm folded, channels-last, inference_mode")
    all_threads = torch.get_num_threads()  # torch's default: one per physical core, as ONNX Runtime's
    for threads in sorted({1, all_threads}):
        use_threads(threads)  # OpenCV (the guided filter) and torch; ONNX Runtime through runner.threads
        ours = {}
        for name, (runner, function) in variants.items():
            with runner.threads(threads):
                ours[name] = median_ms_per_image(function, images, args.runs)
        for name, ms in ours.items():
            print(f"threads {threads}: {name} {ms:.2f} ms/img (preprocess, forward, upsample to 250x250)")
        if mediapipe is not None:
            theirs = median_ms_per_image(mediapipe, images, args.runs)
            ratio = ours["blurcli"] / theirs
            print(
                f"mediapipe selfie, its own threads (not limited): {theirs:.2f} ms/img, "
                f"ratio blurcli/mediapipe {ratio:.2f} (blurcli at {threads} threads)"
            )
        else:
            print("(mediapipe==0.10.14 not installed: no comparison)")


if __name__ == "__main__":
    main()
