"""The options several commands share, declared once (Typer's Annotated style)."""

from __future__ import annotations

from typing import Annotated

import typer

from blurcli.second_look import HeadMode

WeightsOption = Annotated[
    str | None,
    typer.Option(
        "--weights",
        "-w",
        help="A shipped model's name (person, lfw), a model file (.onnx, or a torch .pt, exported "
        "once and cached) or an https:// URL (URL#sha256=HEX). Default: the subject's shipped model.",
    ),
]


DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]


QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]


SubjectOption = Annotated[
    str | None,
    typer.Option(
        "--subject",
        help="What stays sharp: person (the whole person) or head (LFW's skin and hair). "
        "Default: person when the model has it, else head.",
        show_default=False,
    ),
]


ImagesArgument = Annotated[
    list[str],
    typer.Argument(
        help="Photos, folders or glob patterns; '-' reads one image from stdin.", show_default=False
    ),
]


RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Look into sub-folders too.")]


OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace existing outputs (default: skip them, so reruns resume).")
]


FormatOption = Annotated[
    str | None,
    typer.Option("--format", "-f", help="Output format: jpg, png, webp, bmp or tif. Default: the input's."),
]


QualityOption = Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality.")]


JobsOption = Annotated[
    int, typer.Option("--jobs", "-j", min=1, help="Threads decoding and encoding beside the model.")
]


BatchOption = Annotated[int, typer.Option("--batch-size", min=1, help="Photos per model pass.")]


JsonOption = Annotated[
    bool, typer.Option("--json", help="One JSON line per file on stdout (input, output, status, error, ms).")
]


MaxPixelsOption = Annotated[
    int, typer.Option("--max-pixels", min=1, help="Refuse larger images (decompression bombs).")
]


MaxMemoryOption = Annotated[
    int | None,
    typer.Option(
        "--max-memory",
        min=1,
        help="MB the photos in flight may take (read ahead, blurred, being written); default: half the "
        "memory available. A photo larger than that runs alone.",
    ),
]


HeadsOption = Annotated[
    HeadMode,
    typer.Option(
        "--heads",
        help="auto: a portrait takes one pass; otherwise every person found gets a close-up "
        "(group, half- and full-body photos). single: one pass over the whole photo.",
    ),
]


RefineFlag = Annotated[
    bool, typer.Option("--refine/--no-refine", help="Snap the mask to the photo's edges (guided filter).")
]


RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help='Run on Ray (pip install "blurcli\\[ray]"): local (a cluster on this machine), auto (the '
        "one running here) or a cluster's address. Every worker must reach the inputs and -o.",
        show_default=False,
    ),
]


WorkersOption = Annotated[
    int,
    typer.Option("--workers", min=1, help="With --ray: model copies (Ray workers), each with -j threads."),
]
