"""Photos per second through `blurcli serve` against `blurcli blur` on the same folder, latency,
the server's memory, and that no request fails or is lost, with concurrent clients.

Generates --images photo-like JPEGs (the example portrait re-framed, re-lit, with noise), then in
the same run:
  (a) `blurcli blur DIR -o OUT -j JOBS` in a fresh process (its batch time, from its summary; the
      whole command and its peak RSS beside it);
  (b) `blurcli serve --host 127.0.0.1 --port 0 --workers WORKERS` in a fresh process, warmed up
      with one request, then --clients threads, each on its own keep-alive connection, POST the
      folder's photos to /blur --rounds times over (at most --max-requests requests, and none
      started after --seconds). Every answer must be 200 and the very bytes (a) wrote for that
      photo; anything else counts as failed, a request with no answer as lost.
It prints photos/s of both and the ratio b/a, the latency percentiles of (b), the server's peak
RSS after the warm-up and after the load (Linux: /proc/PID/status VmHWM), and how it stopped
(SIGTERM: exit 0 expected). Only the loopback address is used.

    python benchmarks/bench_serve.py [--images 24] [--rounds 4] [--clients 8] [--workers 2] [--jobs 2]
        [--width 1280] [--height 720] [--seconds 120] [--max-requests 400] [--weights W]
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.bench_batch import make_folder
from benchmarks.common import QUALITY, add_weights, argument_parser, peak_rss, table_header, table_row
from tests.serve_process import start_serve

HOST = "127.0.0.1"  # the loopback address only (start_serve listens there)


@dataclass
class Load:
    """What the clients saw: each answer's latency, and the requests failed, lost or never sent."""

    latencies: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    unsent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_blur(folder: Path, out: Path, jobs: int, model: list[str]) -> tuple[float, float, float]:
    """(a): `blurcli blur` on the folder; (batch seconds from its summary, whole seconds, peak RSS MB)."""
    command = [sys.executable, "-m", "blurcli", "blur", str(folder), "-o", str(out), "-j", str(jobs), *model]
    seconds, megabytes, done = peak_rss(command)
    if done.returncode != 0:
        raise SystemExit(f"blurcli blur failed ({done.returncode}): {done.stderr}")
    reported = re.search(r"in ([\d.]+) s", done.stderr)
    return (float(reported.group(1)) if reported else seconds), seconds, megabytes


def peak_mb(pid: int) -> float | None:
    """The peak RSS of a live process in MB (Linux's VmHWM), or None where /proc cannot say."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) / 1024 if found else None


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    """POST /blur on a kept-alive connection; (status, answer)."""
    connection.request("POST", "/blur", body=body, headers={"Content-Type": "image/jpeg"})
    response = connection.getresponse()
    return response.status, response.read()


def client(port: int, work: queue.Queue, photos: dict, expected: dict, load: Load, deadline: float) -> None:
    """One client: takes photos from `work` until it is empty (or the deadline passes), checks each
    answer against the bytes `blurcli blur` wrote, on one keep-alive connection (re-opened if lost)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=300)
    while True:
        try:
            name = work.get_nowait()
        except queue.Empty:
            break
        if time.monotonic() > deadline:
            with load.lock:
                load.unsent += 1
            continue
        started = time.perf_counter()
        try:
            status, answer = post(connection, photos[name])
        except (OSError, http.client.HTTPException) as error:
            with load.lock:
                load.lost.append(f"{name}: {type(error).__name__}: {error}")
            connection.close()
            connection = http.client.HTTPConnection(HOST, port, timeout=300)
            continue
        with load.lock:
            load.latencies.append(time.perf_counter() - started)
            if status != 200 or answer != expected[name]:
                load.failed.append(f"{name}: HTTP {status}, {len(answer)} bytes")
    connection.close()


def run_load(port: int, photos: dict, expected: dict, args: argparse.Namespace) -> tuple[Load, float]:
    """(b)'s load: --clients threads over --rounds rounds of the folder; (what they saw, seconds)."""
    names = [name for _ in range(args.rounds) for name in sorted(photos)][: args.max_requests]
    work: queue.Queue = queue.Queue()
    for name in names:
        work.put(name)
    load = Load()
    deadline = time.monotonic() + args.seconds
    threads = [
        threading.Thread(target=client, args=(port, work, photos, expected, load, deadline))
        for _ in range(args.clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load, time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank), in ms."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argument_parser(__doc__)
    cores = os.cpu_count() or 1
    parser.add_argument("--images", type=int, default=24, help="photos in the folder")
    parser.add_argument("--width", type=int, default=1280, help="their width")
    parser.add_argument("--height", type=int, default=720, help="their height")
    parser.add_argument("--rounds", type=int, default=4, help="times the clients send the folder")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=min(4, cores), help="blurcli serve --workers")
    parser.add_argument("--jobs", type=int, default=min(8, cores), help="blurcli blur -j")
    parser.add_argument("--seconds", type=float, default=120.0, help="no request starts after this")
    parser.add_argument("--max-requests", type=int, default=400, help="requests at most")
    add_weights(parser)
    return parser.parse_args()


