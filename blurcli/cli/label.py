"""`blurcli label`: MediaPipe's person labels for training photos (the teacher extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from blurcli.cli.options import QuietOption
from blurcli.cli.output import (
    stderr_console,
    training_extra,
)

DataOption = Annotated[Path, typer.Option("--data", help="LFW Part Labels folder (archives or unpacked).")]
OutOption = Annotated[Path, typer.Option("--out", help="Folder for the teacher's labels.")]
PersonDataOption = Annotated[
    Path | None,
    typer.Option("--person-data", help="Clothing Co-Parsing folder: label its bystanders too."),
]
UnlabelledOption = Annotated[
    int | None, typer.Option(min=0, help="How many unlabelled LFW photos to label (default all; 0 none).")
]
LimitOption = Annotated[int | None, typer.Option(min=1, help="Only the first N photos of each set.")]


def label(
    data: DataOption,
    out: OutOption,
    person_data: PersonDataOption = None,
    unlabelled: UnlabelledOption = None,
    limit: LimitOption = None,
    quiet: QuietOption = False,
) -> None:
    """Write MediaPipe's person labels for training's photos (`train --person-labels`): LFW bodies,
    unlabelled LFW close-ups and CCP bystanders. Needs the teacher extra; training photos only."""
    teacher = training_extra("label").teacher
    console = stderr_console(quiet)

    def on_folder(key: str, count: int) -> None:
        console.print(f"{key}: {count} photos labelled", highlight=False)

    record = teacher.write_teacher_labels(data, person_data, out, unlabelled, limit, on_folder=on_folder)
    console.print(f"{record['teacher']} -> {out}", highlight=False, soft_wrap=True)
