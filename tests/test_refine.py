"""Strip-wise resampling is exact, and the guided filter puts mask edges where the photo's are."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from blurcli.refine import RefineOptions, enlarge_classes, enlarge_mask, refine_mask
from blurcli.resample import downsample, small_shape, strips, upsample_rows


@pytest.mark.parametrize(("height", "factor"), [(700, 3), (513, 1), (300, 7), (256, 4)])
def test_upsampling_strip_by_strip_equals_one_resize(height: int, factor: int) -> None:
    rows, cols = small_shape(height, 90, factor)
    small = np.random.default_rng(0).random((rows, cols, 3)).astype(np.float32)
    whole = cv2.resize(small, (90, rows * factor), interpolation=cv2.INTER_LINEAR)[:height]
    pieces = np.concatenate([upsample_rows(small, factor, part, 90) for part in strips(height, rows=100)])
    np.testing.assert_allclose(pieces, whole, atol=1e-5)


def test_downsampling_strip_by_strip_equals_one_area_resize() -> None:
    image = np.random.default_rng(1).random((600, 120)).astype(np.float32)
    small = downsample(lambda rows: image[rows], 600, 120, 4)
    np.testing.assert_allclose(small, cv2.resize(image, (30, 150), interpolation=cv2.INTER_AREA), atol=1e-5)


def test_eight_bit_photos_shrunk_by_halving_match_one_area_resize() -> None:
    image = np.random.default_rng(4).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    small = downsample(lambda rows: image[rows], 600, 800, 8)  # halved three times, rounded each time
    direct = cv2.resize(image, (100, 75), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - direct).max() <= 1
    odd = image[:597, :795]  # sides that do not halve evenly take the direct resize
    assert downsample(lambda rows: odd[rows], 597, 795, 8).shape == (*small_shape(597, 795, 8), 3)


def _disc_scene(height: int = 900, width: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """A bright textured disc (the subject) on a darker background, and its true mask."""
    yy, xx = np.mgrid[:height, :width]
    truth = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (height / 3) ** 2).astype(np.float32)
    rng = np.random.default_rng(2)
    photo = np.where(truth > 0, 200, 60) + rng.normal(0, 6, truth.shape)
    return np.clip(photo, 0, 255).astype(np.uint8), truth


def test_guided_refinement_snaps_a_coarse_mask_to_the_photo_edges() -> None:
    guide, truth = _disc_scene()
    low = cv2.resize(truth, (64, 48), interpolation=cv2.INTER_AREA)  # what a 64 px model could say
    refined = refine_mask(low, guide, RefineOptions())
    plain = enlarge_mask(low, guide, None)
    assert refined.shape == plain.shape == truth.shape
    assert refined.min() >= 0.0 and refined.max() <= 1.0
    soft_refined = np.mean((refined > 0.1) & (refined < 0.9))
    soft_plain = np.mean((plain > 0.1) & (plain < 0.9))
    assert soft_refined < 0.35 * soft_plain  # a crisp edge instead of a 20-pixel ramp
    assert np.abs(refined - truth).mean() < 0.6 * np.abs(plain - truth).mean()


def test_guided_refinement_moves_a_misplaced_edge_onto_the_photo_edge() -> None:
    guide, truth = _disc_scene()
    grown = cv2.dilate(truth, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25)))  # 12 px too big
    low = cv2.resize(grown, (64, 48), interpolation=cv2.INTER_AREA)
    wrong_plain = np.mean((enlarge_mask(low, guide, None) > 0.5) != (truth > 0.5))
    wrong_refined = np.mean((refine_mask(low, guide) > 0.5) != (truth > 0.5))
    assert wrong_refined < 0.3 * wrong_plain


def test_refinement_is_seamless_across_strips() -> None:
    guide, truth = _disc_scene(1100, 300)  # several strips of rows
    low = cv2.resize(truth, (20, 72), interpolation=cv2.INTER_AREA)
    refined = refine_mask(low, guide, RefineOptions(working_size=200))
    rows = np.abs(np.diff(refined, axis=0)).max(axis=1)
    background_rows = rows[:50]  # flat background: no jumps anywhere, in particular at strip edges
    assert background_rows.max() < 0.05


def test_class_maps_follow_the_same_edges() -> None:
    guide, truth = _disc_scene(300, 400)
    low = cv2.resize(truth, (64, 48), interpolation=cv2.INTER_AREA)
    probs = np.stack([1 - low, low * 0.7, low * 0.3], axis=-1)
    classes = enlarge_classes(probs, guide, RefineOptions())
    assert classes.dtype == np.uint8 and set(np.unique(classes)) <= {0, 1}
    assert np.mean(classes == truth) > 0.98
