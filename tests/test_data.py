"""LFW Part Labels reading (folders and archives), mask decoding, and training augmentation."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from blurcli.errors import BlurcliError, UsageError
from blurcli.preprocess import resize_for_model
from blurcli.training.augment import Augmentation, augment_pair
from blurcli.training.dataset import SegmentationDataset, to_tensor
from blurcli.training.lfw import decode_mask, load_split, locate_dataset, parse_split
from tests.conftest import REAL_LFW
from tests.lfw_fake import class_map_to_ppm_rgb, make_lfw_dataset


def test_split_lines_parse_padded_and_unpadded_numbers() -> None:
    assert parse_split("Inga_Hall 0001\nDianne_Feinstein 2\n\n", "x") == [
        "Inga_Hall_0001",
        "Dianne_Feinstein_0002",
    ]


def test_bad_split_line_names_the_file_and_line() -> None:
    with pytest.raises(BlurcliError, match=r"parts_test\.txt: line 2"):
        parse_split("A 1\nB_only\n", "parts_test.txt")


def test_mask_colours_decode_to_class_indices() -> None:
    classes = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    np.testing.assert_array_equal(decode_mask(class_map_to_ppm_rgb(classes), "m.ppm"), classes)


def test_mask_with_a_mixed_colour_is_rejected() -> None:
    rgb = class_map_to_ppm_rgb(np.zeros((4, 4), np.uint8))
    rgb[1, 1] = (255, 255, 0)
    with pytest.raises(BlurcliError, match=r"m\.ppm: mask has 1 pixels that are not pure"):
        decode_mask(rgb, "m.ppm")


@pytest.mark.parametrize("fixture", ["lfw_dir", "lfw_archives"])
def test_splits_load_from_folders_and_archives(fixture: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(fixture)
    train = load_split(root, "train")
    assert len(train.names) == 12
    assert train.images.shape == (12, 250, 250, 3) and train.images.dtype == np.uint8
    assert train.masks.shape == (12, 250, 250) and set(np.unique(train.masks)) == {0, 1, 2}
    assert len(load_split(root, "validation").names) == 4
    assert len(load_split(root, "test", limit=2).names) == 2


def test_folders_and_archives_give_the_same_pixels(lfw_dir: Path, lfw_archives: Path) -> None:
    a, b = load_split(lfw_dir, "test"), load_split(lfw_archives, "test")
    assert a.names == b.names
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.images, b.images)


def test_archives_unpack_into_the_cache_once_and_only_labelled_images(
    lfw_archives: Path, isolated_home: Path
) -> None:
    folders = locate_dataset(lfw_archives)
    assert isolated_home in folders.images.parents
    assert not (lfw_archives / "lfw_funneled").exists()  # nothing written into the data folder
    assert not list(folders.images.glob("Unlabelled_*"))
    marker = folders.images.parent / ".complete"
    stamp = marker.stat().st_mtime_ns
    assert locate_dataset(lfw_archives).images == folders.images
    assert marker.stat().st_mtime_ns == stamp


def test_missing_dataset_parts_name_the_folder(tmp_path: Path) -> None:
    (tmp_path / "parts_test.txt").write_text("A 1\n")
    with pytest.raises(BlurcliError, match=str(tmp_path)):
        load_split(tmp_path, "test")


def test_missing_split_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BlurcliError, match=r"parts_validation\.txt: split file missing"):
        load_split(tmp_path, "validation")


def test_unknown_split_is_a_usage_error(lfw_dir: Path) -> None:
    with pytest.raises(UsageError):
        load_split(lfw_dir, "holdout")


def test_mask_of_another_size_is_rejected(tmp_path: Path) -> None:
    root = make_lfw_dataset(tmp_path / "lfw", {"train": 2, "validation": 1, "test": 1})
    mask = next((root / "parts_lfw_funneled_gt_images").glob("*.ppm"))
    cv2.imwrite(str(mask), cv2.resize(cv2.imread(str(mask)), (100, 100), interpolation=cv2.INTER_NEAREST))
    with pytest.raises(BlurcliError, match=rf"{mask.name}: mask is 100x100, image is 250x250"):
        for split in ("train", "validation", "test"):
            load_split(root, split)


def test_missing_image_names_the_file(tmp_path: Path) -> None:
    root = make_lfw_dataset(tmp_path / "lfw", {"train": 1, "validation": 1, "test": 1})
    shutil.rmtree(next((root / "lfw_funneled").glob("Person_001")))
    with pytest.raises(BlurcliError, match=r"Person_001_\d{4}\.jpg: no such file"):
        load_split(root, "train")


def test_resize_for_model_keeps_aspect_and_pads_to_the_multiple() -> None:
    image = np.zeros((300, 500, 3), np.uint8)
    padded, (height, width) = resize_for_model(image, 160, 32)
    assert (height, width) == (96, 160)
    assert padded.shape == (96, 160, 3)
    padded, (height, width) = resize_for_model(np.zeros((250, 400, 3), np.uint8), 160, 32)
    assert (height, width) == (100, 160) and padded.shape == (128, 160, 3)


def test_to_tensor_normalises_channels_first() -> None:
    batch = np.full((2, 4, 5, 3), 255, np.uint8)
    tensor = to_tensor(batch, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert tensor.shape == (2, 3, 4, 5)
    torch.testing.assert_close(tensor, torch.full((2, 3, 4, 5), 2.0))


def _square_pair(size: int = 250) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((size, size), np.uint8)
    mask[80:170, 90:160] = 1
    image = np.full((size, size, 3), 30, np.uint8)
    image[mask == 1] = 220
    return image, mask


def test_augmented_mask_follows_the_image_and_keeps_pure_labels() -> None:
    image, mask = _square_pair()
    plain = Augmentation(brightness=0, contrast=0, saturation=0, hue=0, gamma=0, grayscale=0, blur=0,
                         noise=0, jpeg=0)  # fmt: skip
    for seed in range(10):
        view, labels = augment_pair(image, mask, 96, np.random.default_rng(seed), plain)
        assert view.shape == (96, 96, 3) and labels.shape == (96, 96)
        assert set(np.unique(labels)) <= {0, 1}
        inside = view[labels == 1].mean(axis=-1)
        assert np.median(inside) > 180  # the subject's pixels carry the subject's label


def test_zoom_out_makes_the_head_smaller() -> None:
    image, mask = _square_pair()
    always = Augmentation(zoom_out=1.0, zoom_out_scale=(0.3, 0.4))
    _, labels = augment_pair(image, mask, 100, np.random.default_rng(0), always)
    assert 0 < (labels == 1).mean() < 0.25 * (mask == 1).mean()


def test_context_photo_surrounds_a_zoomed_out_head_with_its_own_labels() -> None:
    image, mask = _square_pair()
    context = (np.full((250, 250, 3), 120, np.uint8), np.full((250, 250), 2, np.uint8))  # all hair
    always = Augmentation(zoom_out=1.0, zoom_out_scale=(0.3, 0.4), context=1.0, rotation=0)
    view, labels = augment_pair(image, mask, 100, np.random.default_rng(0), always, context)
    assert {1, 2} <= set(np.unique(labels))  # the head, and the context's labels around it
    assert (labels == 2).mean() > 0.5  # the context fills most of the frame
    assert np.median(view[labels == 2].mean(axis=-1)) < np.median(view[labels == 1].mean(axis=-1))


def test_augmentation_is_reproducible_per_seed_epoch_and_index(lfw_dir: Path) -> None:
    split = load_split(lfw_dir, "train", limit=3)
    first = SegmentationDataset(split, 64, 8, seed=3)
    second = SegmentationDataset(split, 64, 8, seed=3)
    torch.testing.assert_close(first[1][0], second[1][0])
    second.set_epoch(1)
    assert not torch.equal(first[1][0], second[1][0])


def test_dataset_without_augmentation_returns_model_sized_tensors(lfw_dir: Path) -> None:
    split = load_split(lfw_dir, "validation")
    image, mask = SegmentationDataset(split, 64, 8, augment=False)[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert mask.shape == (64, 64) and mask.dtype == torch.int64


def test_finer_labels_line_up_with_the_smaller_picture(lfw_dir: Path) -> None:
    image, mask = _square_pair()
    plain = Augmentation(brightness=0, contrast=0, saturation=0, hue=0, gamma=0, grayscale=0, blur=0,
                         noise=0, jpeg=0)  # fmt: skip
    for seed in range(5):
        view, labels = augment_pair(image, mask, 128, np.random.default_rng(seed), plain, image_size=64)
        assert view.shape == (64, 64, 3) and labels.shape == (128, 128)
        coarse = cv2.resize(labels, (64, 64), interpolation=cv2.INTER_NEAREST)
        inside = view[coarse == 1].mean(axis=-1)
        assert np.median(inside) > 180  # the labels still sit on the subject's pixels
    split = load_split(lfw_dir, "train", limit=2)
    for augment in (True, False):
        picture, labels = SegmentationDataset(split, 64, 8, augment=augment, label_size=96)[0]
        assert picture.shape == (3, 64, 64) and labels.shape == (96, 96)


@pytest.mark.skipif(not REAL_LFW.is_dir(), reason="LFW Part Labels not present in ../shared/data")
def test_real_lfw_part_labels_load_with_official_counts() -> None:
    sizes = {"train": 1500, "validation": 500, "test": 927}
    names: set[str] = set()
    for split, count in sizes.items():
        data = load_split(REAL_LFW, split)
        assert len(data.names) == count
        assert data.images.shape == (count, 250, 250, 3)
        names |= set(data.names)
        if split == "test":
            share = np.bincount(data.masks.ravel(), minlength=3) / data.masks.size
            assert 0.6 < share[0] < 0.75 and 0.15 < share[1] < 0.3 and 0.05 < share[2] < 0.15
    assert len(names) == 2927  # the splits are disjoint