def report(args: argparse.Namespace, blur: tuple[float, float, float], served: Served) -> None:
    """The table, the latencies, the memory, how the server stopped."""
    batch_s, whole_s, blur_mb = blur
    load = served.load
    answered = len(load.latencies)
    blur_rate, serve_rate = args.images / batch_s, answered / served.seconds
    print(table_header("path", "requests", "failed", "lost", "seconds", "photos/s", "ratio to blur"))
    print(
        table_row(
            "blurcli blur (batch, same run)",
            args.images,
            0,
            "-",
            f"{batch_s:.2f}",
            f"{blur_rate:.1f}",
            "1.00",
        )
    )
    print(
        table_row(
            f"blurcli serve, {args.clients} clients",
            answered + len(load.lost),
            len(load.failed),
            len(load.lost),
            f"{served.seconds:.2f}",
            f"{serve_rate:.1f}",
            f"{serve_rate / blur_rate:.2f}",
        )
    )
    print(f"blurcli blur, whole command (start-up and model load included): {whole_s:.2f} s")
    if load.unsent:
        print(f"{load.unsent} requests not sent: --seconds {args.seconds:g} passed")
    if load.latencies:
        cuts = [f"p{int(share * 100)} {percentile(load.latencies, share):.0f}" for share in (0.5, 0.9, 0.99)]
        print(f"latency (ms): {', '.join(cuts)}, max {1000 * max(load.latencies):.0f}")
    for line in (load.failed + load.lost)[:5]:
        print(f"  {line}")
    if served.warm_mb is not None and served.load_mb is not None:
        print(
            f"peak RSS: blurcli serve {served.warm_mb:.0f} MB after the warm-up, {served.load_mb:.0f} MB "
            f"after the load; blurcli blur {blur_mb:.0f} MB"
        )
    print(f"server stopped by SIGTERM: exit {served.exit_code}")


@dataclass
class Served:
    """(b): what the clients saw, how long it took, the server's peak RSS, its exit code."""

    load: Load
    seconds: float
    warm_mb: float | None
    load_mb: float | None
    exit_code: int


def serve_load(args: argparse.Namespace, photos: dict, expected: dict, model: list[str]) -> Served:
    """(b): start the server, warm it up with one photo, run the load, stop it with SIGTERM."""
    server = start_serve("--workers", str(args.workers), *model)
    try:
        first = next(iter(photos))
        warm = http.client.HTTPConnection(HOST, server.port, timeout=300)
        if post(warm, photos[first]) != (200, expected[first]):
            raise SystemExit("the warm-up answer is not the bytes blurcli blur wrote")
        warm.close()
        warm_mb = peak_mb(server.process.pid)
        load, seconds = run_load(server.port, photos, expected, args)
        load_mb = peak_mb(server.process.pid)
    finally:
        code = server.stop(signal.SIGTERM)
    return Served(load, seconds, warm_mb, load_mb, code)


def main() -> None:
    args = parse_args()
    model = ["--weights", args.weights] if args.weights else []
    work = Path(tempfile.mkdtemp(prefix="blurcli-bench-serve-"))
    try:
        folder = work / "in"
        make_folder(folder, args.images, 0, (args.width, args.height))
        photos = {path.name: path.read_bytes() for path in sorted(folder.glob("*.jpg"))}
        blur = run_blur(folder, work / "out", args.jobs, model)
        expected = {name: (work / "out" / f"{Path(name).stem}_blurred.jpg").read_bytes() for name in photos}
        print(f"{args.images} JPEGs of {args.width}x{args.height}, quality {QUALITY}, on {HOST}: ", end="")
        print(f"blurcli serve --workers {args.workers}, blurcli blur -j {args.jobs}, {os.cpu_count()} cores")
        report(args, blur, serve_load(args, photos, expected, model))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
