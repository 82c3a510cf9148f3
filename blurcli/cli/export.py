"""`blurcli export`: a trained checkpoint as the ONNX model blur and predict run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from blurcli.cli.options import QuietOption
from blurcli.cli.output import (
    stderr_console,
)

CheckpointArgument = Annotated[Path, typer.Argument(help="A torch checkpoint (.pt) from `blurcli train`.")]
OutputOption = Annotated[Path, typer.Option("--output", "-o", help="Where to write the ONNX model.")]


def export(
    checkpoint: CheckpointArgument,
    output: OutputOption,
    quiet: QuietOption = False,
) -> None:
    """Export a trained checkpoint to ONNX, the model `blur` and `predict` run (ONNX Runtime, no
    torch); its preprocessing goes into the file. Needs the train extra (torch, onnx)."""
    from blurcli.export import export_onnx

    spec = export_onnx(checkpoint, output)
    stderr_console(quiet).print(
        f"{checkpoint} -> {output} (input {spec.input_size} px, subjects {', '.join(spec.subjects)})",
        highlight=False,
        soft_wrap=True,
    )
