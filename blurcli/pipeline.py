"""What `blur` and `predict` do to files: plan outputs, process each file, report, never lose data."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from blurcli.compose import BlurOptions, composite
from blurcli.errors import BlurcliError, UsageError
from blurcli.io import decode_image, encode_image, read_image, sniff_format, write_image
from blurcli.segment import Segmenter

PredictMode = Literal["alpha", "classes", "overlay"]
Transform = Callable[[np.ndarray], np.ndarray]
# Overlay colours per class (RGB): background untouched, skin green, hair red, as in the LFW masks.
_OVERLAY = np.array([[0, 0, 0], [0, 220, 0], [230, 0, 0]], np.float32)


@dataclass(frozen=True)
class FileResult:
    """Outcome for one input: status is 'done' or 'failed' (then `error` says why)."""

    input: str
    output: str | None
    status: str
    error: str | None = None
    ms: float = 0.0


def blur_image(segmenter: Segmenter, image: np.ndarray, options: BlurOptions = BlurOptions()) -> np.ndarray:
    """(H, W, 3) uint8 RGB photo -> the same photo with its background blurred."""
    return composite(image, segmenter.foreground(image), options)


def predict_image(segmenter: Segmenter, image: np.ndarray, mode: PredictMode = "alpha") -> np.ndarray:
    """(H, W, 3) uint8 RGB -> alpha (H, W) uint8 0-255, class map (H, W) uint8 0/1/2, or overlay RGB."""
    if mode == "alpha":
        return np.clip(segmenter.foreground(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    classes = segmenter.class_map(image)
    if mode == "classes":
        return classes
    return overlay(image, classes)


def overlay(image: np.ndarray, classes: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """Tint skin green and hair red over the photo, for checking a mask by eye."""
    tint = _OVERLAY[classes]
    weight = np.where(classes[..., None] > 0, opacity, 0.0).astype(np.float32)
    blended = image.astype(np.float32) * (1 - weight) + tint * weight
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def plan_outputs(
    inputs: Sequence[Path],
    output: Path | None,
    suffix: str,
    extension: str | None = None,
) -> list[Path]:
    """Output path per input: beside it by default, else `output` (a file for one input, else a folder).

    An output that would replace an input, or two inputs sharing one output, is a usage error.
    """
    single_file = output is not None and len(inputs) == 1 and not output.is_dir() and output.suffix != ""
    planned = []
    for path in inputs:
        name = f"{path.stem}{suffix}{extension or path.suffix}"
        if output is None:
            planned.append(path.with_name(name))
        elif single_file:
            planned.append(output)
        else:
            planned.append(output / name)
    resolved_inputs = {p.resolve() for p in inputs}
    seen: dict[Path, Path] = {}
    for source, target in zip(inputs, planned, strict=True):
        key = target.resolve()
        if key in resolved_inputs:
            raise UsageError(f"{target}: refusing to overwrite an input file")
        if key in seen:
            raise UsageError(f"{source} and {seen[key]} would both be written to {target}")
        seen[key] = source
    return planned


def process_files(
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    transform: Transform,
    quality: int = 95,
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Read, transform and atomically write each file; a bad file is reported and the rest go on."""
    results = []
    for source, target in zip(inputs, outputs, strict=True):
        started = time.perf_counter()
        try:
            write_image(target, transform(read_image(source)), quality)
            written, status, error = str(target), "done", None
        except BlurcliError as failure:
            written, status, error = None, "failed", str(failure)
        ms = (time.perf_counter() - started) * 1000
        result = FileResult(str(source), written, status, error, ms)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def process_bytes(
    data: bytes, transform: Transform, extension: str | None = None, quality: int = 95
) -> bytes:
    """Encoded image in, encoded image out (stdin/stdout); the format follows the input unless given."""
    image = decode_image(data, "<stdin>")
    return encode_image(transform(image), extension or sniff_format(data) or ".png", quality)
