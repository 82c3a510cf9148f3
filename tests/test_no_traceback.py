"""No command shows a user a Python traceback: every invalid option value and every place the file
system refuses (a file where a folder should be, a name too long, a read-only folder, a cache that
cannot be created) is one line on stderr, exit code 2 for a usage mistake and 1 for failed work,
and `train` that cannot write --out fails before any work and leaves nothing behind.

Most cases go through Typer's CliRunner (fast, in-process); a few run `python -m blurcli` in real
processes, started together, to prove what reaches a terminal."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from blurcli.checkpoint import Checkpoint, save_checkpoint
from blurcli.cli import app
from blurcli.encode import encode_image
from blurcli.model import UNet, UNetConfig
from blurcli.photo import write_image

runner = CliRunner()
LONG = "x" * 300  # longer than any file system's 255-byte name limit
# The smallest training run, for cases that must get past the options to fail.
TINY_RUN = (
    "--epochs", "1", "--limit", "2", "--input-size", "32", "--width", "4", "--depth", "2",
    "--stem-stride", "1", "--workers", "0", "--device", "cpu", "--loss-size", "0",
)  # fmt: skip


@dataclass(frozen=True)
class Places:
    """Inputs, good and bad, shared by every case (all in `shared`, but the fixtures'), and `out`,
    the case's own empty folder."""

    shared: Path
    photo: Path
    tiny: Path  # a valid tiny checkpoint
    lfw: Path  # a tiny LFW Part Labels folder
    archives: Path  # the same as the authors' .tgz archives (unpacked into the cache)
    file: Path  # a plain file, where a folder is needed
    empty_dir: Path
    random: Path  # random bytes named .pt
    empty: Path  # an empty .pt
    image: Path  # a PNG named .pt
    folder: Path  # a folder named .pt
    bent: Path  # a blurcli checkpoint with the right keys and one tensor of the wrong shape
    wide: Path  # a valid checkpoint of another architecture (width 8)
    negative: Path  # a checkpoint whose config describes a network of -3 channels
    out: Path


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path, lfw_dir: Path, lfw_archives: Path
) -> Places:
    root = tmp_path_factory.mktemp("places")
    write_image(root / "photo.jpg", np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8))
    (root / "plain.txt").write_text("not a folder\n")
    (root / "empty").mkdir()
    (root / "random.pt").write_bytes(np.random.default_rng(1).bytes(2000))
    (root / "empty.pt").write_bytes(b"")
    (root / "image.pt").write_bytes(encode_image(np.zeros((8, 8, 3), np.uint8), ".png"))
    (root / "folder.pt").mkdir()
    tiny, wide = UNetConfig(width=4, depth=2, stem_stride=1), UNetConfig(width=8, depth=2, stem_stride=1)
    bent = {**UNet(tiny).state_dict(), "stem.0.0.weight": torch.zeros(1, 2)}
    save_checkpoint(root / "bent.pt", Checkpoint(tiny, bent, 64))
    save_checkpoint(root / "wide.pt", Checkpoint(wide, UNet(wide).state_dict(), 64))
    save_checkpoint(root / "negative.pt", Checkpoint(UNetConfig(width=-3, depth=2), {}, 64))
    return Places(
        shared=root, photo=root / "photo.jpg", tiny=tiny_weights, lfw=lfw_dir, archives=lfw_archives,
        file=root / "plain.txt", empty_dir=root / "empty", random=root / "random.pt",
        empty=root / "empty.pt", image=root / "image.pt", folder=root / "folder.pt",
        bent=root / "bent.pt", wide=root / "wide.pt", negative=root / "negative.pt",
        out=root / "unused",
    )  # fmt: skip


@pytest.fixture
def places(shared: Places, tmp_path: Path) -> Places:
    return dataclasses.replace(shared, out=tmp_path)


Args = Callable[[Places], list[object]]
HTTPS_BAD_SHA = "https://example.org/m.pt#sha256=xyz"


