"""A user's own masks: `blur --mask` uses them instead of the model, `--save-mask` writes the one used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blurcli.cli import app
from blurcli.errors import BlurcliError, UsageError
from blurcli.inputs import find_inputs
from blurcli.photo import Photo, read_photo, write_image
from blurcli.plan import Job, add_masks, skip_outputs
from blurcli.render import mask_from_photo

runner = CliRunner()


def _run(*args: str | Path) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _textured(seed: int = 0, shape: tuple[int, int] = (60, 80)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _sharpness(pixels: np.ndarray) -> float:
    return float(np.abs(np.diff(pixels.astype(np.float32), axis=1)).mean())


def test_a_given_mask_replaces_the_model(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    write_image(photo, _textured())
    mask = np.zeros((60, 80), np.uint8)
    mask[:, :40] = 255  # left half is the subject
    write_image(tmp_path / "m.png", mask)
    # No model is needed (a weights path that does not exist is never opened).
    result = _run("blur", photo, "--mask", tmp_path / "m.png", "-w", tmp_path / "none.pt", "--feather", "0")
    assert result.exit_code == 0, result.output
    out = read_photo(tmp_path / "p_blurred.png").pixels
    np.testing.assert_array_equal(out[:, :30], read_photo(photo).pixels[:, :30])  # kept sharp
    assert _sharpness(out[:, 50:]) < 0.5 * _sharpness(read_photo(photo).pixels[:, 50:])  # blurred


def test_a_smaller_mask_of_the_same_shape_is_enlarged_another_shape_refused(tmp_path: Path) -> None:
    photo = Photo(_textured())
    small = Photo(np.full((30, 40), 65535, np.uint16))  # 16-bit, half size
    mask = mask_from_photo(small, (60, 80), "m.png")
    assert mask.given and mask.values.shape == (60, 80)
    np.testing.assert_allclose(mask.values, 1.0)
    with pytest.raises(BlurcliError, match=r"m\.png: the mask is 40x40"):
        mask_from_photo(Photo(np.zeros((40, 40), np.uint8)), photo.pixels.shape[:2], "m.png")
    write_image(tmp_path / "p.png", photo.pixels)
    write_image(tmp_path / "m.png", np.zeros((40, 40), np.uint8))
    result = _run("blur", tmp_path / "p.png", "--mask", tmp_path / "m.png")
    assert result.exit_code == 1 and "m.png: the mask is 40x40, the photo 80x60" in result.output
    assert not (tmp_path / "p_blurred.png").exists()


def test_predicted_masks_can_be_edited_and_used_for_a_folder(tmp_path: Path, tiny_weights: Path) -> None:
    photos = tmp_path / "photos"
    for index, name in enumerate(["a.jpg", "sub/b.png", "sub/c.png"]):
        write_image(photos / name, _textured(index))
    masks = tmp_path / "masks"
    assert _run("predict", photos, "-r", "-o", masks, "-w", tiny_weights).exit_code == 0
    assert sorted(str(p.relative_to(masks)) for p in masks.rglob("*.png")) == [
        "a.png",
        "sub/b.png",
        "sub/c.png",
    ]
    write_image(masks / "a.png", np.full((60, 80), 255, np.uint8))  # "edited": all subject
    (masks / "sub" / "c.png").unlink()  # and one mask lost
    result = _run("blur", photos, "-r", "-o", tmp_path / "out", "--mask", masks, "-w", tiny_weights)
    assert result.exit_code == 1
    assert f"{photos / 'sub' / 'c.png'}: no mask at {masks / 'sub' / 'c_mask.png'}" in result.output
    np.testing.assert_array_equal(
        read_photo(tmp_path / "out" / "a_blurred.jpg").pixels.shape, read_photo(photos / "a.jpg").pixels.shape
    )
    assert (tmp_path / "out" / "sub" / "b_blurred.png").exists()
    assert not (tmp_path / "out" / "sub" / "c_blurred.png").exists()


def test_save_mask_writes_the_mask_predict_would(tmp_path: Path, tiny_weights: Path) -> None:
    write_image(tmp_path / "p.png", _textured())
    result = _run("blur", tmp_path / "p.png", "--save-mask", "-w", tiny_weights)
    assert result.exit_code == 0, result.output
    saved = read_photo(tmp_path / "p_mask.png").pixels
    assert (
        _run("predict", tmp_path / "p.png", "-o", tmp_path / "predicted.png", "-w", tiny_weights).exit_code
        == 0
    )
    np.testing.assert_array_equal(saved, read_photo(tmp_path / "predicted.png").pixels)
    # blurcli knows its outputs by their mark: a rerun takes neither p_blurred nor the masks.
    photos, skipped = skip_outputs(find_inputs([str(tmp_path)]))
    assert [p.name for p, _ in photos] == ["p.png"]
    assert sorted(job.name.rsplit("/", 1)[-1] for job in skipped) == [
        "p_blurred.png",
        "p_mask.png",
        "predicted.png",
    ]
    # ... and blurring again with the saved mask gives the same picture without the model.
    again = _run("blur", tmp_path / "p.png", "--mask", tmp_path / "p_mask.png", "-o", tmp_path / "again.png")
    assert again.exit_code == 0, again.output
    difference = (
        read_photo(tmp_path / "again.png").pixels.astype(int) - read_photo(tmp_path / "p_blurred.png").pixels
    )
    assert np.abs(difference).max() <= 1  # the saved mask is 8-bit


def test_mask_usage_errors(tmp_path: Path) -> None:
    jobs = [Job(tmp_path / "a.jpg", tmp_path / "a_b.jpg"), Job(tmp_path / "b.jpg", tmp_path / "b_b.jpg")]
    inputs = [(tmp_path / "a.jpg", tmp_path), (tmp_path / "b.jpg", tmp_path)]
    write_image(tmp_path / "m.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(UsageError, match="one file, but there are 2 inputs"):
        add_masks(jobs, inputs, tmp_path / "m.png", save=False)
    with pytest.raises(UsageError, match="no such file or folder"):
        add_masks(jobs, inputs, tmp_path / "missing", save=False)
    with pytest.raises(UsageError, match="would only copy"):
        add_masks(jobs, inputs, tmp_path / "m.png", save=True)
    with pytest.raises(UsageError, match="needs an output file"):
        add_masks([Job(None, None)], [], None, save=True)
    # A mask file that is also an output of the run would be overwritten: refused.
    with pytest.raises(UsageError, match="refusing to overwrite an input"):
        add_masks([Job(tmp_path / "a.jpg", tmp_path / "m.png")], inputs[:1], tmp_path / "m.png", save=False)
    write_image(tmp_path / "a.png", _textured())
    result = _run("blur", tmp_path / "a.png", "-o", "-", "--save-mask")
    assert result.exit_code == 2 and "needs an output file" in result.output
    assert not Path("-").exists()


def test_stdin_with_a_mask_file(tmp_path: Path) -> None:
    from blurcli.encode import encode_image

    data = encode_image(_textured(), ".png")
    write_image(tmp_path / "m.png", np.full((60, 80), 255, np.uint8))
    result = runner.invoke(
        app, ["blur", "-", "--mask", str(tmp_path / "m.png"), "-o", str(tmp_path / "o.png")], input=data
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(
        read_photo(tmp_path / "o.png").pixels, _textured()
    )  # all subject: untouched


def test_disc_kernel_from_the_command_line(tmp_path: Path) -> None:
    photo = np.full((120, 120, 3), 10, np.uint8)
    photo[58:62, 58:62] = 255  # one light
    write_image(tmp_path / "p.png", photo)
    write_image(tmp_path / "m.png", np.zeros((120, 120), np.uint8))
    for kernel in ("gaussian", "disc"):
        args = [
            "blur",
            tmp_path / "p.png",
            "--mask",
            tmp_path / "m.png",
            "--kernel",
            kernel,
            "--strength",
            "0.04",
        ]
        assert _run(*args, "-o", tmp_path / f"{kernel}.png").exit_code == 0
    gaussian = read_photo(tmp_path / "gaussian.png").pixels[60, :, 0].astype(int)
    disc = read_photo(tmp_path / "disc.png").pixels[60, :, 0].astype(int)
    assert (disc > 12).sum() > (gaussian > 12).sum()  # the disc's highlight is wider and flat
    assert _run("blur", tmp_path / "p.png", "--kernel", "box").exit_code == 2
