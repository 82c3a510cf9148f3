"""Person masks: blurcli against MediaPipe's selfie segmenter, one scorer, on CCP's test split and
on people-dev (everyday photos: validation only, never trained on).

Every photo gets blurcli's full-resolution person probability exactly as `blurcli predict` computes
it: the ONNX model in ONNX Runtime (a .pt is exported first, as `predict` does), the second look
(`--heads auto`) or a single pass, edges from the guided filter unless --no-refine. It is decided at
0.5 (predict's alpha >= 128) and scored against the set's person mask: person IoU, boundary F (3 px)
and pixel accuracy pooled over the set, the same on the photos whose person fills over 30 % of the
frame (close-ups), and the median ms per photo from RGB pixels to the full-resolution mask.
--threads reaches ONNX Runtime (every pass of the model, the second look's too) and OpenCV. When
the optional `mediapipe` package is installed (never a dependency; up to 0.10.21 its wheel ships
the selfie models: `blurcli[teacher]`), its selfie segmenter, general and landscape models, is
scored and timed in the same run on the same photos, on MediaPipe's own threads: --threads does
not reach it (its model runs on one XNNPACK thread on desktop Linux unless told otherwise).
Targets: people-dev person IoU >= 0.90 and CCP test >= 0.92, boundary F above MediaPipe's.

    python benchmarks/bench_person.py [--weights W] [--sets ccp,people] [--ccp ../shared/data/ccp]
        [--people ../shared/data/people-dev] [--split test] [--limit N] [--heads auto|single]
        [--no-refine] [--threads N] [--mediapipe-model M.tflite]
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import (
    CCP_DATA,
    PEOPLE_DEV,
    add_threads,
    add_weights,
    argument_parser,
    load_segmenter,
    table_header,
    table_row,
    threads_label,
    use_threads,
)
from blurcli.errors import BlurcliError
from blurcli.refine import RefineOptions
from blurcli.second_look import head_options
from blurcli.training.ccp import PersonSplit, load_person_split
from blurcli.training.people import load_people
from blurcli.training.person_scores import CLOSE_UP, TOLERANCE, Method, Scores, predicted_person, score_person

TARGETS = {"people-dev": 0.90, "CCP test": 0.92}  # person IoU
COLUMNS = (
    "method",
    "person IoU",
    f"boundary F ({TOLERANCE} px)",
    "pixel accuracy",
    "close-ups: IoU",
    "ms per photo",
)


def mediapipe_methods(model: Path | None, stack: ExitStack) -> tuple[dict[str, Method], str]:
    """MediaPipe's selfie segmenters if `mediapipe` is installed, and one line saying which (or why none)."""
    try:
        import mediapipe as mp  # type: ignore[import-not-found]
    except ImportError as error:
        if error.name != "mediapipe":  # installed, but something it needs is not
            return {}, f"mediapipe does not import ({error}): no comparison"
        return {}, "mediapipe not installed: no comparison (pip install 'blurcli[teacher]')"
    version = getattr(mp, "__version__", "?")
    if model is not None:
        methods = {f"mediapipe {model.stem}": tasks_segmenter(mp, model, stack)}
        return methods, f"mediapipe {version}: tasks ImageSegmenter on {model}"
    try:
        from blurcli.training.teacher import selfie_segmenter

        methods = {
            f"mediapipe {name}": selfie_segmenter(selection, mirrored=False)
            for selection, name in ((0, "general"), (1, "landscape"))
        }
    except BlurcliError as error:
        return {}, f"{error}: no comparison (or give --mediapipe-model selfie_segmenter.tflite)"
    return methods, f"mediapipe {version}: legacy SelfieSegmentation, model_selection 0 and 1"


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
        mask = np.asarray(segmenter.segment(photo).confidence_masks[-1].numpy_view(), np.float32)
        mask = mask.reshape(mask.shape[:2])
        if mask.shape != image.shape[:2]:
            mask = cv2.resize(mask, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        return mask

    return person


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
        f"{scores.close_up_iou:.4f}",
        f"{scores.ms:.1f}",
    )


