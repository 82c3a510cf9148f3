"""`blurcli eval`: a model scored on a labelled split, printed as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from blurcli.cli.options import DeviceOption, QuietOption, RefineFlag, WeightsOption
from blurcli.cli.output import (
    file_progress,
    load_segmenter,
    print_stdout,
    stderr_console,
    training_extra,
)
from blurcli.refine import RefineOptions

DataOption = Annotated[
    Path,
    typer.Option("--data", help="LFW Part Labels or Clothing Co-Parsing folder (archives or unpacked)."),
]
SplitOption = Annotated[str, typer.Option(help="train, validation or test.")]
SubjectOption = Annotated[
    str | None,
    typer.Option(
        "--subject",
        help="head on LFW Part Labels, person on Clothing Co-Parsing (the default: the dataset's).",
        show_default=False,
    ),
]
BatchSizeOption = Annotated[int, typer.Option(min=1)]
LimitOption = Annotated[int | None, typer.Option(min=1, help="Score only the first N images.")]
AsJsonOption = Annotated[bool, typer.Option("--json", help="Print the figures as JSON on stdout.")]


def evaluate(
    data: DataOption,
    split: SplitOption = "test",
    subject: SubjectOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    limit: LimitOption = None,
    as_json: AsJsonOption = False,
    refine: RefineFlag = True,
    quiet: QuietOption = False,
) -> None:
    """Score a model on a labelled split: LFW Part Labels (the head's classes, at 250x250) or
    Clothing Co-Parsing (the person, at the photos' size); one pooled confusion matrix.

    Masks follow the photo's edges as in `blur` and `predict`; --no-refine scores the model's
    output resized bilinearly.
    """
    training = training_extra("eval")
    console = stderr_console(quiet)
    data_split, subject = training.load_labelled(data, split, subject, limit)
    segmenter = load_segmenter(weights, device, console, subject)
    with file_progress(console) as progress:
        task = progress.add_task(f"scoring {split}", total=len(data_split.names))
        result = training.evaluate(
            segmenter,
            data_split,
            batch_size,
            lambda done, total: progress.update(task, completed=done),
            RefineOptions() if refine else None,
        )
    result["split"] = split
    result["subject"] = subject
    result["refined"] = refine
    if as_json:
        print_stdout(json.dumps(result) + "\n")
    else:
        screen = Console()
        with screen.capture() as table:
            screen.print(_metrics_table(result))
        print_stdout(table.get())


def _metrics_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"{result['split']} split, {result['images']} images, {result['subject']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "pixel_accuracy",
        "mean_iou",
        "fw_iou",
        "subject_iou",
        "mean_boundary_f",
        "subject_boundary_f",
    ):
        table.add_row(key, _fmt(result.get(key)))
    for group in ("iou", "f1", "boundary_f"):
        for name, value in result.get(group, {}).items():
            table.add_row(f"{group} {name}", _fmt(value))
    table.add_row("cross-entropy", _fmt(result.get("loss")))
    return table


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
