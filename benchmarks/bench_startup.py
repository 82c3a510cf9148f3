"""One photo in a cold process, as a shell loop or pipeline pays it, and the size of the install.

Times `blurcli blur photo.jpg -o out.jpg` from process start to exit (median of --runs), both as
`python -m blurcli` and as the `blurcli` console script installed beside this interpreter (what
users type; the ratio below uses it when it is there, and says which blurcli it runs), beside,
in the same run: a ten-line MediaPipe + OpenCV script doing the same job (selfie segmenter,
Gaussian blur, blend; when mediapipe is installed, here or in the interpreter --mediapipe-python
names), and `python -c "import torch"`, what every photo paid before blur ran on ONNX Runtime.
Then the installed size of an inference-only environment (`pip install .`, no torch): an
existing one (--venv), or one built from this checkout in a temporary folder (--build-venv).

    python benchmarks/bench_startup.py                                        # 5 runs each
    python benchmarks/bench_startup.py --mediapipe-python /tmp/mpenv/bin/python --build-venv
    python benchmarks/bench_startup.py --venv /path/to/inference-only-venv

Targets: blurcli's one-photo wall time no more than the MediaPipe script's; the inference-only
install under 400 MB.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import venv
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

from benchmarks.common import EXAMPLE, ROOT, argument_parser, median_ms

MEDIAPIPE_SCRIPT = """
import sys, cv2, numpy as np, mediapipe as mp
image = cv2.imread(sys.argv[1])
with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as selfie:
    mask = selfie.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).segmentation_mask
sigma = 0.02 * float(np.hypot(*image.shape[:2]))
blurred = cv2.GaussianBlur(image, (0, 0), sigma)
alpha = cv2.GaussianBlur(mask, (0, 0), 2)[..., None]
cv2.imwrite(sys.argv[2], (image * alpha + blurred * (1 - alpha)).astype(np.uint8))
"""


def cold_seconds(command: list[str], runs: int) -> float:
    """Median wall time of a fresh process running `command` (one untimed warm-up for the disk cache)."""
    run = partial(subprocess.run, command, check=True, capture_output=True)
    run()
    return median_ms(run, runs) / 1000


def console_script() -> Path | None:
    """The `blurcli` command installed beside this interpreter, or None."""
    script = Path(sys.executable).parent / "blurcli"
    return script if script.is_file() else None


def imported_from(scratch: Path) -> Path:
    """The blurcli package a console script of this interpreter imports: run from elsewhere than
    the repository root, which `python -m` puts first on the path."""
    code = "import blurcli; print(blurcli.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=scratch, capture_output=True, text=True, check=True
    )
    return Path(done.stdout.strip()).parent


def has_module(python: str, module: str) -> bool:
    done = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
    return done.returncode == 0


def folder_mb(folder: Path) -> float:
    """Bytes of the files under `folder`, in MB (what `du` counts, without block rounding)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def build_venv(folder: Path) -> Path:
    """A fresh virtual environment with this checkout installed as a user would (no extras)."""
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(ROOT)], check=True)
    return folder


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--photo", type=Path, default=EXAMPLE, help="the photo to blur (default: the example)"
    )
    parser.add_argument("--mediapipe-python", default=sys.executable, help="an interpreter with mediapipe")
    parser.add_argument("--venv", type=Path, help="an existing inference-only environment to measure")
    parser.add_argument(
        "--build-venv", action="store_true", help="build one from this checkout and measure it"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        print(f"one photo ({args.photo.name}), a cold process each time, median of {args.runs} runs:")
        blur_args = ["blur", str(args.photo), "-o", str(out / "b.jpg"), "--overwrite"]
        module = cold_seconds([sys.executable, "-m", "blurcli", *blur_args], args.runs)
        print(f"  python -m blurcli blur (ONNX Runtime): {module:.2f} s")
        script, ours, which = console_script(), module, "python -m blurcli"
        if script is not None:
            ours, which = cold_seconds([str(script), *blur_args], args.runs), "the console script"
            package = imported_from(out).resolve()
            elsewhere = not package.is_relative_to(ROOT)
            note = f"; it runs the blurcli in {package}, not this checkout!" if elsewhere else ""
            print(f"  blurcli blur, console script:          {ours:.2f} s ({script}{note})")
        else:
            print(f"  (no blurcli console script beside {sys.executable}: the ratio uses python -m)")
        if has_module(args.mediapipe_python, "mediapipe"):
            theirs_script = out / "mediapipe_blur.py"
            theirs_script.write_text(MEDIAPIPE_SCRIPT)
            command = [args.mediapipe_python, str(theirs_script), str(args.photo), str(out / "m.jpg")]
            theirs = cold_seconds(command, args.runs)
            verdict = "met" if ours <= theirs else "missed"
            print(f"  MediaPipe + OpenCV script:             {theirs:.2f} s")
            print(
                f"  ratio blurcli/MediaPipe: {ours / theirs:.2f}, blurcli as {which} (target <= 1: {verdict})"
            )
        else:
            print("  (mediapipe not installed: no comparison; see --mediapipe-python)")
        if has_module(sys.executable, "torch"):
            torch_import = cold_seconds([sys.executable, "-c", "import torch"], args.runs)
            print(
                f"  python -c 'import torch' alone:        {torch_import:.2f} s (what each photo paid before)"
            )

        folder = args.venv
        if folder is None and args.build_venv:
            folder = build_venv(out / "venv")
        if folder is not None:
            python = folder / "bin" / "python"
            size = folder_mb(folder)
            torch_there = "torch installed!" if has_module(str(python), "torch") else "no torch"
            verdict = "met" if size < 400 else "missed"
            print(f"inference-only install: {size:.0f} MB ({torch_there}; target < 400 MB: {verdict})")


if __name__ == "__main__":
    main()