@dataclass(frozen=True)
class Case:
    """A command line, the exit code it must give, and words its one-line error must hold."""

    args: Args
    code: int
    says: str


def _cases(command: str, table: dict[str, tuple[Args, int, str]]) -> list[object]:
    return [pytest.param(Case(*row), id=f"{command}-{name}") for name, row in table.items()]


# The value is refused by the option's type or range, or the option is unknown: Click's usage
# error, one line too, that says where the help is.
CLICK = "--help)"

# fmt: off
BLUR = {
    "kernel": (lambda p: ["blur", p.photo, "--kernel", "foo"], 2, CLICK),
    "heads": (lambda p: ["blur", p.photo, "--heads", "foo"], 2, CLICK),
    "strength-negative": (lambda p: ["blur", p.photo, "--strength", "-1"], 2, CLICK),
    "strength-text": (lambda p: ["blur", p.photo, "--strength", "abc"], 2, CLICK),
    "feather-huge": (lambda p: ["blur", p.photo, "--feather", "1"], 2, CLICK),
    "quality-zero": (lambda p: ["blur", p.photo, "--quality", "0"], 2, CLICK),
    "quality-high": (lambda p: ["blur", p.photo, "--quality", "101"], 2, CLICK),
    "jobs-zero": (lambda p: ["blur", p.photo, "--jobs", "0"], 2, CLICK),
    "batch-zero": (lambda p: ["blur", p.photo, "--batch-size", "0"], 2, CLICK),
    "max-pixels-zero": (lambda p: ["blur", p.photo, "--max-pixels", "0"], 2, CLICK),
    "unknown-option": (lambda p: ["blur", p.photo, "--nonsense"], 2, CLICK),
    "no-images": (lambda p: ["blur"], 2, CLICK),
    "subject": (lambda p: ["blur", p.photo, "-w", p.tiny, "--subject", "foo"], 2, "--subject foo"),
    "format": (lambda p: ["blur", p.photo, "-w", p.tiny, "--format", "foo"], 2, "--format foo"),
    "device": (lambda p: ["blur", p.photo, "-w", p.tiny, "--device", "nonsense"], 2, "--device nonsense"),
    "device-gpu": (lambda p: ["blur", p.photo, "-w", p.tiny, "--device", "cuda:99"], 2, "--device cuda:99"),
    "weights-sha": (lambda p: ["blur", p.photo, "-w", HTTPS_BAD_SHA], 2, "#sha256=<64 hex digits>"),
    "weights-no-sha": (lambda p: ["blur", p.photo, "-w", "https://example.org/m.pt"], 2, "#sha256="),
    "weights-scheme": (lambda p: ["blur", p.photo, "-w", "ftp://example.org/m.pt"], 2, "unsupported URL"),
    "weights-random": (lambda p: ["blur", p.photo, "-w", p.random, "-o", p.out / "o.jpg"], 1,
                       "random.pt: not a blurcli model (not an ONNX model or a PyTorch file)"),
    "weights-empty": (lambda p: ["blur", p.photo, "-w", p.empty, "-o", p.out / "o.jpg"], 1,
                      "empty.pt: not a blurcli model (an empty file)"),
    "weights-png": (lambda p: ["blur", p.photo, "-w", p.image, "-o", p.out / "o.jpg"], 1,
                    "image.pt: not a blurcli model (a PNG image"),
    "weights-folder": (lambda p: ["blur", p.photo, "-w", p.folder, "-o", p.out / "o.jpg"], 1,
                       "folder.pt: is a directory"),
    "weights-shape": (lambda p: ["blur", p.photo, "-w", p.bent, "-o", p.out / "o.jpg"], 1,
                      "bent.pt: weights do not fit the model: tensor stem.0.0.weight expected (4, 3, 3, 3), "
                      "found (1, 2)"),
    "weights-negative-width": (lambda p: ["blur", p.photo, "-w", p.negative, "-o", p.out / "o.jpg"], 1,
                               "negative.pt: damaged blurcli checkpoint (config width -3"),
    "weights-missing": (lambda p: ["blur", p.photo, "-w", p.out / "gone.pt"], 1, "gone.pt: no such weights"),
    "weights-long-name": (lambda p: ["blur", p.photo, "-w", p.out / f"{LONG}.pt"], 1, f"{LONG}.pt: "),
    "input-missing": (lambda p: ["blur", p.out / "gone.jpg", "-w", p.tiny], 1, "gone.jpg: no such file"),
    "input-long-name": (lambda p: ["blur", p.out / f"{LONG}.jpg", "-w", p.tiny], 1, f"{LONG}.jpg"),
    "output-under-a-file": (lambda p: ["blur", p.photo, "-w", p.tiny, "-o", p.file / "o.jpg"], 1, "o.jpg"),
    "output-long-name": (lambda p: ["blur", p.photo, "-w", p.tiny, "-o", p.out / f"{LONG}.jpg"], 1, LONG),
}

