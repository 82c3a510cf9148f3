"""Person masks on Clothing Co-Parsing (CCP): blurcli against MediaPipe's selfie segmenter, one scorer.

Every photo of a CCP split (test: photos 0901-1004, 550 px wide, 806-873 high) gets blurcli's full-resolution
person probability exactly as `blurcli predict --subject person` computes it (the single pass, or
a second look at every head with `--heads auto`, edges from the guided filter unless --no-refine),
decided at 0.5 (predict's alpha >= 128) and scored against CCP's person mask (every labelled pixel;
only the main person is labelled): person IoU, boundary F (3 px) and pixel accuracy, pooled over the
split, and the median ms per photo from RGB pixels to the full-resolution mask. When the optional
`mediapipe` package is installed (never a dependency; up to 0.10.21 its wheel ships the selfie
models), its selfie segmenter, general and landscape models, is scored and timed in the same run on
the same photos with the same threshold and scorer. Targets: person IoU >= 0.94, boundary F above
MediaPipe's.

    python benchmarks/bench_person.py [--weights W] [--data ../shared/data/ccp] [--split test]
        [--limit N] [--heads auto|single] [--no-refine] [--threads N] [--mediapipe-model M.tflite]
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import (
    CCP_DATA,
    add_threads,
    add_weights,
    argument_parser,
    table_header,
    table_row,
    timed,
    use_threads,
)
from blurcli.checkpoint import load_checkpoint
from blurcli.errors import BlurcliError
from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.render import segment_photo
from blurcli.second_look import HeadOptions, head_options
from blurcli.segment import Segmenter
from blurcli.training.ccp import PersonSplit, load_person_split
from blurcli.training.metrics import binary_metrics
from blurcli.weights import resolve_checkpoint

TOLERANCE = 3  # boundary F tolerance in pixels of the photo
TARGET_IOU = 0.94
COLUMNS = ("method", "person IoU", f"boundary F ({TOLERANCE} px)", "pixel accuracy", "ms per photo")

# (H, W, 3) uint8 RGB -> (H, W) float person probability at the photo's full resolution.
Method = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Scores:
    """One method's figures over the split: pooled person IoU, boundary F, pixel accuracy; median ms."""

    iou: float
    boundary_f: float
    accuracy: float
    ms: float


def blurcli_person(segmenter: Segmenter, heads: HeadOptions | None, refine: RefineOptions | None) -> Method:
    """The person probability `blurcli predict --subject person` writes as alpha (x 255), unrounded."""

    def person(image: np.ndarray) -> np.ndarray:
        low = segment_photo(segmenter, image, True, heads).values
        return enlarge_mask(low, grey_guide(image), refine)

    return person


def mediapipe_methods(model: Path | None, stack: ExitStack) -> tuple[dict[str, Method], str]:
    """MediaPipe's selfie segmenters if `mediapipe` is installed, and one line saying which (or why none)."""
    try:
        import mediapipe as mp  # type: ignore[import-not-found]
    except ImportError as error:
        if error.name != "mediapipe":  # installed, but something it needs is not
            return {}, f"mediapipe does not import ({error}): no comparison"
        return {}, "mediapipe not installed: no comparison (its selfie models ship in mediapipe<=0.10.21)"
    version = getattr(mp, "__version__", "?")
    legacy = getattr(getattr(mp, "solutions", None), "selfie_segmentation", None)
    if legacy is not None and model is None:
        methods = {
            f"mediapipe {name}": at_full_size(legacy.SelfieSegmentation(model_selection=selection))
            for selection, name in ((0, "general"), (1, "landscape"))
        }
        return methods, f"mediapipe {version}: legacy SelfieSegmentation, model_selection 0 and 1"
    if model is None:
        return {}, (
            f"mediapipe {version} has no legacy selfie segmenter and ships no model: "
            "no comparison (give --mediapipe-model selfie_segmenter.tflite)"
        )
    methods = {f"mediapipe {model.stem}": tasks_segmenter(mp, model, stack)}
    return methods, f"mediapipe {version}: tasks ImageSegmenter on {model}"


def at_full_size(selfie: Any) -> Method:
    """A legacy SelfieSegmentation as a Method (its mask comes at the photo's size; resized if not)."""

    def person(image: np.ndarray) -> np.ndarray:
        mask = selfie.process(image).segmentation_mask
        return resized(mask, image)

    return person


def tasks_segmenter(mp: Any, model: Path, stack: ExitStack) -> Method:
    """The tasks API's ImageSegmenter with `model` as a Method (its last confidence mask, the person),
    closed with `stack` (at interpreter exit its own __del__ fails: its threads are gone by then)."""
    vision = mp.tasks.vision
    options = vision.ImageSegmenterOptions(
        base_options=mp.tasks.BaseOptions(model_asset_path=str(model)),
        running_mode=vision.RunningMode.IMAGE,
        output_confidence_masks=True,
        output_category_mask=False,
    )
    segmenter = stack.enter_context(vision.ImageSegmenter.create_from_options(options))

    def person(image: np.ndarray) -> np.ndarray:
        photo = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        return resized(segmenter.segment(photo).confidence_masks[-1].numpy_view(), image)

    return person


