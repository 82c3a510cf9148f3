"""Where blurcli keeps downloaded weights and unpacked datasets: one root, one environment variable.

Also the one wording of a file system's refusal (`os_reason`) and the up-front check that outputs
can be written (`check_writable`), so a long run never fails at its first save.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
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
    later run can tell one left by a killed process (`photo.remove_stale_parts`)."""
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
