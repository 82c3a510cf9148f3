"""Clothing Co-Parsing: its folder and archives read alike, its person is every labelled pixel, its
damage is named, and its person codes supervise the person output only where CCP can tell."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import loadmat
from typer.testing import CliRunner

from blurcli.checkpoint import load_checkpoint
from blurcli.cli import app
from blurcli.errors import BlurcliError, UsageError
from blurcli.training.ccp import (
    PersonSplit,
    decode_groundtruth,
    is_ccp,
    load_person_split,
    split_numbers,
)
from blurcli.training.targets import (
    LFW_BACKGROUND,
    LFW_BODY,
    LFW_HAIR,
    LFW_SKIN,
    MAYBE_PERSON,
    NOT_PERSON,
    PERSON,
    ccp_codes,
    lfw_codes,
    person_loss,
)
from tests.ccp_fake import BLOUSE, HAIR, NULL, SHOES, SKIN, make_ccp_dataset, write_groundtruth
from tests.lfw_fake import make_lfw_dataset

REAL_CCP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp"
needs_real_ccp = pytest.mark.skipif(
    not REAL_CCP.is_dir(), reason="Clothing Co-Parsing not present in ../shared/data"
)
LABELS = Path("annotations") / "pixel-level"
# A few numbers from each split, at its edges: train 1-800, validation 801-900, test 901-1004.
SAMPLE = (1, 2, 3, 801, 802, 901)
runner = CliRunner()


@pytest.fixture(scope="module")
def ccp_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 1,004 photos of a CCP release, tiny (about a second to write)."""
    return make_ccp_dataset(tmp_path_factory.mktemp("ccp-full"), 1004)


@pytest.fixture
def ccp_dir(tmp_path: Path) -> Path:
    """A small CCP folder a test may damage: photos 0001-0003, 0801-0802 and 0901."""
    return make_ccp_dataset(tmp_path / "ccp", numbers=SAMPLE)


def _load_sample(root: Path) -> list[PersonSplit]:
    return [
        load_person_split(root, split, limit=n) for split, n in (("train", 3), ("validation", 2), ("test", 1))
    ]


def _error(root: Path, split: str = "train", limit: int | None = 3) -> str:
    with pytest.raises(BlurcliError) as caught:
        load_person_split(root, split, limit=limit)
    message = str(caught.value)
    assert "\n" not in message
    return message


# Layouts and splits


def test_splits_are_photos_1_to_800_801_to_900_and_901_to_1004() -> None:
    assert split_numbers("train") == range(1, 801)
    assert split_numbers("validation") == range(801, 901)
    assert split_numbers("test") == range(901, 1005)
    with pytest.raises(UsageError, match="unknown split"):
        split_numbers("val")


