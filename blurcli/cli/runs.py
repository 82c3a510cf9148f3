"""A batch run as people see it: stdout checked, a progress bar, errors by name, a summary; exit 1
when a file failed. Shared by blur and predict, here or on Ray."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import typer
from rich.markup import escape
from rich.progress import (
    TextColumn,
)

from blurcli.batch import EXISTS, FileResult, RunOptions, StdIO, run_jobs
from blurcli.cli.output import (
    file_progress,
    load_segmenter,
    print_stdout,
    stderr_console,
    write_stdout,
)
from blurcli.device import check_device
from blurcli.errors import UsageError
from blurcli.files import read_stream
from blurcli.inputs import INSIDE_OUTPUT, UNLISTED
from blurcli.plan import NAMED_LIKE_OUTPUT, STDIN, Job, needs_model
from blurcli.render import Task
from blurcli.second_look import HeadMode, head_options
from blurcli.segment import Segmenter


def stdio() -> StdIO:
    return StdIO(lambda limit: read_stream(getattr(sys.stdin, "buffer", None), STDIN, limit), write_stdout)


def check_stdout(jobs: list[Job], as_json: bool) -> None:
    """Image bytes on stdout only where they go to a file or a pipe, and never mixed with --json."""
    if not any(job.target is None and job.skip is None for job in jobs):
        return
    if as_json:
        raise UsageError("--json writes to stdout, and so would the image; give -o FILE")
    if sys.stdout.isatty():
        raise UsageError("refusing to write an image to the terminal; redirect stdout or give -o FILE")


@dataclass(frozen=True)
class Model:
    """Which model runs a batch and where: --weights, --device, --subject, and --ray's workers."""

    weights: str | None
    device: str
    subject: str | None
    ray: str | None = None
    workers: int = 2


def run_command(
    jobs: list[Job],
    task: Task,
    options: RunOptions,
    heads: HeadMode,
    model: Model,
    verb: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """What blur and predict share once their jobs, task and options are made: stdout checked, the
    model loaded where a job needs it (Ray's workers load their own), the run shown as it goes."""
    check_stdout(jobs, as_json)
    if model.ray is None and needs_model(jobs):
        segmenter = load_segmenter(model.weights, model.device, stderr_console(quiet), model.subject)
    else:
        segmenter, _ = None, check_device(model.device)  # a bad --device is a mistake all the same
    on_ray = ray_runner(model.ray, model.workers, model.weights, model.device, model.subject)
    run_with_progress(jobs, task, segmenter, options, heads, verb, as_json, quiet, on_ray)


def run_with_progress(
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
    console, errors = stderr_console(quiet), stderr_console()
    started = time.perf_counter()
    rate = TextColumn("{task.fields[rate]:.1f} img/s")
    with file_progress(console, rate) as progress:
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
                print_stdout(result.to_json() + "\n")

        run = on_ray or partial(run_jobs, segmenter=segmenter, stdio=stdio())
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


def ray_runner(
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
