"""The shipped default model, end to end: found with no flag, keeps the face sharp, blurs the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from blurcli.checkpoint import load_checkpoint
from blurcli.onnx_network import METADATA_KEY
from blurcli.photo import read_image, read_photo
from blurcli.refine import RefineOptions
from blurcli.render import predict
from blurcli.second_look import HeadOptions
from blurcli.segment import new_segmenter
from blurcli.training.ccp import load_person_split
from blurcli.training.evaluate import evaluate
from blurcli.training.lfw import SplitData, load_split
from blurcli.training.people import load_people
from blurcli.training.person_scores import predicted_person, score_person
from blurcli.weights import default_weights, resolve_checkpoint
from tests.conftest import REAL_LFW

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Boxes (top, bottom, left, right) in the 512x512 example: her face, and the flag in the top-left corner.
FACE = (95, 170, 190, 260)
CORNER = (0, 90, 0, 90)
# The person model takes part of the flag's star field beside her for her: 0.23 of the corner box
# (the previous person model 0.05; the head model 0.00). A known limit (weights/README.md); these
# bounds keep it from growing.
PERSON_CORNER = 0.3
SUIT = (330, 450, 150, 300)  # the middle of her orange suit, the mission patch included


def _sharpness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Variance of the Laplacian of the grey box: high for detail, low once blurred."""
    top, bottom, left, right = box
    grey = cv2.cvtColor(image[top:bottom, left:right], cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@pytest.mark.parametrize(("subject", "name"), [(None, "blurcli-person.onnx"), ("head", "blurcli-lfw.onnx")])
def test_the_shipped_default_model_is_onnx(subject: str | None, name: str) -> None:
    """What blur runs with no -w, for each subject: an ONNX model blurcli exported (ONNX Runtime
    reads it and finds blurcli's metadata in it)."""
    import onnxruntime

    path = default_weights(subject)
    assert path.name == name
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert METADATA_KEY in session.get_modelmeta().custom_metadata_map


def test_default_weights_ship_with_the_package() -> None:
    """Each shipped model: the ONNX file blur runs, its torch checkpoint beside it."""
    person, head = (load_checkpoint(resolve_checkpoint(None, subject=s)) for s in ("person", "head"))
    assert person.subjects == ("head", "person") and head.subjects == ("head",)
    for subject in ("person", "head"):
        checkpoint = resolve_checkpoint(None, subject=subject)
        assert load_checkpoint(checkpoint).info.get("eval_split") == "validation"
        assert checkpoint.stat().st_size <= 2 * 1024 * 1024
        assert default_weights(subject).stat().st_size <= 4 * 1024 * 1024


def test_the_default_mask_covers_her_suit_and_the_head_subject_does_not() -> None:
    photo = read_photo(EXAMPLE)
    person = predict(photo, new_segmenter(device="cpu")).pixels / 255.0
    head = predict(photo, new_segmenter(device="cpu", subject="head")).pixels / 255.0
    top, bottom, left, right = SUIT
    assert person[top:bottom, left:right].mean() > 0.8  # the whole person is kept sharp
    assert head[top:bottom, left:right].mean() < 0.2  # LFW's subject: her suit is background
    for mask, corner in ((person, PERSON_CORNER), (head, 0.1)):
        assert mask[FACE[0] : FACE[1], FACE[2] : FACE[3]].mean() > 0.9
        assert mask[CORNER[0] : CORNER[1], CORNER[2] : CORNER[3]].mean() < corner


def test_blur_with_the_default_model_keeps_the_face_sharp_and_blurs_the_corner(tmp_path: Path) -> None:
    output = tmp_path / "astronaut_blurred.jpg"
    done = subprocess.run(
        [sys.executable, "-m", "blurcli", "blur", str(EXAMPLE), "-o", str(output), "--device", "cpu"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    before, after = read_image(EXAMPLE), read_image(output)
    assert after.shape == before.shape
    assert _sharpness(after, FACE) > 0.8 * _sharpness(before, FACE)
    assert _sharpness(after, CORNER) < 0.35 * _sharpness(before, CORNER)  # 0.29: the star field (above)


def test_default_model_finds_the_face() -> None:
    alpha = new_segmenter(device="cpu").foreground(read_image(EXAMPLE))
    top, bottom, left, right = FACE
    assert alpha[top:bottom, left:right].mean() > 0.9
    assert alpha[CORNER[0] : CORNER[1], CORNER[2] : CORNER[3]].mean() < PERSON_CORNER


@pytest.mark.skipif(not REAL_LFW.is_dir(), reason="LFW Part Labels not present in ../shared/data")
def test_default_model_reaches_the_required_figures_on_100_test_images() -> None:
    # The "must reach" figures on a fixed sample, scored as `blurcli eval` does (masks
    # refined along the photo's edges). On the whole test split the shipped model scores
    # 96.85 % / 0.895 / 0.9324 (weights/README.md).
    test = load_split(REAL_LFW, "test")
    picked = np.linspace(0, len(test.names) - 1, 100).round().astype(int)  # fixed, spread over the split
    sample = SplitData(tuple(test.names[i] for i in picked), test.images[picked], test.masks[picked])
    figures = evaluate(new_segmenter(device="cpu", subject="head"), sample, refine=RefineOptions())
    assert figures["pixel_accuracy"] >= 0.960
    assert figures["mean_iou"] >= 0.88
    assert figures["subject_iou"] >= 0.93


# The shipped person model on real photos, scored as `predict` makes its masks (second look, full
# resolution, decided at 0.5): floors a little under what weights/README.md reports, so a regression
# fails. people-dev is validation only: scored here, never trained on.
PERSON_FLOORS = {"people-dev": (0.80, 0.84), "CCP test": (0.86, 0.0)}  # (person IoU, close-up IoU)


@pytest.mark.skipif(
    not (REAL_DATA / "people-dev").is_dir(), reason="people-dev not present in ../shared/data"
)
def test_the_shipped_person_model_keeps_whole_people_on_everyday_photos() -> None:
    scores = score_person(
        predicted_person(new_segmenter(device="cpu"), HeadOptions()), load_people(REAL_DATA / "people-dev")
    )
    iou, close_ups = PERSON_FLOORS["people-dev"]
    assert scores.iou >= iou and scores.close_up_iou >= close_ups


@pytest.mark.skipif(
    not (REAL_DATA / "ccp").is_dir(), reason="Clothing Co-Parsing not present in ../shared/data"
)
def test_the_shipped_person_model_keeps_its_figure_on_ccp_test() -> None:
    split = load_person_split(REAL_DATA / "ccp", "test")
    scores = score_person(predicted_person(new_segmenter(device="cpu"), HeadOptions()), split)
    assert scores.iou >= PERSON_FLOORS["CCP test"][0]
