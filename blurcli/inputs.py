"""Which files the command line names: files, folders (hidden files left out, sub-folders with
--recursive) and glob patterns, in a stable order, and what was left out and why."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from blurcli.formats import INPUT_EXTENSIONS
from blurcli.paths import resolved
from blurcli.video import VIDEO_EXTENSIONS

_GLOB_CHARS = frozenset("*?[")
INSIDE_OUTPUT = "inside the output folder"  # the skip reason of a folder's file under -o
UNLISTED = "cannot list this folder"  # the skip reason of a sub-folder the walk could not read


def find_inputs(
    items: Sequence[str], recursive: bool = False, skip_under: Path | None = None
) -> list[tuple[Path, Path]]:
    """The (file, root) pairs `gather_inputs` finds, without what it leaves out."""
    return gather_inputs(items, recursive, skip_under)[0]


def gather_inputs(
    items: Sequence[str], recursive: bool = False, skip_under: Path | None = None
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Expand files, folders and glob patterns into (file, root) pairs, in a stable order, and the
    entries left out with their reasons.

    A folder yields its images (all levels with `recursive`); `root` is the folder, so outputs can
    mirror the tree under it; a file's root is its own folder. Hidden files are left out of folders
    silently; a folder's files under `skip_under` (the output folder) and sub-folders that cannot be
    listed (too deep for the path limit, no permission) are left out with their reason. A file
    named on the command line is always taken, and one that does not exist is kept, to be reported
    as a failed file.
    """
    found: dict[Path, tuple[Path, Path]] = {}
    left: list[tuple[Path, str]] = []
    skip = resolved(skip_under) if skip_under is not None else None
    for item in items:
        path = Path(item)
        expanded: list[tuple[Path, Path]] = []
        if not path.exists() and _GLOB_CHARS & set(item):
            matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
            pairs = [(m, m.parent) for m in matches if m.is_file()]
            for folder in (m for m in matches if m.is_dir()):
                expanded.extend(_folder_images(folder, recursive, left))
            if not matches:
                pairs = [(path, path.parent)]
        elif path.is_dir():
            pairs = []
            expanded = list(_folder_images(path, recursive, left))
        else:
            pairs = [(path, path.parent)]
        for file, root in expanded:
            if skip is not None and skip in resolved(file).parents:
                left.append((file, INSIDE_OUTPUT))
            else:
                pairs.append((file, root))
        for file, root in pairs:
            found.setdefault(resolved(file), (file, root))
    return list(found.values()), left


def _folder_images(
    folder: Path, recursive: bool, left: list[tuple[Path, str]]
) -> Iterator[tuple[Path, Path]]:
    """A folder's images, sorted, hidden ones left out; sub-folders that cannot be listed go to
    `left` with the OS's reason, and the walk goes on."""

    def unlisted(error: OSError) -> None:
        where = Path(error.filename) if error.filename else folder
        left.append((where, f"{UNLISTED} ({error.strerror or error})"))

    paths: list[Path] = []
    for top, folders, files in os.walk(folder, onerror=unlisted):
        folders[:] = sorted(name for name in folders if not name.startswith(".")) if recursive else []
        paths.extend(Path(top) / name for name in files if not name.startswith("."))
    for path in sorted(paths):
        if path.suffix.lower() not in INPUT_EXTENSIONS + VIDEO_EXTENSIONS or not _is_file(path):
            continue
        yield path, folder


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long to stat: the reader reports it
        return True