PREDICT = {
    "heads": (lambda p: ["predict", p.photo, "--heads", "foo"], 2, CLICK),
    "quality": (lambda p: ["predict", p.photo, "--quality", "0"], 2, CLICK),
    "jobs": (lambda p: ["predict", p.photo, "--jobs", "-1"], 2, CLICK),
    "classes-and-overlay": (lambda p: ["predict", p.photo, "--classes", "--overlay"], 2, "cannot be used"),
    "subject": (lambda p: ["predict", p.photo, "-w", p.tiny, "--subject", "foo"], 2, "--subject foo"),
    "format": (lambda p: ["predict", p.photo, "-w", p.tiny, "--format", "foo"], 2, "--format foo"),
    "device": (lambda p: ["predict", p.photo, "-w", p.tiny, "--device", "nonsense"], 2, "--device nonsense"),
    "weights-random": (lambda p: ["predict", p.photo, "-w", p.random, "-o", p.out / "m.png"], 1,
                       "not a blurcli model"),
    "weights-shape": (lambda p: ["predict", p.photo, "-w", p.bent, "-o", p.out / "m.png"], 1,
                      "weights do not fit the model"),
    "output-under-a-file": (lambda p: ["predict", p.photo, "-w", p.tiny, "-o", p.file / "m.png"], 1, "m.png"),
    "output-long-name": (lambda p: ["predict", p.photo, "-w", p.tiny, "-o", p.out / f"{LONG}.png"], 1, LONG),
}

EVAL = {
    "no-data": (lambda p: ["eval"], 2, CLICK),
    "batch-zero": (lambda p: ["eval", "--data", p.lfw, "--batch-size", "0"], 2, CLICK),
    "limit-zero": (lambda p: ["eval", "--data", p.lfw, "--limit", "0"], 2, CLICK),
    "limit-text": (lambda p: ["eval", "--data", p.lfw, "--limit", "abc"], 2, CLICK),
    "split": (lambda p: ["eval", "--data", p.lfw, "-w", p.tiny, "--split", "foo"], 2, "--split foo"),
    "subject": (lambda p: ["eval", "--data", p.lfw, "-w", p.tiny, "--subject", "foo"], 2,
                "--subject foo: unknown subject"),
    "subject-of-other-data": (lambda p: ["eval", "--data", p.lfw, "-w", p.tiny, "--subject", "person"], 2,
                              "--subject person"),
    "device": (lambda p: ["eval", "--data", p.lfw, "-w", p.tiny, "--device", "nonsense"], 2, "--device"),
    "device-gpu": (lambda p: ["eval", "--data", p.lfw, "-w", p.tiny, "--device", "cuda:99"], 2, "cuda:99"),
    "data-missing": (lambda p: ["eval", "--data", p.out / "nowhere", "-w", p.tiny], 2,
                     "dataset folder does not exist"),
    "data-a-file": (lambda p: ["eval", "--data", p.file, "-w", p.tiny], 2, "plain.txt: a file"),
    "data-empty-folder": (lambda p: ["eval", "--data", p.empty_dir, "-w", p.tiny], 1, "split file missing"),
    "data-long-name": (lambda p: ["eval", "--data", p.out / LONG, "-w", p.tiny], 2,
                       "cannot open the dataset folder"),
    "weights-random": (lambda p: ["eval", "--data", p.lfw, "-w", p.random], 1, "not a blurcli model"),
    "weights-shape": (lambda p: ["eval", "--data", p.lfw, "-w", p.bent], 1, "weights do not fit the model"),
}

