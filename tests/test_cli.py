"""Every subcommand through the real CLI: outputs, exit codes, one-line errors, nothing lost."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from blurcli.checkpoint import load_checkpoint
from blurcli.cli import app
from blurcli.decode import decode_image
from blurcli.encode import encode_image
from blurcli.photo import read_image, write_image

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for name, shape in (("a.jpg", (60, 80, 3)), ("b.png", (50, 50, 3))):
        write_image(tmp_path / name, rng.integers(0, 255, shape, dtype=np.uint8))
        paths.append(tmp_path / name)
    return paths


def _run(*args: str | Path) -> object:
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_the_subcommands() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    listed = re.findall(r"^\W*(\w+)\s{2,}\w", result.output.split("Commands")[1], re.M)
    assert listed == ["blur", "predict", "eval", "train", "label", "export", "serve"]


def test_blur_writes_beside_the_input_and_keeps_the_input(photos: list[Path], tiny_weights: Path) -> None:
    before = photos[0].read_bytes()
    result = _run("blur", photos[0], "--weights", tiny_weights, "--device", "cpu")
    assert result.exit_code == 0, result.output
    output = photos[0].with_name("a_blurred.jpg")
    assert read_image(output).shape == (60, 80, 3)
    assert photos[0].read_bytes() == before


def test_blur_to_a_named_file(photos: list[Path], tiny_weights: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.png"
    result = _run("blur", photos[1], "-o", target, "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    assert read_image(target).shape == (50, 50, 3)


def test_blur_many_into_a_folder(photos: list[Path], tiny_weights: Path, tmp_path: Path) -> None:
    result = _run("blur", *photos, "-o", tmp_path / "outdir", "--weights", tiny_weights, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == ["a_blurred.jpg", "b_blurred.png"]


def test_blur_refuses_to_overwrite_its_input(photos: list[Path], tiny_weights: Path) -> None:
    before = photos[0].read_bytes()
    result = _run("blur", photos[0], "-o", photos[0], "--weights", tiny_weights)
    assert result.exit_code == 2
    assert "refusing to overwrite" in result.stderr
    assert photos[0].read_bytes() == before


def test_one_bad_file_does_not_stop_the_batch(photos: list[Path], tiny_weights: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(EXAMPLE.read_bytes()[:3000])
    missing = tmp_path / "missing.jpg"
    result = _run("blur", photos[0], bad, missing, photos[1], "--weights", tiny_weights)
    assert result.exit_code == 1
    assert "broken.jpg: truncated JPEG" in result.stderr
    assert "missing.jpg: no such file" in result.stderr
    assert "Traceback" not in result.output
    assert photos[0].with_name("a_blurred.jpg").exists()
    assert photos[1].with_name("b_blurred.png").exists()
    assert not (tmp_path / "broken_blurred.jpg").exists()
    assert not list(tmp_path.glob(".*part"))
    assert oct(photos[0].with_name("a_blurred.jpg").stat().st_mode & 0o777) != "0o600"


def test_missing_weights_file_is_one_line(photos: list[Path], tmp_path: Path) -> None:
    result = _run("blur", photos[0], "--weights", tmp_path / "nope.pt")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "nope.pt" in result.stderr


def test_weights_of_another_kind_are_rejected(photos: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"some": torch.zeros(3)}, other)
    result = _run("blur", photos[0], "--weights", other)
    assert result.exit_code == 1
    assert "not a blurcli checkpoint" in result.stderr


def test_unknown_device_is_a_usage_error(photos: list[Path], tiny_weights: Path) -> None:
    result = _run("blur", photos[0], "--weights", tiny_weights, "--device", "quantum")
    assert result.exit_code == 2
    assert "--device quantum" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_usage_error(photos: list[Path], tiny_weights: Path) -> None:
    result = _run("blur", photos[0], "--weights", tiny_weights, "--device", "cuda")
    assert result.exit_code == 2
    assert "CUDA is not available" in result.stderr


def test_predict_writes_full_resolution_alpha(photos: list[Path], tiny_weights: Path, tmp_path: Path) -> None:
    result = _run("predict", *photos, "-o", tmp_path / "masks", "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    import cv2

    alpha = cv2.imread(str(tmp_path / "masks" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (60, 80) and alpha.dtype == np.uint8


def test_predict_classes_are_class_indices(photos: list[Path], tiny_weights: Path, tmp_path: Path) -> None:
    result = _run("predict", photos[1], "-o", tmp_path / "m", "--classes", "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    import cv2

    classes = cv2.imread(str(tmp_path / "m" / "b.png"), cv2.IMREAD_UNCHANGED)
    assert classes.shape == (50, 50)
    assert set(np.unique(classes)) <= {0, 1, 2}


def test_predict_overlay_is_a_colour_image(photos: list[Path], tiny_weights: Path, tmp_path: Path) -> None:
    result = _run("predict", photos[1], "-o", tmp_path / "m", "--overlay", "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "m" / "b.png").shape == (50, 50, 3)


def test_predict_writes_masks_beside_the_inputs_by_default(photos: list[Path], tiny_weights: Path) -> None:
    result = _run("predict", photos[0], "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    assert read_image(photos[0].with_name("a_mask.png")).shape == (60, 80, 3)


def test_stdin_to_stdout_through_a_real_process(tiny_weights: Path) -> None:
    data = encode_image(np.full((40, 30, 3), 128, np.uint8), ".png")
    done = subprocess.run(
        [sys.executable, "-m", "blurcli", "blur", "-", "--weights", str(tiny_weights), "-q"],
        input=data,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.startswith(b"\x89PNG")
    assert decode_image(done.stdout, "stdout").shape == (40, 30, 3)
    assert done.stderr == b""


def test_stdin_garbage_fails_cleanly(tiny_weights: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "blurcli", "blur", "-", "--weights", str(tiny_weights)],
        input=b"not an image",
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == b""
    assert b"<stdin>: not an image" in done.stderr
    assert b"Traceback" not in done.stderr


def test_eval_json_reports_all_figures(lfw_dir: Path, tiny_weights: Path) -> None:
    result = _run("eval", "--data", lfw_dir, "--split", "test", "--weights", tiny_weights, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["images"] == 4 and figures["split"] == "test"
    for key in ("pixel_accuracy", "mean_iou", "fw_iou", "subject_iou", "iou", "f1", "boundary_f"):
        assert key in figures
    assert figures["refined"] is True  # scored as blur and predict use the model
    plain = _run("eval", "--data", lfw_dir, "--split", "test", "-w", tiny_weights, "--json", "--no-refine")
    assert json.loads(plain.stdout)["refined"] is False
    assert json.loads(plain.stdout)["loss"] == pytest.approx(figures["loss"])  # same probabilities


def test_eval_table_is_printed(lfw_dir: Path, tiny_weights: Path) -> None:
    result = _run("eval", "--data", lfw_dir, "--split", "validation", "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    assert "mean_iou" in result.stdout and "iou hair" in result.stdout


def test_eval_on_a_folder_missing_parts_is_one_line(tmp_path: Path, tiny_weights: Path) -> None:
    (tmp_path / "parts_train.txt").write_text("A 1\n")
    result = _run("eval", "--data", tmp_path, "--weights", tiny_weights)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"error: {tmp_path / 'parts_test.txt'}: split file missing from the dataset folder"


def test_missing_dataset_folder_is_a_usage_error(tmp_path: Path, tiny_weights: Path) -> None:
    result = _run("eval", "--data", tmp_path / "nowhere", "--weights", tiny_weights)
    assert result.exit_code == 2
    assert "nowhere: dataset folder does not exist" in result.stderr


def test_unknown_split_is_a_usage_error(lfw_dir: Path, tiny_weights: Path) -> None:
    result = _run("eval", "--data", lfw_dir, "--split", "holdout", "--weights", tiny_weights)
    assert result.exit_code == 2


def test_train_then_eval_predict_and_blur_the_checkpoint(lfw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run" / "model.pt"
    result = _run(
        "train", "--data", lfw_dir, "--out", out, "--epochs", "20", "--batch-size", "4",
        "--input-size", "64", "--width", "8", "--depth", "2", "--stem-stride", "1",
        "--workers", "0", "--lr", "0.01", "--device", "cpu", "--patience", "5", "--loss-size", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out).info["train"]["plateau_patience"] == 5
    log = [json.loads(line) for line in (tmp_path / "run" / "model.log.jsonl").read_text().splitlines()]
    assert len(log) == 20
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert (tmp_path / "run" / "model.curves.png").exists()
    assert (tmp_path / "run" / "model.last.pt").exists()

    evaluated = _run("eval", "--data", lfw_dir, "--weights", out, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["pixel_accuracy"] > 0.85
    photo = tmp_path / "face.jpg"
    write_image(photo, read_image(next(lfw_dir.glob("lfw_funneled/*/*.jpg"))))
    assert _run("predict", photo, "-o", tmp_path / "masks", "--weights", out).exit_code == 0
    assert _run("blur", photo, "--weights", out).exit_code == 0
    assert (tmp_path / "face_blurred.jpg").exists()


def test_a_user_mistake_is_exactly_one_line_on_stderr(tiny_weights: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "blurcli", "blur", str(tmp_path / "gone.jpg"), "--weights", str(tiny_weights)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr.decode() == f"error: {tmp_path / 'gone.jpg'}: no such file\n"
