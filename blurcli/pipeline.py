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

import cv2
import numpy as np
import torch

from blurcli.compose import BlurOptions, composite, hidden_factor
from blurcli.errors import BlurcliError, UsageError
from blurcli.heads import HeadOptions, second_look
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
from blurcli.refine import (
    RefineOptions,
    enlarge_classes,
    enlarge_mask,
    grey_guide,
)
from blurcli.resample import shrink, upsample
from blurcli.segment import Prepared, Segmenter

PredictMode = Literal["alpha", "classes", "overlay"]
# Stems of what `blur` and `predict` write; folders are searched without them, so reruns and
# `blur --mask` on predict's output folder never take an output for a photo.
OUTPUT_SUFFIXES = ("_blurred", "_mask")
MASK_SUFFIX = "_mask"
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
    mask: Path | None = None  # a mask to use instead of the model's (8/16-bit grey, white = subject)
    mask_target: Path | None = None  # where to save the mask used (8-bit PNG)

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


@dataclass(frozen=True)
class Rendered:
    """What a finishing step made of one photo: the image to write, and the mask it used if asked."""

    photo: Photo
    mask: Photo | None = None


# A finishing step: the photo and its subject mask (the model's low-resolution output, or a
# full-resolution mask given by the user) -> what to write.
Finish = Callable[[Photo, np.ndarray], Rendered]


def render_blur(
    photo: Photo,
    low: np.ndarray,
    options: BlurOptions = BlurOptions(),
    refine: RefineOptions | None = RefineOptions(),
    keep_mask: bool = False,
    keep_empty: bool = False,
) -> Rendered:
    """Blur a photo's background under its subject mask: the model's (h, w) probability, enlarged
    along the photo's edges, or a mask already at full resolution, used as it is.

    Grey stays grey, 16-bit stays 16-bit, alpha is kept untouched. `keep_mask` also returns the
    full-resolution mask used, as 8-bit grey. `keep_empty` returns a photo in which no subject
    was found (no probability over one half) unchanged, instead of blurring it all over.
    """
    if keep_empty and float(low.max(initial=0.0)) <= 0.5:
        return Rendered(
            photo, alpha_photo(np.zeros(photo.pixels.shape[:2], np.float32)) if keep_mask else None
        )
    colour = photo.colour
    if low.shape == colour.shape[:2]:  # a mask at full resolution (a user's): nothing to enlarge
        alpha, factor, small = np.clip(low.astype(np.float32), 0.0, 1.0), 1, colour
    else:
        # The feather hides detail finer than `hidden_factor`: refine and weigh on the photo shrunk
        # so far, except for a saved mask (predict's, at full resolution).
        full = keep_mask or refine is None
        factor = 1 if full else hidden_factor(colour.shape, options)
        small = shrink(colour, factor)
        alpha = enlarge_mask(low, grey_guide(to_8bit(small)), refine)
    blurred = photo.with_colour(composite(colour, alpha, options, factor, small))
    return Rendered(blurred, alpha_photo(alpha) if keep_mask else None)


def blur_photo(
    photo: Photo,
    low: np.ndarray,
    options: BlurOptions = BlurOptions(),
    refine: RefineOptions | None = RefineOptions(),
) -> Photo:
    """The photo with its background blurred (see `render_blur`)."""
    return render_blur(photo, low, options, refine).photo


def alpha_photo(alpha: np.ndarray) -> Photo:
    """(H, W) float mask in [0, 1] -> an 8-bit grey Photo (0 background, 255 subject)."""
    return Photo(np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8))


def mask_from_photo(mask: Photo, size: tuple[int, int], name: str) -> np.ndarray:
    """A mask image (grey or colour, 8 or 16 bit; white = subject) -> (H, W) float32 in [0, 1] at
    the photo's `size`, enlarged if smaller. A mask of another shape than the photo is refused."""
    values = mask.colour
    if values.ndim == 3:
        values = cv2.cvtColor(values, cv2.COLOR_RGB2GRAY)
    alpha = values.astype(np.float32) * (1 / np.iinfo(values.dtype).max)
    (height, width), (rows, cols) = size, alpha.shape
    if abs(rows * width - cols * height) > 0.02 * height * width:  # aspect ratios differ by > 2 %
        raise BlurcliError(f"{name}: the mask is {cols}x{rows}, the photo {width}x{height} (another shape)")
    return upsample(alpha, size) if (rows, cols) != size else alpha


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
        return alpha_photo(enlarge_mask(low, guide, refine))
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