# Options added to a tiny training run (the last value of an option wins); each fails before training.
TRAIN = {
    "epochs-zero": (lambda p: ["--epochs", "0"], 2, CLICK),
    "epochs-text": (lambda p: ["--epochs", "abc"], 2, CLICK),
    "batch-zero": (lambda p: ["--batch-size", "0"], 2, CLICK),
    "lr-negative": (lambda p: ["--lr", "-1"], 2, CLICK),
    "width-zero": (lambda p: ["--width", "0"], 2, CLICK),
    "depth-zero": (lambda p: ["--depth", "0"], 2, CLICK),
    "depth-seven": (lambda p: ["--depth", "7"], 2, CLICK),
    "stem-stride-zero": (lambda p: ["--stem-stride", "0"], 2, CLICK),
    "workers-negative": (lambda p: ["--workers", "-1"], 2, CLICK),
    "limit-zero": (lambda p: ["--limit", "0"], 2, CLICK),
    "distill-above-one": (lambda p: ["--distill", "2"], 2, CLICK),
    "loss-size-negative": (lambda p: ["--loss-size", "-1"], 2, CLICK),
    "subject-iou-negative": (lambda p: ["--subject-iou", "-1"], 2, CLICK),
    "patience-negative": (lambda p: ["--patience", "-1"], 2, CLICK),
    "person-weight-negative": (lambda p: ["--person-weight", "-1"], 2, CLICK),
    "lr-infinite": (lambda p: ["--lr", "inf"], 2, "--lr inf"),
    "subject-iou-infinite": (lambda p: ["--subject-iou", "inf"], 2, "--subject-iou inf"),
    "seed-negative": (lambda p: ["--seed", "-1"], 2, "--seed -1"),
    "seed-huge": (lambda p: ["--seed", str(2**70)], 2, f"--seed {2**70}"),
    "input-size-zero": (lambda p: ["--input-size", "0"], 2, "--input-size 0"),
    "input-size-negative": (lambda p: ["--input-size", "-32"], 2, "--input-size -32"),
    "input-size-odd": (lambda p: ["--input-size", "33"], 2, "--input-size 33"),
    "input-size-huge": (lambda p: ["--input-size", "100000000"], 2, "--input-size 100000000"),
    "loss-size-huge": (lambda p: ["--loss-size", "100000"], 2, "--loss-size 100000"),
    "loss-size-small": (lambda p: ["--loss-size", "8"], 2, "--loss-size 8 is smaller"),
    "width-huge": (lambda p: ["--width", "100000000"], 2, "parameters"),
    "device": (lambda p: ["--device", "nonsense"], 2, "--device nonsense"),
    "device-gpu": (lambda p: ["--device", "cuda:99"], 2, "--device cuda:99"),
    "soup-by-without-soup": (lambda p: ["--soup-by", "foo"], 2, "--soup-by foo"),
    "resume-nothing": (lambda p: ["--resume"], 2, "nothing to resume"),
    "init-random": (lambda p: ["--init", p.random], 1, "random.pt: not a blurcli checkpoint"),
    "init-other-architecture": (lambda p: ["--init", p.wide], 1, "wide.pt: weights do not fit the model"),
    "teacher-folder": (lambda p: ["--teacher", p.folder], 1, "folder.pt: is a directory"),
    "teacher-missing": (lambda p: ["--teacher", p.out / "gone.pt"], 1, "gone.pt: no such weights file"),
    "person-data-missing": (lambda p: ["--person-data", p.out / "nowhere"], 2, "folder does not exist"),
    "person-data-a-file": (lambda p: ["--person-data", p.file], 2, "not a file"),
    "person-data-not-ccp": (lambda p: ["--person-data", p.lfw], 1, "not Clothing Co-Parsing"),
    "person-labels-alone": (lambda p: ["--person-labels", p.empty_dir], 2, "give --person-data too"),
    "data-missing": (lambda p: ["--data", p.out / "nowhere"], 2, "dataset folder does not exist"),
    "data-a-file": (lambda p: ["--data", p.file], 2, "plain.txt: a file"),
    "data-empty-folder": (lambda p: ["--data", p.empty_dir], 1, "split file missing"),
    "data-long-name": (lambda p: ["--data", p.out / LONG], 2, "cannot open the dataset folder"),
    "out-a-folder": (lambda p: ["--out", p.empty_dir], 2, "is a folder; give a file name"),
    "out-a-users-file": (lambda p: ["--out", p.file], 2, "plain.txt: refusing to replace a file"),
    "out-inside-data": (lambda p: ["--out", p.lfw / "m.pt"], 2, "m.pt: inside --data"),
    "out-under-a-file": (lambda p: ["--out", p.file / "m.pt"], 1, "plain.txt is a file, not a folder"),
    "out-deep-under-a-file": (lambda p: ["--out", p.file / "a" / "m.pt"], 1, "plain.txt is a file, not"),
    "out-long-name": (lambda p: ["--out", p.out / "run" / f"{LONG}.pt"], 1, f"{LONG}.pt: cannot write"),
    "out-long-folder": (lambda p: ["--out", p.out / LONG / "m.pt"], 1, "m.pt: cannot write"),
    "snapshots-long-name": (lambda p: ["--out", p.out / f"{'x' * 240}.pt", "--snapshots"], 1, "cannot write"),
}

