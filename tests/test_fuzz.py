"""Damaged image files: blurcli either reads a sane photo or fails that one file in one clean line.

Small valid JPEG, PNG, WebP and TIFF images (tests/image_mutations.py) are truncated, cut, bit
flipped, overwritten, given stray bytes, damaged in their headers, structural fields and metadata,
and have chunks dropped or repeated. Each one must give `decode_photo` a Photo of sane shape and
type, or a one-line BlurcliError naming the file; `blur_files` and `predict_files` must report it
'done' or 'failed' (one line naming the file) leaving no output or temp file behind and the input
untouched.

Each fuzz run is made in a fresh Python process that reports its own peak RSS: one test checks the
run's verdict, another that the run's peak memory stayed bounded.

Runs are reproducible (derandomize=True); benchmarks/fuzz_images.py runs the same strategies for
thousands of inputs and counts what the codecs print on stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from blurcli import RunOptions, blur_files, new_segmenter, predict_files
from blurcli.decode import decode_photo
from blurcli.errors import BlurcliError
from blurcli.pixels import Photo
from blurcli.segment import Segmenter
from tests.image_mutations import (
    FORMATS,
    Mutant,
    apply,
    base_image,
    error_problem,
    extension,
    files_problem,
    jpeg_scan_ranges,
    mutants,
    photo_problem,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "fuzz.jpg"  # the name decode_photo is given, whatever the format
# A damaged header may claim a huge image; under this limit it is refused before anything is
# allocated, and nothing the fuzzer makes legitimately comes near it (the images are 64x48 at most).
MAX_PIXELS = 4_000_000
# Peak RSS growth allowed over one fuzz run. The inputs are at most 64x48 and MAX_PIXELS caps what a
# header can make the decoder allocate at 4 MP x 4 channels x 2 bytes = 32 MB (plus OpenCV's and
# blurcli's copies), so a few tens of MB is normal; 500 MB is far above that and far below what an
# allocation that slips past the limit costs (a JPEG header up to OpenCV's own ceiling of 1 GP:
# 3 GB; a PNG chunk length that OpenCV allocates as declared: up to 4 GiB).
# ru_maxrss is a process's high-water mark: in the test process an earlier test may have raised it
# above anything a fuzz run reaches, and no growth would show. So each run is made in a fresh process
# (fuzz_in_fresh_process), which reads its own peak after its warm-up and after the run.
MAX_RSS_GROWTH_MB = 500
DEADLINE_MS = 2000  # per input; decoding these takes milliseconds, blur + predict well under 0.5 s

FUZZ = settings(
    derandomize=True,  # the same inputs on every run and every machine: CI is reproducible
    database=None,
    deadline=DEADLINE_MS,
    # No shrinking: a failing input may cost seconds and gigabytes (a bomb that got past the pixel
    # limit), and shrinking replays it hundreds of times (minutes). A Mutant's repr rebuilds it.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_sane_photo(photo: Photo) -> None:
    assert (problem := photo_problem(photo, MAX_PIXELS)) is None, problem


def assert_one_line_error(message: str, source: str) -> None:
    assert (problem := error_problem(message, source)) is None, problem


@pytest.mark.parametrize("fmt", FORMATS)
def test_base_images_decode(fmt: str) -> None:
    """The fuzzer starts from valid images: each decodes whole, at its size."""
    photo = decode_photo(base_image(fmt, 40, 30, 0), f"ok{extension(fmt)}", MAX_PIXELS)
    assert_sane_photo(photo)
    assert sorted(photo.pixels.shape[:2]) == [30, 40]  # jpeg-exif and png-meta are turned by EXIF


@settings(FUZZ, max_examples=2000)
@given(mutants())
def _decode_property(mutant: Mutant) -> None:
    try:
        photo = decode_photo(mutant.data, SOURCE, max_pixels=MAX_PIXELS)
    except BlurcliError as error:
        assert_one_line_error(str(error), SOURCE)
    else:
        assert_sane_photo(photo)


# Run in the fresh process: import a workload from this module, call it (imports and warm-up: the
# peak they leave is the baseline), then run the fuzz run it returns between two reads of the peak.
MEASURED = """
import sys
from tests.image_mutations import peak_rss_mb
from tests.test_fuzz import {workload} as workload
run = workload(*sys.argv[1:])
before = peak_rss_mb()
try:
    run()
finally:
    print(f"peak RSS {{before:.1f}} MB -> {{peak_rss_mb():.1f}} MB")
