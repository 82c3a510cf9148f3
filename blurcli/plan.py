"""Which files `blur` and `predict` read and write: inputs (found by `inputs`, or stdin) become
jobs, each with its output path, format and mask; refuse plans that would lose data."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from blurcli.errors import BlurcliError, UsageError
from blurcli.files import remove_stale_parts
from blurcli.formats import IMAGE_EXTENSIONS, INPUT_EXTENSIONS, normalize_extension, writable_format
from blurcli.inputs import INSIDE_OUTPUT, gather_inputs
from blurcli.metadata import MARKED_FORMATS, output_mark, sniff_format
from blurcli.paths import refuse_overwriting, resolved
from blurcli.video import VIDEO_EXTENSIONS, is_video, video_output_extension

# Stems of what `blur` and `predict` write. blurcli knows its outputs by the mark it writes into
# their metadata; the names count only for formats that carry no mark (TIFF, BMP).
OUTPUT_SUFFIXES = ("_blurred", "_mask")
MASK_SUFFIX = "_mask"
_HEAD_BYTES = 128 << 10  # where the mark sits in any file blurcli writes
NAMED_LIKE_OUTPUT = "named like blurcli's output"  # the skip reason of a file without a mark
STDIN = "<stdin>"
STDOUT = "<stdout>"


@dataclass(frozen=True)
class Naming:
    """How a command names its outputs: `<stem><beside><ext>` beside each input, `<stem><in_folder><ext>`
    under `-o FOLDER`; `format` is the output extension when neither --format nor -o FILE says."""

    beside: str
    in_folder: str
    format: str | None = None


BLUR_NAMING = Naming("_blurred", "_blurred")
PREDICT_NAMING = Naming(MASK_SUFFIX, "", ".png")


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
    skip: str | None = None  # why this input is left alone (it is blurcli's own output)

    @property
    def name(self) -> str:
        return STDIN if self.source is None else str(self.source)


def chosen_format(fmt: str | None) -> str | None:
    """--format's value -> an output extension ('.png'); an unknown format is a usage error."""
    if not fmt:
        return None
    try:
        return normalize_extension(fmt)
    except BlurcliError as error:
        raise UsageError(f"--format {fmt}: {error}") from None


def why_skip(path: Path, data: bytes | None = None) -> str | None:
    """Why an input is blurcli's own output (so a rerun or a shell glob does not blur it again),
    or None for a user's photo: the mark in its metadata, or for formats without one, its name.
    `data`: the file's bytes where they are at hand (read by Ray), else its head is read here."""
    if data is not None:
        head = data[:_HEAD_BYTES]
    else:
        try:
            with path.open("rb") as handle:
                head = handle.read(_HEAD_BYTES)
        except OSError:
            return None  # reading fails again, and is reported, when the photo is processed
    kind = output_mark(head)
    if kind is not None:
        return f"blurcli's own output (marked '{kind}' in its metadata)"
    fmt = ".mp4" if is_video(path) else sniff_format(head)
    suffix = next((end for end in OUTPUT_SUFFIXES if path.stem.endswith(end)), None)
    if suffix and fmt is not None and fmt not in MARKED_FORMATS:
        return (
            f"{NAMED_LIKE_OUTPUT} ({suffix}; {fmt[1:].upper()} files carry no mark): rename it to process it"
        )
    return None


