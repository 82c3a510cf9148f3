"""Where blurcli keeps downloaded weights and unpacked datasets: one root, one environment variable.

Also the one wording of a file system's refusal (`os_reason`), the up-front check that outputs
can be written (`check_writable`), so a long run never fails at its first save, and the checks that
an output never replaces what a run reads or a file blurcli did not write (`refuse_overwriting`,
`check_outputs`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import platformdirs

from blurcli.errors import BlurcliError, UsageError

HOME_ENV = "BLURCLI_HOME"


def data_home() -> Path:
    """Root for downloaded weights: $BLURCLI_HOME, else the platform's user data dir."""
    override = os.environ.get(HOME_ENV)
    return Path(override) if override else Path(platformdirs.user_data_dir("blurcli"))


def cache_home() -> Path:
    """Root for re-creatable files (unpacked archives): $BLURCLI_HOME/cache, else the user cache dir."""
    override = os.environ.get(HOME_ENV)
    return Path(override) / "cache" if override else Path(platformdirs.user_cache_dir("blurcli"))


def os_reason(error: OSError, path: Path | None = None) -> str:
    """The file system's reason for a one-line message ('Permission denied'); 'x is a file, not a
    folder' where a file stands where `path` needs a folder (the OS says 'File exists' or 'Not a
    directory' then)."""
    if path is not None:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            return f"{blocker} is a file, not a folder"
    return error.strerror or str(error) or type(error).__name__


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` when it is not a folder, else None."""
    for parent in Path(path).parents:
        try:
            if parent.exists():
                return None if parent.is_dir() else parent
        except OSError:
            continue
    return None


def is_dir(path: Path) -> bool:
    """Path.is_dir that also says False where the OS refuses to look (a name too long, say)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def temp_path(path: Path) -> Path:
    """Where `path` is written before its rename: `.<name>.<pid>.<random>.part` beside it, so a
    later run can tell one left by a killed process (`files.remove_stale_parts`)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")


def check_writable(targets: Sequence[Path], option: str = "--out") -> None:
    """Fail now, not after hours of work, if any of `targets` (files one run will write, atomically,
    beside each other) cannot be written: a folder that cannot be created, a file in the way, no
    permission, a read-only file system, a name too long. Creates an empty file named as the atomic
    write's temporary file will be, then removes it and every folder it had to create: nothing is
    left behind either way. A target that is a folder is a UsageError naming `option`."""
    created: list[Path] = []
    try:
        for target in targets:
            if is_dir(target):
                raise UsageError(f"{option} {target} is a folder; give a file name inside it")
            if not created and not is_dir(target.parent):
                created = _make_folders(target)
            probe = temp_path(target)
            try:
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                os.unlink(probe)
            except OSError as error:
                raise BlurcliError(f"{target}: cannot write ({os_reason(error, target)})") from None
    finally:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                break


def _make_folders(target: Path) -> list[Path]:
    """Create `target`'s missing folders, outermost first; returns them (for the caller to remove)."""
    missing = []
    for parent in target.parents:
        try:
            if parent.exists():
                break
        except OSError:
            pass
        missing.append(parent)
    created = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except OSError as error:
            for done in reversed(created):
                done.rmdir()
            raise BlurcliError(f"{target}: cannot write ({os_reason(error, target)})") from None
        created.append(folder)
    return created


def file_key(path: Path) -> object:
    """What names one file however it is reached (symlinks, `..`, hard links): its device and
    inode where it exists, else its absolute path with links followed (or as written, where even
    that fails: a symlink loop)."""
    try:
        status = os.stat(path)
        return (status.st_dev, status.st_ino)
    except OSError:
        return resolved(path)


def refuse_overwriting(targets: Iterable[Path], inputs: Iterable[Path], hint: str) -> None:
    """A UsageError naming the first of `targets` that is one of `inputs` (compared as files, not
    names: see `file_key`); writing it would destroy what the run reads. `hint` says what to do."""
    sources = {file_key(path) for path in inputs}
    for target in targets:
        if file_key(target) in sources:
            raise UsageError(f"{target}: refusing to overwrite an input file; {hint}")


def check_outputs(
    outputs: Mapping[Path, Callable[[Path], bool]],
    inputs: Iterable[Path] = (),
    folders: Mapping[str, Path | None] | None = None,
    option: str = "--out",
) -> None:
    """A UsageError, before any work, where writing `outputs` would lose a file: one of `inputs`
    (`refuse_overwriting`), anything inside the `folders` a run reads (by option: a dataset), or
    an existing file that is not one the run may replace (each output maps to that test: a
    checkpoint or a log of an earlier run). A folder in the way is left to `check_writable`."""
    refuse_overwriting(outputs, inputs, f"give {option} another name")
    for name, folder in (folders or {}).items():
        if folder is None:
            continue
        for target in outputs:
            if _inside(target, folder):
                raise UsageError(
                    f"{target}: inside {name} {folder}, which this run reads; give {option} elsewhere"
                )
    for target, replaceable in outputs.items():
        if os.path.lexists(target) and not is_dir(target) and not replaceable(target):
            raise UsageError(
                f"{target}: refusing to replace a file blurcli did not write here; "
                f"move it or give {option} another name"
            )


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or under it, as written or with links followed."""
    places = {Path(os.path.abspath(folder)), resolved(folder)}
    for candidate in (Path(os.path.abspath(path)), resolved(path)):
        if any(candidate == place or place in candidate.parents for place in places):
            return True
    return False


def resolved(path: Path) -> Path:
    """`path` made absolute with its links followed, or, where that fails (a symlink loop), as
    written: the file is still reported, by whatever reads it, with the OS's reason."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return Path(os.path.abspath(path))