def test_each_split_loads_its_own_numbered_photos(ccp_full: Path) -> None:
    sizes = {}
    for split in ("train", "validation", "test"):
        data = load_person_split(ccp_full, split)
        assert data.names == tuple(f"{n:04d}" for n in split_numbers(split))
        sizes[split] = len(data.images)
        first = cv2.cvtColor(cv2.imread(str(ccp_full / "photos" / f"{data.names[0]}.jpg")), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(data.images[0], first)
        assert len(data.masks) == len(data.names)
    assert sizes == {"train": 800, "validation": 100, "test": 104}


def test_limit_takes_the_first_photos_of_the_split(ccp_dir: Path) -> None:
    assert load_person_split(ccp_dir, "validation", limit=2).names == ("0801", "0802")
    assert load_person_split(ccp_dir, "test", limit=1).names == ("0901",)


def test_a_split_needs_every_one_of_its_photos(ccp_dir: Path) -> None:
    assert "0803.jpg" in _error(ccp_dir, "validation", limit=None)


@pytest.mark.parametrize("top", ["ccp-master", ""], ids=["in-a-top-folder", "at-the-top"])
@pytest.mark.parametrize("archive", ["zip", "tgz"])
def test_an_archive_loads_the_same_photos_and_masks_as_the_folder(
    ccp_dir: Path, tmp_path: Path, archive: str, top: str
) -> None:
    packed = make_ccp_dataset(tmp_path / archive, numbers=SAMPLE, archive=archive, top=top)
    assert [p.suffix for p in packed.iterdir()] == [f".{archive}"]  # nothing else lies there
    _assert_same(_load_sample(packed), _load_sample(ccp_dir))


@pytest.mark.parametrize("archive", ["zip", "tgz"])
def test_an_archive_wrapped_in_a_folder_named_like_photos_still_loads(
    ccp_dir: Path, tmp_path: Path, archive: str
) -> None:
    packed = make_ccp_dataset(tmp_path / archive, numbers=SAMPLE, archive=archive, top="street-photos")
    _assert_same(_load_sample(packed), _load_sample(ccp_dir))


def _assert_same(loaded: list[PersonSplit], expected: list[PersonSplit]) -> None:
    for got, want in zip(loaded, expected, strict=True):
        assert got.names == want.names
        for a, b in zip(got.images + got.masks, want.images + want.masks, strict=True):
            np.testing.assert_array_equal(a, b)


def test_photos_keep_their_own_size_and_are_rgb(ccp_dir: Path) -> None:
    data = load_person_split(ccp_dir, "train", limit=3)
    assert [image.shape for image in data.images] == [(61, 40, 3), (62, 40, 3), (60, 40, 3)]
    assert [mask.shape for mask in data.masks] == [(61, 40), (62, 40), (60, 40)]
    assert all(
        image.dtype == np.uint8 and mask.dtype == np.uint8
        for image, mask in zip(data.images, data.masks, strict=True)
    )
    bgr = cv2.imread(str(ccp_dir / "photos" / "0001.jpg"))
    np.testing.assert_array_equal(data.images[0], bgr[..., ::-1])


def test_is_ccp_recognises_the_folder_and_its_archives(ccp_dir: Path, tmp_path: Path) -> None:
    assert is_ccp(ccp_dir)
    assert is_ccp(make_ccp_dataset(tmp_path / "zip", 1, archive="zip"))
    assert is_ccp(make_ccp_dataset(tmp_path / "tgz", 1, archive="tgz"))


def test_is_ccp_rejects_other_folders(tmp_path: Path) -> None:
    assert not is_ccp(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert not is_ccp(tmp_path / "empty")
    (tmp_path / "photos-only" / "photos").mkdir(parents=True)
    assert not is_ccp(tmp_path / "photos-only")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.zip").write_bytes(b"PK not really a zip")
    assert not is_ccp(tmp_path / "other")
    assert not is_ccp(make_lfw_dataset(tmp_path / "lfw", {"train": 1}, unlabelled=0))


# The person mask


def test_the_person_is_every_non_null_label(ccp_dir: Path) -> None:
    labels = np.zeros((61, 40), np.uint8)  # photo 0001 is 40x61
    for column, label in enumerate((NULL, HAIR, SKIN, BLOUSE, SHOES, 58, 1, NULL)):
        labels[:, column * 5 : column * 5 + 5] = label
    write_groundtruth(ccp_dir / LABELS / "0001.mat", labels)
    mask = load_person_split(ccp_dir, "train", limit=1).masks[0]
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask[0], np.repeat([0, 1, 1, 1, 1, 1, 1, 0], 5))


def test_masks_match_the_annotations_label_by_label(ccp_dir: Path) -> None:
    data = load_person_split(ccp_dir, "train", limit=3)
    for name, mask in zip(data.names, data.masks, strict=True):
        labels = loadmat(str(ccp_dir / LABELS / f"{name}.mat"))["groundtruth"]
        assert {NULL, HAIR, SKIN, BLOUSE, SHOES} <= set(np.unique(labels).tolist())
        np.testing.assert_array_equal(mask, (labels > 0).astype(np.uint8))


# Damage, each named by its file in one line


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda good: b"not a mat file", id="garbage"),
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
    ],
)
def test_a_damaged_annotation_is_named(ccp_dir: Path, damage) -> None:
    path = ccp_dir / LABELS / "0002.mat"
    path.write_bytes(damage(path.read_bytes()))
    message = _error(ccp_dir)
    assert str(path) in message and "not a readable CCP annotation" in message


def test_an_annotation_without_groundtruth_is_named(ccp_dir: Path) -> None:
    from scipy.io import savemat

    path = ccp_dir / LABELS / "0002.mat"
    savemat(str(path), {"tags": np.array([[5, 19]])})
    assert str(path) in _error(ccp_dir)


