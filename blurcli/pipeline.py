"""What `blur` and `predict` do to many photos: find the inputs, plan the outputs, run the model in
batches while worker threads decode, finish and encode, report every file, never lose data."""

from __future__ import annotations

import glob
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from blurcli.compose import BlurOptions, composite
from blurcli.errors import BlurcliError, UsageError
from blurcli.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    Photo,
    decode_photo,
    encode_photo,
    normalize_extension,
    read_bytes,
    to_8bit,
    to_rgb8,
    write_file,
)
from blurcli.refine import RefineOptions, enlarge_classes, enlarge_mask, grey_guide
from blurcli.segment import Prepared, Segmenter

PredictMode = Literal["alpha", "classes", "overlay"]
# A finishing step: the photo and its low-resolution model output -> the photo to write.
Finish = Callable[[Photo, np.ndarray], Photo]
STDIN = "<stdin>"
STDOUT = "<stdout>"
# Overlay colours per class (RGB): background untouched, skin green, hair red, as in the LFW masks.
_OVERLAY = np.array([[0, 0, 0], [0, 220, 0], [230, 0, 0]], np.float32)
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Job:
    """One photo to process: `source` None reads stdin, `target` None writes stdout.

    `format` is the output extension; None keeps the input's format (stdout only).
    """

    source: Path | None
    target: Path | None
    format: str | None = None

    @property
    def name(self) -> str:
        return STDIN if self.source is None else str(self.source)


@dataclass(frozen=True)
class FileResult:
    """Outcome for one input: status 'done', 'skipped' (output exists) or 'failed' (`error` says why)."""

    input: str
    output: str | None
    status: str
    error: str | None = None
    ms: float = 0.0

    def to_json(self) -> str:
        """One JSON line for scripts: input, output, status, error, ms."""
        return json.dumps({**asdict(self), "ms": round(self.ms, 1)})


@dataclass(frozen=True)
class RunOptions:
    """How a batch runs: model batch size, worker threads, output quality, limits, overwriting."""

    batch_size: int = 8
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS
    overwrite: bool = False


# ---------------------------------------------------------------------------------------------
# What happens to one photo


def blur_photo(
    photo: Photo,
    low: np.ndarray,
    options: BlurOptions = BlurOptions(),
    refine: RefineOptions | None = RefineOptions(),
) -> Photo:
    """Blur a photo's background given its (h, w) low-resolution subject probability.

    Grey stays grey, 16-bit stays 16-bit, alpha is kept untouched; the mask follows the photo's edges.
    """
    alpha = enlarge_mask(low, grey_guide(to_8bit(photo.colour)), refine)
    return photo.with_colour(composite(photo.colour, alpha, options))


def mask_photo(
    photo: Photo,
    low: np.ndarray,
    mode: PredictMode = "alpha",
    refine: RefineOptions | None = RefineOptions(),
) -> Photo:
    """The photo's mask at full resolution: alpha (subject probability x 255), class indices
    0/1/2, or a coloured overlay. `low` is (h, w) subject probability for alpha, else (h, w, C)."""
    guide = grey_guide(to_8bit(photo.colour))
    if mode == "alpha":
        alpha = enlarge_mask(low, guide, refine)
        return Photo(np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8))
    classes = enlarge_classes(low, guide, refine)
    if mode == "classes":
        return Photo(classes)
    return Photo(overlay(to_rgb8(photo.pixels), classes))