"""


@dataclass(frozen=True)
class FuzzRun:
    """What a fuzz run in a fresh process gave: whether every input passed, its stdout and stderr
    (hypothesis's falsifying example and traceback, where one failed), its peak RSS growth."""

    passed: bool
    report: str
    growth_mb: float


def fuzz_in_fresh_process(workload: str, *args: object, home: Path) -> FuzzRun:
    """Run `workload(*args)` of this module, and the fuzz run it returns, in a fresh Python process
    (BLURCLI_HOME=home); that process reports its own peak RSS before and after the run."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURED.format(workload=workload), *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "BLURCLI_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = done.stdout + done.stderr
    peaks = re.search(r"peak RSS (\S+) MB -> (\S+) MB", done.stdout)
    assert peaks is not None, report
    return FuzzRun(done.returncode == 0, report, float(peaks[2]) - float(peaks[1]))


def decode_run() -> Callable[[], None]:
    """The decode fuzz run, once each base format has been decoded (the codecs are warm)."""
    for fmt in FORMATS:
        decode_photo(base_image(fmt, 64, 48, 0), f"warm{extension(fmt)}", MAX_PIXELS)
    return _decode_property


@pytest.fixture(scope="module")
def decode_fuzz(tmp_path_factory: pytest.TempPathFactory) -> FuzzRun:
    return fuzz_in_fresh_process("decode_run", home=tmp_path_factory.mktemp("home"))


def test_damaged_images_decode_or_fail_in_one_line(decode_fuzz: FuzzRun) -> None:
    assert decode_fuzz.passed, decode_fuzz.report


def test_damaged_images_do_not_grow_peak_memory_past_the_bound(decode_fuzz: FuzzRun) -> None:
    assert decode_fuzz.growth_mb < MAX_RSS_GROWTH_MB, f"{decode_fuzz.growth_mb:.0f} MB\n{decode_fuzz.report}"


def warmed_segmenter(weights: Path, folder: Path) -> Segmenter:
    """The tiny untrained model, warmed up on a valid photo so no input pays for the first pass."""
    segmenter = new_segmenter(str(weights), "cpu")
    (folder / "ok.png").write_bytes(base_image("png-rgb8", 64, 48, 0))
    results = blur_files([folder / "ok.png"], folder / "out", segmenter=segmenter)
    assert [result.status for result in results] == ["done"], results
    return segmenter


def check_files(mutant: Mutant, segmenter: Segmenter, folder: Path) -> None:
    data = mutant.data
    source = folder / f"fuzz{mutant.extension}"
    source.write_bytes(data)
    options = RunOptions(max_pixels=MAX_PIXELS, jobs=1)
    for name, run in (("blur", blur_files), ("predict", predict_files)):
        out = folder / f"out-{name}"
        results = run([source], out, segmenter=segmenter, options=options)
        assert (problem := files_problem(results, source, out, data)) is None, f"{name}: {problem}"


FILE_RUNS: dict[str, tuple[dict[str, list[str]], int]] = {  # name: (mutants' arguments, examples)
    "any damage": ({}, 300),
    # Photos whose EXIF or ICC profile is damaged inside a well-formed chunk decode, and
    # blurcli carries the metadata to its output: the encoder is where they fail, if anywhere.
    "damaged metadata": ({"formats": ["png-meta", "jpeg-exif"], "kinds": ["metadata"]}, 60),
}


def files_run(name: str, weights: str, folder: str) -> Callable[[], None]:
    """The files fuzz run FILE_RUNS[name], once the model is loaded and warmed up."""
    options, examples = FILE_RUNS[name]
    segmenter = warmed_segmenter(Path(weights), Path(folder))

    @settings(FUZZ, max_examples=examples)
    @given(mutants(**options))
    def files_property(mutant: Mutant) -> None:
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            check_files(mutant, segmenter, Path(scratch))

    return files_property


@pytest.fixture(scope="module")
def tiny_onnx(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported once: the fresh processes start no torch and export nothing."""
    from blurcli.export import export_onnx

    path = tmp_path_factory.mktemp("weights") / "tiny.onnx"
    export_onnx(tiny_weights, path)
    return path


@pytest.fixture(scope="module", params=list(FILE_RUNS))
def files_fuzz(
    request: pytest.FixtureRequest, tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory
) -> FuzzRun:
    folder, home = tmp_path_factory.mktemp("fuzz-files"), tmp_path_factory.mktemp("home")
    return fuzz_in_fresh_process("files_run", request.param, tiny_onnx, folder, home=home)


def test_damaged_files_are_done_or_fail_cleanly(files_fuzz: FuzzRun) -> None:
    assert files_fuzz.passed, files_fuzz.report


def test_damaged_files_do_not_grow_peak_memory_past_the_bound(files_fuzz: FuzzRun) -> None:
    assert files_fuzz.growth_mb < MAX_RSS_GROWTH_MB, f"{files_fuzz.growth_mb:.0f} MB\n{files_fuzz.report}"


def damaged_mid_scan(fmt: str) -> bytes:
    """A JPEG whose entropy-coded data is damaged half-way: two bytes there become a stray RST3
    marker (FF D3), as a flipped bit next to a 0xFF byte leaves it; SOS, the rest of the scan and EOI
    are intact, so only the decoder can tell. OpenCV decodes it anyway (baseline: every block after
    the damage grey; progressive and restart-marked: wrong or grey blocks) and libjpeg prints
    'Corrupt JPEG data: premature end of data segment' on stderr."""
    data = base_image(fmt, 64, 48, 0)
    start, end = jpeg_scan_ranges(data)[0]
    middle = (start + end) // 2
    assert data.endswith(b"\xff\xd9") and start < middle < middle + 2 < end <= len(data) - 2
    return apply(data, [("set", middle, b"\xff\xd3")])


@pytest.mark.parametrize("fmt", ["jpeg", "jpeg-progressive", "jpeg-grey-rst"])
def test_jpeg_damaged_mid_scan_fails(fmt: str) -> None:
    with pytest.raises(BlurcliError, match=r"(?i)corrupt") as raised:
        decode_photo(damaged_mid_scan(fmt), SOURCE)
    assert_one_line_error(str(raised.value), SOURCE)


def test_fuzz_benchmark_runs(tiny_weights: Path, tmp_path: Path) -> None:
    """benchmarks/fuzz_images.py, as a user runs it, on a few inputs (its smoke test)."""
    done = subprocess.run(
        [
            *(sys.executable, "benchmarks/fuzz_images.py", "--examples", "30", "--seed", "3"),
            *("--save", tmp_path, "--files-every", "15", "--weights", tiny_weights),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "30 damaged images (seed 3" in done.stdout
    assert "| format | inputs | decoded |" in done.stdout and "| mutation | inputs |" in done.stdout
    assert "blur_files / predict_files:" in done.stdout
    assert not (tmp_path / "current.py").exists()
