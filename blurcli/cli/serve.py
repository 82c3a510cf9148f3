"""`blurcli serve`: blur and predict over HTTP, with a page to try them (the serve extra)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from blurcli.cli.options import DeviceOption, MaxPixelsOption, QuietOption, WeightsOption
from blurcli.cli.output import import_extra, load_segmenter, stderr_console
from blurcli.limits import DEFAULT_MAX_PIXELS

HostOption = Annotated[
    str, typer.Option("--host", help="Address to listen on; 0.0.0.0 opens the server to the network.")
]
PortOption = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")
]
ServeWorkersOption = Annotated[
    int, typer.Option("--workers", min=1, help="Photos processed at once (threads sharing the model).")
]
MaxBytesOption = Annotated[
    int | None,
    typer.Option(
        "--max-bytes",
        min=1,
        help="Refuse request bodies larger than this (default: what --max-pixels admits).",
        show_default=False,
    ),
]


def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 7000,
    workers: ServeWorkersOption = min(4, os.cpu_count() or 1),
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    max_bytes: MaxBytesOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Serve blur and predict over HTTP (POST /blur, /predict; GET / for a page) until Ctrl-C."""
    server, listening = import_extra("serve", "serve", "blurcli.serve", "blurcli.listening")
    console = stderr_console(quiet)
    sock = listening.listen(host, port)
    try:
        default, subjects = server.load_subjects(
            weights, lambda name, subject: load_segmenter(name, device, console, subject)
        )
        app = server.create_app(
            default, subjects=subjects, workers=workers, max_pixels=max_pixels, max_bytes=max_bytes
        )
        console.print(
            f"blurcli serve: listening on {listening.url_of(sock)} (Ctrl-C stops; the page is at /)",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        listening.run_server(app, sock)
    finally:
        sock.close()
    console.print("blurcli serve: stopped, the requests in flight answered", highlight=False, markup=False)
