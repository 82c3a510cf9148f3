"""The person subject: checkpoints say which outputs they have, the CLI and library choose one,
and a head-only model grows a person output to fine-tune."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from blurcli.checkpoint import Checkpoint, build_model, load_checkpoint, save_checkpoint
from blurcli.cli import app
from blurcli.errors import BlurcliError, UsageError
from blurcli.model import UNet, UNetConfig
from blurcli.photo import read_photo, write_image
from blurcli.second_look import looks_like_a_person, person_crop
from blurcli.segment import new_segmenter
from blurcli.training.start import with_person_output

runner = CliRunner()
SMALL = UNetConfig(width=4, depth=2, stem_stride=1)


@pytest.fixture(scope="module")
def person_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint with a person output whose logit is strongly positive: all person."""
    torch.manual_seed(0)
    config = UNetConfig(outputs=4, width=4, depth=2, stem_stride=1)
    model = UNet(config)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([3.0, 0.0, 0.0, 6.0]))  # head: background; person: yes
    path = tmp_path_factory.mktemp("weights") / "person.pt"
    save_checkpoint(path, Checkpoint(config, model.state_dict(), 64, subjects=("head", "person")))
    return path


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "p.png"
    write_image(path, np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return path


def test_a_model_segments_the_person_by_default_when_it_has_one(
    person_weights: Path, tiny_weights: Path
) -> None:
    assert new_segmenter(str(person_weights), "cpu").subject == "person"
    assert new_segmenter(str(tiny_weights), "cpu").subject == "head"  # older, head-only checkpoints load
    assert new_segmenter(str(person_weights), "cpu", subject="head").subject == "head"


def test_person_and_head_probabilities_come_from_their_own_outputs(person_weights: Path) -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    person = new_segmenter(str(person_weights), "cpu").probabilities([image], subject_only=True)[0]
    head = new_segmenter(str(person_weights), "cpu", subject="head").probabilities(
        [image], subject_only=True
    )[0]
    np.testing.assert_allclose(person, 1 / (1 + np.exp(-6.0)), rtol=1e-5)  # sigmoid of the person logit
    assert float(head.max()) < 0.1  # softmax of the classes: background
    classes = new_segmenter(str(person_weights), "cpu").probabilities([image])[0]
    assert classes.shape[-1] == 2  # background, person


def test_asking_a_head_model_for_the_person_is_a_clear_error(tiny_weights: Path, photo: Path) -> None:
    with pytest.raises(
        BlurcliError, match=r"tiny\.pt: this model has no person output \(it segments: head\)"
    ):
        new_segmenter(str(tiny_weights), "cpu", subject="person")
    with pytest.raises(UsageError, match="--subject body: unknown subject"):
        new_segmenter(str(tiny_weights), "cpu", subject="body")
    result = runner.invoke(app, ["blur", str(photo), "-w", str(tiny_weights), "--subject", "person"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tiny_weights}: this model has no person output (it segments: head); use --subject head"
    ]


def test_blur_keeps_the_person_sharp_and_head_follows_lfw(
    person_weights: Path, photo: Path, tmp_path: Path
) -> None:
    original = read_photo(photo).pixels
    for subject, kept in (("person", True), ("head", False)):
        out = tmp_path / f"{subject}.png"
        args = ["blur", str(photo), "-o", str(out), "-w", str(person_weights), "--subject", subject]
        result = runner.invoke(app, [*args, "--heads", "single"])
        assert result.exit_code == 0, result.output
        assert np.array_equal(read_photo(out).pixels, original) == kept


def test_predict_classes_for_the_person_writes_background_and_person(
    person_weights: Path, photo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "classes.png"
    result = runner.invoke(
        app, ["predict", str(photo), "-o", str(out), "-w", str(person_weights), "--classes"]
    )
    assert result.exit_code == 0, result.output
    assert set(np.unique(read_photo(out).pixels)) == {1}


def test_a_head_model_grows_a_person_output_that_leaves_its_classes_alone() -> None:
    torch.manual_seed(1)
    head = UNet(SMALL).eval()
    checkpoint = Checkpoint(SMALL, head.state_dict(), 64)
    grown = with_person_output(checkpoint)
    assert grown.subjects == ("head", "person") and grown.config.outputs == 4
    model = build_model(grown, "grown")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before, after = head(images), model(images)
    torch.testing.assert_close(after[:, :3], before)
    person = after[:, 3]  # starts as the head's (skin + hair) / 2 - background
    torch.testing.assert_close(person, (before[:, 1] + before[:, 2]) / 2 - before[:, 0])


def test_checkpoints_record_their_subjects(person_weights: Path, tiny_weights: Path) -> None:
    assert load_checkpoint(person_weights).subjects == ("head", "person")
    assert load_checkpoint(tiny_weights).subjects == ("head",)


def test_a_person_close_up_must_show_a_tall_centred_sure_person() -> None:
    close_up = np.zeros((64, 64), np.float32)
    close_up[8:60, 24:40] = 0.95
    assert looks_like_a_person(close_up)
    assert not looks_like_a_person(close_up * 0.6 + 0.2 * (close_up > 0))  # unsure
    short = np.zeros((64, 64), np.float32)
    short[40:60, 24:40] = 0.95
    assert not looks_like_a_person(short)  # a fragment, not a person framed whole
    side = np.zeros((64, 64), np.float32)
    side[8:60, 0:10] = 0.95
    assert not looks_like_a_person(side)  # at the crop's edge: another person's


def test_a_person_crop_frames_the_whole_box_with_a_margin() -> None:
    crop = person_crop((10, 20, 30, 100), scale=0.5)  # a 40x160 person in photo pixels
    assert crop.side == pytest.approx(160 * 1.15, abs=1)
    assert crop.left + crop.side / 2 == pytest.approx(
        40, abs=1
    ) and crop.top + crop.side / 2 == pytest.approx(120, abs=1)


def test_a_checkpoint_in_memory_takes_the_subject(person_weights: Path) -> None:
    checkpoint = load_checkpoint(person_weights)
    assert new_segmenter(checkpoint, "cpu", backend="torch", subject="head").output_classes == (
        "background",
        "skin",
        "hair",
    )
    assert new_segmenter(checkpoint, "cpu", backend="torch").output_classes == ("background", "person")


def test_a_soup_of_person_models_keeps_the_person_output(lfw_dir: Path, tmp_path: Path) -> None:
    from blurcli.training.soup import greedy_soup

    config = UNetConfig(outputs=4, width=4, depth=2, stem_stride=1)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.pt")
        save_checkpoint(
            paths[-1], Checkpoint(config, UNet(config).state_dict(), 32, subjects=("head", "person"))
        )
    result = greedy_soup(lfw_dir, tmp_path / "soup.pt", paths, "cpu", limit=4)
    soup = load_checkpoint(result.out)
    assert soup.subjects == ("head", "person") and soup.config.outputs == 4
    assert set(result.metrics["iou"]) == {"background", "skin", "hair"}  # scored on LFW's head classes


def test_a_uniform_soup_averages_every_ingredient_unranked(lfw_dir: Path, tmp_path: Path) -> None:
    from blurcli.training.soup import average_weights, greedy_soup

    config = UNetConfig(outputs=4, width=4, depth=2, stem_stride=1)
    paths = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.pt")
        save_checkpoint(
            paths[-1], Checkpoint(config, UNet(config).state_dict(), 32, subjects=("head", "person"))
        )
    result = greedy_soup(lfw_dir, tmp_path / "soup.pt", paths, "cpu", limit=4, metric="uniform")
    assert result.chosen == paths and len(result.steps) == 1
    expected = average_weights([load_checkpoint(path) for path in paths])
    soup = load_checkpoint(result.out)
    assert torch.allclose(soup.state_dict["head.weight"].float(), expected["head.weight"], atol=1e-3)
