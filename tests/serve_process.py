"""`blurcli serve` in a process of its own, on a free port of the loopback address: what
tests/test_serve_command.py and benchmarks/bench_serve.py start and stop (standard library only)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field


@dataclass
class ServeProcess:
    """A running `blurcli serve`: the process, the address its first line names, and the lines of
    stderr after that one, read as they come (so a full pipe never stalls it)."""

    process: subprocess.Popen
    address: str
    stderr: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        """Send `sig`; the exit code (see `wait`)."""
        self.process.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 120) -> int:
        """The exit code, once the process has ended and the rest of its stderr is read."""
        code = self.process.wait(timeout=timeout)
        if self.reader is not None:
            self.reader.join(timeout=timeout)
        return code


def start_serve(*args: str) -> ServeProcess:
    """`python -m blurcli serve --host 127.0.0.1 --port 0 ARGS`, once it says where it listens."""
    command = [sys.executable, "-m", "blurcli", "serve", "--host", "127.0.0.1", "--port", "0", *args]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r"listening on (http://127\.0\.0\.1:\d+) ", line)
    if found is None:
        process.kill()
        raise RuntimeError(f"blurcli serve did not start: {line}{process.stderr.read()}")
    served = ServeProcess(process, found.group(1))
    served.reader = threading.Thread(target=lambda: served.stderr.extend(process.stderr), daemon=True)
    served.reader.start()
    return served
