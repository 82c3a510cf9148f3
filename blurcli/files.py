"""Bytes on disk, for photos and models alike: bounded reads with one-line errors, atomic writes,
and the cleanup of temp files that killed runs left behind. Nothing here knows what an image is."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from blurcli.errors import BlurcliError
from blurcli.paths import os_reason, temp_path


def read_stream(stream: BinaryIO | None, source: str, limit: int | None = None) -> bytes:
    """A stream's bytes (stdin, a pipe) read to its end, but never more than `limit`: one line
    instead of reading /dev/zero or an endless pipe until the kernel ends the process."""
    if stream is None or getattr(stream, "closed", False):
        raise BlurcliError(f"{source}: standard input is closed")
    chunks, size = [], 0
    try:
        while chunk := stream.read(1 << 20 if limit is None else min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                megabytes = limit / 2**20
                raise BlurcliError(
                    f"{source}: more than {megabytes:,.0f} MB, more than any photo --max-pixels admits"
                )
    except (OSError, ValueError) as error:  # ValueError: a stream closed under us
        raise BlurcliError(
            f"{source}: cannot read ({os_reason(error) if isinstance(error, OSError) else error})"
        ) from None
    return b"".join(chunks)


def read_bytes(path: Path | str, limit: int | None = None) -> bytes:
    """A file's bytes, with one-line errors for the usual ways reading fails. Devices are refused
    and pipes read up to `limit` bytes; a file larger than `limit` is refused unread."""
    try:
        mode = Path(path).stat()
        kind = _special_kind(mode.st_mode)
        if kind is not None:
            raise BlurcliError(f"{path}: {kind}, not a photo file")
        if stat.S_ISFIFO(mode.st_mode):
            with open(path, "rb") as pipe:
                return read_stream(pipe, str(path), limit)
        if limit is not None and mode.st_size > limit:
            raise BlurcliError(
                f"{path}: {mode.st_size / 2**20:,.0f} MB, more than any photo --max-pixels admits"
            )
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BlurcliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BlurcliError(f"{path}: is a directory") from None
    except PermissionError:
        raise BlurcliError(f"{path}: permission denied") from None
    except OSError as error:
        raise BlurcliError(f"{path}: cannot read ({error.strerror or error})") from None


def _special_kind(mode: int) -> str | None:
    """What a file that is neither a regular file nor a pipe is, in words (None for those two)."""
    for test, kind in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path` (`temp_path`), then rename: readers never see a
    half-written file. The file gets the usual permissions (0666 minus the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_parts(targets: Iterable[Path]) -> list[Path]:
    """Delete temp files of these outputs left by blurcli processes that no longer run (killed
    mid-write); those of a live process (another run writing now) are left alone. Each folder is
    listed once. Returns what was removed."""
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        by_folder.setdefault(target.parent, set()).add(target.name)
    removed: list[Path] = []
    for folder, names in by_folder.items():
        try:
            parts = [entry for entry in folder.iterdir() if entry.name.endswith(".part")]
        except OSError:
            continue
        for part in parts:
            name, _, fields = part.name[1 : -len(".part")].rpartition(".")[0].rpartition(".")
            if not part.name.startswith(".") or name not in names or not fields.isdigit():
                continue
            if not _process_alive(int(fields)):
                with contextlib.suppress(OSError):
                    part.unlink()
                    removed.append(part)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def write_file(path: Path, data: bytes) -> None:
    """write_bytes_atomic with a one-line error naming the file."""
    try:
        write_bytes_atomic(path, data)
    except OSError as error:
        raise BlurcliError(f"{path}: cannot write ({os_reason(error, path)})") from None
