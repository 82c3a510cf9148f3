"""`blurcli serve` as a real process: it says where it listens, Ctrl-C and SIGTERM finish the
request in flight and exit 0, a port in use and a missing extra are one line each."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi", reason='the serve extra: pip install "blurcli[serve]"')

from tests.serve_process import start_serve
from tests.serving import ASTRONAUT, cli_output


def send_slowly(address: str, body: bytes, started: threading.Event) -> bytes:
    """POST /blur with the body's first half, wait until told, then the rest; the raw answer."""
    host, port = address.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        head = f"POST /blur HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode() + body[: len(body) // 2])
        started.wait(timeout=60)
        time.sleep(0.5)  # the signal has arrived
        sock.sendall(body[len(body) // 2 :])
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    return answer


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_request_in_flight_and_exits_0(serve_models: dict, stop: int) -> None:
    server = start_serve("-w", str(serve_models["tiny"]))
    try:
        sent, answers = threading.Event(), []
        talker = threading.Thread(target=lambda: answers.append(send_slowly(server.address, ASTRONAUT, sent)))
        talker.start()
        time.sleep(1.0)  # the request's head and half its body are in
        server.process.send_signal(stop)
        sent.set()
        talker.join(timeout=60)
        assert server.wait() == 0
    finally:
        server.process.kill()
    assert answers and answers[0].startswith(b"HTTP/1.1 200 OK")
    assert answers[0].split(b"\r\n\r\n", 1)[1] == cli_output("blur", ASTRONAUT, serve_models["tiny"])
    assert server.stderr == ["blurcli serve: stopped, the requests in flight answered\n"]


def test_a_port_in_use_is_one_line_and_exit_1(serve_models: dict) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "blurcli", "serve", "--port", str(port), "-w", str(serve_models["tiny"])],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{port} (Address already in use)\n"


def test_without_the_serve_extra_serve_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"  # as if the serve extra were not installed
        "from blurcli.cli import main; sys.argv[1:] = ['serve']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == 'error: blurcli serve needs fastapi: pip install "blurcli[serve]"\n'
