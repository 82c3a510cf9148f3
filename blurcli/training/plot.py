"""Training curves as a PNG, drawn with OpenCV only (no plotting library to install)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from blurcli.encode import encode_image
from blurcli.files import write_file
from blurcli.metadata import add_output_mark, image_size, output_mark, sniff_format

PLOT_SIZE = (900, 360)  # width, height
CURVES_MARK = "curves"  # blurcli's mark in the PNG (metadata.add_output_mark): a run may replace it


def plot_history(history: list[dict[str, Any]], path: Path, size: tuple[int, int] = PLOT_SIZE) -> None:
    """Draw loss (train, validation) and validation mIoU per epoch into a PNG, with OpenCV only;
    the PNG carries blurcli's mark, so a later run knows it may replace it (`is_curves`)."""
    width, height = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    panels = [
        ("loss", [("train_loss", (31, 119, 180)), ("val_loss", (255, 127, 14))]),
        ("validation mIoU", [("val_mean_iou", (44, 160, 44))]),
    ]
    panel_width = width // len(panels)
    for index, (title, series) in enumerate(panels):
        _draw_panel(canvas, index * panel_width, panel_width, height, title, series, history)
    write_file(path, add_output_mark(encode_image(canvas, ".png"), CURVES_MARK))


def is_curves(path: Path) -> bool:
    """Whether `path` holds training curves blurcli drew (a run may replace them): its mark, or,
    for curves drawn before the mark, a PNG of the plot's size."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    if output_mark(head) == CURVES_MARK:
        return True
    return sniff_format(head) == ".png" and output_mark(head) is None and image_size(head) == PLOT_SIZE


def _draw_panel(
    canvas: np.ndarray,
    left: int,
    width: int,
    height: int,
    title: str,
    series: list[tuple[str, tuple[int, int, int]]],
    history: list[dict[str, Any]],
) -> None:
    margin = 40
    x0, y0, x1, y1 = left + margin, margin, left + width - 15, height - margin
    values = [record[key] for key, _ in series for record in history if _finite(record.get(key))]
    if not values:
        return
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    epochs = max(len(history) - 1, 1)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 0, 0), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, title, (x0, y0 - 12), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{high:.3f}", (left + 2, y0 + 5), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{low:.3f}", (left + 2, y1), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"epoch {len(history)}", (x1 - 70, y1 + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for row, (key, colour) in enumerate(series):
        points = [
            (x0 + round((x1 - x0) * i / epochs), y1 - round((y1 - y0) * (record[key] - low) / span))
            for i, record in enumerate(history)
            if _finite(record.get(key))
        ]
        if not points:
            continue
        cv2.polylines(canvas, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
        cv2.putText(canvas, key, (x0 + 8, y0 + 18 + 16 * row), font, 0.45, colour, 1, cv2.LINE_AA)


def _finite(value: Any) -> bool:
    """A value that can be drawn: a number, not None, NaN or infinite (a diverged epoch)."""
    return isinstance(value, (int, float)) and math.isfinite(value)
