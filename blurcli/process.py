"""Batches from Python: `blur_files` and `predict_files` do what `blurcli blur` and `blurcli predict`
do to files, folders and globs (through `process_files`: plan, load the model if a photo needs it,
run the batch engine); `process_bytes` does to one photo's bytes what `blurcli blur -` does to
stdin (the server's path)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from blurcli.batch import FileResult, RunOptions, StdIO, run_jobs
from blurcli.files import read_stream
from blurcli.plan import BLUR_NAMING, PREDICT_NAMING, STDIN, Job, Naming, needs_model, plan_files
from blurcli.render import BlurTask, PredictTask, Task
from blurcli.second_look import HeadOptions
from blurcli.segment import Segmenter, new_segmenter


def plan_task(
    inputs: Sequence[str | Path],
    task: Task,
    output: str | Path | None = None,
    naming: Naming = BLUR_NAMING,
    recursive: bool = False,
    fmt: str | None = None,
    mask: str | Path | None = None,
) -> list[Job]:
    """`plan.plan_files` for a task from Python: its masks saved where a BlurTask asks for them."""
    target, given = (None if value is None else Path(value) for value in (output, mask))
    return plan_files(
        [str(item) for item in inputs], target, naming, recursive, fmt, given, saves_masks(task)
    )


def saves_masks(task: Task) -> bool:
    """Whether a task writes the mask it used beside each output (`blur --save-mask`)."""
    return isinstance(task, BlurTask) and task.save_mask


def process_files(
    inputs: Sequence[str | Path],
    task: Task,
    output: str | Path | None = None,
    naming: Naming = BLUR_NAMING,
    segmenter: Segmenter | None = None,
    recursive: bool = False,
    fmt: str | None = None,
    mask: str | Path | None = None,
    heads: HeadOptions | None = HeadOptions(),
    options: RunOptions = RunOptions(),
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Files, folders or glob patterns -> one FileResult each, outputs named by `naming`; the
    shipped model is loaded when a photo needs one and no `segmenter` is given."""
    jobs = plan_task(inputs, task, output, naming, recursive, fmt, mask)
    if segmenter is None and needs_model(jobs):
        segmenter = new_segmenter()
    return run_jobs(jobs, task, segmenter, options, heads, on_result)


def blur_files(
    inputs: Sequence[str | Path],
    output: str | Path | None = None,
    *,
    task: BlurTask = BlurTask(),
    segmenter: Segmenter | None = None,
    recursive: bool = False,
    fmt: str | None = None,
    mask: str | Path | None = None,
    heads: HeadOptions | None = HeadOptions(),
    options: RunOptions = RunOptions(),
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """`blurcli blur` from Python: `<stem>_blurred.<ext>` beside each input, or under `output`.

    `inputs`: files, folders or glob patterns (`recursive`: folders' sub-folders too); `output`: a
    file (one input) or a folder; `segmenter`: the model (the shipped one is loaded when a photo
    needs it and none is given); `fmt`: the output format ('png'), else each input's; `mask`: a
    mask file, or a folder of masks as `predict_files` writes them, used instead of the model's;
    `heads`: the second look at heads (None: off); `options`: batch size, threads, quality,
    limits; `on_result`: called with each FileResult as it comes. Returns one FileResult per input.
    """
    settings = (segmenter, recursive, fmt, mask, heads, options, on_result)
    return process_files(inputs, task, output, BLUR_NAMING, *settings)


def predict_files(
    inputs: Sequence[str | Path],
    output: str | Path | None = None,
    *,
    task: PredictTask = PredictTask(),
    segmenter: Segmenter | None = None,
    recursive: bool = False,
    fmt: str | None = None,
    mask: str | Path | None = None,
    heads: HeadOptions | None = HeadOptions(),
    options: RunOptions = RunOptions(),
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """`blurcli predict` from Python: `<stem>_mask.png` beside each input, or `<stem>.png` under
    `output`; the other parameters as for `blur_files`."""
    settings = (segmenter, recursive, fmt, mask, heads, options, on_result)
    return process_files(inputs, task, output, PREDICT_NAMING, *settings)


def process_bytes(
    data: bytes,
    task: Task,
    segmenter: Segmenter,
    naming: Naming = BLUR_NAMING,
    fmt: str | None = None,
    heads: HeadOptions | None = HeadOptions(),
    options: RunOptions = RunOptions(),
    name: str = STDIN,
) -> tuple[FileResult, bytes]:
    """One photo's bytes -> (its FileResult, the output's bytes: empty unless done), through the
    very path of `blurcli blur - > out` (or predict's): the stdin job planned as the CLI plans it
    (`fmt`, else `naming`'s format, else the input's) and run by the batch engine, so the bytes are
    the ones the CLI writes for the same photo and options. `name` stands for stdin in errors."""
    written: list[bytes] = []
    stdio = StdIO(lambda limit: read_stream(io.BytesIO(data), STDIN, limit), written.append)
    [result] = run_jobs(
        plan_files(["-"], None, naming, fmt=fmt), task, segmenter, options, heads, stdio=stdio
    )
    if result.error is not None and result.error.startswith(STDIN) and name != STDIN:
        result = replace(result, input=name, error=name + result.error.removeprefix(STDIN))
    return result, b"".join(written)