def plan_jobs(
    inputs: Sequence[tuple[Path, Path]],
    output: Path | str | None,
    suffix: str,
    fmt: str | None = None,
    folder_suffix: str | None = None,
    default_format: str | None = None,
) -> list[Job]:
    """Output path per input: `<stem><suffix><ext>` beside it by default, else under `output`.

    `output` names a file when there is one input and it ends in an image extension (which must
    agree with `fmt`); otherwise it is a folder (always with a trailing slash), in which folder
    inputs keep their tree and names get `folder_suffix` (default: `suffix`); `-` is stdout. The
    extension is `fmt`, else `default_format`, else the input's (JPEG for formats blurcli reads but
    does not write). Writing over an input, or two inputs sharing one output, is a usage error.
    """
    ext = chosen_format(fmt)
    default = normalize_extension(default_format) if default_format else None
    if output is not None and str(output) == "-":  # -o - : standard output, for one photo
        if len(inputs) != 1:
            raise UsageError(f"-o - writes one image to stdout, but there are {len(inputs)} inputs")
        path = inputs[0][0]
        if is_video(path):
            raise UsageError(f"-o -: {path} is a video, which cannot go to stdout; give a file name")
        return [Job(path, None, ext or default or writable_format(path.suffix or ".png"))]
    target_file = _output_file(output, len(inputs), ext)
    if target_file is not None and is_video(inputs[0][0]) != is_video(target_file):
        kind, names = (
            ("a video", "a video name (.mp4, .mov, .mkv)")
            if is_video(inputs[0][0])
            else ("a photo", "an image name (.jpg, .png, .webp, .bmp, .tif)")
        )
        raise UsageError(f"-o {output}: {inputs[0][0]} is {kind}; give {names}")
    in_folder = suffix if folder_suffix is None else folder_suffix
    jobs = []
    for path, root in inputs:
        video = is_video(path)  # --format is about photos: a video stays a video
        name_ext = video_output_extension(path.suffix) if video else ext or default or _output_extension(path)
        if output is None:
            target = path.with_name(f"{path.stem}{suffix}{name_ext}")
        elif target_file is not None:
            target = target_file
        else:
            target = Path(output) / _relative_folder(path, root) / f"{path.stem}{in_folder}{name_ext}"
        fmt = video_output_extension(target.suffix) if video else ext or normalize_extension(target.suffix)
        jobs.append(Job(path, target, fmt))
    _check_targets(inputs, jobs)
    return jobs


def _output_extension(path: Path) -> str:
    """The extension an input's output gets without --format: the input's as written ('.JPG'), JPEG
    for formats only read, the sniffed format for a name without a known extension (PNG if none)."""
    if path.suffix.lower() in INPUT_EXTENSIONS:
        return writable_format(path.suffix, keep_case=True)
    try:
        with path.open("rb") as handle:
            sniffed = sniff_format(handle.read(64))
    except OSError:
        sniffed = None  # unreadable or missing: the job fails with the reason when it reads it
    return writable_format(sniffed) if sniffed else ".png"


def _output_file(output: Path | str | None, count: int, ext: str | None) -> Path | None:
    """The file `-o` names, or None when it names a folder (see plan_jobs)."""
    if output is None:
        return None
    path = Path(output)
    if _names_folder(output):
        return None
    if path.exists() and count > 1:
        raise UsageError(f"-o {output} is an existing file, but there are {count} inputs; give a folder")
    if path.suffix.lower() in INPUT_EXTENSIONS and path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UsageError(
            f"-o {output}: blurcli reads {path.suffix} photos but does not write them; name a .jpg, "
            ".png, .webp, .bmp or .tif file (or a folder, ending in /)"
        )
    if path.suffix.lower() not in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
        return None  # '2024.06', 'out': a folder
    if count > 1:
        raise UsageError(f"-o {output} names one file, but there are {count} inputs; give a folder")
    if ext is not None and not is_video(path) and normalize_extension(path.suffix) != ext:
        raise UsageError(f"-o {output} is a {path.suffix} file, but --format asks for {ext}; drop one")
    return path


def _names_folder(output: Path | str) -> bool:
    """Whether `-o` names a folder whatever its name: it ends in a slash, or is one already."""
    return str(output).endswith(("/", os.sep)) or Path(output).is_dir()


def _relative_folder(path: Path, root: Path) -> Path:
    """The folder of `path` below `root` (empty when it is not below it), for mirroring trees."""
    try:
        return path.relative_to(root).parent
    except ValueError:
        return Path()


def _check_targets(inputs: Sequence[tuple[Path, Path]], jobs: Sequence[Job]) -> None:
    targets = [target for job in jobs for target in (job.target, job.mask_target) if target is not None]
    sources = [path for path, _ in inputs] + [job.mask for job in jobs if job.mask is not None]
    refuse_overwriting(targets, sources, "it is not blurcli's output: rename it or give -o")
    seen: dict[Path, str] = {}
    for job in jobs:
        for target in (job.target, job.mask_target):
            if target is None:
                continue
            key = resolved(target)
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
            if job.source is not None and is_video(job.source):
                raise UsageError(
                    f"--save-mask: {job.source} is a video, which gets no mask file yet "
                    f"(blurcli predict {job.source} writes a mask video)"
                )
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
        if candidate.is_file() and resolved(candidate) != resolved(source):
            return candidate
    return candidates[0]  # missing: this photo fails with the name of the file looked for


