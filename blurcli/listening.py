"""`blurcli serve`'s process: a socket listening on the address asked for, uvicorn serving the app
on it until Ctrl-C or SIGTERM, which stop new connections, finish the requests in flight and
return quietly (exit 0, where blurcli's own handlers would make them 130 and 143)."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI

from blurcli.errors import BlurcliError, UsageError

MAX_CONNECTIONS = 64  # connections at once; uvicorn answers more with 503 (memory stays bounded)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (port 0: any free one), or one line saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise UsageError(f"--host {host}: {error.strerror or error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)  # connections wait in the backlog until the app has started
    except OSError as error:
        sock.close()
        raise BlurcliError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """'http://127.0.0.1:7000' for a listening socket ('http://[::1]:7000' for IPv6)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_server(app: FastAPI, sock: socket.socket) -> None:
    """Serve `app` on a listening socket (`listen`) with uvicorn until Ctrl-C or SIGTERM, which
    stop new connections, finish the requests in flight and return (quietly: no exception)."""
    import uvicorn

    # python-multipart logs a warning for each malformed upload; its request is answered in JSON.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", limit_concurrency=MAX_CONNECTIONS
    )
    server = uvicorn.Server(config)
    with _stopping(server):
        server.run(sockets=[sock])


@contextmanager
def _stopping(server: Any) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop `server` gracefully, whenever they come. uvicorn catches them while
    it serves, and once it has finished raises the signal again for the handler it found: this
    one, which then has nothing left to do (blurcli's own would turn it into exit 130 or 143)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return

    def stop(signum: int, frame: Any) -> None:
        if not server.should_exit:
            server.handle_exit(signum, frame)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
