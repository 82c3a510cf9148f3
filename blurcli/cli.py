"""The `blurcli` command: parse arguments, call the library, print. Nothing else lives here."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from blurcli import __version__
from blurcli.batch import DEFAULT_JOBS, EXISTS, FileResult, RunOptions, StdIO, needs_model, run_jobs
from blurcli.compose import DEFAULT_FEATHER, DEFAULT_STRENGTH, BlurOptions, Kernel
from blurcli.device import check_device
from blurcli.errors import BlurcliError, UsageError
from blurcli.files import read_stream
from blurcli.inputs import INSIDE_OUTPUT, UNLISTED
from blurcli.limits import DEFAULT_MAX_PIXELS
from blurcli.paths import os_reason
from blurcli.plan import BLUR_NAMING, NAMED_LIKE_OUTPUT, PREDICT_NAMING, STDIN, Job, plan_files
from blurcli.refine import RefineOptions
from blurcli.render import BlurTask, PredictMode, PredictTask, Task
from blurcli.second_look import HeadMode, head_options
from blurcli.segment import Segmenter, new_segmenter
from blurcli.video import VideoOptions, check_preset


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: what is written stays, nothing half-written is left."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


class _Group(typer.core.TyperGroup):
    """Catches errors once for every command and prints each as one line on stderr: BlurcliError
    (a user's mistake or bad input), Click's usage errors (a value an option's type or range
    refuses, an unknown option or command), OSError (a file system refusing), Ctrl-C and SIGTERM.
    Anything else is a bug: one line too, and the traceback with BLURCLI_DEBUG=1."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: typer.Context | None = None, **extra: Any
    ) -> typer.Context:
        try:  # the options before the command, and the command's name
            return super().make_context(info_name, args, parent, **extra)
        except typer.TyperException as error:
            _usage_line(error)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as error:  # the command's own options and arguments
            _usage_line(error)
        except BlurcliError as error:
            _error(str(error))
            ctx.exit(error.exit_code)
        except _Terminated:
            _error("terminated (SIGTERM); finished outputs are kept, nothing half-written is left")
            ctx.exit(143)
        except KeyboardInterrupt:
            _error("interrupted; finished outputs are kept, nothing half-written is left")
            ctx.exit(130)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            _error(f"{where}{error.strerror or error}")
            ctx.exit(1)
        except Exception as error:
            if os.environ.get("BLURCLI_DEBUG") or type(error).__module__.split(".")[0] in ("click", "typer"):
                raise  # Typer's own exits and usage errors, which it prints
            _error(f"internal error: {type(error).__name__}: {error}".splitlines()[0] + _REPORT)
            ctx.exit(1)


_REPORT = " (a bug: please report it, with the traceback BLURCLI_DEBUG=1 prints)"


def _usage_line(error: typer.TyperException) -> NoReturn:
    """Click's error in the one line every other error takes, saying where the help is, instead
    of its box of usage and hint; exits with its code (2). `blurcli` alone still shows the help."""
    if type(error).__name__ == "NoArgsIsHelpError":  # Click prints the help for it
        raise error
    command = getattr(error, "ctx", None)
    where = f" (see {command.command_path} --help)" if command is not None else ""
    _error(" ".join(error.format_message().split()).rstrip(".") + where)
    raise typer.Exit(error.exit_code)


def _error(message: str) -> None:
    _console().print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


