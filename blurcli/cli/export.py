"""`blurcli export`: a trained checkpoint as the ONNX model blur and predict run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from blurcli.cli.options import QuietOption
from blurcli.cli.output import stderr_console, training_extra
from blurcli.errors import UsageError

CheckpointArgument = Annotated[Path, typer.Argument(help="A torch checkpoint (.pt) from `blurcli train`.")]
OutputOption = Annotated[Path, typer.Option("--output", "-o", help="Where to write the ONNX model.")]
Int8Flag = Annotated[
    bool,
    typer.Option(
        "--int8",
        help="Quantize to int8 (faster on CPUs; masks move a little), calibrated on training photos "
        "from --data and --person-data.",
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="With --int8: LFW Part Labels folder; its train photos calibrate the model."),
]
PersonDataOption = Annotated[
    Path | None,
    typer.Option(
        "--person-data", help="With --int8: Clothing Co-Parsing folder; its train photos calibrate too."
    ),
]


def export(
    checkpoint: CheckpointArgument,
    output: OutputOption,
    int8: Int8Flag = False,
    data: DataOption = None,
    person_data: PersonDataOption = None,
    quiet: QuietOption = False,
) -> None:
    """Export a trained checkpoint to ONNX, the model `blur` and `predict` run (ONNX Runtime, no
    torch); its preprocessing goes into the file. Needs the train extra (torch, onnx)."""
    from blurcli.export import export_onnx

    if not int8 and (data is not None or person_data is not None):
        raise UsageError("--data and --person-data calibrate an int8 model: add --int8")
    calibration = None
    if int8:
        if data is None:
            raise UsageError("--int8 needs --data (LFW Part Labels: its train photos calibrate the model)")
        calibration = training_extra("export").calibration_set(data, person_data).batches
    spec = export_onnx(checkpoint, output, calibration)
    stderr_console(quiet).print(
        f"{checkpoint} -> {output} ({'int8, ' if int8 else ''}input {spec.input_size} px, "
        f"subjects {', '.join(spec.subjects)})",
        highlight=False,
        soft_wrap=True,
    )
