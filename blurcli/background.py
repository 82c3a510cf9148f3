"""Work on threads of their own beside the caller's, in order: `Ahead` runs an iterator ahead of
its caller (a video's decoding beside the model), `Writer` runs jobs behind it (encoding and
muxing). An error on either thread is raised in the caller's."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Ahead:
    """Runs an iterator on a thread of its own, up to `depth` items ahead of the caller (decoding
    beside the model). Its error is raised in the caller; leaving the `with` stops it."""

    _END = object()

    def __init__(self, items: Iterator[Any], depth: int = 16) -> None:
        self._items = items
        self._queue: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blurcli-video-reader", daemon=True)

    def _put(self, item: Any, error: BaseException | None = None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put((item, error), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as error:  # handed to the caller's thread
            self._put(self._END, error)

    def __enter__(self) -> Iterator[Any]:
        self._thread.start()
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        while True:
            item, error = self._queue.get()
            if error is not None:
                raise error
            if item is self._END:
                return
            yield item

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Writer:
    """Encodes and muxes on a thread of its own, in the order given, while the model and the
    compositor work on the next frames. Its first error is raised on the caller's next call."""

    def __init__(self, depth: int = 16) -> None:
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="blurcli-video-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None:
                try:
                    job()
                except BaseException as error:  # handed to the caller's thread
                    self._error = error

    def put(self, job: Callable[[], object]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(job)

    def close(self) -> None:
        """Finish what was given and stop; raises the writer's error if there was one."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
