"""Real photos at scale through the CLI: formats, folders, resuming, bad files, pipes, JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blurcli.cli import app
from blurcli.decode import decode_photo
from blurcli.encode import encode_image
from blurcli.metadata import exif_orientation
from blurcli.photo import read_photo, write_image
from tests.test_io import exif_with_orientation, icc_profile

runner = CliRunner()


def _run(*args: str | Path) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _photo(seed: int = 0, shape: tuple[int, ...] = (48, 64, 3), dtype: type = np.uint8) -> np.ndarray:
    top = 255 if dtype == np.uint8 else 65535
    return np.random.default_rng(seed).integers(0, top, shape, dtype=dtype)


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".part")]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """photos/a.jpg, photos/b.png, photos/sub/c.webp, photos/sub/deep/d.tif, plus a hidden file."""
    root = tmp_path / "photos"
    write_image(root / "a.jpg", _photo(0))
    write_image(root / "b.png", _photo(1))
    write_image(root / "sub" / "c.webp", _photo(2))
    write_image(root / "sub" / "deep" / "d.tif", _photo(3))
    write_image(root / ".hidden.jpg", _photo(4))
    (root / "notes.txt").write_text("not a photo")
    return root


def test_folder_without_recursive_takes_its_top_level_only(tree: Path, tiny_weights: Path) -> None:
    result = _run("blur", tree, "-w", tiny_weights)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tree.glob("*_blurred.*")) == ["a_blurred.jpg", "b_blurred.png"]
    assert not list(tree.rglob("c_blurred*"))


def test_recursive_output_folder_mirrors_the_tree(tree: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run("blur", tree, "-r", "-o", out, "-w", tiny_weights)
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a_blurred.jpg", "b_blurred.png", "sub/c_blurred.webp", "sub/deep/d_blurred.tif"]
    assert "4 done, 0 skipped, 0 failed" in result.stderr


def test_outputs_beside_inputs_are_not_taken_as_inputs_on_a_rerun(tree: Path, tiny_weights: Path) -> None:
    assert _run("blur", tree, "-r", "-w", tiny_weights).exit_code == 0
    result = _run("blur", tree, "-r", "-w", tiny_weights)
    assert result.exit_code == 0
    assert "0 done, 8 skipped (4 outputs exist: --overwrite redoes them; 4 are blurcli's outputs)" in (
        result.stderr
    )
    assert not list(tree.rglob("*_blurred_blurred*"))


def test_quoted_glob_patterns_are_expanded(tree: Path, tiny_weights: Path, tmp_path: Path) -> None:
    result = _run("blur", str(tree / "**" / "*.webp"), "-o", tmp_path / "g", "-w", tiny_weights)
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["c_blurred.webp"]


def test_existing_outputs_are_skipped_unless_overwrite(tree: Path, tiny_weights: Path) -> None:
    target = tree / "a_blurred.jpg"
    target.write_bytes(b"keep me")
    result = _run("blur", tree / "a.jpg", "-w", tiny_weights)
    assert result.exit_code == 0
    assert target.read_bytes() == b"keep me"
    result = _run("blur", tree / "a.jpg", "-w", tiny_weights, "--overwrite")
    assert result.exit_code == 0
    assert read_photo(target).pixels.shape == (48, 64, 3)


def test_format_option_sets_the_output_format(tree: Path, tiny_weights: Path, tmp_path: Path) -> None:
    result = _run("blur", tree, "-o", tmp_path / "o", "--format", "webp", "-w", tiny_weights)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a_blurred.webp", "b_blurred.webp"]
    assert (tmp_path / "o" / "a_blurred.webp").read_bytes()[8:12] == b"WEBP"


def test_bad_files_are_named_and_the_good_ones_done(
    tree: Path, tiny_weights: Path, tmp_path: Path, lock: Callable[[Path], None]
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    write_image(bad / "good1.jpg", _photo(5))
    write_image(bad / "good2.png", _photo(6))
    data = (bad / "good1.jpg").read_bytes()
    (bad / "corrupt.jpg").write_bytes(data[:200] + b"\x00" * 50 + data[250:])
    (bad / "cut.jpg").write_bytes(data[: len(data) // 2])
    (bad / "empty.png").write_bytes(b"")
    (bad / "text.webp").write_text("this is not an image")
    locked = bad / "locked.png"
    write_image(locked, _photo(7))
    lock(locked)
    out = tmp_path / "out"
    result = _run("blur", bad, "-o", out, "-w", tiny_weights, "--json")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    status = {Path(line["input"]).name: line for line in lines}
    assert status["good1.jpg"]["status"] == "done" and status["good2.png"]["status"] == "done"
    assert (out / "good1_blurred.jpg").exists() and (out / "good2_blurred.png").exists()
    assert "cut.jpg: truncated JPEG" in result.stderr
    assert "empty.png: empty file" in result.stderr
    assert "text.webp: not an image" in result.stderr
    assert "locked.png: permission denied" in result.stderr
    assert (
        "corrupt.jpg: damaged JPEG (Corrupt JPEG data" in result.stderr
    )  # libjpeg's warning, not a grey half
    failed = {name for name, line in status.items() if line["status"] == "failed"}
    assert failed == {"corrupt.jpg", "cut.jpg", "empty.png", "text.webp", "locked.png"}
    for name in failed:
        assert status[name]["error"].startswith(str(bad / name))
        assert not list(out.glob(Path(name).stem + "_blurred*"))
    assert _no_temp_files(out)


def test_json_lines_have_every_field(tree: Path, tiny_weights: Path) -> None:
    result = _run("predict", tree / "a.jpg", tree / "missing.jpg", "-w", tiny_weights, "--json", "-q")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [set(line) for line in lines] == [{"input", "output", "status", "error", "ms", "reason"}] * 2
    by_status = {line["status"]: line for line in lines}
    assert by_status["done"]["output"] == str(tree / "a_mask.png")
    assert "no such file" in by_status["failed"]["error"]


def test_pixel_limit_is_reported_per_file(tree: Path, tiny_weights: Path) -> None:
    result = _run("blur", tree / "a.jpg", tree / "b.png", "-w", tiny_weights, "--max-pixels", "1000")
    assert result.exit_code == 1
    assert "a.jpg: 64x48 is 3,072 pixels, over the limit of 1,000 pixels" in result.stderr
    assert not (tree / "a_blurred.jpg").exists()


def test_usage_errors_exit_2(tree: Path, tiny_weights: Path, tmp_path: Path) -> None:
    result = _run("blur", tree / "a.jpg", "-", "-w", tiny_weights)
    assert result.exit_code == 2 and "'-' (stdin) cannot be mixed" in result.stderr
    (tmp_path / "empty").mkdir()
    result = _run("blur", tmp_path / "empty", "-w", tiny_weights)
    assert result.exit_code == 2 and "no images found" in result.stderr
    result = _run("blur", tree / "a.jpg", "--format", "gif", "-w", tiny_weights)
    assert result.exit_code == 2 and "--format gif: cannot write '.gif'" in result.stderr
    result = _run("predict", "-", "--format", "gif", "-w", tiny_weights)
    assert result.exit_code == 2 and "--format gif" in result.stderr


def test_a_missing_input_is_failed_work_not_a_usage_error(tmp_path: Path, tiny_weights: Path) -> None:
    result = _run("blur", tmp_path / "nothing-here.jpg", "-w", tiny_weights)
    assert result.exit_code == 1 and "nothing-here.jpg: no such file" in result.stderr


@pytest.mark.parametrize(
    ("name", "pixels"),
    [
        ("grey.png", _photo(8, (40, 50))),
        ("grey.jpg", _photo(8, (40, 50))),
        ("rgba.png", _photo(9, (40, 50, 4))),
        ("rgba.webp", _photo(9, (40, 50, 4))),
        ("deep.png", _photo(10, (40, 50, 3), np.uint16)),
        ("deep-grey.tif", _photo(11, (40, 50), np.uint16)),
        ("deep-rgba.tif", _photo(12, (40, 50, 4), np.uint16)),
    ],
)
def test_blur_keeps_grey_alpha_and_depth(
    name: str, pixels: np.ndarray, tmp_path: Path, no_subject_weights: Path
) -> None:
    source = tmp_path / name
    source.write_bytes(encode_image(pixels, source.suffix, 101))  # WebP lossless
    result = _run("blur", source, "-w", no_subject_weights, "--strength", "0.05")
    assert result.exit_code == 0, result.output
    out = read_photo(source.with_name(f"{source.stem}_blurred{source.suffix}")).pixels
    assert out.shape == pixels.shape and out.dtype == pixels.dtype
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        np.testing.assert_array_equal(out[..., 3], pixels[..., 3])  # alpha untouched
    colour = out[..., :3] if out.ndim == 3 else out
    original = pixels[..., :3] if pixels.ndim == 3 else pixels
    assert colour.astype(float).std() < 0.8 * original.astype(float).std()  # it did blur


def test_exif_orientation_is_applied_and_metadata_kept(tmp_path: Path, tiny_weights: Path) -> None:
    source = tmp_path / "turned.jpg"
    source.write_bytes(
        encode_image(_photo(13, (40, 60, 3)), ".jpg", exif=exif_with_orientation(6), icc=icc_profile())
    )
    out = tmp_path / "upright.jpg"
    assert _run("blur", source, "-o", out, "-w", tiny_weights).exit_code == 0
    photo = decode_photo(out.read_bytes(), "out")
    assert photo.pixels.shape == (60, 40, 3)  # rotated upright
    assert exif_orientation(photo.exif) == 1  # and says so, so viewers do not turn it again
    assert photo.exif is not None and b"blurcli" in photo.exif
    assert photo.icc == icc_profile()
    result = _run("predict", source, "-o", tmp_path / "mask.png", "-w", tiny_weights)
    assert result.exit_code == 0
    assert read_photo(tmp_path / "mask.png").pixels.shape == (60, 40)  # the mask lines up
    result = _run("predict", source, "--overlay", "-o", tmp_path / "check.jpg", "-w", tiny_weights)
    assert result.exit_code == 0
    assert (tmp_path / "check.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a named file's extension wins


def _cli(*args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "blurcli", *args], input=data, capture_output=True, timeout=120, check=False
    )


def test_stdin_to_a_file_and_format_on_stdout(tmp_path: Path, tiny_weights: Path) -> None:
    jpeg = encode_image(_photo(14), ".jpg")
    done = _cli("blur", "-", "-o", str(tmp_path / "out.png"), "-w", str(tiny_weights), data=jpeg)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""
    assert (tmp_path / "out.png").read_bytes().startswith(b"\x89PNG")
    done = _cli("blur", "-", "--format", "webp", "-w", str(tiny_weights), data=jpeg)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout[8:12] == b"WEBP"
    done = _cli("blur", "-", "-w", str(tiny_weights), data=jpeg)  # the input's format by default
    assert done.stdout.startswith(b"\xff\xd8")
    done = _cli("predict", "-", "-w", str(tiny_weights), data=jpeg)  # masks: PNG by default
    assert done.stdout.startswith(b"\x89PNG")
    assert decode_photo(done.stdout, "mask").pixels.shape == (48, 64)


def test_no_colour_codes_when_stderr_is_not_a_terminal(tmp_path: Path, tiny_weights: Path) -> None:
    write_image(tmp_path / "a.png", _photo(15))
    files = [str(tmp_path / "a.png"), str(tmp_path / "gone.png")]
    done = subprocess.run(
        [sys.executable, "-m", "blurcli", "blur", *files, "-w", str(tiny_weights)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert b"\x1b[" not in done.stderr
    assert done.stdout == b""
    assert b"gone.png: no such file" in done.stderr