app = typer.Typer(
    cls=_Group,
    help="Portrait-mode background blur: a small UNet finds the subject, the rest is blurred.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"blurcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Portrait-mode background blur: a small UNet finds the subject, the rest is blurred."""


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


def _console(quiet: bool = False) -> Console:
    """People read stderr; Rich drops colour when it is not a terminal or NO_COLOR is set."""
    return Console(stderr=True, quiet=quiet)


def _load_segmenter(
    weights: str | None, device: str, console: Console, subject: str | None = None
) -> Segmenter:
    with _progress(console, TextColumn("downloading weights"), BarColumn(), DownloadColumn()) as progress:
        tasks: list[Any] = []  # the bar appears with the first bytes of a download, not before

        def on_progress(done: int, total: int | None) -> None:
            if not tasks:
                tasks.append(progress.add_task("download", total=total))
            progress.update(tasks[0], completed=done, total=total)

        return new_segmenter(weights, device, on_progress, subject)


def _file_progress(console: Console, *extra: Any) -> Progress:
    return _progress(
        console,
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def _progress(console: Console, *columns: Any) -> Progress:
    """A transient progress display, drawn only on a terminal (nothing at all in pipes and logs)."""
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def _write_stdout(data: bytes) -> None:
    """Bytes to stdout, flushed. Where stdout refuses them (a full disk, a closed pipe), it is sent
    to the null device before the error goes on, so Python's own flush at exit does not fail again
    with a second message and another exit code."""
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except OSError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor (a test's capture): nothing to flush later
            pass
        raise


def _print_stdout(text: str) -> None:
    """Text (JSON lines, a table) to stdout; a refusal is one line blaming standard output, not the
    photo just written nor a file of the run."""
    try:
        _write_stdout(text.encode(sys.stdout.encoding or "utf-8", "replace"))
    except OSError as error:
        raise BlurcliError(f"standard output: cannot write ({os_reason(error)})") from None


def _stdio() -> StdIO:
    return StdIO(lambda limit: read_stream(getattr(sys.stdin, "buffer", None), STDIN, limit), _write_stdout)


def _check_stdout(jobs: list[Job], as_json: bool) -> None:
    """Image bytes on stdout only where they go to a file or a pipe, and never mixed with --json."""
    if not any(job.target is None and job.skip is None for job in jobs):
        return
    if as_json:
        raise UsageError("--json writes to stdout, and so would the image; give -o FILE")
    if sys.stdout.isatty():
        raise UsageError("refusing to write an image to the terminal; redirect stdout or give -o FILE")


def _run_jobs(
    jobs: list[Job],
    task: Task,
    segmenter: Segmenter | None,
    options: RunOptions,
    heads: HeadMode,
    verb: str,
    as_json: bool,
    quiet: bool,
    on_ray: Callable[..., list[FileResult]] | None = None,
) -> None:
    """Run with a progress bar (files, images/s, ETA) on stderr, errors by name, a summary; exit 1
    if any file failed. --json adds one line per file on stdout. `on_ray`: run on Ray instead."""
    console, errors = _console(quiet), _console()
    started = time.perf_counter()
    rate = TextColumn("{task.fields[rate]:.1f} img/s")
    with _file_progress(console, rate) as progress:
        bar = progress.add_task(verb, total=len(jobs), rate=0.0)

        def on_result(result: FileResult) -> None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            done = progress.tasks[0].completed + 1
            progress.update(bar, advance=1, rate=done / elapsed)
            if result.status == "failed":
                errors.print(
                    f"[bold red]error:[/] {escape(result.error or '')}", highlight=False, soft_wrap=True
                )
            elif result.reason and result.reason.startswith(NAMED_LIKE_OUTPUT):  # maybe a user's photo
                note = f"skipped {result.input}: {result.reason}"
                console.print(note, highlight=False, soft_wrap=True, markup=False)
            elif result.note:
                console.print(
                    f"note: {result.input}: {result.note}", highlight=False, soft_wrap=True, markup=False
                )
            if as_json:
                _print_stdout(result.to_json() + "\n")

        run = on_ray or partial(run_jobs, segmenter=segmenter, stdio=_stdio())
        results = run(jobs, task, options=options, heads=head_options(heads), on_result=on_result)
    seconds = time.perf_counter() - started
    counts = {status: sum(r.status == status for r in results) for status in ("done", "skipped", "failed")}
    if len(results) > 1 or counts["skipped"]:
        console.print(
            f"{counts['done']} done, {counts['skipped']} skipped{_skip_reasons(results)}, "
            f"{counts['failed']} failed in {seconds:.2f} s "
            f"({counts['done'] / max(seconds, 1e-9):.1f} images/s)",
            highlight=False,
            soft_wrap=True,
        )
    if counts["failed"]:
        raise typer.Exit(1)


def _on_ray(
    address: str | None, workers: int, weights: str | None, device: str, subject: str | None
) -> Callable[..., list[FileResult]] | None:
    """--ray ADDRESS: the jobs go to Ray workers (blurcli.ray_data, the ray extra), one GPU each
    with --device cuda; None without --ray."""
    if address is None:
        return None
    from blurcli.ray_data import RayOptions, run_jobs_on_ray

    gpus = 1.0 if device.startswith("cuda") else 0.0
    cluster = RayOptions(address, workers, gpus=gpus, quiet=True)
    return partial(run_jobs_on_ray, weights=weights, device=device, subject=subject, cluster=cluster)


def _skip_reasons(results: list[FileResult]) -> str:
    """' (3 outputs exist: --overwrite redoes them; 2 are blurcli's outputs; 1 inside the output
    folder; 1 folder not listed: Permission denied)', or '' with no skips."""
    counts = Counter(_skip_kind(r.reason or "") for r in results if r.status == "skipped")
    parts = []
    for kind, count in counts.items():
        if kind == EXISTS:
            parts.append(f"{count} output{'s exist' if count != 1 else ' exists'}: --overwrite redoes them")
        elif kind == INSIDE_OUTPUT:
            parts.append(f"{count} {INSIDE_OUTPUT}")
        elif kind.startswith(UNLISTED):
            why = kind.removeprefix(UNLISTED).strip(" ()")
            parts.append(f"{count} folder{'s' * (count != 1)} not listed: {why}")
        else:
            parts.append(f"{count} {'are' if count != 1 else 'is'} blurcli's output{'s' * (count != 1)}")
    return f" ({'; '.join(parts)})" if parts else ""


