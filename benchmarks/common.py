"""What the benchmark and figure scripts share: paths, arguments, thread limits, synthetic photos,
timing, PSNR, tables.

Every script puts the repository root on `sys.path` first, so `python benchmarks/<script>.py` and
`python benchmarks/figures/<script>.py` run from the repository root import this as
`benchmarks.common`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.segment import Segmenter, new_segmenter

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.jpg"
DOCS = ROOT / "docs"
LFW_DATA = ROOT.parent / "shared" / "data" / "lfw-parts"  # LFW Part Labels, as the README gets it
CCP_DATA = ROOT.parent / "shared" / "data" / "ccp"  # Clothing Co-Parsing, as the README gets it
PEOPLE_DEV = ROOT.parent / "shared" / "data" / "people-dev"  # everyday photos: validation only
QUALITY = 95  # JPEG quality of the generated photos and of `blurcli blur`'s output


# Arguments


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose --help shows the script's docstring as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_threads(parser: argparse.ArgumentParser) -> None:
    """--threads: CPU threads for ONNX Runtime, OpenCV and torch (default: each library's own);
    apply with `use_threads`, and load models with `load_segmenter` (or pass them to `limited`)."""
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for ONNX Runtime, OpenCV and torch (default: each library's own: ONNX Runtime "
        "and torch one per physical core, OpenCV all cores).",
    )


_threads: int | None = None  # the count `use_threads` set last (None: each library's default)


def use_threads(count: int | None) -> None:
    """Limit OpenCV and, where it is loaded, torch to `count` threads now, and every segmenter
    `limited` (or `load_segmenter`) gets from now on: its network, each ONNX Runtime session it
    makes (intra-op threads) or its torch module. None or 0: leave every library at its default."""
    global _threads
    _threads = count or None
    if _threads:
        cv2.setNumThreads(_threads)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(_threads)


def limited(segmenter: Segmenter) -> Segmenter:
    """`segmenter`, its network on the count `use_threads` set from now on (ONNX Runtime's
    session for that count, or torch's threads); torch imported since `use_threads` (an export,
    a checkpoint) is limited here too. A `with segmenter.threads(n)` block inside (the batch
    engine's) puts the network back on the library's default when it ends."""
    segmenter.network.threads(_threads)
    use_threads(_threads)
    return segmenter


def load_segmenter(weights: str | None = None, subject: str | None = None) -> Segmenter:
    """A model on the CPU as `blur` loads it (`new_segmenter`: ONNX Runtime), `limited`."""
    return limited(new_segmenter(weights, "cpu", subject=subject))


def threads_label() -> str:
    """What thread limit applies to the ONNX Runtime and OpenCV work a benchmark times, for its
    header: the count `use_threads` set, or each library's default."""
    if _threads:
        return f"{_threads} threads (ONNX Runtime, OpenCV)"
    return f"default threads (ONNX Runtime: one per physical core, OpenCV: {cv2.getNumThreads()})"


def add_weights(parser: argparse.ArgumentParser, many: bool = False) -> None:
    """--weights: a checkpoint path, name or URL (default: the shipped model); repeatable with `many`."""
    if many:
        parser.add_argument("--weights", action="append", help="checkpoint(s) to compare (default: shipped)")
    else:
        parser.add_argument("--weights", help="checkpoint path, name or URL (default: the shipped model)")


def add_data(parser: argparse.ArgumentParser) -> None:
    """--data: the LFW Part Labels folder (default: ../shared/data/lfw-parts)."""
    parser.add_argument("--data", type=Path, default=LFW_DATA, help="LFW Part Labels folder")


# Photos


def example_bgr() -> np.ndarray:
    """The example portrait (512x512), BGR as OpenCV reads it."""
    return cv2.imread(str(EXAMPLE))


def example_rgb() -> np.ndarray:
    """The example portrait (512x512), RGB."""
    return cv2.cvtColor(example_bgr(), cv2.COLOR_BGR2RGB)


def defocused(
    crop: np.ndarray, width: int, height: int, sigma: float, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """A backdrop: `crop` of a photo stretched to width x height, then Gaussian-blurred by `sigma`."""
    return cv2.GaussianBlur(cv2.resize(crop, (width, height), interpolation=interpolation), (0, 0), sigma)


def room_backdrop(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A synthetic defocused room: coarse muted colour fields, a vertical gradient, fine noise."""
    cells = int(rng.integers(3, 9))
    coarse = rng.uniform(20, 235, (cells, cells, 3)).astype(np.float32)
    grey = coarse.mean(axis=-1, keepdims=True)
    coarse = grey + (coarse - grey) * rng.uniform(0.2, 0.8)
    scene = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    gradient = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.9, 1.2), height, dtype=np.float32)
    scene *= gradient[:, None, None]
    scene += rng.normal(0, rng.uniform(2, 8), scene.shape).astype(np.float32)
    return np.clip(scene, 0, 255).astype(np.uint8)


def textured_photo(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured 8-bit RGB scene with a few small bright lights, and an oval subject's alpha."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (height // 16, width // 16, 3)).astype(np.float32)
    scene = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.5), (width, height), interpolation=cv2.INTER_CUBIC)
    scene += rng.normal(0, 6, (height, width, 3)).astype(np.float32)  # fine texture and sensor noise
    for y, x in rng.integers(0, (height, width), (40, 2)):
        cv2.circle(scene, (int(x), int(y)), 6, (255, 250, 235), -1)
    alpha = np.zeros((height, width), np.float32)
    cv2.ellipse(alpha, (width // 2, height // 2), (width // 6, height // 3), 0, 0, 360, 1.0, -1)
    return np.clip(scene, 0, 255).astype(np.uint8), alpha


def photo_like(rng: np.random.Generator, width: int, height: int, scene: str = "people") -> np.ndarray:
    """A width x height BGR photo of the example portrait in a `scene` (see below), re-lit, with noise."""
    source = example_bgr()
    if scene == "crops":
        frame = _enlarged_crop(rng, source, width, height)
    else:
        frame = _standing_portrait(rng, source, width, height)
    if rng.random() < 0.5:
        frame = frame[:, ::-1]
    frame = frame * rng.uniform(0.7, 1.2) + rng.normal(0, 3.0, frame.shape)  # exposure and sensor noise
    return np.clip(frame, 0, 255).astype(np.uint8)


def _enlarged_crop(rng: np.random.Generator, source: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scene "crops": a crop of `source` filling the frame; most cut the head off (hard on --heads auto)."""
    scale = max(width / source.shape[1], height / source.shape[0]) * rng.uniform(1.0, 1.4)
    big = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    top = int(rng.integers(0, big.shape[0] - height + 1))
    left = int(rng.integers(0, big.shape[1] - width + 1))
    return big[top : top + height, left : left + width].astype(np.float32)


def _standing_portrait(rng: np.random.Generator, source: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scene "people": all of `source` at a random size and place over its own defocused studio."""
    frame = defocused(source[:, : source.shape[1] // 4], width, height, height / 40).astype(np.float32)
    side = int(height * rng.uniform(0.8, 1.2))  # the portrait's side; taller ones lose their legs
    person = cv2.resize(source, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    top = max(0, height - side)  # standing on the frame's bottom edge; cut at it if taller
    person = person[: height - top]
    left = int(rng.integers(0, width - side + 1))
    ramp = np.clip(np.minimum(np.arange(side), side - 1 - np.arange(side)) / (side * 0.08), 0, 1)
    weight = ramp[None, :, None].astype(np.float32)  # the portrait's sides fade into the backdrop
    region = frame[top : top + person.shape[0], left : left + side]
    region += weight * (person - region)
    return frame


def resized_pair(image: np.ndarray, labels: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """An LFW image and its labels at side x side (area for the image, nearest for the labels)."""
    return (
        cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA),
        cv2.resize(labels, (side, side), interpolation=cv2.INTER_NEAREST),
    )


def paste(frame: np.ndarray, image: np.ndarray, alpha: np.ndarray, top: int, left: int) -> None:
    """Blend uint8 `image` into `frame` at (top, left), weight `alpha` (1: image, (h, w, 1)), rounded."""
    height, width = image.shape[:2]
    region = frame[top : top + height, left : left + width].astype(np.float32)
    mixed = alpha * image + (1 - alpha) * region
    frame[top : top + height, left : left + width] = (mixed + 0.5).astype(np.uint8)


def full_size_mask(
    low: np.ndarray, image: np.ndarray, refine: RefineOptions | None = RefineOptions()
) -> np.ndarray:
    """The model's subject mask `low` at `image`'s size, as `blur` makes it (guided filter unless None)."""
    return enlarge_mask(low, grey_guide(image), refine)


# Measurements


def timed(run: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds of one call of `run`, what it returned)."""
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


# A child's peak RSS measured from a tiny parent: a child forked from a large process would count
# that process's pages in its ru_maxrss until it execs.
_RSS_PROBE = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)"
)


def peak_rss(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run `command` in a fresh process: (seconds, peak RSS in MB, the finished process; its
    stdout ends with the probe's figure)."""
    probe = [sys.executable, "-c", _RSS_PROBE, *command]
    seconds, done = timed(lambda: subprocess.run(probe, capture_output=True, text=True))
    return seconds, int(done.stdout.split()[-1]) / 1024, done


def median_ms(run: Callable[[], object], repeat: int, budget_s: float = math.inf) -> float:
    """Median wall ms of up to `repeat` calls of `run`; stops early once `budget_s` is spent."""
    times: list[float] = []
    while len(times) < repeat and sum(times) < budget_s * 1000:
        times.append(timed(run)[0] * 1000)
    return statistics.median(times)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit images (or pixel selections)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


# Output


def table_row(*cells: object) -> str:
    """One row of a markdown table."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table_header(*names: str) -> str:
    """A markdown table's header row and its rule."""
    return table_row(*names) + "\n" + table_row(*["---"] * len(names))


def white(height: int, width: int) -> np.ndarray:
    """A white (height, width, 3) uint8 strip: the gap between a figure's panels."""
    return np.full((height, width, 3), 255, np.uint8)


def caption(image: np.ndarray, text: str, box: tuple[int, int], baseline: int) -> None:
    """Write `text` in black on a white box from (0, 0) to `box` (x, y) at the top left, in place."""
    cv2.rectangle(image, (0, 0), box, (255, 255, 255), -1)
    cv2.putText(image, text, (10, baseline), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