def verdicts(name: str, ours: Scores, theirs: dict[str, Scores]) -> str:
    """Whether blurcli meets its targets on one set: person IoU; boundary F above MediaPipe's best."""
    target = TARGETS.get(name)
    lines = (
        []
        if target is None
        else [f"target person IoU >= {target}: {'met' if ours.iou >= target else 'not met'}"]
    )
    if theirs:
        best = max(scores.boundary_f for scores in theirs.values())
        met = "met" if ours.boundary_f > best else "not met"
        lines.append(f"target boundary F above MediaPipe's ({best:.3f}): {met}")
    return "\n".join(lines)


def refuse(message: str) -> NoReturn:
    """Say why nothing can be measured, in one line, and exit 2."""
    print(f"bench_person: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_sets(args: Any) -> dict[str, PersonSplit]:
    """The sets --sets names, each read whole (or its first --limit photos)."""
    sets = {}
    for key in args.sets.split(","):
        if key == "people":
            sets["people-dev"] = load_people(args.people, args.limit)
        elif key == "ccp":
            sets[f"CCP {args.split}"] = load_person_split(args.ccp, args.split, args.limit)
        else:
            refuse(f"--sets {key}: unknown set (use ccp, people)")
    return sets


def main() -> None:
    parser = argument_parser(__doc__)
    add_weights(parser)
    parser.add_argument("--sets", default="people,ccp", help="people, ccp or both, comma-separated")
    parser.add_argument("--ccp", type=Path, default=CCP_DATA, help="Clothing Co-Parsing folder")
    parser.add_argument("--people", type=Path, default=PEOPLE_DEV, help="people-dev folder")
    parser.add_argument("--split", default="test", help="CCP split: train, validation or test")
    parser.add_argument("--limit", type=int, help="Only each set's first N photos.")
    parser.add_argument("--heads", choices=("auto", "single"), default="auto", help="as `blurcli predict`")
    parser.add_argument("--no-refine", action="store_true", help="Bilinear masks, as `predict --no-refine`.")
    add_threads(parser)
    parser.add_argument("--mediapipe-model", type=Path, help="A .tflite for MediaPipe's tasks API.")
    parser.add_argument("--no-mediapipe", action="store_true", help="Score blurcli alone.")
    args = parser.parse_args()
    use_threads(args.threads)
    try:
        segmenter = load_segmenter(args.weights, subject="person")  # on --threads
        sets = load_sets(args)
    except BlurcliError as error:
        refuse(str(error))
    refine = None if args.no_refine else RefineOptions()
    edges = "bilinear" if args.no_refine else "guided filter"
    weights = args.weights or "the shipped person model"
    print(f"blurcli: {weights} in ONNX Runtime, --heads {args.heads}, {edges}; {threads_label()}")
    with ExitStack() as stack:
        methods, mediapipe = (
            ({}, "MediaPipe left out")
            if args.no_mediapipe
            else mediapipe_methods(args.mediapipe_model, stack)
        )
        print(mediapipe + ("; on MediaPipe's own threads (--threads does not reach it)" if methods else ""))
        print(
            "pooled over each set, decided at 0.5; boundary F within "
            f"{TOLERANCE} px; close-ups: person over {CLOSE_UP:.0%} of the frame; median ms per photo"
        )
        for name, split in sets.items():
            close = sum(mask.mean() > CLOSE_UP for mask in split.masks)
            print(f"\n{name}: {len(split.names)} photos ({close} close-ups), {sizes(split)}")
            print(table_header(*COLUMNS))
            ours = score_person(predicted_person(segmenter, head_options(args.heads), refine), split)
            print(shown("blurcli", ours), flush=True)
            theirs = {}
            for method_name, method in methods.items():
                theirs[method_name] = score_person(method, split)
                print(shown(method_name, theirs[method_name]), flush=True)
            print(verdicts(name, ours, theirs))


if __name__ == "__main__":
    main()
