"""No input is read without bound: devices are refused, pipes and stdin stop at what --max-pixels
admits, and a closed stdin is a user's situation with its own message (issue 27, items 3 and 14)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blurcli.cli import app
from blurcli.errors import BlurcliError
from blurcli.files import read_bytes, read_stream
from blurcli.limits import input_limit

runner = CliRunner()


def test_the_input_limit_grows_with_max_pixels() -> None:
    assert input_limit(1_000) < input_limit(2_000)
    assert input_limit(120_000_000) > 8 * 120_000_000  # a raw 16-bit RGBA photo always fits


def test_a_stream_longer_than_the_limit_stops_there() -> None:
    with pytest.raises(BlurcliError, match=r"<stdin>: more than .* --max-pixels admits"):
        read_stream(io.BytesIO(b"x" * 101), "<stdin>", 100)
    assert read_stream(io.BytesIO(b"x" * 100), "<stdin>", 100) == b"x" * 100


def test_a_closed_stream_is_named() -> None:
    with pytest.raises(BlurcliError, match="<stdin>: standard input is closed"):
        read_stream(None, "<stdin>")


def test_a_file_larger_than_the_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + b"\0" * 200)
    with pytest.raises(BlurcliError, match=r"big\.jpg: 0 MB, more than any photo --max-pixels admits"):
        read_bytes(big, limit=100)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_blur_refuses_a_character_device_in_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["blur", "/dev/zero", "-o", str(tmp_path / "o.png"), "--device", "cpu"])
    assert result.exit_code == 1
    assert "/dev/zero: a character device, not a photo file" in result.output
    assert not (tmp_path / "o.png").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_an_endless_pipe_given_as_a_path_stops_at_the_limit(tmp_path: Path) -> None:
    fifo = tmp_path / "endless.jpg"
    os.mkfifo(fifo)
    stop = threading.Event()

    def write_forever() -> None:
        try:
            with open(fifo, "wb") as pipe:
                while not stop.is_set():
                    pipe.write(b"\0" * (1 << 20))
        except (BrokenPipeError, OSError):
            pass

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    try:
        with pytest.raises(BlurcliError, match=r"endless.jpg: more than \d+ MB"):
            read_bytes(fifo, limit=input_limit(1))
    finally:
        stop.set()
        writer.join(timeout=10)


def test_blur_from_a_closed_stdin_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "blurcli", "blur", "-", "-o", str(tmp_path / "o.png"), "--device", "cpu"],
        capture_output=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.close(0),  # as `blurcli blur - <&-` in a shell
    )
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert lines[-1] == "error: <stdin>: standard input is closed", lines
    assert "internal error" not in done.stderr.decode()


def test_a_batch_admits_photos_only_while_they_fit_its_memory_budget(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2
    import numpy as np

    from blurcli.batch import Runner, RunOptions
    from blurcli.memory import BYTES_PER_PIXEL, MemoryBudget
    from blurcli.plan import plan_files
    from blurcli.render import BlurTask
    from blurcli.segment import new_segmenter

    for index in range(6):
        cv2.imwrite(str(tmp_path / f"p{index}.png"), np.full((30, 40, 3), 20 * index, np.uint8))
    one = 40 * 30 * BYTES_PER_PIXEL
    in_flight: list[int] = []
    take = MemoryBudget.take

    def counted(self: MemoryBudget, name: str, cost: int) -> None:
        take(self, name, cost)
        assert cost == one
        in_flight.append(len(self.costs))

    monkeypatch.setattr(MemoryBudget, "take", counted)
    segmenter = new_segmenter(str(tiny_weights), "cpu")
    options = RunOptions(batch_size=4, jobs=2, memory=2 * one)
    results = Runner(BlurTask(), segmenter, options).run(plan_files([str(tmp_path)], tmp_path / "out"))
    assert [r.status for r in results] == ["done"] * 6
    assert max(in_flight) == 2  # without the budget, batch + jobs = 6 would be read ahead
    in_flight.clear()
    Runner(BlurTask(), segmenter, RunOptions(batch_size=4, jobs=2, memory=1 << 30, overwrite=True)).run(
        plan_files([str(tmp_path)], tmp_path / "out")
    )
    assert max(in_flight) == 6


def test_a_photo_larger_than_the_budget_still_runs_alone() -> None:
    from blurcli.memory import MemoryBudget

    budget = MemoryBudget(limit=100)
    assert budget.fits(1_000)  # nothing in flight: it runs, alone
    budget.take("big", 1_000)
    assert not budget.fits(1)
    budget.give_back("big")
    assert budget.fits(60) and budget.used == 0