def segment_photo(
    segmenter: Segmenter, image: np.ndarray, subject_only: bool, heads: HeadOptions | None = HeadOptions()
) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the model's low-resolution output: one pass, plus a second look at
    every head when they are not framed like a portrait (`heads`; None: the single pass only)."""
    low = segmenter.probabilities([image], subject_only=subject_only)[0]
    return low if heads is None else second_look(segmenter, image, low, subject_only, heads)


def blur_image(
    segmenter: Segmenter,
    image: np.ndarray,
    options: BlurOptions = BlurOptions(),
    heads: HeadOptions | None = HeadOptions(),
) -> np.ndarray:
    """(H, W, 3) uint8 RGB photo -> the same photo with its background blurred."""
    return blur_photo(Photo(image), segment_photo(segmenter, image, True, heads), options).pixels


def predict_image(
    segmenter: Segmenter,
    image: np.ndarray,
    mode: PredictMode = "alpha",
    heads: HeadOptions | None = HeadOptions(),
) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> alpha (H, W) uint8 0-255, class map (H, W) uint8 0/1/2, or overlay RGB."""
    return mask_photo(Photo(image), segment_photo(segmenter, image, mode == "alpha", heads), mode).pixels


# ---------------------------------------------------------------------------------------------
# Which files


def find_inputs(
    items: Sequence[str],
    recursive: bool = False,
    skip_suffixes: Sequence[str] = OUTPUT_SUFFIXES,
    skip_under: Path | None = None,
) -> list[tuple[Path, Path]]:
    """Expand files, folders and glob patterns into (file, root) pairs, in a stable order.

    A folder yields its images (all levels with `recursive`); `root` is the folder, so outputs can
    mirror the tree under it; a file's root is its own folder. Hidden files, files whose stem ends
    with one of `skip_suffixes` (earlier outputs) and anything under `skip_under` (the output
    folder) are left out of folders. A path that does not exist is kept, to be reported as a failed file.
    """
    found: dict[Path, tuple[Path, Path]] = {}
    skip = skip_under.resolve() if skip_under is not None else None
    for item in items:
        path = Path(item)
        if not path.exists() and _GLOB_CHARS & set(item):
            matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
            pairs = [(m, m.parent) for m in matches if m.is_file()]
            for folder in (m for m in matches if m.is_dir()):
                pairs.extend(_folder_images(folder, recursive, skip_suffixes, skip))
            if not matches:
                pairs = [(path, path.parent)]
        elif path.is_dir():
            pairs = list(_folder_images(path, recursive, skip_suffixes, skip))
        else:
            pairs = [(path, path.parent)]
        for file, root in pairs:
            found.setdefault(file.resolve(), (file, root))
    return list(found.values())


def _folder_images(
    folder: Path, recursive: bool, skip_suffixes: Sequence[str], skip: Path | None
) -> Iterator[tuple[Path, Path]]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(candidates):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        if any(path.stem.endswith(suffix) for suffix in skip_suffixes if suffix):
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
    `folder_suffix` (default: `suffix`); `-` is stdout. The extension is `fmt`, else
    `default_format`, else the input's. Writing over an input, or two inputs sharing one output, is
    a usage error.
    """
    ext = normalize_extension(fmt) if fmt else None
    default = normalize_extension(default_format) if default_format else None
    if output == Path("-"):  # -o - : standard output, for one photo
        if len(inputs) != 1:
            raise UsageError(f"-o - writes one image to stdout, but there are {len(inputs)} inputs")
        path = inputs[0][0]
        return [Job(path, None, ext or default or normalize_extension(path.suffix or ".png"))]
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
            target = output / _relative_folder(path, root) / f"{path.stem}{in_folder}{name_ext}"
        jobs.append(Job(path, target, ext or normalize_extension(target.suffix or ".png")))
    _check_targets(inputs, jobs)
    return jobs


def _relative_folder(path: Path, root: Path) -> Path:
    """The folder of `path` below `root` (empty when it is not below it), for mirroring trees."""
    try:
        return path.relative_to(root).parent
    except ValueError:
        return Path()


def _check_targets(inputs: Sequence[tuple[Path, Path]], jobs: Sequence[Job]) -> None:
    sources = {path.resolve() for path, _ in inputs}
    sources |= {job.mask.resolve() for job in jobs if job.mask is not None}
    seen: dict[Path, str] = {}
    for job in jobs:
        for target in (job.target, job.mask_target):
            if target is None:
                continue
            key = target.resolve()
            if key in sources:
                raise UsageError(f"{target}: refusing to overwrite an input file")
            if key in seen:
                raise UsageError(f"{job.name} and {seen[key]} would both be written to {target}")
            seen[key] = job.name


def add_masks(
    jobs: Sequence[Job], inputs: Sequence[tuple[Path, Path]], given: Path | None, save: bool
) -> list[Job]:
    """Jobs with the masks to use (`given`: one file, or a folder mirroring the inputs' tree, as
    `predict` writes it) and, with `save`, where to write the mask used: <stem>_mask.png beside
    each output, the name `predict` and `--mask FOLDER` use. `inputs` pairs with `jobs` (empty for
    stdin)."""
    if given is None and not save:
        return list(jobs)
    if given is not None and save:
        raise UsageError("--save-mask with --mask would only copy the mask given")
    if given is not None and not given.exists():
        raise UsageError(f"--mask {given}: no such file or folder")
    if given is not None and given.is_file() and len(jobs) > 1:
        raise UsageError(f"--mask {given} is one file, but there are {len(jobs)} inputs; give a folder")
    planned = []
    for index, job in enumerate(jobs):
        if given is not None:
            source, root = inputs[index] if inputs else (None, None)
            mask = given if given.is_file() else _mask_in(given, source, root)
            planned.append(Job(job.source, job.target, job.format, mask=mask))
        else:
            if job.target is None:
                raise UsageError("--save-mask needs an output file (-o), not stdout")
            stem = job.target.stem if job.source is None else job.source.stem
            mask_target = job.target.with_name(f"{stem}{MASK_SUFFIX}.png")
            planned.append(Job(job.source, job.target, job.format, mask_target=mask_target))
    _check_targets(inputs, planned)
    return planned


def _mask_in(folder: Path, source: Path | None, root: Path | None) -> Path:
    """The mask for `source` in a masks folder: <stem>_mask.png (beside-input layout) or <stem>.png
    (`predict -o FOLDER` layout), in the input's mirrored sub-folder; never the photo itself."""
    if source is None or root is None:
        raise UsageError(f"--mask {folder} is a folder; stdin needs a mask file")
    place = folder / _relative_folder(source, root)
    candidates = [place / f"{source.stem}{MASK_SUFFIX}.png", place / f"{source.stem}.png"]
    for candidate in candidates:
        if candidate.is_file() and candidate.resolve() != source.resolve():
            return candidate
    return candidates[0]  # missing: this photo fails with the name of the file looked for


