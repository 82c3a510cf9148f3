"""How many photos a batch holds at once: each counted from its header's size before it is read,
admitted while the photos in flight fit the budget (half the memory available by default)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from blurcli.metadata import image_size
from blurcli.plan import Job

BYTES_PER_PIXEL = 48  # a photo's peak in the pipeline, measured on 16-bit RGBA PNGs (bench_memory.py)


@dataclass
class MemoryBudget:
    """Bytes the photos in flight may take, and what each admitted one is counted for (from its
    header's size, before it is read); one photo is always admitted alone, however large."""

    limit: int
    costs: dict[str, int] = field(default_factory=dict)  # the photos in flight, by name
    known: dict[str, int] = field(default_factory=dict)  # every photo's count, read once

    @property
    def used(self) -> int:
        """Bytes the photos in flight are counted for."""
        return sum(self.costs.values())

    def cost_of(self, job: Job) -> int:
        """What a job's photo is counted for (its header read once)."""
        if job.name not in self.known:
            self.known[job.name] = photo_cost(job.source)
        return self.known[job.name]

    def fits(self, cost: int) -> bool:
        """Whether a photo of `cost` may start now: it fits beside those in flight, or none is."""
        return not self.costs or self.used + cost <= self.limit

    def take(self, name: str, cost: int) -> None:
        """Count a photo admitted."""
        self.costs[name] = self.costs.get(name, 0) + cost

    def give_back(self, name: str) -> None:
        """Stop counting a photo whose result is in."""
        self.costs.pop(name, None)


def photo_cost(path: Path | None) -> int:
    """The memory a photo takes in the pipeline, from the size its header declares (0 where it
    cannot be read: stdin, a damaged header, which decoding refuses anyway)."""
    if path is None:
        return 0
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
    except OSError:
        return 0
    size = image_size(head)
    return 0 if size is None else size[0] * size[1] * BYTES_PER_PIXEL


def default_memory_budget() -> int:
    """Half the memory available now (Linux's MemAvailable; else free pages; else 4 GiB)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (OSError, ValueError, AttributeError):
        return 4 << 30