LABEL = {
    "data-missing": (lambda p: ["label", "--data", p.out / "nowhere", "--out", p.out / "l"], 2, "not exist"),
    "person-data-a-file": (
        lambda p: ["label", "--data", p.lfw, "--person-data", p.file, "--out", p.out / "l"], 2, "a file"
    ),
    "out-under-a-file": (lambda p: ["label", "--data", p.lfw, "--out", p.file / "l"], 1, "is a file, not"),
    "unlabelled-negative": (lambda p: ["label", "--data", p.lfw, "--out", "l", "--unlabelled", "-1"], 2,
                            CLICK),
    "limit-zero": (lambda p: ["label", "--data", p.lfw, "--out", p.out / "l", "--limit", "0"], 2, CLICK),
}

SOUP = {
    "ingredient-random": (lambda p: ["--soup", p.tiny, "--soup", p.random], 1, "random.pt: not a blurcli"),
    "ingredient-missing": (lambda p: ["--soup", p.out / "gone.pt"], 1, "gone.pt: no such weights file"),
    "ingredients-differ": (lambda p: ["--soup", p.tiny, "--soup", p.wide], 2, "needs one architecture"),
    "soup-by": (lambda p: ["--soup", p.tiny, "--soup-by", "foo"], 2, "--soup-by foo"),
    "device": (lambda p: ["--soup", p.tiny, "--device", "nonsense"], 2, "--device nonsense"),
    "data-missing": (lambda p: ["--soup", p.tiny, "--data", p.out / "nowhere"], 2, "folder does not exist"),
    "out-a-folder": (lambda p: ["--soup", p.tiny, "--out", p.empty_dir], 2, "is a folder"),
    "out-under-a-file": (lambda p: ["--soup", p.tiny, "--out", p.file / "m.pt"], 1, "is a file, not a"),
    "out-long-name": (lambda p: ["--soup", p.tiny, "--out", p.out / f"{LONG}.pt"], 1, "cannot write"),
}
# fmt: on