def _skip_kind(reason: str) -> str:
    """What the summary counts a skip as: its reason, but every kind of blurcli's own output as one."""
    return reason if reason in (EXISTS, INSIDE_OUTPUT) or reason.startswith(UNLISTED) else "own"


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


@app.command()
def blur(
    images: ImagesArgument,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Output file (one input, an image name) or folder (mirrors input folders; a name "
            "ending in / is always a folder). "
            "Default: <stem>_blurred.<ext> beside each input.",
        ),
    ] = None,
    strength: Annotated[
        float, typer.Option(min=0.0, max=0.2, help="Blur sigma as a fraction of the image diagonal.")
    ] = DEFAULT_STRENGTH,
    feather: Annotated[
        float, typer.Option(min=0.0, max=0.05, help="Mask edge softening, fraction of the diagonal.")
    ] = DEFAULT_FEATHER,
    kernel: Annotated[
        Kernel,
        typer.Option(help="gaussian: soft and even; disc: a lens's bokeh (round, bright highlights)."),
    ] = "gaussian",
    mask: Annotated[
        Path | None,
        typer.Option(
            "--mask",
            help="Use this mask (white = subject; e.g. from `blurcli predict`, edited) instead of the "
            "model. A folder holds one per photo: <stem>_mask.png or <stem>.png, mirroring the inputs.",
        ),
    ] = None,
    save_mask: Annotated[
        bool,
        typer.Option("--save-mask", help="Also write the mask used, <stem>_mask.png beside each output."),
    ] = False,
    heads: HeadsOption = "auto",
    subject: SubjectOption = None,
    keep_empty: Annotated[
        bool,
        typer.Option(
            "--keep-empty",
            help="A photo in which no person is found is copied unchanged (default: it is all "
            "background, so it is blurred all over).",
        ),
    ] = False,
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
    crf: Annotated[
        int, typer.Option(min=0, max=51, help="Videos: x264 quality (lower is better and bigger).")
    ] = VideoOptions.crf,
    preset: Annotated[
        str, typer.Option(help="Videos: x264 speed preset (ultrafast ... veryslow).")
    ] = VideoOptions.preset,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    ray: RayOption = None,
    workers: WorkersOption = 2,
    quiet: QuietOption = False,
) -> None:
    """Blur the background of photos and videos, keeping the person sharp."""
    planned = plan_files(images, output, BLUR_NAMING, recursive, fmt, mask, save_mask)
    _check_stdout(planned, as_json)
    console = _console(quiet)
    if ray is None and needs_model(planned):  # Ray's workers load their own
        segmenter = _load_segmenter(weights, device, console, subject)
    else:
        segmenter, _ = None, check_device(device)  # no model needed, but a bad --device is still a mistake
    task = BlurTask(
        BlurOptions(strength=strength, feather=feather, kernel=kernel),
        RefineOptions() if refine else None,
        save_mask,
        keep_empty,
    )
    video = VideoOptions(crf=crf, preset=check_preset(preset))
    options = RunOptions(batch_size, jobs, quality, max_pixels, overwrite, video, _megabytes(max_memory))
    on_ray = _on_ray(ray, workers, weights, device, subject)
    _run_jobs(planned, task, segmenter, options, heads, "blurring", as_json, quiet, on_ray)


