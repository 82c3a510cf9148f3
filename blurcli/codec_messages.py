"""Catch what the image codecs inside OpenCV print, so a damaged file fails with one line.

libjpeg, libpng and libtiff report damage by printing a line on the process's C stderr (file
descriptor 2) and carrying on: a JPEG damaged mid-scan decodes "fine" with a grey lower half. While
blurcli decodes or encodes, fd 2 goes into a pipe that a reader thread drains; Python's own
`sys.stderr` keeps the real terminal. A line that appears while a call runs is that call's reason
to fail. Calls run in parallel threads, so a call that saw a line runs again alone to be sure the
line was its own (codecs are deterministic); calls that saw nothing never wait on each other.

Lines printed while no codec call runs (other C libraries) still reach the terminal; one printed
by something else just as a codec call runs may be dropped. fd 2 belongs to the whole process, so
the capture is one per process, shared by reference count.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

T = TypeVar("T")

# Codec lines that say nothing about the pixels: ancillary PNG chunks (lower-case first letter:
# colour profile, text, gamma...), bytes after a JPEG's last scan, encoder quirks of some cameras.
# Fuzzing (benchmarks/fuzz_images.py) checked each against the pixels: these left them identical.
# Every other line (a JPEG's corrupt data, even bytes before its end marker; a TIFF tag ignored)
# came with changed pixels in some damaged file, so it fails the file.
_HARMLESS = re.compile(
    r"libpng warning: (?!iHDR|pLTE|iDAT|iEND)[a-z][A-Za-z]{3}: "  # an ancillary chunk (but not a
    # critical one whose name lost a bit: 'iDAT')
    r"|libpng warning: IEND: CRC error"
    r"|libpng warning: IDAT: \.*Too many IDATs found"
    r"|libpng warning: Interlace handling"
    r"|Warning: unknown JFIF revision number"
    r"|Warning: thumbnail image size does not match"
    r"|TIFF_Warning TIFFReadDirectory: Sum of Photometric"  # OpenCV's own RGBA TIFFs
    r"|TIFF_Error TIFFAdvanceDirectory: Error fetching directory link"  # the next page's link
)
# OpenCV's decoration around a codec's words: "[ WARN:0@0.7] global grfmt_tiff.cpp:123 " and
# "OpenCV(5.1.0) /io/opencv/modules/imgcodecs/src/grfmt_tiff.cpp:933: error: (-2:Unspecified error) "
_OPENCV_PREFIX = re.compile(r"\[ ?[A-Z]+:[\d@.]+\] global \S+ ")
_OPENCV_ERROR = re.compile(r"OpenCV\([\d.]+\) \S+: error: \([^)]*\) ")
_SYNC = b"\x00blurcli-sync:"


def is_damage(line: str) -> bool:
    """Whether a codec's line means the pixels are wrong (not just odd metadata)."""
    return not _HARMLESS.match(plain(line))


def plain(line: str) -> str:
    """A codec's line without OpenCV's log prefix (level, time, source file)."""
    return _OPENCV_ERROR.sub("", _OPENCV_PREFIX.sub("", line, count=1)).strip()


class _SharedExclusive:
    """Many calls at once, or one alone: a call that must be sure of its messages runs alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class _Capture:
    """fd 2 redirected into a pipe; a reader thread keeps the lines, numbered in arrival order."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._read_end = read_end
        self._python_stderr = sys.stderr
        if _is_fd2(sys.stderr):  # Python's own messages keep going straight to the terminal
            sys.stderr = io.TextIOWrapper(
                io.FileIO(self._saved, "w", closefd=False), encoding="utf-8", line_buffering=True
            )
        self.lock = threading.Condition()
        self._lines: list[str] = []
        self._synced: set[int] = set()
        self._tokens = itertools.count()
        self.active = 0  # watched calls running; lines arriving with none running are forwarded
        self.order = _SharedExclusive()
        self._reader = threading.Thread(target=self._read, name="blurcli-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        pending = b""
        while chunk := os.read(self._read_end, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                self._take(raw)
        if pending:
            self._take(pending)

    def _take(self, raw: bytes) -> None:
        # A codec's line left without its newline runs into the next sync token: split them.
        raw, _, token = raw.partition(_SYNC)
        with self.lock:
            if raw and self.active:
                self._lines.append(raw.decode("utf-8", "replace").strip())
            elif raw:
                with suppress(OSError):
                    os.write(self._saved, raw + b"\n")
            if token.isdigit():
                self._synced.add(int(token))
            self.lock.notify_all()

    def mark(self) -> int:
        """A position in the stream: every line written before this call is before it."""
        token = next(self._tokens)
        os.write(2, _SYNC + str(token).encode() + b"\n")
        with self.lock:
            self.lock.wait_for(lambda: token in self._synced, timeout=5.0)
            self._synced.discard(token)
            return len(self._lines)

    def lines_since(self, start: int) -> list[str]:
        with self.lock:
            return [line for line in self._lines[start:] if line]

    def close(self) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the reader sees EOF
        self._reader.join(timeout=5.0)
        os.close(self._read_end)
        if sys.stderr is not self._python_stderr:
            sys.stderr.flush()
            sys.stderr = self._python_stderr
        os.close(self._saved)


def _is_fd2(stream: object) -> bool:
    try:
        return stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


class _Shared:
    """The process's one capture, opened by the first `capturing()` and closed by the last."""

    lock = threading.Lock()
    users = 0
    capture: _Capture | None = None


@contextmanager
def capturing() -> Iterator[None]:
    """Route the codecs' stderr through blurcli while the block runs (nests; thread-safe).

    Where fd 2 cannot be redirected (closed, unusual platform), codecs print as they always did.
    """
    with _Shared.lock:
        if _Shared.users == 0:
            try:
                _Shared.capture = _Capture()
            except OSError:
                _Shared.capture = None
        _Shared.users += 1
    try:
        yield
    finally:
        with _Shared.lock:
            _Shared.users -= 1
            if _Shared.users == 0 and _Shared.capture is not None:
                _Shared.capture.close()
                _Shared.capture = None


def watched(call: Callable[[], T], matters: Callable[[str], bool] = is_damage) -> tuple[T, list[str]]:
    """Run a codec call; return its result and the lines the codecs printed while it ran.

    A line that `matters` (by default: damage) is sure to be this call's: when one is seen, the
    call runs again alone. Other lines may be a concurrent call's. Outside `capturing()` the call
    just runs and nothing is seen.
    """
    capture = _Shared.capture
    if capture is None:
        return call(), []
    with capture.order.shared():
        result, lines = _run(capture, call)
    if not any(matters(line) for line in lines):
        return result, lines
    del result  # a decoded photo can be large: not two of them at once
    with capture.order.exclusive():  # run again alone to know the line was this call's
        return _run(capture, call)


def _run(capture: _Capture, call: Callable[[], T]) -> tuple[T, list[str]]:
    with capture.lock:
        capture.active += 1
    try:
        start = capture.mark()
        result = call()
        lines = capture.lines_since(start) if capture.mark() > start else []
    finally:
        with capture.lock:
            capture.active -= 1
    return result, lines
