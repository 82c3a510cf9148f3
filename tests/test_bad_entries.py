"""One bad entry never stops a run (issue 27, items 7, 8, 9 and 14): a name too long for its
output, a folder too deep to list, inputs inside the output folder, a symlink loop."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from blurcli.cli import app
from blurcli.inputs import INSIDE_OUTPUT, gather_inputs

runner = CliRunner()


@pytest.fixture
def photo() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)


def _blur(weights: Path, *args: object) -> object:
    return runner.invoke(app, ["blur", *map(str, args), "--weights", str(weights), "--device", "cpu"])


def _records(output: str) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in map(json.loads, output.splitlines())}


def _too_deep(folder: Path, levels: int = 25) -> None:
    """Sub-folders nested past PATH_MAX (4096 bytes), made one level at a time through file
    descriptors, as no single path can name the deepest."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def test_a_name_too_long_for_its_output_fails_that_photo_and_the_others_are_done(
    tmp_path: Path, photo: np.ndarray, tiny_weights: Path
) -> None:
    cv2.imwrite(str(tmp_path / "good.jpg"), photo)
    long_name = "x" * 246 + ".jpg"  # fits the file system; with "_blurred" it does not
    cv2.imwrite(str(tmp_path / long_name), photo)
    result = _blur(tiny_weights, tmp_path, "--json")
    assert result.exit_code == 1
    records = _records(result.stdout)
    assert records["good.jpg"]["status"] == "done" and (tmp_path / "good_blurred.jpg").is_file()
    assert records[long_name]["status"] == "failed"
    assert records[long_name]["error"].endswith("cannot write (File name too long)")