@app.command()
def predict(
    images: ImagesArgument,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Output file (one input) or folder of <stem>.png masks (mirrors input folders). "
            "Default: <stem>_mask.png beside each input.",
        ),
    ] = None,
    classes: Annotated[
        bool, typer.Option("--classes", help="Write class indices 0/1/2 instead of alpha.")
    ] = False,
    show: Annotated[
        bool, typer.Option("--overlay", help="Write a coloured overlay for checking by eye.")
    ] = False,
    recursive: RecursiveOption = False,
    overwrite: OverwriteOption = False,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="Output format (default png; masks want lossless).")
    ] = None,
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
    if classes and show:
        raise UsageError("--classes and --overlay cannot be used together")
    mode: PredictMode = "classes" if classes else "overlay" if show else "alpha"
    planned = plan_files(images, output, PREDICT_NAMING, recursive, fmt)
    _check_stdout(planned, as_json)
    segmenter = None if ray else _load_segmenter(weights, device, _console(quiet), subject)
    task = PredictTask(mode, RefineOptions() if refine else None)
    options = RunOptions(batch_size, jobs, quality, max_pixels, overwrite, memory=_megabytes(max_memory))
    on_ray = _on_ray(ray, workers, weights, device, subject)
    _run_jobs(planned, task, segmenter, options, heads, "segmenting", as_json, quiet, on_ray)


def _megabytes(value: int | None) -> int | None:
    return None if value is None else value << 20