# ---------------------------------------------------------------------------------------------
# Running a batch


@dataclass
class _Loaded:
    job: Job
    photo: Photo
    prepared: Prepared | None  # for the model; None when the job brings its own mask
    started: float
    mask: np.ndarray | None = None  # the job's own mask, at the photo's full resolution


class Runner:
    """Runs jobs: worker threads read, decode and prepare photos, the calling thread runs the model
    on batches, worker threads finish, encode and write atomically. Every job gets one FileResult.

    Each file fails or succeeds on its own; Ctrl-C cancels what has not started, lets running
    writes finish (they are atomic), and re-raises.
    """

    def __init__(
        self,
        segmenter: Segmenter | None,
        finish: Finish,
        subject_only: bool,
        options: RunOptions = RunOptions(),
        read_stdin: Callable[[], bytes] | None = None,
        write_stdout: Callable[[bytes], None] | None = None,
        heads: HeadOptions | None = None,
    ) -> None:
        self.heads = heads
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
            lows = self._forward([loaded for loaded in batch if loaded.mask is None], report)
            for loaded in batch:
                low = loaded.mask if loaded.mask is not None else next(lows)
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
        if job.mask is not None:
            if not job.mask.is_file():
                raise BlurcliError(f"{job.name}: no mask at {job.mask}")
            mask = decode_photo(read_bytes(job.mask), str(job.mask), self.options.max_pixels)
            return _Loaded(
                job, photo, None, started, mask_from_photo(mask, photo.pixels.shape[:2], str(job.mask))
            )
        if self.segmenter is None:
            raise BlurcliError(f"{job.name}: no mask given and no model loaded")
        return _Loaded(job, photo, self.segmenter.prepare(to_rgb8(photo.pixels)), started)

    def _forward(
        self, batch: list[_Loaded], report: Callable[[FileResult], None]
    ) -> Iterator[np.ndarray | None]:
        """The model's outputs for a batch, in order; a failed pass fails its photos (None each)."""
        if not batch:
            return iter([])
        assert self.segmenter is not None
        prepared = [loaded.prepared for loaded in batch if loaded.prepared is not None]
        try:
            return iter(list(self.segmenter.forward(prepared, len(batch), self.subject_only)))
        except Exception as error:  # e.g. out of GPU memory: fail these, go on
            for loaded in batch:
                report(_failure(loaded.job, error, loaded.started))
            return iter([None] * len(batch))

    def _second_look(self, loaded: _Loaded, low: np.ndarray) -> np.ndarray:
        """With `heads`, a closer look at each head of a photo not framed like a portrait. It runs
        on a worker thread, beside the next batch's model pass, since it can cost several passes."""
        if loaded.mask is not None or self.heads is None or self.segmenter is None:
            return low
        return second_look(self.segmenter, to_rgb8(loaded.photo.pixels), low, self.subject_only, self.heads)

    def _save(self, loaded: _Loaded, low: np.ndarray) -> FileResult:
        job = loaded.job
        try:
            rendered = self.finish(loaded.photo, self._second_look(loaded, low))
            data = encode_photo(
                rendered.photo, job.format or loaded.photo.format or ".png", self.options.quality
            )
            if job.mask_target is not None and rendered.mask is not None:
                write_file(job.mask_target, encode_photo(rendered.mask, ".png", self.options.quality))
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
    output = None if output == Path("-") else output
    if fmt:
        return Job(None, output, normalize_extension(fmt))
    return Job(None, output, normalize_extension(output.suffix) if output and output.suffix else None)
