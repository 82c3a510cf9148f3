"""The batch runner and output planning as library calls: order, mirroring, interruption, resuming."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blurcli.batch import Runner, RunOptions
from blurcli.errors import UsageError
from blurcli.inputs import find_inputs
from blurcli.photo import Photo, read_photo, write_image
from blurcli.plan import plan_jobs
from blurcli.refine import RefineOptions, enlarge_mask, grey_guide
from blurcli.render import BlurTask, Mask, Rendered, render_blur
from blurcli.segment import new_segmenter


def _photos(folder: Path, count: int, size: int = 48) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"p{index:02d}.png"
        write_image(path, rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_plan_mirrors_folders_and_keeps_loose_files_flat(tmp_path: Path) -> None:
    (tmp_path / "in" / "x").mkdir(parents=True)
    for name in ("in/a.jpg", "in/x/b.png", "loose.jpg"):
        write_image(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    inputs = find_inputs([str(tmp_path / "in"), str(tmp_path / "loose.jpg")], recursive=True)
    jobs = plan_jobs(inputs, tmp_path / "out", "_blurred", "png")
    targets = [job.target.relative_to(tmp_path / "out").as_posix() for job in jobs]
    assert targets == ["a_blurred.png", "x/b_blurred.png", "loose_blurred.png"]
    assert {job.format for job in jobs} == {".png"}


def test_plan_refuses_two_inputs_sharing_an_output(tmp_path: Path) -> None:
    for name in ("one/a.jpg", "two/a.jpg"):
        write_image(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    inputs = find_inputs([str(tmp_path / "one" / "a.jpg"), str(tmp_path / "two" / "a.jpg")])
    with pytest.raises(UsageError, match="would both be written"):
        plan_jobs(inputs, tmp_path / "out", "_blurred")


def test_plan_refuses_one_output_file_for_many_inputs(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg"):
        write_image(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UsageError, match="names one file, but there are 2 inputs"):
        plan_jobs(find_inputs([str(tmp_path)]), tmp_path / "out.jpg", "_blurred")


def test_plan_refuses_to_write_over_an_input(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "a_blurred.png", np.zeros((8, 8, 3), np.uint8))
    inputs = find_inputs([str(tmp_path / "a.png"), str(tmp_path / "a_blurred.png")])
    with pytest.raises(UsageError, match="refusing to overwrite an input"):
        plan_jobs(inputs, None, "_blurred")


def test_find_inputs_skips_the_output_folder_inside_the_input_folder(tmp_path: Path) -> None:
    _photos(tmp_path, 2)
    _photos(tmp_path / "out", 1)
    found = find_inputs([str(tmp_path)], recursive=True, skip_under=tmp_path / "out")
    assert [path.name for path, _ in found] == ["p00.png", "p01.png"]


def test_the_same_file_twice_is_processed_once(tmp_path: Path) -> None:
    (path,) = _photos(tmp_path, 1)
    assert len(find_inputs([str(path), str(tmp_path / "." / path.name), str(tmp_path)])) == 1


def test_runner_reports_each_file_once_in_batches(tmp_path: Path, tiny_weights: Path) -> None:
    paths = _photos(tmp_path, 7)
    jobs = plan_jobs(find_inputs([str(tmp_path)]), tmp_path / "out", "_b")
    segmenter = new_segmenter(str(tiny_weights), "cpu")
    runner = Runner(BlurTask(), segmenter, RunOptions(batch_size=3, jobs=2))
    results = runner.run(jobs)
    assert sorted(r.input for r in results) == sorted(str(p) for p in paths)
    assert {r.status for r in results} == {"done"}
    assert all(r.ms > 0 for r in results)


def test_interrupted_batch_leaves_whole_files_and_a_rerun_finishes(
    tmp_path: Path, tiny_weights: Path
) -> None:
    _photos(tmp_path, 6)
    out = tmp_path / "out"
    jobs = plan_jobs(find_inputs([str(tmp_path)]), out, "_b")
    segmenter = new_segmenter(str(tiny_weights), "cpu")
    calls = []

    class Interrupted(BlurTask):
        def __call__(self, photo: Photo, mask: Mask) -> Rendered:
            calls.append(photo)
            if len(calls) == 3:
                raise KeyboardInterrupt  # as if Ctrl-C landed while this file was being finished
            return super().__call__(photo, mask)

    with pytest.raises(KeyboardInterrupt):
        Runner(Interrupted(), segmenter, RunOptions(batch_size=2, jobs=1)).run(jobs)
    written = sorted(out.iterdir())
    assert 1 <= len(written) < 6
    assert all(not p.name.startswith(".") for p in written)  # no temp files left behind
    for path in written:
        assert read_photo(path).pixels.shape == (48, 56, 3)  # every file that exists is whole
    results = Runner(BlurTask(), segmenter, RunOptions(batch_size=2, jobs=1)).run(jobs)
    assert sum(r.status == "skipped" for r in results) == len(written)
    assert sum(r.status == "done" for r in results) == 6 - len(written)
    assert len(list(out.iterdir())) == 6


@pytest.mark.parametrize(
    ("stop", "code", "word"), [(signal.SIGINT, 130, b"interrupted"), (signal.SIGTERM, 143, b"terminated")]
)
def test_a_signal_stops_cleanly_and_a_rerun_finishes(
    tmp_path: Path, tiny_weights: Path, stop: signal.Signals, code: int, word: bytes
) -> None:
    """Ctrl-C, and SIGTERM (what `kill`, systemd and container runtimes send), stop a batch the
    same way: a message, finished outputs kept, no temp file left; a rerun does the rest."""
    count = 150
    _photos(tmp_path / "in", count, size=200)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "blurcli", "blur", str(tmp_path / "in"), "-o", str(out)]
    command += ["-w", str(tiny_weights), "--batch-size", "1", "-j", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and not list(out.glob("*.png")):
        time.sleep(0.02)
    assert process.poll() is None, "the batch ended before it could be interrupted"
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert b"Traceback" not in stderr
    assert process.returncode == code, stderr.decode()
    assert word in stderr and len(stderr.splitlines()) == 1
    assert 1 <= len(list(out.glob("*.png"))) < count  # stopped part way
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    rerun = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert len(list(out.glob("*.png"))) == count


@pytest.mark.parametrize(
    ("shape", "dtype"), [((1200, 1600, 3), np.uint8), ((1200, 1600), np.uint16), ((1200, 1600, 4), np.uint8)]
)
def test_blurring_on_the_shrunk_photo_matches_the_full_resolution_path(
    shape: tuple[int, ...], dtype: type
) -> None:
    """`blur` refines and weighs on the photo shrunk by the feather's width; asking for the mask
    (`keep_mask`) takes the full-resolution path. Both must give the same picture, in kind."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    low = np.zeros((72, 96), np.float32)
    low[20:60, 30:70] = 1.0
    shrunk = render_blur(Photo(pixels), Mask(low)).photo.pixels
    full = render_blur(Photo(pixels), Mask(low), keep_mask=True).photo.pixels
    assert shrunk.shape == pixels.shape and shrunk.dtype == pixels.dtype
    error = np.mean((shrunk.astype(np.float64) - full) ** 2) / float(np.iinfo(dtype).max) ** 2
    assert 10 * np.log10(1 / error) > 45
    if len(shape) == 3 and shape[2] == 4:
        np.testing.assert_array_equal(shrunk[..., 3], pixels[..., 3])  # alpha untouched


def test_a_photo_the_size_of_the_model_output_is_refined_like_any_other() -> None:
    """The mask's origin is explicit: a model mask whose shape equals the photo's (a photo whose
    longer side is the model's input size) is still enlarged along the photo's edges, and only a
    given mask is used as it is."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    pixels[10:40, 20:44] = 230  # a bright subject whose edges the guided filter snaps to
    low = np.zeros((48, 64), np.float32)
    low[8:38, 18:42] = 0.8  # the model's soft, slightly misplaced guess, at the photo's own size
    from_model = render_blur(Photo(pixels), Mask(low), keep_mask=True).mask
    given = render_blur(Photo(pixels), Mask(low, given=True), keep_mask=True).mask
    assert from_model is not None and given is not None
    expected = enlarge_mask(low, grey_guide(pixels), RefineOptions())
    np.testing.assert_array_equal(from_model.pixels, np.clip(expected * 255 + 0.5, 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(given.pixels, np.clip(low * 255 + 0.5, 0, 255).astype(np.uint8))
    assert not np.array_equal(from_model.pixels, given.pixels)