def test_a_folder_too_deep_to_list_is_skipped_with_its_reason(
    tmp_path: Path, photo: np.ndarray, tiny_weights: Path
) -> None:
    cv2.imwrite(str(tmp_path / "a.jpg"), photo)
    _too_deep(tmp_path)
    found, left = gather_inputs([str(tmp_path)], recursive=True)
    assert [path.name for path, _ in found] == ["a.jpg"]
    assert len(left) == 1 and left[0][1] == "cannot list this folder (File name too long)"
    result = _blur(tiny_weights, tmp_path, "-r", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "1 done, 1 skipped (1 folder not listed: File name too long)" in result.stderr


def test_a_file_named_inside_the_output_folder_is_still_blurred(
    tmp_path: Path, photo: np.ndarray, tiny_weights: Path
) -> None:
    (tmp_path / "raw").mkdir()
    cv2.imwrite(str(tmp_path / "raw" / "x.jpg"), photo)
    result = _blur(tiny_weights, tmp_path / "raw" / "x.jpg", "-o", f"{tmp_path}/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x_blurred.jpg").is_file()


def test_a_folders_photos_inside_the_output_folder_are_left_out_and_counted(
    tmp_path: Path, photo: np.ndarray, tiny_weights: Path
) -> None:
    (tmp_path / "out").mkdir()
    cv2.imwrite(str(tmp_path / "a.jpg"), photo)
    cv2.imwrite(str(tmp_path / "out" / "b.jpg"), photo)
    result = _blur(tiny_weights, tmp_path, "-r", "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    records = _records(result.stdout)
    assert records["a.jpg"]["status"] == "done"
    assert records["b.jpg"]["status"] == "skipped" and records["b.jpg"]["reason"] == INSIDE_OUTPUT
    alone = _blur(tiny_weights, tmp_path / "out", "-o", tmp_path / "out")
    assert alone.exit_code == 2
    assert "(2 left out: inside the output folder" in alone.stderr  # b.jpg and a_blurred.jpg


def test_a_symlink_loop_is_a_failed_file_with_the_systems_reason(
    tmp_path: Path, photo: np.ndarray, tiny_weights: Path
) -> None:
    cv2.imwrite(str(tmp_path / "good.jpg"), photo)
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    result = _blur(tiny_weights, tmp_path / "a.jpg", tmp_path / "good.jpg", "-o", tmp_path / "out", "--json")
    assert result.exit_code == 1
    assert "internal error" not in result.stderr
    records = _records(result.stdout)
    assert (
        records["a.jpg"]["error"] == f"{tmp_path / 'a.jpg'}: cannot read (Too many levels of symbolic links)"
    )
    assert records["good.jpg"]["status"] == "done"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("anim.png", "an animated PNG: only its first frame was read"),
        ("anim.webp", "an animated WebP: only its first frame was read"),
        ("pages.tif", "a TIFF of several pages: only its first page was read"),
    ],
)
def test_a_photo_of_several_frames_says_only_the_first_was_read(
    tmp_path: Path, tiny_weights: Path, name: str, says: str
) -> None:
    image = pytest.importorskip("PIL.Image")
    frames = [image.new("RGB", (16, 12), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], lossless=True)
    result = _blur(tiny_weights, tmp_path / name, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    [record] = map(json.loads, result.stdout.splitlines())
    assert record["status"] == "done" and record["note"] == says
    assert f"note: {tmp_path / name}: {says}" in result.stderr
    frames[0].save(tmp_path / f"one{Path(name).suffix}")
    single = _blur(tiny_weights, tmp_path / f"one{Path(name).suffix}", "-o", tmp_path / "out", "--json")
    assert "note" not in json.loads(single.stdout)


def test_eval_on_a_damaged_dataset_photo_is_one_line_and_no_codec_noise(
    lfw_dir: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    import shutil
    import subprocess
    import sys

    data = tmp_path / "lfw"
    shutil.copytree(lfw_dir, data)
    first = (data / "parts_test.txt").read_text().split()
    photo = data / "lfw_funneled" / first[0] / f"{first[0]}_{int(first[1]):04d}.jpg"
    whole = photo.read_bytes()
    photo.write_bytes(whole[:600] + bytes(b ^ 0x5A for b in whole[600:900]) + whole[900:])  # damaged mid-scan
    done = subprocess.run(
        [sys.executable, "-m", "blurcli", "eval", "--data", str(data), "--split", "test",
         "-w", str(tiny_weights), "--device", "cpu"],
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 1
    assert len(lines) == 1 and lines[0].startswith(f"error: {photo}: damaged image ("), lines


def test_an_interrupted_batch_reports_every_output_it_wrote(
    tmp_path: Path, photo: np.ndarray, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blurcli.batch import Runner, RunOptions
    from blurcli.plan import plan_files
    from blurcli.render import BlurTask
    from blurcli.segment import Segmenter, new_segmenter

    for index in range(4):
        cv2.imwrite(str(tmp_path / f"p{index}.png"), photo)
    segmenter = new_segmenter(str(tiny_weights), "cpu")
    calls = []
    forward = Segmenter.forward

    def interrupted(self: Segmenter, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C once the first photo's output has been saved, unreported
            deadline = time.monotonic() + 10
            while not list(tmp_path.glob("out/p0_blurred.png")) and time.monotonic() < deadline:
                time.sleep(0.01)
            raise KeyboardInterrupt
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "forward", interrupted)
    records = []
    jobs = plan_files([str(tmp_path)], tmp_path / "out")
    runner = Runner(BlurTask(), segmenter, RunOptions(batch_size=1, jobs=2), heads=None)  # one pass a photo
    with pytest.raises(KeyboardInterrupt):
        runner.run(jobs, records.append)
    written = sorted(path.name for path in (tmp_path / "out").iterdir() if not path.name.startswith("."))
    assert "p0_blurred.png" in written
    assert written == sorted(Path(r.output).name for r in records if r.status == "done")


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_ray_address_nothing_answers_is_one_line_at_once(tmp_path: Path, photo: np.ndarray) -> None:
    from blurcli.errors import BlurcliError, UsageError
    from blurcli.ray_data import check_reachable

    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(BlurcliError, match=rf"--ray 127\.0\.0\.1:{port}: no Ray cluster answers there \("):
        check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    with pytest.raises(UsageError, match="give host:port"):
        check_reachable("nowhere")
    check_reachable("auto")  # Ray's to resolve


def test_blur_on_an_unreachable_ray_cluster_names_the_address(tmp_path: Path, photo: np.ndarray) -> None:
    pytest.importorskip("ray")
    cv2.imwrite(str(tmp_path / "a.jpg"), photo)
    port = _closed_port()
    result = runner.invoke(app, ["blur", str(tmp_path / "a.jpg"), "--ray", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: --ray 127.0.0.1:{port}: no Ray cluster answers there")