def stdio_job(output: Path | str | None, fmt: str | None) -> Job:
    """The job for '-': stdin to stdout, or to `output`; format from `fmt`, the output's or the input's."""
    target = None if output is None or str(output) == "-" else Path(output)
    if output is not None and target is not None and _names_folder(output):
        raise UsageError(f"-o {output} is a folder; a photo from stdin needs a file name (or -o -)")
    if target is not None and target.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UsageError(f"-o {output}: not an image name (use one of {', '.join(IMAGE_EXTENSIONS)})")
    ext = chosen_format(fmt)
    if ext and target is not None and normalize_extension(target.suffix) != ext:
        raise UsageError(f"-o {output} is a {target.suffix} file, but --format asks for {ext}; drop one")
    return Job(None, target, ext or (normalize_extension(target.suffix) if target is not None else None))


def skip_outputs(
    inputs: Sequence[tuple[Path, Path]], data: Mapping[Path, bytes] | None = None
) -> tuple[list[tuple[Path, Path]], list[Job]]:
    """Inputs split into photos to process and jobs that skip blurcli's own outputs (`why_skip`;
    `data`: files' bytes already read, by path)."""
    photos, skipped = [], []
    for path, root in inputs:
        reason = why_skip(path, data.get(path) if data else None)
        if reason is None:
            photos.append((path, root))
        else:
            skipped.append(Job(path, None, skip=reason))
    return photos, skipped


def plan_files(
    items: Sequence[str],
    output: Path | str | None = None,
    naming: Naming = BLUR_NAMING,
    recursive: bool = False,
    fmt: str | None = None,
    mask: Path | None = None,
    save_mask: bool = False,
) -> list[Job]:
    """The command line's inputs -> jobs: files, folders and globs (see `inputs.gather_inputs`), or '-'
    (stdin), which stands alone; outputs named by `naming` (see `plan_jobs`), masks by `add_masks`.
    blurcli's own outputs among the inputs become jobs that skip them, with the reason."""
    if output is not None and not str(output):
        raise UsageError("-o '': give a file or folder name")
    if "-" in items:
        if len(items) > 1:
            raise UsageError("'-' (stdin) cannot be mixed with other inputs")
        names_format = output is not None and Path(output).suffix != ""
        return add_masks(
            [stdio_job(output, fmt or (None if names_format else naming.format))], [], mask, save_mask
        )
    folder = None if output is None or str(output) == "-" else Path(output)
    found, left = gather_inputs(items, recursive, skip_under=folder)
    if not found:
        inside = sum(reason == INSIDE_OUTPUT for _, reason in left)
        why = f" ({inside} left out: {INSIDE_OUTPUT} {folder})" if inside else ""
        raise UsageError(
            f"no images found in {', '.join(items)}" + (why or ("" if recursive else " (try --recursive)"))
        )
    return plan_inputs(found, output, naming, fmt, mask, save_mask) + [
        Job(path, None, skip=reason) for path, reason in left
    ]


def plan_inputs(
    found: Sequence[tuple[Path, Path]],
    output: Path | str | None = None,
    naming: Naming = BLUR_NAMING,
    fmt: str | None = None,
    mask: Path | None = None,
    save_mask: bool = False,
    data: Mapping[Path, bytes] | None = None,
) -> list[Job]:
    """(file, root) pairs (`inputs.find_inputs`, or the paths Ray read, with their bytes as `data`) ->
    jobs, as `plan_files` plans them: blurcli's own outputs skipped, outputs named, masks added."""
    inputs, skipped = skip_outputs(found, data)
    if not inputs:
        return skipped
    planned = plan_jobs(inputs, output, naming.beside, fmt, naming.in_folder, naming.format)
    return add_masks(planned, inputs, mask, save_mask) + skipped


def needs_model(jobs: Sequence[Job]) -> bool:
    """Whether any job lacks a mask of its own, so the model must be loaded."""
    return any(job.mask is None for job in jobs)


def remove_parts_of(jobs: Iterable[Job]) -> None:
    """Remove the temp files that killed runs left beside these jobs' outputs (each folder is
    listed once: a step for the start of a run, not for every batch)."""
    remove_stale_parts(path for job in jobs for path in (job.target, job.mask_target) if path)
