"""Batch blurring on Ray Data: the CLI's batch engine on many workers, each loading the model once.

`ProcessPhotos` is the callable class for `Dataset.map_batches`: rows with a `path` (and the
file's `bytes`, as `ray.data.read_binary_files(..., include_paths=True)` gives them, from a folder
or an object store) in, one record per photo out, the fields of `batch.FileResult`. Each worker
plans its rows with `plan.py` and runs them through `batch.Runner`, so names, formats, the mark and
the error records are the CLI's. `process_with_ray` is `blurcli blur --ray`: it plans on the
driver as the CLI does and hands the planned jobs to the workers, which read and write a shared
filesystem. Ray is the optional `ray` extra, imported only here, only when called.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

from blurcli.batch import FileResult, Runner, RunOptions, failed_result
from blurcli.device import check_device
from blurcli.errors import BlurcliError, UsageError
from blurcli.files import read_bytes
from blurcli.formats import INPUT_EXTENSIONS
from blurcli.plan import BLUR_NAMING, PREDICT_NAMING, Job, Naming, plan_inputs, remove_parts_of
from blurcli.process import plan_task, saves_masks
from blurcli.render import BlurTask, PredictTask, Task
from blurcli.second_look import HeadOptions
from blurcli.segment import model_bytes, new_segmenter
from blurcli.weights import resolve_weights

# For `read_binary_files(..., file_extensions=PHOTO_EXTENSIONS)`: the photos a folder input takes.
PHOTO_EXTENSIONS = [ext[1:] for ext in INPUT_EXTENSIONS]
# A planned job's columns (`process_with_ray`'s rows, beside `path`) and the Job fields they hold.
_JOB_COLUMNS = {
    "output": "target",
    "format": "format",
    "mask": "mask",
    "mask_target": "mask_target",
    "skip": "skip",
}


def import_ray() -> ModuleType:
    """The `ray` module with Ray Data, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # ray without the data extra has no ray.data
    except ImportError as error:
        raise BlurcliError(f'Ray needs {error.name or "ray[data]"}: pip install "blurcli[ray]"') from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where a Ray run goes and how wide: `address` ('local' starts a cluster on this machine,
    'auto' joins the one running here, else a cluster's address; None: Ray's default), `workers`
    model copies, each reserving `cpus` (its model's threads) and `gpus`, handed up to `rows`
    photos at a time."""

    address: str | None = None
    workers: int = 2
    cpus: float = 1.0
    gpus: float = 0.0
    rows: int = 16
    quiet: bool = False  # Ray's own logs and progress bars off (the CLI reports on its own)


class ProcessPhotos:
    """The callable class for `map_batches`: the model loaded once per worker, then batches of
    rows -> records (the columns of `FileResult`), one per row; a bad photo is a failed record.

    Rows need `path`; `bytes` (the file, as Ray's readers give it) spares the worker reading it.
    Rows planned by `process_with_ray` carry their output; others are planned here as the CLI
    plans them: under `output` (a folder; None: beside each input), mirroring the tree below
    `root` (None: flat), in `fmt` (None: the input's). `weights`: a shipped name, path or URL
    (resolved on each worker), or an ONNX model's bytes (what `process_with_ray` sends).
    """

    def __init__(
        self,
        task: Task = BlurTask(),
        weights: str | bytes | None = None,
        device: str | None = None,
        subject: str | None = None,
        *,
        output: str | Path | None = None,
        root: str | Path | None = None,
        fmt: str | None = None,
        options: RunOptions = RunOptions(jobs=1),
        heads: HeadOptions | None = HeadOptions(),
        threads: int | None = 1,
    ) -> None:
        self.segmenter = new_segmenter(weights, device, subject=subject)
        self.task = task
        self.output = None if output is None else f"{str(output).rstrip('/')}/"  # always a folder
        self.root = None if root is None else Path(str(root).split("://", 1)[-1])  # as Ray's paths read
        self.fmt = fmt
        self.options = options
        self.heads = heads
        self.threads = threads  # the model's threads: a worker shares its machine with others

    def __call__(self, batch: Mapping[str, Any]) -> Any:
        """A batch of rows (numpy or pandas) -> a pyarrow table of records, one per row."""
        columns = {str(name): list(batch[name]) for name in batch}
        paths = [Path(str(path)) for path in columns["path"]]
        data = dict(zip(paths, columns["bytes"], strict=True)) if "bytes" in columns else {}
        jobs: list[Job] = []
        results: list[FileResult] = []
        for index, path in enumerate(paths):
            try:
                jobs += [_job(columns, index, path)] if "output" in columns else self._plan(path, data)
            except Exception as error:  # e.g. an output that would overwrite an input: its record
                results.append(failed_result(Job(path, None), error, time.perf_counter()))
        read = data.__getitem__ if data else read_bytes
        # Each batch listing the output folders for stale temp files would cost O(files) a batch.
        runner = Runner(
            self.task, self.segmenter, self.options, self.heads, read_file=read, clean_parts=False
        )
        with self.segmenter.threads(self.threads):
            results += runner.run(jobs)
        return records(results)

    def _plan(self, path: Path, data: Mapping[Path, bytes]) -> list[Job]:
        """One row's job, as `plan.plan_files` plans a file found in a folder."""
        root = self.root if self.root is not None else path.parent
        naming = naming_for(self.task)
        return plan_inputs([(path, root)], self.output, naming, self.fmt, None, saves_masks(self.task), data)


def naming_for(task: Task) -> Naming:
    """How a task's outputs are named: `predict`'s masks, or `blur`'s photos."""
    return PREDICT_NAMING if isinstance(task, PredictTask) else BLUR_NAMING


def records(results: Sequence[FileResult]) -> Any:
    """FileResults -> a pyarrow table with FileResult's fields as typed columns (None: null), so
    every batch's records share one schema."""
    import pyarrow as pa  # Ray Data's block format; installed with it

    types = {"str": pa.string(), "float": pa.float64(), "int": pa.int64()}
    schema = pa.schema([(f.name, types[str(f.type).split(" ")[0]]) for f in fields(FileResult)])
    columns = {f.name: [getattr(result, f.name) for result in results] for f in fields(FileResult)}
    return pa.table(columns, schema=schema)


def _row(job: Job) -> dict[str, str]:
    """A planned job as a dataset row: `path` and the job's other fields as text ('' for None)."""
    fields_ = {column: getattr(job, name) for column, name in _JOB_COLUMNS.items()}
    return {"path": str(job.source), **{k: "" if v is None else str(v) for k, v in fields_.items()}}


def _job(columns: Mapping[str, list[Any]], index: int, path: Path) -> Job:
    """Row `index` of a batch of `_row`s -> its Job."""
    text = {name: str(columns[column][index]) for column, name in _JOB_COLUMNS.items()}  # '' for None
    target, mask, mask_target = (
        Path(text[k]) if text[k] else None for k in ("target", "mask", "mask_target")
    )
    return Job(path, target, text["format"] or None, mask, mask_target, text["skip"] or None)


def run_jobs_on_ray(
    jobs: Sequence[Job],
    task: Task,
    options: RunOptions = RunOptions(jobs=1),
    heads: HeadOptions | None = HeadOptions(),
    on_result: Callable[[FileResult], None] | None = None,
    *,
    weights: str | None = None,
    device: str | None = None,
    subject: str | None = None,
    cluster: RayOptions = RayOptions(),
) -> list[FileResult]:
    """Planned jobs (`plan.plan_files`) run on Ray workers, as `batch.run_jobs` runs them here:
    one FileResult each, in the order they finish. The model is resolved and checked here and sent
    to the workers as ONNX bytes; sources and targets must be paths every worker can reach."""
    if any(job.source is None or (job.target is None and job.skip is None) for job in jobs):
        raise UsageError("--ray reads and writes files: no stdin or stdout ('-')")
    check_device(device)
    import_ray()  # before the model: a missing extra is the first thing to say
    model, source = model_bytes(resolve_weights(weights, None, subject))
    new_segmenter(model, "cpu", subject=subject, source=source)  # a bad model or subject fails once, here
    if not jobs:
        return []
    remove_parts_of(jobs)  # once, here, before any worker writes
    module, started = _connect(cluster)
    try:
        dataset = module.data.from_items([_row(job) for job in jobs])
        settings = {"task": task, "weights": model, "device": device, "subject": subject}
        settings |= {"options": options, "heads": heads, "threads": max(1, int(cluster.cpus))}
        done = dataset.map_batches(
            ProcessPhotos,
            fn_constructor_kwargs=settings,
            batch_size=max(1, min(cluster.rows, -(-len(jobs) // cluster.workers))),  # every worker busy
            compute=module.data.ActorPoolStrategy(size=cluster.workers),
            num_cpus=cluster.cpus,
            num_gpus=cluster.gpus,
        )
        results = []
        for row in done.iter_rows():
            results.append(FileResult(**row))
            if on_result:
                on_result(results[-1])
    except module.exceptions.RayError as error:  # a worker could not start (e.g. no CUDA there)
        raise BlurcliError(f"Ray: {_last_line(error)}") from None
    finally:
        if started:
            module.shutdown()
    return results


def _last_line(error: Exception) -> str:
    """A Ray error in one line: the worker's own exception (the last line of the traceback Ray
    passes on), without blurcli's module path."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__).removeprefix("blurcli.errors.")


def _connect(cluster: RayOptions) -> tuple[ModuleType, bool]:
    """The ray module, connected to `cluster.address` unless this process already is; and whether
    it connected here (and so disconnects when done)."""
    ray = import_ray()
    level = logging.ERROR if cluster.quiet else logging.INFO
    if cluster.quiet:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(level)
        ray.data.DataContext.get_current().enable_progress_bars = False
    if ray.is_initialized():
        return ray, False
    check_reachable(cluster.address)
    ray.init(address=cluster.address, logging_level=level, log_to_driver=not cluster.quiet)
    return ray, True


CONNECT_TIMEOUT = 10.0  # seconds a cluster's address has to answer; Ray itself retries for minutes


def check_reachable(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """A cluster's address (host:port, or ray://host:port) must answer a TCP connection within
    `timeout`, else one line naming it; 'local', 'auto' and None are Ray's to resolve."""
    if address is None or address in ("local", "auto"):
        return
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise UsageError(f"--ray {address}: give host:port, ray://host:port, auto or local")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or f"no answer in {timeout:g} s"
        raise BlurcliError(f"--ray {address}: no Ray cluster answers there ({reason})") from None


def process_with_ray(
    inputs: Sequence[str | Path],
    output: str | Path | None = None,
    *,
    task: Task = BlurTask(),
    recursive: bool = False,
    fmt: str | None = None,
    mask: str | Path | None = None,
    options: RunOptions = RunOptions(jobs=1),
    heads: HeadOptions | None = HeadOptions(),
    on_result: Callable[[FileResult], None] | None = None,
    **model: Any,
) -> list[FileResult]:
    """`blurcli blur --ray` (or `predict`, with a PredictTask) from Python: files, folders or globs
    planned as the CLI plans them, run on Ray; `model` as for `run_jobs_on_ray` (weights, device,
    subject, cluster)."""
    jobs = plan_task(inputs, task, output, naming_for(task), recursive, fmt, mask)
    return run_jobs_on_ray(jobs, task, options, heads, on_result, **model)