def resized(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    """An (h, w[, 1]) float mask at `image`'s size (bilinear), if it is not already."""
    mask = np.asarray(mask, np.float32).reshape(mask.shape[:2])
    height, width = image.shape[:2]
    if mask.shape != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return mask


def score(method: Method, split: PersonSplit) -> Scores:
    """Decide each photo's person at 0.5, pool the scores over the split, time each photo once."""
    scorer = binary_metrics(TOLERANCE)
    method(split.images[0])  # warm-up: first-call allocations, graph start
    times = []
    for image, truth in zip(split.images, split.masks, strict=True):
        seconds, probability = timed(lambda image=image: method(image))
        times.append(seconds * 1000)
        scorer.update((probability >= 0.5).astype(np.uint8), truth)
    figures = {key: math.nan if value is None else value for key, value in scorer.compute().items()}
    return Scores(
        figures["subject_iou"],  # undefined (nan) only where neither truth nor decision has a person
        figures["subject_boundary_f"],
        figures["pixel_accuracy"],
        statistics.median(times),
    )


def sizes(split: PersonSplit) -> str:
    """The photos' sizes: '550x825', or their ranges, '550x814 to 550x854 (WxH, 40 sizes)'."""
    shapes = {image.shape[:2] for image in split.images}
    (low_h, low_w), (high_h, high_w) = np.min(list(shapes), axis=0), np.max(list(shapes), axis=0)
    if len(shapes) == 1:
        return f"{low_w}x{low_h}"
    return f"{low_w}x{low_h} to {high_w}x{high_h} (WxH, {len(shapes)} sizes)"


def shown(name: str, scores: Scores) -> str:
    """The table row of one method."""
    return table_row(
        name,
        f"{scores.iou:.4f}",
        f"{scores.boundary_f:.3f}",
        f"{scores.accuracy * 100:.2f} %",
        f"{scores.ms:.1f}",
    )


def verdicts(ours: Scores, theirs: dict[str, Scores]) -> str:
    """Whether blurcli meets its targets: person IoU >= 0.94; boundary F above MediaPipe's best."""
    lines = [f"target person IoU >= {TARGET_IOU}: {'met' if ours.iou >= TARGET_IOU else 'not met'}"]
    if theirs:
        best = max(scores.boundary_f for scores in theirs.values())
        met = "met" if ours.boundary_f > best else "not met"
        lines.append(f"target boundary F above MediaPipe's ({best:.3f}): {met}")
    return "\n".join(lines)


def person_segmenter(weights: str | None) -> tuple[Segmenter, Path]:
    """The model on the CPU, segmenting the person; a model without a person output ends the run."""
    path = resolve_checkpoint(weights)
    checkpoint = load_checkpoint(path)
    if "person" not in checkpoint.subjects:
        found = ", ".join(checkpoint.subjects)
        refuse(f"{path}: this model has no person output (it segments: {found}); nothing to score on CCP")
    return Segmenter.from_checkpoint(checkpoint, "cpu", str(path), subject="person"), path


def refuse(message: str) -> NoReturn:
    """Say why nothing can be measured, in one line, and exit 2."""
    print(f"bench_person: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    parser = argument_parser(__doc__)
    add_weights(parser)
    parser.add_argument("--data", type=Path, default=CCP_DATA, help="Clothing Co-Parsing folder")
    parser.add_argument("--split", default="test", help="train, validation or test")
    parser.add_argument("--limit", type=int, help="Only the split's first N photos.")
    parser.add_argument("--heads", choices=("auto", "single"), default="auto", help="as `blurcli predict`")
    parser.add_argument("--no-refine", action="store_true", help="Bilinear masks, as `predict --no-refine`.")
    add_threads(parser)
    parser.add_argument("--mediapipe-model", type=Path, help="A .tflite for MediaPipe's tasks API.")
    args = parser.parse_args()
    use_threads(args.threads)
    try:
        segmenter, weights = person_segmenter(args.weights)
        split = load_person_split(args.data, args.split, args.limit)
    except BlurcliError as error:
        refuse(str(error))
    if not split.names:
        refuse(f"{args.data}: no {args.split} photos")
    refine = None if args.no_refine else RefineOptions()
    edges = "bilinear" if args.no_refine else "guided filter"
    print(f"CCP {args.split}: {len(split.names)} photos, {sizes(split)}")
    print(
        f"blurcli: {weights.name}, --subject person --heads {args.heads}, "
        f"{edges}; {torch.get_num_threads()} threads"
    )
    with ExitStack() as stack:
        methods, mediapipe = mediapipe_methods(args.mediapipe_model, stack)
        print(mediapipe)
        print(f"pooled over the split, decided at 0.5; boundary F within {TOLERANCE} px; median ms per photo")
        print(table_header(*COLUMNS))
        ours = score(blurcli_person(segmenter, head_options(args.heads), refine), split)
        print(shown("blurcli", ours), flush=True)
        theirs = {}
        for name, method in methods.items():
            theirs[name] = score(method, split)
            print(shown(name, theirs[name]), flush=True)
    print(verdicts(ours, theirs))


if __name__ == "__main__":
    main()
