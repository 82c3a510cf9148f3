"""Images per second blurring one folder: the CLI's engine in one process against Ray Data with 1
and 2 workers, in one run, on a local Ray cluster.

Generates photo-like JPEGs (the example portrait, re-framed, re-lit and with sensor noise), then
blurs the folder, each run into its own output folder:
  (a) the CLI's engine (`process.blur_files`, what `blurcli blur DIR -o OUT` runs) in this process,
      with --jobs threads beside the model; the model is loaded before the clock starts;
  (b) `ray_data.process_with_ray` (what `blurcli blur DIR -o OUT --ray local` runs) on a Ray cluster
      started once in this process (its start reported apart), with each --workers count; each
      worker gets --jobs threads and a model on one thread (RayOptions.cpus). A run's time includes
      starting its workers and their loading the model, which Ray Data does per run.
For each it prints the seconds and images/s over the whole run and whether the outputs are
byte-identical to (a)'s; for Ray also the seconds of a run over one photo per worker, about what
any run pays before its first photo (a noisy figure: a larger --images shows the pace better).

    python benchmarks/bench_ray.py [--images 48] [--width 640] [--height 480] [--workers 1 2]
        [--jobs N] [--weights W]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.bench_batch import make_folder
from benchmarks.common import add_weights, argument_parser, table_header, table_row, timed
from blurcli.batch import RunOptions
from blurcli.process import blur_files
from blurcli.ray_data import RayOptions, import_ray, process_with_ray
from blurcli.segment import new_segmenter


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by its path below it."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def row(name: str, seconds: float, count: int, fixed: float | None, same: str) -> str:
    """A table row: seconds, images/s, the seconds of a one-photo-per-worker run, same bytes."""
    cost = "-" if fixed is None else f"{fixed:.2f}"
    return table_row(name, f"{seconds:.2f}", f"{count / seconds:.1f}", cost, same)


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argument_parser(__doc__)
    parser.add_argument("--images", type=int, default=48, help="photos in the folder")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to time")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="threads beside the model, per process or worker (default: the CLI's -j)",
    )
    add_weights(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="blurcli-bench-ray-"))
    try:
        folder = work / "in"
        make_folder(folder, args.images, 0, (args.width, args.height))
        size = f"{args.width}x{args.height}"
        print(f"{args.images} JPEGs of {size}, {cores} cores, {args.jobs} thread(s) beside each model")
        engine = (
            f"1 per pass, up to {min(2, args.jobs)} passes at once"
            if args.jobs > 1 and args.images > 1
            else "ONNX Runtime's default (one per physical core)"
        )
        cpus = max(1, int(RayOptions().cpus))
        print(f"model threads: the CLI engine {engine} (the batch engine's rule), each Ray worker {cpus}")
        load_s, segmenter = timed(lambda: new_segmenter(args.weights))
        options = RunOptions(jobs=args.jobs)
        cli_s, _ = timed(lambda: blur_files([folder], work / "cli", segmenter=segmenter, options=options))
        reference = files(work / "cli")
        lines = [row(f"CLI engine, 1 process (+{load_s:.2f} s model load)", cli_s, args.images, None, "-")]
        ray = import_ray()
        init = {
            "num_cpus": cores,
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "ERROR",
        }
        start_s, _ = timed(lambda: ray.init(**init))
        for workers in args.workers:
            cluster = RayOptions(workers=workers, quiet=True)

            def run(inputs: list[Path], out: Path, cluster: RayOptions = cluster) -> float:
                """Seconds of one Ray run over `inputs` into `out`."""
                return timed(
                    lambda: process_with_ray(
                        inputs, out, weights=args.weights, options=options, cluster=cluster
                    )
                )[0]

            # About the fixed cost of a run (workers started, model loaded): one photo per worker.
            fixed = run(sorted(folder.iterdir())[:workers], work / f"fixed{workers}")
            out = work / f"ray{workers}"
            seconds = run([folder], out)
            same = "yes" if files(out) == reference else "NO"
            name = f"Ray Data, {workers} worker{'s' * (workers != 1)}"
            lines.append(row(name, seconds, args.images, fixed, same))
        ray.shutdown()
        print(f"local Ray cluster started in {start_s:.2f} s (not counted below)")
        header = ("run", "seconds", "images/s", "one photo per worker (s)", "same bytes as the CLI")
        print(table_header(*header))
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
