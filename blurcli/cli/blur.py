"""`blurcli blur`: photos and videos with the background blurred."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from blurcli.batch import DEFAULT_JOBS, RunOptions
from blurcli.cli.options import (
    BatchOption,
    DeviceOption,
    FormatOption,
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
from blurcli.compose import DEFAULT_FEATHER, DEFAULT_STRENGTH, MAX_FEATHER, MAX_STRENGTH, Kernel
from blurcli.limits import DEFAULT_MAX_PIXELS
from blurcli.plan import (
    BLUR_NAMING,
    plan_files,
)
from blurcli.render import BlurTask
from blurcli.video import VideoOptions, check_preset

OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file (one input, an image name) or folder (mirrors input folders; a name "
        "ending in / is always a folder). "
        "Default: <stem>_blurred.<ext> beside each input.",
    ),
]
StrengthOption = Annotated[
    float, typer.Option(min=0.0, max=MAX_STRENGTH, help="Blur sigma as a fraction of the image diagonal.")
]
FeatherOption = Annotated[
    float, typer.Option(min=0.0, max=MAX_FEATHER, help="Mask edge softening, fraction of the diagonal.")
]
KernelOption = Annotated[
    Kernel,
    typer.Option(help="gaussian: soft and even; disc: a lens's bokeh (round, bright highlights)."),
]
MaskOption = Annotated[
    Path | None,
    typer.Option(
        "--mask",
        help="Use this mask (white = subject; e.g. from `blurcli predict`, edited) instead of the "
        "model. A folder holds one per photo: <stem>_mask.png or <stem>.png, mirroring the inputs.",
    ),
]
SaveMaskOption = Annotated[
    bool,
    typer.Option("--save-mask", help="Also write the mask used, <stem>_mask.png beside each output."),
]
KeepEmptyOption = Annotated[
    bool,
    typer.Option(
        "--keep-empty",
        help="A photo in which no person is found is copied unchanged (default: it is all "
        "background, so it is blurred all over).",
    ),
]
CrfOption = Annotated[
    int, typer.Option(min=0, max=51, help="Videos: x264 quality (lower is better and bigger).")
]
PresetOption = Annotated[str, typer.Option(help="Videos: x264 speed preset (ultrafast ... veryslow).")]


def blur(
    images: ImagesArgument,
    output: OutputOption = None,
    strength: StrengthOption = DEFAULT_STRENGTH,
    feather: FeatherOption = DEFAULT_FEATHER,
    kernel: KernelOption = "gaussian",
    mask: MaskOption = None,
    save_mask: SaveMaskOption = False,
    heads: HeadsOption = "auto",
    subject: SubjectOption = None,
    keep_empty: KeepEmptyOption = False,
    recursive: RecursiveOption = False,
    overwrite: OverwriteOption = False,
    fmt: FormatOption = None,
    quality: QualityOption = 95,
    jobs: JobsOption = DEFAULT_JOBS,
    batch_size: BatchOption = 8,
    as_json: JsonOption = False,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    max_memory: MaxMemoryOption = None,
    refine: RefineFlag = True,
    crf: CrfOption = VideoOptions.crf,
    preset: PresetOption = VideoOptions.preset,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    ray: RayOption = None,
    workers: WorkersOption = 2,
    quiet: QuietOption = False,
) -> None:
    """Blur the background of photos and videos, keeping the person sharp."""
    planned = plan_files(images, output, BLUR_NAMING, recursive, fmt, mask, save_mask)
    task = BlurTask.from_options(strength, feather, kernel, refine, save_mask, keep_empty)
    video = VideoOptions(crf=crf, preset=check_preset(preset))
    options = RunOptions(batch_size, jobs, quality, max_pixels, overwrite, video, megabytes(max_memory))
    model = Model(weights, device, subject, ray, workers)
    run_command(planned, task, options, heads, model, "blurring", as_json, quiet)