@app.command("eval")
def evaluate_command(
    data: Annotated[
        Path,
        typer.Option("--data", help="LFW Part Labels or Clothing Co-Parsing folder (archives or unpacked)."),
    ],
    split: Annotated[str, typer.Option(help="train, validation or test.")] = "test",
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject",
            help="head on LFW Part Labels, person on Clothing Co-Parsing (the default: the dataset's).",
            show_default=False,
        ),
    ] = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    limit: Annotated[int | None, typer.Option(min=1, help="Score only the first N images.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON on stdout.")] = False,
    refine: RefineFlag = True,
    quiet: QuietOption = False,
) -> None:
    """Score a model on a labelled split: LFW Part Labels (the head's classes, at 250x250) or
    Clothing Co-Parsing (the person, at the photos' size); one pooled confusion matrix.

    Masks follow the photo's edges as in `blur` and `predict`; --no-refine scores the model's
    output resized bilinearly.
    """
    training = _training("eval")
    console = _console(quiet)
    data_split, subject = training.load_labelled(data, split, subject, limit)
    segmenter = _load_segmenter(weights, device, console, subject)
    with _file_progress(console) as progress:
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
        _print_stdout(json.dumps(result) + "\n")
    else:
        screen = Console()
        with screen.capture() as table:
            screen.print(_metrics_table(result))
        _print_stdout(table.get())


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


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="LFW Part Labels folder (archives or unpacked).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the best checkpoint (.pt).")],
    epochs: Annotated[int, typer.Option(min=1)] = 134,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = 2e-3,
    input_size: Annotated[int, typer.Option(help="Model input side in pixels.")] = 192,
    width: Annotated[int, typer.Option(min=1, help="Channels of the first level.")] = 11,
    depth: Annotated[int, typer.Option(min=1, max=6, help="Number of downsampling levels.")] = 4,
    stem_stride: Annotated[int, typer.Option(min=1, max=4, help="Stride of the first convolution.")] = 2,
    seed: int = 0,
    device: DeviceOption = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Data loading processes.")] = 2,
    class_weights: Annotated[
        bool, typer.Option(help="Weight the loss by inverse sqrt class frequency.")
    ] = False,
    augment: Annotated[bool, typer.Option(help="Random geometric and photometric augmentation.")] = True,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N images per split.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from <out>.last.pt.")] = False,
    init: Annotated[
        Path | None,
        typer.Option(help="Start from this checkpoint's weights (fine-tune); architecture flags must match."),
    ] = None,
    teacher: Annotated[
        Path | None,
        typer.Option(help="Distil: also learn this model's probabilities on every training batch."),
    ] = None,
    distill: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Weight of the teacher's term (the labels get the rest).")
    ] = 0.5,
    loss_size: Annotated[
        int,
        typer.Option(
            "--loss-size",
            min=0,
            help="Score the loss on labels of this side, the logits enlarged to it (as eval compares "
            "at the labels' 250 px); 0: the input size.",
        ),
    ] = 256,
    subject_iou: Annotated[
        float,
        typer.Option(
            "--subject-iou",
            min=0.0,
            help="Add this weight times a soft-IoU loss of the subject (skin + hair vs background).",
        ),
    ] = 0.0,
    patience: Annotated[
        int,
        typer.Option(
            min=0, help="Epochs without a lower validation loss before the learning rate is halved."
        ),
    ] = 8,
    snapshots: Annotated[
        bool,
        typer.Option(
            "--snapshots",
            help="Also keep every epoch's weights as <out>.eNNN.pt (ingredients for --soup).",
        ),
    ] = False,
    person_data: Annotated[
        Path | None,
        typer.Option(
            "--person-data",
            help="Clothing Co-Parsing folder (or its archive's folder): also learn a person output "
            "from it, beside LFW's head classes.",
        ),
    ] = None,
    person_weight: Annotated[
        float, typer.Option("--person-weight", min=0.0, help="Weight of the person output's loss.")
    ] = 1.0,
    person_repeat: Annotated[
        int, typer.Option("--person-repeat", min=1, help="Views of each person photo per epoch.")
    ] = 1,
    textured: Annotated[
        float,
        typer.Option(
            "--textured",
            min=0.0,
            max=1.0,
            help="Share of the backdrops people are pasted onto that are busy natural textures "
            "(grass, leaves, soil): hard negatives for the person.",
        ),
    ] = 0.0,
    person_labels: Annotated[
        Path | None,
        typer.Option(
            "--person-labels",
            help="Teacher labels from `blurcli label`: the person where LFW's and CCP's labels say nothing.",
        ),
    ] = None,
    soup: Annotated[
        list[Path] | None,
        typer.Option(
            "--soup",
            help="Instead of training: average these fine-tuned checkpoints (repeat the option), "
            "greedily by a validation figure (--soup-by), into --out.",
        ),
    ] = None,
    soup_by: Annotated[
        str,
        typer.Option(
            "--soup-by",
            help="The validation figure --soup ranks ingredients by and must not lower: "
            "mean_iou, subject_iou, or uniform (every ingredient, unranked).",
        ),
    ] = "mean_iou",
    quiet: QuietOption = False,
) -> None:
    """Train the UNet on LFW Part Labels; keeps the best checkpoint by validation mean IoU.

    The defaults train the shipped model's recipe (weights/README.md gives the whole command).
    """
    training = _training("train")
    training.soup.check_soup_metric(soup_by)  # an invalid value is a mistake with or without --soup
    console = _console(quiet or not training.ranks_from_environment().main)  # torchrun: rank 0 prints
    if soup:
        _soup(data, out, soup, device, limit, console, soup_by)
        return
    config = training.TrainConfig(
        data=data,
        out=out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        input_size=input_size,
        width=width,
        depth=depth,
        stem_stride=stem_stride,
        seed=seed,
        device=device,
        workers=workers,
        class_weights=class_weights,
        augment=augment,
        limit=limit,
        resume=resume,
        init=init,
        teacher=teacher,
        distill=distill,
        loss_size=loss_size or None,
        subject_iou=subject_iou,
        snapshots=snapshots,
        plateau_patience=patience,
        person_data=person_data,
        person_weight=person_weight,
        person_repeat=person_repeat,
        person_labels=person_labels,
        augmentation=training.Augmentation(textured=textured),
    )
    with _progress(
        console,
        TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("train", total=None, epoch=0, epochs=epochs, loss=0.0)

        def on_step(epoch: int, step: int, steps: int, loss: float) -> None:
            progress.update(task, completed=step, total=steps, epoch=epoch + 1, loss=loss)

        def on_epoch(record: dict[str, Any]) -> None:
            mark = " [green]best[/]" if record["best"] else ""
            person = f", person IoU {record['val_person_iou']:.4f}" if "val_person_iou" in record else ""
            progress.console.print(
                f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, "
                f"val loss {record['val_loss']:.4f}, val mIoU {record['val_mean_iou']:.4f}, "
                f"subject IoU {record['val_subject_iou']:.4f}{person}, {record['seconds']:.0f}s{mark}",
                soft_wrap=True,
            )

        result = training.train(config, on_step, on_epoch)
    console.print(
        f"best epoch {result.best_epoch}: val mIoU {result.best_metrics.get('mean_iou', float('nan')):.4f}"
        f" -> {result.paths.best} (log {result.paths.log}, curves {result.paths.plot})",
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def label(
    data: Annotated[Path, typer.Option("--data", help="LFW Part Labels folder (archives or unpacked).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the teacher's labels.")],
    person_data: Annotated[
        Path | None,
        typer.Option("--person-data", help="Clothing Co-Parsing folder: label its bystanders too."),
    ] = None,
    unlabelled: Annotated[
        int | None, typer.Option(min=0, help="How many unlabelled LFW photos to label (default all; 0 none).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N photos of each set.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Write MediaPipe's person labels for training's photos (`train --person-labels`): LFW bodies,
    unlabelled LFW close-ups and CCP bystanders. Needs the teacher extra; training photos only."""
    teacher = _training("label").teacher
    console = _console(quiet)

    def on_folder(key: str, count: int) -> None:
        console.print(f"{key}: {count} photos labelled", highlight=False)

    record = teacher.write_teacher_labels(data, person_data, out, unlabelled, limit, on_folder=on_folder)
    console.print(f"{record['teacher']} -> {out}", highlight=False, soft_wrap=True)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A torch checkpoint (.pt) from `blurcli train`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the ONNX model.")],
    quiet: QuietOption = False,
) -> None:
    """Export a trained checkpoint to ONNX, the model `blur` and `predict` run (ONNX Runtime, no
    torch); its preprocessing goes into the file. Needs the train extra (torch, onnx)."""
    from blurcli.export import export_onnx

    spec = export_onnx(checkpoint, output)
    _console(quiet).print(
        f"{checkpoint} -> {output} (input {spec.input_size} px, subjects {', '.join(spec.subjects)})",
        highlight=False,
        soft_wrap=True,
    )


def _soup(
    data: Path,
    out: Path,
    soup: list[Path],
    device: str,
    limit: int | None,
    console: Console,
    metric: str,
) -> None:
    greedy_soup = _training("train").greedy_soup

    def on_step(step: dict[str, Any]) -> None:
        verdict = {None: "alone", True: "kept", False: "dropped"}[step["kept"]]
        console.print(
            f"{len(step['members'])} model(s), val mIoU {step['val_mean_iou']:.4f}, "
            f"subject IoU {step['val_subject_iou']:.4f} ({verdict}): " + ", ".join(step["members"]),
            highlight=False,
            soft_wrap=True,
        )

    result = greedy_soup(data, out, soup, device, limit, on_step, metric)  # type: ignore[arg-type]
    console.print(
        f"soup of {len(result.chosen)}: val mIoU {result.metrics['mean_iou']:.4f}, "
        f"subject IoU {result.metrics['subject_iou']:.4f} -> {result.out}",
        highlight=False,
        soft_wrap=True,
    )


def _training(command: str) -> ModuleType:
    """blurcli.training (torch and friends), or one line saying how to install it."""
    try:
        import blurcli.training as training
    except ImportError as error:
        missing = error.name or "a training dependency"
        raise BlurcliError(f'blurcli {command} needs {missing}: pip install "blurcli[train]"') from None
    return training


def main() -> None:
    """Console-script entry point; SIGTERM stops a run as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    app()