def _invoke(args: list[object]) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _check(result: object, code: int, says: str) -> None:
    """The exit code, no traceback, and the error in one line holding `says`."""
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == code, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.output, result.output  # type: ignore[attr-defined]
    assert "internal error" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert says in lines[0], lines[0]


def _files(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*"))


@pytest.mark.parametrize(
    "case", _cases("blur", BLUR) + _cases("predict", PREDICT) + _cases("eval", EVAL) + _cases("label", LABEL)
)
def test_a_bad_value_or_place_is_one_line_with_its_exit_code(places: Places, case: Case) -> None:
    _check(_invoke(case.args(places)), case.code, case.says)


def _train_args(places: Places, extra: list[object]) -> list[object]:
    """A tiny training run into out/run/m.pt, `extra` overriding its options (the last one wins)."""
    return ["train", "--data", places.lfw, "--out", places.out / "run" / "m.pt", *TINY_RUN, *extra]


@pytest.mark.parametrize("case", _cases("train", TRAIN) + _cases("soup", SOUP))
def test_train_refuses_up_front_and_leaves_nothing_behind(places: Places, case: Case) -> None:
    before = _files(places.shared)
    _check(_invoke(_train_args(places, case.args(places))), case.code, case.says)
    assert _files(places.out) == []
    assert _files(places.shared) == before


@pytest.fixture
def read_only(places: Places, lock: Callable[[Path], None]) -> Path:
    """An empty folder nothing can be created in, root included (conftest's lock)."""
    folder = places.out / "read-only"
    folder.mkdir()
    lock(folder)
    return folder


@pytest.mark.parametrize("soup", [False, True], ids=["train", "soup"])
def test_train_into_a_read_only_folder_fails_up_front(places: Places, read_only: Path, soup: bool) -> None:
    extra = ["--out", read_only / "run" / "m.pt"] + (["--soup", places.tiny] if soup else [])
    _check(_invoke(_train_args(places, extra)), 1, "Permission denied")
    assert _files(read_only) == []


def test_blur_into_a_read_only_folder_is_one_line(places: Places, read_only: Path) -> None:
    result = _invoke(["blur", places.photo, "-w", places.tiny, "-o", read_only / "o.jpg"])
    _check(result, 1, "o.jpg")


@pytest.fixture(params=["a file", "read-only"])
def unusable_home(
    request: pytest.FixtureRequest, places: Places, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """BLURCLI_HOME (the weights and dataset cache) where nothing can be created."""
    if request.param == "a file":
        home = places.out / "home"
        home.write_text("a file, not a folder\n")
    else:
        home = request.getfixturevalue("read_only")
    monkeypatch.setenv("BLURCLI_HOME", str(home))
    yield home


def test_a_weights_cache_that_cannot_be_created_is_one_line(places: Places, unusable_home: Path) -> None:
    url = f"http://127.0.0.1:9/m.pt#sha256={'0' * 64}"  # refused before any connection is tried
    result = _invoke(["blur", places.photo, "-w", url, "-o", places.out / "o.jpg"])
    _check(result, 1, "cannot keep downloaded weights there")
    assert "BLURCLI_HOME" in result.stderr  # type: ignore[attr-defined]


def test_a_dataset_cache_that_cannot_be_created_is_one_line(places: Places, unusable_home: Path) -> None:
    result = _invoke(["eval", "--data", places.archives, "-w", places.tiny])
    _check(result, 1, "cannot unpack the dataset into the cache")


def test_training_still_runs_after_the_up_front_checks(places: Places) -> None:
    out = places.out / "new" / "deeper" / "m.pt"
    result = _invoke(_train_args(places, ["--out", out]))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "m.curves.png",
        "m.last.pt",
        "m.log.jsonl",
        "m.pt",
    ]


# The cases the other engineer's part of the tree (blur/predict planning and writing) still words
# badly: one line and the right exit code, but a misleading reason.


def test_blur_under_a_file_names_the_file_in_the_way(places: Places) -> None:
    result = _invoke(["blur", places.photo, "-w", places.tiny, "-o", places.file / "o.jpg"])
    _check(result, 1, "plain.txt is a file, not a folder")


def test_a_pattern_that_matches_nothing_says_so(places: Places) -> None:
    _check(_invoke(["blur", places.out / "*.nothing", "-w", places.tiny]), 1, "*.nothing")
    assert "cannot write" not in _invoke(["blur", "[", "-w", places.tiny]).stderr  # type: ignore[attr-defined]


def test_an_empty_output_name_is_a_usage_error(places: Places, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(places.out)
    _check(_invoke(["blur", places.photo, "-w", places.tiny, "-o", ""]), 2, "-o")
    assert _files(places.out) == []


# What reaches a real terminal: the same errors from `python -m blurcli`, in processes started
# together (each pays Python's and torch's start-up).

# fmt: off
PROCESSES = {
    "version": (lambda p: ["--version"], 0, None),
    "blur-weights-random": (lambda p: ["blur", p.photo, "-w", p.random, "-o", p.out / "o.jpg"], 1,
                            "random.pt: not a blurcli model (not an ONNX model or a PyTorch file)"),
    "blur-kernel": (lambda p: ["blur", p.photo, "--kernel", "foo"], 2, CLICK),
    "predict-weights-shape": (lambda p: ["predict", p.photo, "-w", p.bent, "-o", p.out / "m.png"], 1,
                              "weights do not fit the model: tensor stem.0.0.weight"),
    "train-out-under-a-file": (lambda p: ["train", "--data", p.lfw, "--out", p.file / "m.pt", *TINY_RUN], 1,
                               "plain.txt is a file, not a folder"),
}
# fmt: on


@pytest.fixture(scope="module")
def processes(
    shared: Places, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[subprocess.CompletedProcess, Places]]:
    out = tmp_path_factory.mktemp("processes")
    started = {}
    for name, (args, _, _) in PROCESSES.items():
        place = dataclasses.replace(shared, out=out / name)
        place.out.mkdir()
        command = [sys.executable, "-m", "blurcli", *(str(a) for a in args(place))]
        env = {**os.environ, "BLURCLI_HOME": str(out / "home"), "COLUMNS": "200"}
        pipes = subprocess.PIPE
        started[name] = (subprocess.Popen(command, stdout=pipes, stderr=pipes, env=env), place)
    done = {}
    for name, (process, place) in started.items():
        stdout, stderr = process.communicate(timeout=120)
        done[name] = (subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), place)
    return done


@pytest.mark.parametrize("name", list(PROCESSES))
def test_a_real_process_prints_no_traceback(processes: dict, name: str) -> None:
    done, place = processes[name]
    _, code, says = PROCESSES[name]
    stderr = done.stderr.decode()
    assert done.returncode == code, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    if code == 0:
        assert done.stdout.decode().startswith("blurcli "), done.stdout
    else:
        assert stderr.count("\n") == 1 and stderr.startswith("error: ") and says in stderr, stderr
        assert done.stdout == b""
    assert _files(place.out) == []


def test_help_of_every_command_works(places: Places) -> None:
    for command in ([], ["blur"], ["predict"], ["eval"], ["train"], ["label"], ["export"]):
        result = _invoke([*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, result.output  # type: ignore[attr-defined]


def test_unknown_command_is_a_usage_error(places: Places) -> None:
    result = _invoke(["nonsense"])
    _check(result, 2, "No such command 'nonsense'")


def test_an_unknown_option_before_the_command_is_one_line(places: Places) -> None:
    _check(_invoke(["--nonsense", "blur"]), 2, "No such option: --nonsense")


def test_no_command_at_all_shows_the_help(places: Places) -> None:
    result = _invoke([])
    assert "Usage:" in result.output and "blur" in result.output, result.output  # type: ignore[attr-defined]