def overlay(image: np.ndarray, classes: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """Tint skin green and hair red over the photo, for checking a mask by eye."""
    tint = _OVERLAY[classes]
    weight = np.where(classes[..., None] > 0, opacity, 0.0).astype(np.float32)
    blended = image.astype(np.float32) * (1 - weight) + tint * weight
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def blur_image(segmenter: Segmenter, image: np.ndarray, options: BlurOptions = BlurOptions()) -> np.ndarray:
    """(H, W, 3) uint8 RGB photo -> the same photo with its background blurred."""
    low = segmenter.probabilities([image], subject_only=True)[0]
    return blur_photo(Photo(image), low, options).pixels


def predict_image(segmenter: Segmenter, image: np.ndarray, mode: PredictMode = "alpha") -> np.ndarray:
    """(H, W, 3) uint8 RGB -> alpha (H, W) uint8 0-255, class map (H, W) uint8 0/1/2, or overlay RGB."""
    low = segmenter.probabilities([image], subject_only=mode == "alpha")[0]
    return mask_photo(Photo(image), low, mode).pixels


# ---------------------------------------------------------------------------------------------
# Which files


def find_inputs(
    items: Sequence[str], recursive: bool = False, skip_suffix: str = "", skip_under: Path | None = None
) -> list[tuple[Path, Path]]:
    """Expand files, folders and glob patterns into (file, root) pairs, in a stable order.

    A folder yields its images (all levels with `recursive`); `root` is the folder, so outputs can
    mirror the tree under it; a file's root is its own folder. Hidden files, files whose stem ends
    with `skip_suffix` (earlier outputs) and anything under `skip_under` (the output folder) are
    left out of folders. A path that does not exist is kept, to be reported as a failed file.
    """
    found: dict[Path, tuple[Path, Path]] = {}
    skip = skip_under.resolve() if skip_under is not None else None
    for item in items:
        path = Path(item)
        if not path.exists() and _GLOB_CHARS & set(item):
            matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
            pairs = [(m, m.parent) for m in matches if m.is_file()]
            for folder in (m for m in matches if m.is_dir()):
                pairs.extend(_folder_images(folder, recursive, skip_suffix, skip))
            if not matches:
                pairs = [(path, path.parent)]
        elif path.is_dir():
            pairs = list(_folder_images(path, recursive, skip_suffix, skip))
        else:
            pairs = [(path, path.parent)]
        for file, root in pairs:
            found.setdefault(file.resolve(), (file, root))
    return list(found.values())


def _folder_images(
    folder: Path, recursive: bool, skip_suffix: str, skip: Path | None
) -> Iterator[tuple[Path, Path]]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(candidates):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        if skip_suffix and path.stem.endswith(skip_suffix):
            continue
        if skip is not None and skip in path.resolve().parents:
            continue
        yield path, folder


def plan_jobs(
    inputs: Sequence[tuple[Path, Path]],
    output: Path | None,
    suffix: str,
    fmt: str | None = None,
    folder_suffix: str | None = None,
    default_format: str | None = None,
) -> list[Job]:
    """Output path per input: `<stem><suffix><ext>` beside it by default, else under `output`.

    `output` is a file when there is one input file and it has an extension (which then sets the
    format); otherwise a folder, in which folder inputs keep their tree and names get
    `folder_suffix` (default: `suffix`). The extension is `fmt`, else `default_format`, else the
    input's. Writing over an input, or two inputs sharing one output, is a usage error.
    """
    ext = normalize_extension(fmt) if fmt else None
    default = normalize_extension(default_format) if default_format else None
    names_file = output is not None and output.suffix.lower() in IMAGE_EXTENSIONS and not output.is_dir()
    if names_file and len(inputs) > 1:
        raise UsageError(f"-o {output} names one file, but there are {len(inputs)} inputs; give a folder")
    single_file = output is not None and len(inputs) == 1 and output.suffix != "" and not output.is_dir()
    in_folder = suffix if folder_suffix is None else folder_suffix
    jobs = []
    for path, root in inputs:
        name_ext = ext or default or path.suffix
        if output is None:
            target = path.with_name(f"{path.stem}{suffix}{name_ext}")
        elif single_file:
            target = output
        else:
            relative = path.relative_to(root).parent if _is_under(path, root) else Path()
            target = output / relative / f"{path.stem}{in_folder}{name_ext}"
        jobs.append(Job(path, target, ext or normalize_extension(target.suffix or ".png")))
    _check_targets(inputs, jobs)
    return jobs


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _check_targets(inputs: Sequence[tuple[Path, Path]], jobs: Sequence[Job]) -> None:
    sources = {path.resolve() for path, _ in inputs}
    seen: dict[Path, Path] = {}
    for job in jobs:
        assert job.target is not None and job.source is not None
        key = job.target.resolve()
        if key in sources:
            raise UsageError(f"{job.target}: refusing to overwrite an input file")
        if key in seen:
            raise UsageError(f"{job.source} and {seen[key]} would both be written to {job.target}")
        seen[key] = job.source


# ---------------------------------------------------------------------------------------------
# Running a batch


@dataclass
class _Loaded:
    job: Job
    photo: Photo
    prepared: Prepared
    started: float


class Runner:
    """Runs jobs: worker threads read, decode and prepare photos, the calling thread runs the model
    on batches, worker threads finish, encode and write atomically. Every job gets one FileResult.

    Each file fails or succeeds on its own; Ctrl-C cancels what has not started, lets running
    writes finish (they are atomic), and re-raises.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        finish: Finish,
        subject_only: bool,
        options: RunOptions = RunOptions(),
        read_stdin: Callable[[], bytes] | None = None,
        write_stdout: Callable[[bytes], None] | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.finish = finish
        self.subject_only = subject_only
        self.options = options
        self.read_stdin = read_stdin
        self.write_stdout = write_stdout

    def run(
        self, jobs: Iterable[Job], on_result: Callable[[FileResult], None] | None = None
    ) -> list[FileResult]:
        results: list[FileResult] = []

        def report(result: FileResult) -> None:
            results.append(result)
            if on_result:
                on_result(result)

        todo = []
        for job in jobs:
            if job.target is not None and job.target.exists() and not self.options.overwrite:
                report(FileResult(job.name, str(job.target), "skipped"))
            else:
                todo.append(job)
        pool = ThreadPoolExecutor(max(1, self.options.jobs), thread_name_prefix="blurcli")
        threads = torch.get_num_threads()
        if len(todo) > 1 and self.options.jobs > 1:
            # The workers keep the other cores busy; a multi-threaded forward pass would wait on
            # them at every layer (10x slower on two cores), a single-threaded one does not.
            torch.set_num_threads(1)
        try:
            self._run(pool, todo, report)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(threads)
        return results

    def _run(self, pool: ThreadPoolExecutor, jobs: list[Job], report: Callable[[FileResult], None]) -> None:
        batch_size = max(1, self.options.batch_size)
        window = batch_size + max(1, self.options.jobs)
        pending = iter(jobs)
        loading: deque[tuple[Job, float, Future[_Loaded]]] = deque()
        saving: set[Future[FileResult]] = set()
        while True:
            for job in pending:
                loading.append((job, time.perf_counter(), pool.submit(self._load, job)))
                if len(loading) >= window:
                    break
            if not loading:
                break
            batch = []
            while loading and len(batch) < batch_size:
                job, started, future = loading.popleft()
                try:
                    batch.append(future.result())
                except Exception as error:  # a bad file is reported, the batch goes on
                    report(_failure(job, error, started))
            lows = self._forward(batch, report)
            for loaded, low in zip(batch, lows, strict=True):
                if low is not None:
                    saving.add(pool.submit(self._save, loaded, low))
            while len(saving) > max(1, self.options.jobs):
                done, saving = wait(saving, return_when=FIRST_COMPLETED)
                for future in done:
                    report(future.result())
        for future in saving:
            report(future.result())

    def _load(self, job: Job) -> _Loaded:
        started = time.perf_counter()
        if job.source is None:
            if self.read_stdin is None:
                raise BlurcliError(f"{STDIN}: no standard input here")
            data = self.read_stdin()
        else:
            data = read_bytes(job.source)
        photo = decode_photo(data, job.name, self.options.max_pixels)
        return _Loaded(job, photo, self.segmenter.prepare(to_rgb8(photo.pixels)), started)

    def _forward(self, batch: list[_Loaded], report: Callable[[FileResult], None]) -> list[np.ndarray | None]:
        if not batch:
            return []
        prepared = [loaded.prepared for loaded in batch]
        try:
            return list(self.segmenter.forward(prepared, len(batch), self.subject_only))
        except Exception as error:  # e.g. out of GPU memory: fail these, go on
            for loaded in batch:
                report(_failure(loaded.job, error, loaded.started))
            return [None] * len(batch)

    def _save(self, loaded: _Loaded, low: np.ndarray) -> FileResult:
        job = loaded.job
        try:
            photo = self.finish(loaded.photo, low)
            data = encode_photo(photo, job.format or loaded.photo.format or ".png", self.options.quality)
            if job.target is None:
                if self.write_stdout is None:
                    raise BlurcliError(f"{STDOUT}: no standard output here")
                self.write_stdout(data)
            else:
                write_file(job.target, data)
        except Exception as error:  # a bad file is reported, the batch goes on
            return _failure(job, error, loaded.started)
        output = STDOUT if job.target is None else str(job.target)
        return FileResult(job.name, output, "done", None, (time.perf_counter() - loaded.started) * 1000)


def _failure(job: Job, error: Exception, started: float) -> FileResult:
    """A FileResult for a file that failed; unexpected errors still name the file, in one line."""
    if isinstance(error, BlurcliError):
        message = str(error)
    else:
        message = f"{job.name}: {type(error).__name__}: {error}".splitlines()[0]
    return FileResult(job.name, None, "failed", message, (time.perf_counter() - started) * 1000)


def stdio_job(output: Path | None, fmt: str | None) -> Job:
    """The job for '-': stdin to stdout, or to `output`; format from `fmt`, the output's or the input's."""
    if fmt:
        return Job(None, output, normalize_extension(fmt))
    return Job(None, output, normalize_extension(output.suffix) if output and output.suffix else None)
