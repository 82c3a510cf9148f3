"""What every command shares for people and pipes: Rich consoles and progress on stderr, one-line
errors, bytes and text on stdout, the model loaded with a download bar, the training extra."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from blurcli.errors import BlurcliError
from blurcli.paths import os_reason
from blurcli.segment import Segmenter, new_segmenter


def print_error(message: str) -> None:
    stderr_console().print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def stderr_console(quiet: bool = False) -> Console:
    """People read stderr; Rich drops colour when it is not a terminal or NO_COLOR is set."""
    return Console(stderr=True, quiet=quiet)


def load_segmenter(
    weights: str | None, device: str, console: Console, subject: str | None = None
) -> Segmenter:
    with transient_progress(
        console, TextColumn("downloading weights"), BarColumn(), DownloadColumn()
    ) as progress:
        tasks: list[Any] = []  # the bar appears with the first bytes of a download, not before

        def on_progress(done: int, total: int | None) -> None:
            if not tasks:
                tasks.append(progress.add_task("download", total=total))
            progress.update(tasks[0], completed=done, total=total)

        return new_segmenter(weights, device, on_progress, subject)


def file_progress(console: Console, *extra: Any) -> Progress:
    return transient_progress(
        console,
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def transient_progress(console: Console, *columns: Any) -> Progress:
    """A transient progress display, drawn only on a terminal (nothing at all in pipes and logs)."""
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def write_stdout(data: bytes) -> None:
    """Bytes to stdout, flushed. Where stdout refuses them (a full disk, a closed pipe), it is sent
    to the null device before the error goes on, so Python's own flush at exit does not fail again
    with a second message and another exit code."""
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except OSError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor (a test's capture): nothing to flush later
            pass
        raise


def print_stdout(text: str) -> None:
    """Text (JSON lines, a table) to stdout; a refusal is one line blaming standard output, not the
    photo just written nor a file of the run."""
    try:
        write_stdout(text.encode(sys.stdout.encoding or "utf-8", "replace"))
    except OSError as error:
        raise BlurcliError(f"standard output: cannot write ({os_reason(error)})") from None


def megabytes(value: int | None) -> int | None:
    return None if value is None else value << 20


def training_extra(command: str) -> ModuleType:
    """blurcli.training (torch and friends), or one line saying how to install it."""
    return import_extra(command, "train", "blurcli.training")[0]


def import_extra(command: str, extra: str, *modules: str) -> list[ModuleType]:
    """The modules `command` needs from an optional extra, or one line saying how to install it."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as error:
        missing = error.name or f"a dependency of the {extra} extra"
        raise BlurcliError(f'blurcli {command} needs {missing}: pip install "blurcli[{extra}]"') from None
