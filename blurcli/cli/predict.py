"""`blurcli predict`: the subject's mask (alpha, classes or an overlay) for each photo."""

from __future__ import annotations

from typing import Annotated

import typer

from blurcli.batch import DEFAULT_JOBS, RunOptions
from blurcli.cli.options import (
    BatchOption,
    DeviceOption,
    HeadsOption,
    ImagesArgument,
    JobsOption,
    JsonOption,
    MaxMemoryOption,
    MaxPixelsOption,
    OverwriteOption,
    QualityOption,
    QuietOption,
    RayOption,
    RecursiveOption,
    RefineFlag,
    SubjectOption,
    WeightsOption,
    WorkersOption,
)
from blurcli.cli.output import (
    megabytes,
)
from blurcli.cli.runs import Model, run_command
from blurcli.limits import DEFAULT_MAX_PIXELS
from blurcli.plan import (
    PREDICT_NAMING,
    plan_files,
)
from blurcli.render import PredictTask

OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file (one input) or folder of <stem>.png masks (mirrors input folders). "
        "Default: <stem>_mask.png beside each input.",
    ),
]
ClassesOption = Annotated[
    bool,
    typer.Option(
        "--classes",
        help="Write class indices instead of alpha: 0 background, 1 person (the person subject); "
        "0 background, 1 skin, 2 hair with --subject head.",
    ),
]
ShowOption = Annotated[bool, typer.Option("--overlay", help="Write a coloured overlay for checking by eye.")]
FmtOption = Annotated[
    str | None, typer.Option("--format", "-f", help="Output format (default png; masks want lossless).")
]


def predict(
    images: ImagesArgument,
    output: OutputOption = None,
    classes: ClassesOption = False,
    show: ShowOption = False,
    recursive: RecursiveOption = False,
    overwrite: OverwriteOption = False,
    fmt: FmtOption = None,
    quality: QualityOption = 95,
    jobs: JobsOption = DEFAULT_JOBS,
    batch_size: BatchOption = 8,
    as_json: JsonOption = False,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    max_memory: MaxMemoryOption = None,
    refine: RefineFlag = True,
    heads: HeadsOption = "auto",
    subject: SubjectOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    ray: RayOption = None,
    workers: WorkersOption = 2,
    quiet: QuietOption = False,
) -> None:
    """Write the subject mask: 8-bit alpha (probability x 255) at the photo's full resolution."""
    task = PredictTask.from_options(classes, show, refine)
    planned = plan_files(images, output, PREDICT_NAMING, recursive, fmt)
    options = RunOptions(batch_size, jobs, quality, max_pixels, overwrite, memory=megabytes(max_memory))
    model = Model(weights, device, subject, ray, workers)
    run_command(planned, task, options, heads, model, "segmenting", as_json, quiet)
