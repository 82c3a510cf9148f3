"""What a new user's bad day looks like, fixed: reruns in place, damaged files, bombs in metadata,
cut-out masks, stale temp files, output names, odd formats kept as they came."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from blurcli.batch import FileResult, Runner
from blurcli.cli import app
from blurcli.cli.output import load_segmenter
from blurcli.decode import decode_photo
from blurcli.encode import encode_grey_alpha_png, encode_image
from blurcli.errors import BlurcliError
from blurcli.files import remove_stale_parts
from blurcli.metadata import add_output_mark, output_mark
from blurcli.photo import Photo, read_photo, write_image
from blurcli.plan import Job
from blurcli.refine import RefineOptions
from blurcli.render import BlurTask, decide_classes, enlarge_mask
from blurcli.segment import new_segmenter

runner = CliRunner()


def _run(*args: str | Path) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _photo(seed: int = 0, shape: tuple[int, ...] = (48, 64, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def _json(result: object) -> dict[str, dict]:
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # type: ignore[attr-defined]
    return {Path(line["input"]).name: line for line in lines}


# 1. Reruns in place: blurcli knows its outputs by a mark in their metadata, not by their names.


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_outputs_carry_a_mark_that_keeps_pixels_and_metadata(ext: str) -> None:
    data = encode_image(_photo(1), ext, exif=b"II*\x00\x08\x00\x00\x00\x00\x00" if ext != ".png" else None)
    marked = add_output_mark(data, "blurred")
    assert output_mark(data) is None and output_mark(marked) == "blurred"
    before, after = decode_photo(data, "a"), decode_photo(marked, "b")
    np.testing.assert_array_equal(before.pixels, after.pixels)
    assert (before.exif, before.icc) == (after.exif, after.icc)


def test_a_shell_glob_rerun_in_place_finishes_the_rest(tmp_path: Path, tiny_weights: Path) -> None:
    for index, name in enumerate(["one.jpg", "two.png", "three.webp"]):
        write_image(tmp_path / name, _photo(index))
    first = [tmp_path / "one.jpg", tmp_path / "two.png"]  # a run that stopped part way
    assert _run("blur", *first, "-w", tiny_weights).exit_code == 0
    everything = sorted(str(p) for p in tmp_path.iterdir())  # the glob now holds the outputs too
    result = _run("blur", *everything, "-w", tiny_weights, "--json")
    assert result.exit_code == 0, result.output
    status = _json(result)
    assert status["three.webp"]["status"] == "done"
    assert {status[name]["status"] for name in ("one.jpg", "two.png")} == {"skipped"}
    assert "exists" in status["one.jpg"]["reason"]
    for output in ("one_blurred.jpg", "two_blurred.png"):
        assert status[output]["status"] == "skipped" and "blurcli's own output" in status[output]["reason"]
    assert not list(tmp_path.glob("*_blurred_blurred*"))


def test_quoted_recursive_glob_with_another_format_twice(tmp_path: Path, tiny_weights: Path) -> None:
    tree = tmp_path / "tree"
    write_image(tree / "a" / "two.png", _photo(2))
    pattern = str(tree / "**" / "*.png")
    for _ in range(2):
        result = _run("blur", pattern, "--format", "webp", "-o", f"{tmp_path / 'x'}/", "-w", tiny_weights)
        assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "x").rglob("*") if p.is_file())
    assert written == ["two_blurred.webp"]


def test_a_users_photos_named_like_outputs_are_processed(tmp_path: Path, tiny_weights: Path) -> None:
    folder = tmp_path / "in"
    write_image(folder / "face_mask.jpg", _photo(3))  # a user's photo of a face mask
    write_image(folder / "x_blurred.png", _photo(4))  # a user's photo that happens to be named so
    result = _run("blur", folder, "-o", tmp_path / "out", "-w", tiny_weights, "--json")
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in _json(result).values()} == {"done"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "face_mask_blurred.jpg",
        "x_blurred_blurred.png",
    ]


def test_formats_without_a_mark_are_skipped_by_name_with_a_word(tmp_path: Path, tiny_weights: Path) -> None:
    write_image(tmp_path / "scan_blurred.tif", _photo(5))
    result = _run("blur", tmp_path, "-o", tmp_path / "out", "-w", tiny_weights)
    assert result.exit_code == 0
    assert "scan_blurred.tif: named like blurcli's output" in result.stderr
    assert "rename it" in result.stderr


def test_a_rerun_with_other_settings_says_why_nothing_was_done(tmp_path: Path, tiny_weights: Path) -> None:
    write_image(tmp_path / "a.jpg", _photo(6))
    write_image(tmp_path / "b.jpg", _photo(7))
    assert _run("blur", tmp_path / "a.jpg", tmp_path / "b.jpg", "-w", tiny_weights).exit_code == 0
    again = _run("blur", tmp_path / "a.jpg", tmp_path / "b.jpg", "--strength", "0.1", "-w", tiny_weights)
    assert "0 done, 2 skipped (2 outputs exist: --overwrite redoes them)" in again.stderr


# 4. Metadata that inflates past a limit is refused, without inflating it.


DECODE_MEASURED = """
import resource, sys
from pathlib import Path
from blurcli.decode import decode_photo
from blurcli.encode import encode_image
from blurcli.errors import BlurcliError
import numpy as np
decode_photo(encode_image(np.zeros((8, 8, 3), np.uint8), ".png"), "warm.png")  # codecs warm
data = Path(sys.argv[1]).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode_photo(data, sys.argv[2])
    print("decoded")
