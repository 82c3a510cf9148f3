"""Teacher labels: where our datasets say nothing of the person, MediaPipe's labels (written once by
`blurcli label`) supervise it; LFW's and CCP's own labels always win."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from blurcli.checkpoint import load_checkpoint
from blurcli.cli import app
from blurcli.errors import BlurcliError
from blurcli.training.ccp import load_person_split
from blurcli.training.lfw import load_split, load_unlabelled
from blurcli.training.people import load_people
from blurcli.training.run_data import taught
from blurcli.training.targets import (
    IGNORE,
    LFW_BACKGROUND,
    LFW_BODY,
    LFW_BODY_PERSON,
    LFW_HAIR,
    LFW_SKIN,
    MAYBE_PERSON,
    NOT_PERSON,
    PERSON,
    ccp_codes,
    class_target,
    lfw_codes,
    person_loss,
    with_teacher,
)
from blurcli.training.teacher import Teacher, read_teacher_labels, write_teacher_labels
from tests.ccp_fake import make_ccp_dataset

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
needs_mediapipe = pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None, reason="mediapipe (the teacher extra) not installed"
)


def _lower_half(image: np.ndarray) -> np.ndarray:
    """A fake teacher: the lower half of every photo is a person, the top row unsure, the rest not."""
    probability = np.zeros(image.shape[:2], np.float32)
    probability[image.shape[0] // 2 :] = 1.0
    probability[0] = 0.5
    return probability


_lower_half_teacher = Teacher("lower half", _lower_half)


# How the codes take the teacher's word


@pytest.mark.parametrize(
    ("code", "teacher", "expected"),
    [
        (LFW_BACKGROUND, 0.9, LFW_BODY_PERSON),  # a body below the chin, or a person behind
        (LFW_BODY, 0.9, LFW_BODY_PERSON),
        (LFW_BODY, 0.1, LFW_BACKGROUND),
        (LFW_BACKGROUND, 0.5, LFW_BODY),  # unsure: the person is not supervised there
        (LFW_BODY, 0.5, LFW_BODY),
        (LFW_SKIN, 0.1, LFW_SKIN),  # our labels win
        (LFW_HAIR, 0.1, LFW_HAIR),
        (MAYBE_PERSON, 0.9, PERSON),  # a CCP bystander
        (MAYBE_PERSON, 0.1, NOT_PERSON),
        (MAYBE_PERSON, 0.5, MAYBE_PERSON),
        (NOT_PERSON, 0.9, NOT_PERSON),  # CCP's null next to its person is truth
        (PERSON, 0.1, PERSON),
        (IGNORE, 0.9, PERSON),  # an unlabelled photo
        (IGNORE, 0.1, NOT_PERSON),
        (IGNORE, 0.5, IGNORE),
    ],
)
def test_teacher_labels_fill_only_what_our_labels_leave_open(
    code: int, teacher: float, expected: int
) -> None:
    codes = np.full((2, 3), code, np.uint8)
    assert (with_teacher(codes, np.full((2, 3), teacher, np.float32)) == expected).all()


def test_a_body_the_teacher_marks_is_background_for_the_classes_and_a_person_for_the_person() -> None:
    codes = torch.tensor([[[LFW_BODY_PERSON, LFW_BACKGROUND]]])
    assert class_target(codes).tolist() == [[[0, 0]]]
    sure_person = torch.tensor([[[8.0, 8.0]]])
    assert person_loss(sure_person, codes) == pytest.approx(8.0 / 2, rel=1e-3)  # only the background pays


# Unlabelled LFW photos


def test_unlabelled_photos_of_an_unpacked_release_are_those_of_people_without_masks(lfw_dir: Path) -> None:
    names, images = load_unlabelled(lfw_dir)
    assert names == ("Unlabelled_0_0001", "Unlabelled_1_0001")
    assert images.shape == (2, 250, 250, 3) and images.dtype == np.uint8


def test_unlabelled_photos_are_read_from_their_archive(lfw_dir: Path, tmp_path: Path) -> None:
    release = tmp_path / "lfw"
    release.mkdir()
    for split in ("parts_train.txt", "parts_validation.txt", "parts_test.txt"):
        (release / split).write_bytes((lfw_dir / split).read_bytes())
    with tarfile.open(release / "lfw-funneled-unlabelled.tgz", "w:gz") as tar:
        tar.add(lfw_dir / "lfw_funneled" / "Unlabelled_1", arcname="lfw_funneled/Unlabelled_1")
    names, images = load_unlabelled(release)
    assert names == ("Unlabelled_1_0001",)
    assert np.array_equal(images, load_unlabelled(lfw_dir)[1][1:])


def test_a_release_without_unlabelled_photos_says_so(tmp_path: Path) -> None:
    with pytest.raises(BlurcliError, match="no unlabelled photos"):
        load_unlabelled(tmp_path)


# Writing and reading the labels


def test_labels_hold_the_teachers_probability_for_each_training_photo(lfw_dir: Path, tmp_path: Path) -> None:
    ccp = make_ccp_dataset(tmp_path / "ccp", count=3)
    record = write_teacher_labels(lfw_dir, ccp, tmp_path / "labels", limit=3, teacher=_lower_half_teacher)
    assert record == {**record, "teacher": "lower half", "counts": {"lfw": 3, "lfw-unlabelled": 2, "ccp": 3}}
    assert json.loads((tmp_path / "labels" / "labels.json").read_text())["counts"] == record["counts"]
    train = load_split(lfw_dir, "train")
    [probability] = read_teacher_labels(tmp_path / "labels" / "lfw", train.names[:1], [(250, 250)])
    assert np.abs(probability - _lower_half(train.images[0])).max() <= 1 / 255  # 8 bits
    assert sorted(p.name for p in (tmp_path / "labels" / "ccp").iterdir()) == [
        "0001.png",
        "0002.png",
        "0003.png",
    ]


def test_a_missing_label_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(BlurcliError, match=r"Someone_0001\.png: missing"):
        read_teacher_labels(tmp_path, ["Someone_0001"], [(250, 250)])


def test_taught_codes_mark_lfw_bodies_ccp_bystanders_and_add_the_unlabelled_photos(
    lfw_dir: Path, tmp_path: Path
) -> None:
    ccp = make_ccp_dataset(tmp_path / "ccp", count=3)
    write_teacher_labels(lfw_dir, ccp, tmp_path / "labels", limit=3, teacher=_lower_half_teacher)
    faces = load_split(lfw_dir, "train", limit=3)
    faces = type(faces)(faces.names, faces.images, lfw_codes(faces.masks))
    people = load_person_split(ccp, "train", limit=3)
    people_codes = (people.images, tuple(ccp_codes(mask) for mask in people.masks))
    taught_faces, (_, taught_people) = taught(tmp_path / "labels", lfw_dir, faces, people_codes)
    assert taught_faces.names[-2:] == ("Unlabelled_0_0001", "Unlabelled_1_0001")
    assert len(taught_faces.names) == len(taught_faces.images) == len(taught_faces.masks) == 5
    assert (taught_faces.masks[:3, -1] == LFW_BODY_PERSON).any()  # bodies at the bottom of LFW photos
    assert set(np.unique(taught_faces.masks[3:])) <= {PERSON, NOT_PERSON, IGNORE}
    assert all((codes[-1] != MAYBE_PERSON).all() for codes in taught_people)


def test_train_learns_from_teacher_labels(lfw_dir: Path, tmp_path: Path) -> None:
    ccp = make_ccp_dataset(tmp_path / "ccp", numbers=[*range(1, 5), *range(801, 805)])
    write_teacher_labels(lfw_dir, ccp, tmp_path / "labels", limit=4, teacher=_lower_half_teacher)
    out = tmp_path / "run" / "m.pt"
    args = [
        "train", "--data", lfw_dir, "--person-data", ccp, "--person-labels", tmp_path / "labels",
        "--out", out, "--epochs", "1", "--batch-size", "4", "--input-size", "32", "--width", "4",
        "--depth", "2", "--stem-stride", "1", "--workers", "0", "--device", "cpu", "--loss-size", "0",
        "--limit", "4",
    ]  # fmt: skip
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out).info["train"]["person_labels"] == str(tmp_path / "labels")


@pytest.mark.parametrize("with_person_data", [False, True])
def test_person_labels_need_person_data_and_a_labels_folder(
    lfw_dir: Path, tmp_path: Path, with_person_data: bool
) -> None:
    args = ["train", "--data", lfw_dir, "--out", tmp_path / "m.pt", "--person-labels", tmp_path / "none"]
    if with_person_data:
        args += ["--person-data", make_ccp_dataset(tmp_path / "ccp", count=2)]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 2
    expected = "no teacher labels here" if with_person_data else "give --person-data too"
    assert expected in result.output
    assert not (tmp_path / "m.pt").exists()


# The real teacher, where the teacher extra is installed


@needs_mediapipe
def test_the_teacher_marks_the_astronaut_and_not_the_corner() -> None:
    from blurcli.training.teacher import selfie_segmenter

    photo = cv2.cvtColor(cv2.imread(str(EXAMPLE)), cv2.COLOR_BGR2RGB)
    probability = selfie_segmenter()(photo)
    assert probability.shape == photo.shape[:2]
    assert probability[330:450, 150:300].mean() > 0.8  # her suit
    assert probability[:90, :90].mean() < 0.2  # the flag


@needs_mediapipe
def test_label_command_writes_labels_for_a_tiny_release(lfw_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["label", "--data", str(lfw_dir), "--out", str(tmp_path / "labels"), "--limit", "2"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "labels" / "lfw").glob("*.png"))) == 2
    assert len(list((tmp_path / "labels" / "lfw-unlabelled").glob("*.png"))) == 2


def test_label_without_the_teacher_says_how_to_install_it(
    lfw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "mediapipe", None)  # import fails as if missing
    result = runner.invoke(app, ["label", "--data", str(lfw_dir), "--out", str(tmp_path / "labels")])
    assert result.exit_code == 1
    assert "blurcli[teacher]" in result.output


# A folder of photos and masks (people-dev's layout)


def test_a_people_folder_pairs_photos_with_masks_by_name(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    photo = np.full((20, 30, 3), 90, np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 10:20] = 255
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / "images" / f"{name}.jpg"), photo)
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)  # b has no mask: left out
    people = load_people(tmp_path)
    assert people.names == ("a",)
    assert people.masks[0].sum() == 100 and people.masks[0].max() == 1
    cv2.imwrite(str(tmp_path / "masks" / "b.png"), mask[:10])
    with pytest.raises(BlurcliError, match=r"b\.png: mask is 30x10, photo 30x20"):
        load_people(tmp_path)
