"""Damaged image files: blurcli either reads a sane photo or fails that one file in one clean line.

Small valid JPEG, PNG, WebP and TIFF images (tests/image_mutations.py) are truncated, cut, bit
flipped, overwritten, given stray bytes, damaged in their headers, structural fields and metadata,
and have chunks dropped or repeated. Each one must give `decode_photo` a Photo of sane shape and
type, or a one-line BlurcliError naming the file; `blur_files` and `predict_files` must report it
'done' or 'failed' (one line naming the file) leaving no output or temp file behind and the input
untouched.

Runs are reproducible (derandomize=True); benchmarks/fuzz_images.py runs the same strategies for
thousands of inputs and counts what the codecs print on stderr.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
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
    peak_rss_mb,
    photo_problem,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "fuzz.jpg"  # the name decode_photo is given, whatever the format
# A damaged header may claim a huge image; under this limit it is refused before anything is
# allocated, and nothing the fuzzer makes legitimately comes near it (the images are 64x48 at most).
MAX_PIXELS = 4_000_000
# Peak RSS growth allowed over one fuzz test. The inputs are at most 64x48 and MAX_PIXELS caps what a
# header can make the decoder allocate at 4 MP x 4 channels x 2 bytes = 32 MB (plus OpenCV's and
# blurcli's copies), so a few tens of MB is normal; 500 MB is far above that and far below what an
# allocation that slips past the limit costs (a JPEG header up to OpenCV's own ceiling of 1 GP:
# 3 GB; a PNG chunk length that OpenCV allocates as declared: up to 4 GiB).
# ru_maxrss is the process's high-water mark, so the growth is measured against the highest peak of
# any earlier test in the session: run this file alone for an exact figure.
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


def test_damaged_images_decode_or_fail_in_one_line() -> None:
    before = peak_rss_mb()
    _decode_property()
    assert peak_rss_mb() - before < MAX_RSS_GROWTH_MB


@pytest.fixture(scope="module")
def segmenter(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Segmenter:
    """The tiny untrained model, warmed up on a valid photo so no input pays for the first pass."""
    segmenter = new_segmenter(str(tiny_weights), "cpu")
    folder = tmp_path_factory.mktemp("warm-up")
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


@pytest.mark.parametrize(
    ("strategy", "examples"),
    [
        (mutants(), 300),
        # Photos whose EXIF or ICC profile is damaged inside a well-formed chunk decode, and
        # blurcli carries the metadata to its output: the encoder is where they fail, if anywhere.
        (mutants(formats=["png-meta", "jpeg-exif"], kinds=["metadata"]), 60),
    ],
    ids=["any damage", "damaged metadata"],
)
def test_damaged_files_are_done_or_fail_cleanly(
    segmenter: Segmenter, tmp_path_factory: pytest.TempPathFactory, strategy: object, examples: int
) -> None:
    base = tmp_path_factory.mktemp("fuzz-files")

    @settings(FUZZ, max_examples=examples)
    @given(strategy)
    def files_property(mutant: Mutant) -> None:
        with tempfile.TemporaryDirectory(dir=base) as folder:
            check_files(mutant, segmenter, Path(folder))

    before = peak_rss_mb()
    files_property()
    assert peak_rss_mb() - before < MAX_RSS_GROWTH_MB


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