except BlurcliError as error:
    print(error)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def decode_in_fresh_process(data: bytes, name: str, folder: Path) -> tuple[str, float]:
    """`decode_photo(data, name)` in a fresh process, whose peak RSS no earlier test has raised:
    its one-line refusal (or "decoded") and how many MiB its peak grew while decoding."""
    (folder / "input").write_bytes(data)
    code = [sys.executable, "-c", DECODE_MEASURED, str(folder / "input"), name]
    done = subprocess.run(code, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    message, grown = done.stdout.strip().splitlines()
    return message, float(grown)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def test_a_colour_profile_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    packer = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    profile = b"".join(packer.compress(zeros) for _ in range(256)) + packer.flush()  # 256 MiB inflated
    png = encode_image(_photo(8), ".png")
    bomb = png[:33] + _chunk(b"iCCP", b"icc\x00\x00" + profile) + png[33:]
    assert len(bomb) < 1 << 20
    refusal, grown_mib = decode_in_fresh_process(bomb, "bomb.png", tmp_path)
    assert refusal.startswith("bomb.png: its colour profile inflates to over 16 MiB")
    assert grown_mib < 64


def test_a_png_chunk_claiming_gigabytes_is_refused_before_decoding(tmp_path: Path) -> None:
    png = encode_image(_photo(22), ".png")
    data = png[:33] + (0xFFFFFFFF).to_bytes(4, "big") + b"tEXt" + bytes(64) + png[33:]
    refusal, grown_mib = decode_in_fresh_process(data, "x.png", tmp_path)
    assert refusal.startswith("x.png: damaged PNG (chunk tEXt claims 4,294,967,295 bytes")
    assert grown_mib < 64


def test_a_stray_byte_before_the_frame_header_hides_no_bomb() -> None:
    jpeg = bytearray(encode_image(_photo(23, (24, 32, 3)), ".jpg"))
    frame = jpeg.find(b"\xff\xc0")
    jpeg[frame + 5 : frame + 9] = (32000).to_bytes(2, "big") * 2  # 32000 x 32000 declared
    data = bytes(jpeg[:frame]) + b"\x00" + bytes(jpeg[frame:])  # libjpeg skips the stray byte
    with pytest.raises(BlurcliError, match=r"32000x32000 is 1024\.0 MP, over the limit"):
        decode_photo(data, "x.jpg")


# 5. A cut-out PNG as --mask: its alpha is the subject.


def test_a_cut_out_mask_uses_its_alpha(tmp_path: Path) -> None:
    photo = _photo(9, (60, 80, 3))
    write_image(tmp_path / "p.png", photo)
    cut_out = np.full((60, 80, 4), 255, np.uint8)  # white everywhere, as a cut-out's colour can be
    cut_out[..., 3] = 0
    cut_out[15:45, 20:60, 3] = 255
    write_image(tmp_path / "cut.png", cut_out)
    result = _run("blur", tmp_path / "p.png", "--mask", tmp_path / "cut.png", "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    out = read_photo(tmp_path / "out.png").pixels
    np.testing.assert_array_equal(out[25:35, 35:45], photo[25:35, 35:45])  # the subject stays sharp
    assert np.abs(out[:8].astype(int) - photo[:8]).mean() > 10  # the background is blurred


# 6. Temp files of killed runs are removed; those of a live run are not.


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "a_blurred.jpg"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stale = tmp_path / f".a_blurred.jpg.{int(dead.stdout)}.0123abcd.part"
    live = tmp_path / f".a_blurred.jpg.{os.getpid()}.4567cdef.part"
    other = tmp_path / f".b_blurred.jpg.{int(dead.stdout)}.89abcdef.part"  # not an output of this run
    for path in (stale, live, other):
        path.write_bytes(b"half")
    assert remove_stale_parts([target]) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


def test_a_rerun_that_skips_an_existing_output_still_removes_its_killed_temp_file(
    tmp_path: Path, tiny_weights: Path
) -> None:
    write_image(tmp_path / "a.jpg", _photo(3))
    assert _run("blur", tmp_path / "a.jpg", "-w", tiny_weights).exit_code == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stale = tmp_path / f".a_blurred.jpg.{int(dead.stdout)}.0123abcd.part"  # an --overwrite run, killed
    stale.write_bytes(b"half")
    again = _run("blur", tmp_path / "a.jpg", "-w", tiny_weights)
    assert again.exit_code == 0 and "1 output exists" in again.stderr
    assert not stale.exists()


# 7. Output names.


def test_output_names_and_formats(tmp_path: Path, tiny_weights: Path) -> None:
    write_image(tmp_path / "a.jpg", _photo(10))
    write_image(tmp_path / "b.jpg", _photo(11))
    clash = _run(
        "blur", tmp_path / "a.jpg", "-o", tmp_path / "out.png", "--format", "jpg", "-w", tiny_weights
    )
    assert clash.exit_code == 2 and "--format asks for .jpg" in clash.stderr
    for folder in (f"{tmp_path / '2024.06'}/", str(tmp_path / "2025.01")):
        result = _run("blur", tmp_path / "a.jpg", "-o", folder, "-w", tiny_weights)
        assert result.exit_code == 0, result.output
        assert (Path(folder) / "a_blurred.jpg").is_file()
    (tmp_path / "notes").write_text("keep")
    several = _run(
        "blur", tmp_path / "a.jpg", tmp_path / "b.jpg", "-o", tmp_path / "notes", "-w", tiny_weights
    )
    assert several.exit_code == 2 and "existing file" in several.stderr
    assert _run("blur", tmp_path / "a.jpg", "--format", "gif", "-w", tiny_weights).exit_code == 2
    assert (tmp_path / "notes").read_text() == "keep"


# 8. Messages that name the right thing.


def test_a_failed_write_to_stdout_is_blamed_on_stdout(tiny_weights: Path) -> None:
    def broken(data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    segmenter = new_segmenter(str(tiny_weights), "cpu")
    read = lambda limit: encode_image(_photo(12), ".png")  # noqa: E731
    results = Runner(BlurTask(), segmenter, read_stdin=read, write_stdout=broken).run(
        [Job(None, None, ".png")]
    )
    assert results[0].status == "failed"
    assert results[0].error == "<stdout>: cannot write (Broken pipe)"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full to write to")
def test_a_full_stdout_is_blamed_on_stdout_not_the_photo(tmp_path: Path, tiny_weights: Path) -> None:
    from blurcli.export import export_onnx

    export_onnx(tiny_weights, tmp_path / "tiny.onnx")  # no torch to start in the process below
    write_image(tmp_path / "a.jpg", _photo(24))
    command = [sys.executable, "-m", "blurcli", "blur", "a.jpg", "-o", "out.jpg", "--json", "-w", "tiny.onnx"]
    with open("/dev/full", "wb") as full:
        done = subprocess.run(command, cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, timeout=120)
    assert done.returncode == 1
    assert done.stderr.decode() == "error: standard output: cannot write (No space left on device)\n"
    assert read_photo(tmp_path / "out.jpg").pixels.shape == (48, 64, 3)


def test_local_weights_show_no_download_bar(tiny_weights: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    load_segmenter(str(tiny_weights), "cpu", console)
    assert "downloading" not in screen.getvalue()


# 9. What came in goes out the same way.


def test_keep_empty_copies_the_file(tmp_path: Path, no_subject_weights: Path) -> None:
    write_image(tmp_path / "a.jpg", _photo(13))
    result = _run("blur", tmp_path / "a.jpg", "--keep-empty", "-w", no_subject_weights)
    assert result.exit_code == 0, result.output
    original = (tmp_path / "a.jpg").read_bytes()
    assert (tmp_path / "a_blurred.jpg").read_bytes() == add_output_mark(original, "blurred")


def test_lossless_webp_and_grey_alpha_png_come_out_as_they_came(tmp_path: Path, tiny_weights: Path) -> None:
    (tmp_path / "l.webp").write_bytes(encode_image(_photo(14), ".webp", 101))
    grey_alpha = np.stack([_photo(15, (48, 64))] * 3 + [_photo(16, (48, 64))], axis=-1)
    grey_alpha[..., 3] = 200
    (tmp_path / "g.png").write_bytes(encode_grey_alpha_png(grey_alpha[..., 0], grey_alpha[..., 3]))
    assert decode_photo((tmp_path / "g.png").read_bytes(), "g").grey
    result = _run("blur", tmp_path / "l.webp", tmp_path / "g.png", "-w", tiny_weights)
    assert result.exit_code == 0, result.output
    assert b"VP8L" in (tmp_path / "l_blurred.webp").read_bytes()[:64]
    png = (tmp_path / "g_blurred.png").read_bytes()
    assert png[25] == 4  # IHDR colour type: grey + alpha
    out = read_photo(tmp_path / "g_blurred.png")
    assert out.grey and (out.pixels[..., 3] == 200).all()


def test_image_bytes_are_not_sent_to_a_terminal(tmp_path: Path, tiny_weights: Path) -> None:
    write_image(tmp_path / "a.jpg", _photo(17))
    primary, secondary = pty.openpty()
    try:
        with (tmp_path / "a.jpg").open("rb") as stdin:
            done = subprocess.run(
                [sys.executable, "-m", "blurcli", "blur", "-", "-w", str(tiny_weights)],
                stdin=stdin,
                stdout=secondary,
                stderr=subprocess.PIPE,
                timeout=120,
                check=False,
            )
    finally:
        os.close(secondary)
        os.close(primary)
    assert done.returncode == 2
    assert b"refusing to write an image to the terminal" in done.stderr


def test_a_bad_device_is_refused_even_when_masks_are_given(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", _photo(18))
    write_image(tmp_path / "m.png", _photo(19, (48, 64)))
    result = _run("blur", tmp_path / "a.png", "--mask", tmp_path / "m.png", "--device", "nonsense")
    assert result.exit_code == 2 and "--device nonsense" in result.stderr


# 10. One decision rule for --classes and the alpha mask.


def test_classes_follow_the_alpha_masks_rule() -> None:
    low = np.empty((12, 16, 3), np.float32)
    low[...] = (0.4, 0.35, 0.25)  # background is the likeliest class, but the subject is 60 %
    low[:, 8:] = (0.7, 0.2, 0.1)
    guide = np.full((48, 64), 128, np.uint8)
    for refine in (None, RefineOptions()):
        classes = decide_classes(low, guide, refine)
        alpha = enlarge_mask(1.0 - low[..., 0], guide, refine)
        np.testing.assert_array_equal(classes > 0, np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8) >= 128)
        assert (classes[:, :24] == 1).all()  # skin, the likelier subject class


def test_predict_classes_and_alpha_agree_on_an_uncertain_model(tmp_path: Path, tiny_weights: Path) -> None:
    write_image(tmp_path / "a.png", _photo(20, (60, 80, 3)))
    common = [tmp_path / "a.png", "-w", tiny_weights, "--subject", "head"]
    assert _run("predict", *common, "-o", tmp_path / "alpha.png").exit_code == 0
    assert _run("predict", *common, "--classes", "-o", tmp_path / "classes.png").exit_code == 0
    alpha = read_photo(tmp_path / "alpha.png").pixels
    classes = read_photo(tmp_path / "classes.png").pixels
    np.testing.assert_array_equal(classes > 0, alpha >= 128)


# 11. Phone photos.


def test_a_heic_photo_is_blurred_into_a_jpeg(tmp_path: Path, tiny_weights: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    image = pillow_heif.from_bytes(mode="RGB", size=(64, 48), data=_photo(21).tobytes())
    image.save(tmp_path / "phone.heic", quality=90)
    result = _run("blur", tmp_path / "phone.heic", "-w", tiny_weights, "--json")
    assert result.exit_code == 0, result.output
    assert _json(result)["phone.heic"]["output"].endswith("phone_blurred.jpg")
    out = read_photo(tmp_path / "phone_blurred.jpg")
    assert out.pixels.shape == (48, 64, 3) and out.format == ".jpg"
    assert output_mark((tmp_path / "phone_blurred.jpg").read_bytes()) == "blurred"


def test_file_results_say_why_they_skipped() -> None:
    line = json.loads(FileResult("a.jpg", None, "skipped", reason="because").to_json())
    assert line["reason"] == "because" and line["error"] is None
    assert Photo(np.zeros((2, 2), np.uint8)).grey is False
