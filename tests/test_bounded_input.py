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
from blurcli.photo import input_limit, read_bytes, read_stream

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