def test_a_label_over_58_is_named(ccp_dir: Path) -> None:
    path = ccp_dir / LABELS / "0003.mat"
    labels = loadmat(str(path))["groundtruth"]
    labels[10, 10] = 59
    write_groundtruth(path, labels)
    message = _error(ccp_dir)
    assert str(path) in message and "59" in message


def test_labels_that_do_not_fit_their_photo_are_named(ccp_dir: Path) -> None:
    path = ccp_dir / LABELS / "0002.mat"  # photo 0002 is 40x62
    write_groundtruth(path, np.ones((60, 40), np.uint8))
    message = _error(ccp_dir)
    assert str(path) in message and "40x60" in message and "40x62" in message


def test_a_missing_photo_is_named(ccp_dir: Path) -> None:
    (ccp_dir / "photos" / "0002.jpg").unlink()
    assert str(ccp_dir / "photos" / "0002.jpg") in _error(ccp_dir)


def test_a_missing_annotation_is_named(ccp_dir: Path) -> None:
    (ccp_dir / LABELS / "0003.mat").unlink()
    assert str(ccp_dir / LABELS / "0003.mat") in _error(ccp_dir)


def test_a_photo_that_is_not_an_image_is_named(ccp_dir: Path) -> None:
    (ccp_dir / "photos" / "0001.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert str(ccp_dir / "photos" / "0001.jpg") in _error(ccp_dir)


@pytest.mark.parametrize("archive", ["zip", "tgz"])
def test_a_photo_missing_from_an_archive_names_the_archive_and_the_photo(
    tmp_path: Path, archive: str
) -> None:
    root = make_ccp_dataset(tmp_path, 2, archive=archive)
    message = _error(root)
    assert str(root / f"ccp-master.{archive}") in message and "photos/0003.jpg" in message


def test_a_folder_that_is_not_ccp_is_named(tmp_path: Path) -> None:
    make_lfw_dataset(tmp_path, {"train": 1}, unlabelled=0)
    message = _error(tmp_path)
    assert str(tmp_path) in message and "not Clothing Co-Parsing" in message


def test_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_person_split(tmp_path / "nowhere", "train")


def test_without_scipy_reading_ccp_says_how_to_install_it(
    ccp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (ccp_dir / LABELS / "0001.mat").read_bytes()
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # `from scipy.io import ...` now fails
    for call in (lambda: decode_groundtruth(data, "0001.mat"), lambda: load_person_split(ccp_dir, "train")):
        with pytest.raises(BlurcliError) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and "needs scipy" in message and "pip install" in message


def test_train_reports_damaged_person_data_in_one_line(lfw_dir: Path, ccp_dir: Path, tmp_path: Path) -> None:
    path = ccp_dir / LABELS / "0001.mat"
    path.write_bytes(b"damaged")
    args = ["train", "--data", lfw_dir, "--person-data", ccp_dir, "--out", tmp_path / "m.pt"]
    result = runner.invoke(
        app, [str(a) for a in [*args, "--limit", "2", "--device", "cpu", "--workers", "0"]]
    )
    assert result.exit_code == 1
    assert "error:" in result.output and "0001.mat" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m.pt").exists()


# Target codes: what each pixel teaches


def test_ccp_codes_mark_the_person_the_ground_near_it_and_maybe_a_bystander_far_away() -> None:
    person = np.zeros((100, 100), np.uint8)
    person[40:60, 45:55] = 1  # box 20 high, 10 wide: 15% reach is 3 rows and 1.5 columns
    codes = ccp_codes(person)
    assert codes.dtype == np.uint8
    assert (codes[person == 1] == PERSON).all()
    assert codes[38, 50] == codes[62, 50] == codes[50, 44] == NOT_PERSON  # just outside the person
    assert codes[30, 50] == codes[50, 30] == codes[0, 0] == codes[99, 99] == MAYBE_PERSON  # far away
    assert set(np.unique(codes).tolist()) == {NOT_PERSON, PERSON, MAYBE_PERSON}


def test_ccp_codes_without_a_person_are_all_maybe() -> None:
    assert (ccp_codes(np.zeros((8, 6), np.uint8)) == MAYBE_PERSON).all()


def _head() -> np.ndarray:
    """A 20x20 LFW class map: hair on rows 2-4, skin (the face) on rows 5-11: chin row 11, head 10 rows."""
    classes = np.full((20, 20), LFW_BACKGROUND, np.uint8)
    classes[2:5, 6:14] = LFW_HAIR
    classes[5:12, 7:13] = LFW_SKIN
    return classes


def test_lfw_background_from_the_chin_band_down_may_be_a_body() -> None:
    classes = _head()
    codes = lfw_codes(classes)  # margin 0.1 of a 10-row head: from row 10 down
    assert (codes[10:][classes[10:] == LFW_BACKGROUND] == LFW_BODY).all()
    assert codes[10, 0] == codes[19, 10] == LFW_BODY  # beside the chin, and below it
    assert (codes[:10][classes[:10] == LFW_BACKGROUND] == LFW_BACKGROUND).all()
    assert codes[0, 10] == codes[7, 0] == codes[9, 19] == LFW_BACKGROUND  # above, and beside the face
    np.testing.assert_array_equal(codes[classes > 0], classes[classes > 0])  # skin and hair kept


def test_lfw_codes_take_the_lowest_hair_row_for_the_chin_when_no_skin_shows() -> None:
    classes = np.full((20, 20), LFW_BACKGROUND, np.uint8)
    classes[2:12, 6:14] = LFW_HAIR  # the back of a head: rows 2-11, 10 rows
    codes = lfw_codes(classes)
    assert codes[10, 0] == codes[15, 10] == LFW_BODY
    assert codes[9, 0] == codes[0, 10] == LFW_BACKGROUND


def test_lfw_codes_leave_a_map_without_a_head_alone_and_work_per_image_in_a_batch() -> None:
    empty = np.zeros((20, 20), np.uint8)
    np.testing.assert_array_equal(lfw_codes(empty), empty)
    batch = np.stack([_head(), empty, np.roll(_head(), 5, axis=0)])
    np.testing.assert_array_equal(lfw_codes(batch), np.stack([lfw_codes(m) for m in batch]))


def _loss(logit: float, code: int) -> float:
    return float(person_loss(torch.full((1, 2, 2), logit), torch.full((1, 2, 2), code, dtype=torch.int64)))


def test_person_loss_ignores_a_confident_person_where_a_bystander_may_be() -> None:
    assert _loss(6.0, MAYBE_PERSON) == 0.0
    assert _loss(6.0, NOT_PERSON) == pytest.approx(6.0, abs=0.01)  # the same prediction is penalised
    assert _loss(-6.0, MAYBE_PERSON) == pytest.approx(_loss(-6.0, NOT_PERSON))  # a 'no' still learns
    assert _loss(1.0, MAYBE_PERSON) == pytest.approx(_loss(1.0, NOT_PERSON))  # half-believed: corrected


def test_person_loss_averages_only_over_the_pixels_it_supervises() -> None:
    logits = torch.tensor([[[4.0, 4.0], [4.0, -4.0]]])
    codes = torch.tensor([[[PERSON, MAYBE_PERSON], [LFW_BODY, NOT_PERSON]]], dtype=torch.int64)
    expected = (float(torch.nn.functional.softplus(torch.tensor(-4.0))) * 2) / 2  # PERSON and NOT_PERSON
    assert float(person_loss(logits, codes)) == pytest.approx(expected, rel=1e-5)


def test_person_loss_treats_lfw_head_as_person_and_its_background_as_not() -> None:
    assert _loss(6.0, LFW_SKIN) == _loss(6.0, LFW_HAIR) == pytest.approx(_loss(6.0, PERSON))
    assert _loss(6.0, LFW_BACKGROUND) == pytest.approx(_loss(6.0, NOT_PERSON))
    assert _loss(6.0, LFW_BODY) == 0.0


# Training on LFW and CCP together


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train on one thread: tiny steps on a busy machine are several times faster so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_train_with_person_data_learns_a_person_output(lfw_dir: Path, tmp_path: Path) -> None:
    ccp = make_ccp_dataset(tmp_path / "ccp", numbers=[*range(1, 9), *range(801, 809)])
    out = tmp_path / "run" / "m.pt"
    args = [
        "train", "--data", lfw_dir, "--person-data", ccp, "--out", out, "--epochs", "2",
        "--batch-size", "4", "--input-size", "32", "--width", "4", "--depth", "2", "--stem-stride", "1",
        "--workers", "0", "--device", "cpu", "--loss-size", "0", "--limit", "8",
    ]  # fmt: skip
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "person IoU" in result.output
    records = [json.loads(line) for line in out.with_name("m.log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(0.0 <= r["val_person_iou"] <= 1.0 for r in records)
    checkpoint = load_checkpoint(out)
    assert checkpoint.subjects == ("head", "person")
    assert checkpoint.config.outputs == 4


# The real release, when ../shared/data holds it


@needs_real_ccp
def test_real_ccp_is_recognised_and_its_splits_hold_800_100_and_104_pairs() -> None:
    assert is_ccp(REAL_CCP)
    photos = {int(p.stem) for p in (REAL_CCP / "photos").glob("*.jpg")}
    labels = {int(p.stem) for p in (REAL_CCP / LABELS).glob("*.mat")}
    counts = {
        split: len(photos & labels & set(split_numbers(split))) for split in ("train", "validation", "test")
    }
    assert counts == {"train": 800, "validation": 100, "test": 104}


@needs_real_ccp
def test_real_ccp_labels_are_uint8_indices_into_59_names() -> None:
    names = [str(cell[0]) for cell in loadmat(str(REAL_CCP / "label_list.mat"))["label_list"][0]]
    assert len(names) == 59 and (names[0], names[19], names[41]) == ("null", "hair", "skin")
    for number in (1, 250, 536, 800, 801, 900, 901, 1004):
        labels = loadmat(str(REAL_CCP / LABELS / f"{number:04d}.mat"))["groundtruth"]
        assert labels.dtype == np.uint8 and labels.ndim == 2
        assert labels.min() >= 0 and labels.max() <= 58


@needs_real_ccp
def test_real_ccp_validation_split_loads_with_a_person_in_every_photo() -> None:
    data = load_person_split(REAL_CCP, "validation")
    assert len(data.names) == 100 and data.names[0] == "0801" and data.names[-1] == "0900"
    for image, mask in zip(data.images, data.masks, strict=True):
        assert image.shape[2] == 3 and image.shape[1] == 550 and mask.shape == image.shape[:2]
        assert set(np.unique(mask).tolist()) == {0, 1}


@needs_real_ccp
def test_real_ccp_photo_0536_is_labelled_all_null() -> None:
    path = REAL_CCP / LABELS / "0536.mat"
    mask = decode_groundtruth(path.read_bytes(), str(path))
    assert mask.ndim == 2 and mask.size and not mask.any()


def test_person_repeat_gives_each_person_photo_several_different_views_per_epoch(lfw_dir: Path) -> None:
    from blurcli.training.dataset import SegmentationDataset
    from blurcli.training.lfw import load_split

    faces = load_split(lfw_dir, "train", limit=2)
    photo = np.full((60, 40, 3), 120, np.uint8)
    codes = ccp_codes(np.pad(np.ones((40, 20), np.uint8), ((10, 10), (10, 10))))
    dataset = SegmentationDataset(faces, 32, 4, people=((photo,), (codes,)), person_repeat=3, label_size=32)
    assert len(dataset) == 2 + 3
    views = [dataset[index][1] for index in (2, 3, 4)]
    assert not torch.equal(views[0], views[1]) or not torch.equal(views[1], views[2])


def test_textured_backdrops_are_busier_than_smooth_ones() -> None:
    from blurcli.training.augment import smooth_backdrop, textured_backdrop

    rng = np.random.default_rng(3)
    busy, smooth = textured_backdrop(rng, 64), smooth_backdrop(rng, 64)
    assert busy.shape == (64, 64, 3) and busy.dtype == np.uint8
    edges = [np.abs(np.diff(picture.astype(float), axis=0)).mean() for picture in (busy, smooth)]
    assert edges[0] > 2 * edges[1]


@pytest.mark.usefixtures("one_thread")
def test_train_records_the_share_of_textured_backdrops(lfw_dir: Path, tmp_path: Path) -> None:
    ccp = make_ccp_dataset(tmp_path / "ccp", numbers=[*range(1, 5), *range(801, 805)])
    out = tmp_path / "run" / "m.pt"
    args = [
        "train", "--data", lfw_dir, "--person-data", ccp, "--out", out, "--epochs", "1", "--textured", "0.5",
        "--batch-size", "4", "--input-size", "32", "--width", "4", "--depth", "2", "--stem-stride", "1",
        "--workers", "0", "--device", "cpu", "--loss-size", "0", "--limit", "4",
    ]  # fmt: skip
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out).info["train"]["augmentation"]["textured"] == 0.5
