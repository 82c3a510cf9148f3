"""What the tests of `blurcli serve` share: Starlette's TestClient, the example photo, the CLI's
output for comparison, the shape of a refusal, photos whose headers lie about their size.
Imported only after `pytest.importorskip("fastapi")` (the serve extra)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from blurcli.cli import app as cli_app
from blurcli.encode import encode_image

with warnings.catch_warnings():  # Starlette prefers httpx2 (Python 3.11 and later); httpx works
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = (ROOT / "examples" / "astronaut.jpg").read_bytes()

__all__ = ["ASTRONAUT", "ROOT", "TestClient", "cli_output", "error_of", "jpeg_declaring", "png_declaring"]


def cli_output(command: str, photo: bytes, weights: Path | None, *flags: str) -> bytes:
    """What `blurcli COMMAND - [-w WEIGHTS] FLAGS < photo` writes to stdout, on the CPU."""
    model = ["-w", str(weights)] if weights is not None else []
    args = [command, "-", *model, "--device", "cpu", "-q", *flags]
    result = CliRunner().invoke(cli_app, args, input=photo)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def error_of(response: Any) -> str:
    """The one-line reason of a refusal, checking its shape: {"error": "..."} and nothing else."""
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header says it is width x height (a decompression bomb's header)."""
    data = bytearray(encode_image(np.zeros((8, 8, 3), np.uint8), ".png"))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header says it is width x height."""
    data = bytearray(encode_image(np.zeros((8, 8, 3), np.uint8), ".jpg"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)
