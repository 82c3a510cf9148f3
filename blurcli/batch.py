"""The batch engine behind `blur` and `predict`: worker threads read, decode and prepare photos,
model batches run on worker threads too (or, alone, on the calling thread), worker threads
finish, encode and write atomically.
Every job gets one FileResult; one bad file never stops the others."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from blurcli.codec_messages import capturing
from blurcli.decode import decode_photo
from blurcli.encode import encode_photo
from blurcli.errors import BlurcliError
from blurcli.files import read_bytes, write_file
from blurcli.formats import same_format, writable_format
from blurcli.limits import DEFAULT_MAX_PIXELS, input_limit
from blurcli.memory import MemoryBudget, default_memory_budget
from blurcli.metadata import add_output_mark, more_frames
from blurcli.paths import os_reason
from blurcli.pixels import Photo, to_rgb8
from blurcli.plan import STDIN, STDOUT, Job, remove_parts_of
from blurcli.render import Mask, Task, mask_from_photo
from blurcli.second_look import HeadOptions, second_look
from blurcli.segment import Prepared, Segmenter
from blurcli.video import VideoOptions, is_video, process_video

EXISTS = "output exists (--overwrite redoes it)"
# Worker threads when none are asked for (RunOptions and the CLI's --jobs): every core, at most 8.
DEFAULT_JOBS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class FileResult:
    """Outcome for one input: status 'done', 'skipped' (`reason`: the output exists, or the input
    is blurcli's own output) or 'failed' (`error` says why)."""

    input: str
    output: str | None
    status: str
    error: str | None = None
    ms: float = 0.0
    reason: str | None = None
    frames: int | None = None  # videos only
    fps: float | None = None  # videos only
    note: str | None = None  # what the user should know of a done file (an animation's first frame)

    def to_json(self) -> str:
        """One JSON line for scripts: input, output, status, error, ms, reason (and for a video,
        frames and fps; a note where there is one)."""
        line = {**asdict(self), "ms": round(self.ms, 1)}
        optional = ("frames", "fps", "note")
        return json.dumps({k: v for k, v in line.items() if v is not None or k not in optional})


@dataclass(frozen=True)
class RunOptions:
    """How a batch runs: model batch size, worker threads (all cores up to 8 unless given), output
    quality, limits, overwriting, a video's steadying and encoding (`video`), the memory budget."""

    batch_size: int = 8
    jobs: int = DEFAULT_JOBS
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS
    overwrite: bool = False
    video: VideoOptions = field(default_factory=VideoOptions)
    memory: int | None = None  # bytes the photos in flight may take; None: half the memory available


@dataclass
class _Loaded:
    job: Job
    data: bytes  # the file as read: --keep-empty copies it
    photo: Photo
    prepared: Prepared | None  # for the model; None when the job brings its own mask
    started: float
    mask: Mask | None = None  # the job's own mask (a user's), at the photo's full resolution


class Runner:
    """Runs jobs: worker threads read, decode and prepare photos, the calling thread runs the model
    on batches, worker threads finish, encode and write atomically. Every job gets one FileResult.

    Each file fails or succeeds on its own; Ctrl-C cancels what has not started, lets running
    writes finish (they are atomic), and re-raises.
    """

    def __init__(
        self,
        task: Task,
        segmenter: Segmenter | None,
        options: RunOptions = RunOptions(),
        heads: HeadOptions | None = HeadOptions(),
        read_stdin: Callable[[int], bytes] | None = None,
        write_stdout: Callable[[bytes], None] | None = None,
        read_file: Callable[[Path], bytes] | None = None,
        clean_parts: bool = True,
    ) -> None:
        self.task = task
        self.segmenter = segmenter
        self.options = options
        self.heads = heads
        self.read_stdin = read_stdin
        self.write_stdout = write_stdout
        self.limit = input_limit(options.max_pixels)  # the most bytes one input may hold
        # a job's source -> its bytes (Ray's reader may have them already)
        self.read_file = read_file or partial(read_bytes, limit=self.limit)
        self.clean_parts = clean_parts  # off where many runners share outputs (Ray's workers)

    def run(
        self, jobs: Iterable[Job], on_result: Callable[[FileResult], None] | None = None
    ) -> list[FileResult]:
        results: list[FileResult] = []

        def report(result: FileResult) -> None:
            results.append(result)
            if on_result:
                on_result(result)

        todo, videos, existing = [], [], []
        for job in jobs:
            try:
                exists = job.target is not None and job.target.exists()
            except OSError as error:  # e.g. a name too long: this photo fails, the others go on
                reason = os_reason(error, job.target)
                report(
                    failed_result(
                        job, BlurcliError(f"{job.target}: cannot write ({reason})"), time.perf_counter()
                    )
                )
                continue
            if job.skip is not None:
                report(FileResult(job.name, None, "skipped", reason=job.skip))
            elif exists and not self.options.overwrite:
                report(FileResult(job.name, str(job.target), "skipped", reason=EXISTS))
                existing.append(job)  # an --overwrite run killed mid-write may have left its temp file
            else:
                (videos if job.source is not None and is_video(job.source) else todo).append(job)
        if self.clean_parts:
            remove_parts_of(todo + videos + existing)
        pool = ThreadPoolExecutor(max(1, self.options.jobs), thread_name_prefix="blurcli")
        # The workers keep the other cores busy; a multi-threaded forward pass would wait on them
        # at every layer (10x slower on two cores), single-threaded ones on the pool do not.
        pipelined = len(todo) > 1 and self.options.jobs > 1 and self.segmenter is not None
        lanes = min(2, self.options.jobs) if pipelined else 0  # model passes at once on the pool
        try:
            with capturing(), self.segmenter.threads(1) if pipelined else nullcontext():  # type: ignore[union-attr]
                self._run(pool, todo, report, lanes)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for job in videos:
            report(self._video(job))
        return results

    def _video(self, job: Job) -> FileResult:
        """One video, start to end: its frames through the model in batches, steadied, rendered."""
        started = time.perf_counter()
        assert job.source is not None and job.target is not None
        try:
            if job.mask is not None or self.segmenter is None:
                raise BlurcliError(f"{job.name}: videos take the model's masks (no --mask)")
            result = process_video(
                job.source,
                job.target,
                self.segmenter,
                self.task,
                self.options.video,
                self.task.subject_only,
                self.heads,
                self.options.max_pixels,
            )
        except Exception as error:  # a bad video is reported, the batch goes on
            return failed_result(job, error, started)
        ms = (time.perf_counter() - started) * 1000
        return FileResult(job.name, str(job.target), "done", None, ms, frames=result.frames, fps=result.fps)

    def _run(
        self, pool: ThreadPoolExecutor, jobs: list[Job], report: Callable[[FileResult], None], lanes: int
    ) -> None:
        budget = MemoryBudget(self.options.memory or default_memory_budget())

        def reported(result: FileResult) -> None:
            budget.give_back(result.input)
            report(result)

        loading: deque[tuple[Job, float, Future[_Loaded]]] = deque()
        saving: set[Future[FileResult]] = set()
        try:
            self._batches(pool, deque(jobs), loading, saving, budget, reported, lanes)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: saves under way still finish, and each
            for future in list(saving):  # written output gets its record; the others never start
                if not future.cancel():
                    with contextlib.suppress(Exception):
                        report(future.result())
            raise

    def _batches(
        self,
        pool: ThreadPoolExecutor,
        queue: deque[Job],
        loading: deque[tuple[Job, float, Future[_Loaded]]],
        saving: set[Future[FileResult]],
        budget: MemoryBudget,
        report: Callable[[FileResult], None],
        lanes: int = 0,
    ) -> None:
        """Load ahead while the photos in flight fit `budget`, run the model on batches, save on
        the pool; `saving` always holds the saves not reported yet. With `lanes`, model passes run
        on the pool too, that many at once (each single-threaded; the caller asks for at most two,
        measured on 2 cores only), while the calling thread only hands work out; 0: on the
        calling thread."""
        batch_size = max(1, self.options.batch_size)
        window = batch_size + max(1, self.options.jobs)
        forwarding: deque[tuple[list[_Loaded], Future[list[Mask] | Exception]]] = deque()
        while True:
            while queue and len(loading) < window:
                cost = budget.cost_of(queue[0])
                if not budget.fits(cost):
                    break
                job = queue.popleft()
                budget.take(job.name, cost)
                loading.append((job, time.perf_counter(), pool.submit(self._load, job)))
            if loading and len(forwarding) < max(lanes, 1):
                batch = self._next_batch(loading, batch_size, report)
                need = [loaded for loaded in batch if loaded.mask is None]
                if lanes:
                    forwarding.append((batch, pool.submit(self._forward, need)))
                    continue
                self._dispatch(pool, batch, self._forward(need), saving, report)
            elif forwarding:
                batch, future = forwarding.popleft()
                self._dispatch(pool, batch, future.result(), saving, report)
            elif not queue or not saving:
                break
            else:
                done, _ = wait(saving, return_when=FIRST_COMPLETED)  # held back: memory frees as saves end
                for future in done:
                    saving.discard(future)
                    report(future.result())
            while len(saving) > max(1, self.options.jobs):
                done, _ = wait(saving, return_when=FIRST_COMPLETED)
                for future in done:
                    saving.discard(future)
                    report(future.result())
        while saving:
            report(saving.pop().result())

    def _next_batch(
        self,
        loading: deque[tuple[Job, float, Future[_Loaded]]],
        batch_size: int,
        report: Callable[[FileResult], None],
    ) -> list[_Loaded]:
        """Up to `batch_size` loaded photos, in order; the ones that failed to load are reported."""
        batch = []
        while loading and len(batch) < batch_size:
            job, started, future = loading.popleft()
            try:
                batch.append(future.result())
            except Exception as error:  # a bad file is reported, the batch goes on
                report(failed_result(job, error, started))
        return batch

    def _dispatch(
        self,
        pool: ThreadPoolExecutor,
        batch: list[_Loaded],
        lows: list[Mask] | Exception,
        saving: set[Future[FileResult]],
        report: Callable[[FileResult], None],
    ) -> None:
        """Hand a batch's photos, each with its mask, to the pool to be saved; a failed model pass
        fails the photos that needed it (e.g. out of GPU memory), and the batch goes on."""
        masks = iter(lows) if isinstance(lows, list) else None
        for loaded in batch:
            if loaded.mask is None and masks is None:
                report(failed_result(loaded.job, lows, loaded.started))  # type: ignore[arg-type]
                continue
            mask = loaded.mask if loaded.mask is not None else next(masks)  # type: ignore[arg-type]
            saving.add(pool.submit(self._save, loaded, mask))

    def _load(self, job: Job) -> _Loaded:
        started = time.perf_counter()
        if job.source is None:
            if self.read_stdin is None:
                raise BlurcliError(f"{STDIN}: no standard input here")
            data = self.read_stdin(self.limit)
        else:
            data = self.read_file(job.source)
        photo = decode_photo(data, job.name, self.options.max_pixels)
        if job.mask is not None:
            if not job.mask.is_file():
                raise BlurcliError(f"{job.name}: no mask at {job.mask}")
            mask = decode_photo(read_bytes(job.mask), str(job.mask), self.options.max_pixels)
            given = mask_from_photo(mask, photo.pixels.shape[:2], str(job.mask))
            return _Loaded(job, data, photo, None, started, given)
        if self.segmenter is None:
            raise BlurcliError(f"{job.name}: no mask given and no model loaded")
        return _Loaded(job, data, photo, self.segmenter.prepare(to_rgb8(photo.pixels)), started)

    def _forward(self, batch: list[_Loaded]) -> list[Mask] | Exception:
        """The model's outputs for a batch, in order, or the error its pass raised."""
        if not batch:
            return []
        assert self.segmenter is not None
        prepared = [loaded.prepared for loaded in batch if loaded.prepared is not None]
        try:
            lows = self.segmenter.forward(prepared, len(batch), self.task.subject_only)
        except Exception as error:  # e.g. out of GPU memory: these photos fail, the batch goes on
            return error
        return [Mask(low) for low in lows]

    def _second_look(self, loaded: _Loaded, mask: Mask) -> Mask:
        """With `heads`, a closer look at each head of a photo not framed like a portrait. It runs
        on a worker thread, beside the next batch's model pass, since it can cost several passes."""
        if mask.given or self.heads is None or self.segmenter is None:
            return mask
        image = to_rgb8(loaded.photo.pixels)
        return Mask(second_look(self.segmenter, image, mask.values, self.task.subject_only, self.heads))

    def _save(self, loaded: _Loaded, mask: Mask) -> FileResult:
        job = loaded.job
        try:
            rendered = self.task(loaded.photo, self._second_look(loaded, mask))
            fmt = job.format or writable_format(loaded.photo.format or ".png")
            if rendered.unchanged and same_format(fmt, loaded.photo.format):
                data = loaded.data  # the very bytes, not a re-encoding
            else:
                data = encode_photo(rendered.photo, fmt, self.options.quality)
            data = add_output_mark(data, self.task.mark)
            if job.mask_target is not None and rendered.mask is not None:
                mask_data = encode_photo(rendered.mask, ".png", self.options.quality)
                write_file(job.mask_target, add_output_mark(mask_data, "mask"))
            if job.target is None:
                self._write_stdout(data)
            else:
                write_file(job.target, data)
        except Exception as error:  # a bad file is reported, the batch goes on
            return failed_result(job, error, loaded.started)
        output = STDOUT if job.target is None else str(job.target)
        ms = (time.perf_counter() - loaded.started) * 1000
        return FileResult(job.name, output, "done", None, ms, note=more_frames(loaded.data))

    def _write_stdout(self, data: bytes) -> None:
        if self.write_stdout is None:
            raise BlurcliError(f"{STDOUT}: no standard output here")
        try:
            self.write_stdout(data)
        except OSError as error:
            raise BlurcliError(f"{STDOUT}: cannot write ({error.strerror or error})") from None


def failed_result(job: Job, error: Exception, started: float) -> FileResult:
    """A FileResult for a job that failed (`started`: its perf_counter); unexpected errors still
    name the file, in one line."""
    if isinstance(error, BlurcliError):
        named = (job.name, STDOUT, *(str(path) for path in (job.target, job.mask, job.mask_target) if path))
        message = str(error) if str(error).startswith(named) else f"{job.name}: {error}"
    else:
        message = f"{job.name}: {type(error).__name__}: {error}".splitlines()[0]
    return FileResult(job.name, None, "failed", message, (time.perf_counter() - started) * 1000)


@dataclass(frozen=True)
class StdIO:
    """Where '-' reads its photo (at most the bytes it is given) and `-o -` (or stdin without -o)
    writes its output."""

    read: Callable[[int], bytes] | None = None
    write: Callable[[bytes], None] | None = None


def run_jobs(
    jobs: Iterable[Job],
    task: Task,
    segmenter: Segmenter | None = None,
    options: RunOptions = RunOptions(),
    heads: HeadOptions | None = HeadOptions(),
    on_result: Callable[[FileResult], None] | None = None,
    stdio: StdIO = StdIO(),
) -> list[FileResult]:
    """Run planned jobs (`plan.plan_files`) through `task`: the one way a batch is built and run."""
    runner = Runner(task, segmenter, options, heads, stdio.read, stdio.write)
    return runner.run(jobs, on_result)
