"""Heads anywhere in the frame: blobs, LFW framing, seamless merging, and the real model on composites."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from blurcli.cli import app
from blurcli.photo import read_image, read_photo, write_image
from blurcli.second_look import (
    Crop,
    HeadOptions,
    agree,
    combine,
    cut,
    is_portrait,
    large_subjects,
    lfw_crop,
    looks_like_a_head,
    merge,
    second_look,
    subject_boxes,
    taper_window,
)
from blurcli.segment import Segmenter, new_segmenter

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.jpg"


def test_subject_boxes_are_blobs_widest_first_without_specks() -> None:
    prob = np.zeros((50, 80), np.float32)
    prob[5:15, 5:15] = 0.9
    prob[20:40, 40:75] = 0.95
    prob[45, 2] = 1.0  # a speck
    assert subject_boxes(prob, 0.5, 3) == [(40, 20, 75, 40), (5, 5, 15, 15)]
    # A portrait: a sure blob at least 0.3 of the shorter side wide (35 px of 50).
    assert is_portrait(prob) and not is_portrait(prob, HeadOptions(portrait_width=0.8))
    prob[20:40, 40:75] = 0.6  # as wide, but unsure: a backdrop the model half-believes
    assert not is_portrait(prob)
    # Only blobs sure enough get a close-up when a confidence is asked for.
    assert subject_boxes(prob, 0.5, 3, confidence=0.8) == [(5, 5, 15, 15)]
    assert subject_boxes(prob, 0.5, 3, confidence=0.5) == [(40, 20, 75, 40), (5, 5, 15, 15)]


def test_crops_frame_a_head_as_lfw_does() -> None:
    crop = lfw_crop((100, 50, 153, 130), scale=0.5)  # found in a look at half the photo's size
    assert crop.side == pytest.approx(106 / 0.53, abs=1)  # the head spans 53 % of the crop
    assert crop.left + crop.side / 2 == pytest.approx(253, abs=1)  # centred on it
    assert crop.top < 100 < crop.top + 0.2 * crop.side  # a little room above the hair


def test_cut_repeats_the_border_past_the_photo() -> None:
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    part = cut(image, Crop(left=-5, top=10, side=16))
    assert part.shape == (16, 16, 3)
    np.testing.assert_array_equal(part[:10, 5:], image[10:20, 0:11])
    np.testing.assert_array_equal(part[:10, 0], image[10:20, 0])  # left of the photo: its edge
    np.testing.assert_array_equal(part[10:, 5], part[9, 5][None].repeat(6, axis=0))  # below


def test_taper_window_is_one_inside_and_fades_to_the_border() -> None:
    window = taper_window(40, 0.2)
    assert window[20, 20] == 1.0 and window[0, 0] < 0.02 and window[0, 20] < 0.1
    np.testing.assert_allclose(window, window[::-1, ::-1])


def test_merged_close_ups_take_over_in_the_middle_without_seams() -> None:
    base = np.zeros((50, 50), np.float32)
    crops = [Crop(20, 20, 40), Crop(40, 40, 40)]  # overlapping, in photo pixels
    close_ups = [np.ones((20, 20), np.float32), np.full((20, 20), 0.5, np.float32)]
    merged = merge(base, crops, close_ups, (100, 100), HeadOptions(canvas_size=100))
    assert merged.shape == (50, 50)  # at most half the photo's resolution: still a low-res mask
    assert merged[15, 15] > 0.98 and merged[35, 35] == pytest.approx(0.5, abs=0.01)
    assert 0.5 < merged[25, 25] < 1.0  # the overlap averages
    assert merged[2, 2] == 0 and merged[47, 47] == 0  # outside every crop: the base
    # No seam: a close-up fades in over its taper (3 px here), steps of at most 1/3, never a jump.
    assert np.abs(np.diff(merged, axis=1)).max() < 0.4


def test_outside_close_ups_both_looks_must_see_the_subject() -> None:
    first = np.array([[0.9, 0.8, 0.1]], np.float32)
    second = np.array([[0.95, 0.2, 0.6]], np.float32)
    np.testing.assert_allclose(agree(first, second), [[0.9, 0.2, 0.1]])
    classes = np.array([[[0.2, 0.6, 0.2], [0.5, 0.25, 0.25]]], np.float32)  # background, skin, hair
    other = np.array([[[0.6, 0.3, 0.1], [0.1, 0.8, 0.1]]], np.float32)
    merged = agree(classes, other)
    np.testing.assert_allclose(merged.sum(axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(merged[0, 0], [0.6, 0.3, 0.1], atol=1e-6)  # subject 0.4, split 3:1
    np.testing.assert_allclose(merged[0, 1], classes[0, 1], atol=1e-6)  # the first's own, smaller


def test_a_close_up_must_show_a_head_where_lfw_has_one() -> None:
    close_up = np.zeros((100, 100), np.float32)
    close_up[15:100, 25:75] = 1.0  # centred, half the width: a head and neck
    assert looks_like_a_head(close_up)
    assert not looks_like_a_head(np.ones((100, 100), np.float32))  # a wall the model calls subject
    assert not looks_like_a_head(np.zeros((100, 100), np.float32))
    off = np.zeros((100, 100), np.float32)
    off[0:30, 70:100] = 1.0
    assert not looks_like_a_head(off)


# ---------------------------------------------------------------------------------------------
# The shipped model on small synthetic group photos made from the example portrait


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return new_segmenter(None, "cpu")


def _head() -> np.ndarray:
    """The example's head framed as LFW frames faces (hair, face, a little suit)."""
    return read_image(EXAMPLE)[0:276, 90:366]


def _frame(width: int = 1200, height: int = 800) -> np.ndarray:
    rng = np.random.default_rng(0)
    coarse = rng.uniform(60, 200, (4, 6, 3)).astype(np.float32)
    scene = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8)


def _paste(frame: np.ndarray, left: int, top: int, side: int) -> tuple[int, int]:
    """Paste the head at `side` px; returns the (row, col) of the face's middle in the frame."""
    head = cv2.resize(_head(), (side, side), interpolation=cv2.INTER_AREA)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, frame.shape[1]), min(top + side, frame.shape[0])
    frame[y0:y1, x0:x1] = head[y0 - top : y1 - top, x0 - left : x1 - left]
    return top + int(0.4 * side), left + int(0.5 * side)


def _subject_at(
    segmenter: Segmenter, frame: np.ndarray, points: list[tuple[int, int]], heads: bool
) -> list[float]:
    low = segmenter.probabilities([frame], subject_only=True)[0]
    if heads:
        low = second_look(segmenter, frame, low)
    full = cv2.resize(low, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    return [float(full[row - 3 : row + 4, col - 3 : col + 4].mean()) for row, col in points]


def test_two_small_heads_far_apart_both_get_masks(segmenter: Segmenter) -> None:
    frame = _frame()
    points = [_paste(frame, 120, 300, 110), _paste(frame, 950, 150, 110)]  # heads ~1/20 of the width
    second_look = min(_subject_at(segmenter, frame, points, heads=True))
    assert second_look > 0.8
    assert second_look > min(_subject_at(segmenter, frame, points, heads=False))  # one pass sees less


def test_a_head_cut_by_the_border_gets_a_mask(segmenter: Segmenter) -> None:
    frame = _frame()
    point = _paste(frame, -30, 500, 140)
    assert _subject_at(segmenter, frame, [point], heads=True)[0] > 0.8


def test_no_heads_blur_all_over_or_keep_empty(segmenter: Segmenter, tmp_path: Path) -> None:
    frame = _frame(300, 200)
    low = segmenter.probabilities([frame], subject_only=True)[0]
    assert second_look(segmenter, frame, low).max() < 0.5  # no one there
    write_image(tmp_path / "empty.png", frame)
    runner = CliRunner()
    assert runner.invoke(app, ["blur", str(tmp_path / "empty.png")]).exit_code == 0
    blurred = read_photo(tmp_path / "empty_blurred.png").pixels
    assert (
        np.abs(np.diff(blurred.astype(float), axis=1)).mean()
        < 0.5 * np.abs(np.diff(frame.astype(float), axis=1)).mean()
    )
    kept = ["blur", str(tmp_path / "empty.png"), "--keep-empty", "--save-mask", "-o", str(tmp_path / "k.png")]
    result = runner.invoke(app, kept)
    assert result.exit_code == 0
    np.testing.assert_array_equal(read_photo(tmp_path / "k.png").pixels, frame)
    saved = read_photo(tmp_path / "empty_mask.png").pixels  # the mask used, at the photo's size
    assert saved.shape == frame.shape[:2] and saved.max() == 0


def test_large_subjects_are_tall_or_wide_sure_blobs_only() -> None:
    subject = np.zeros((100, 100), np.float32)
    subject[10:70, 40:50] = 0.95  # a standing person: over half the frame tall, narrow
    subject[80:90, 80:90] = 0.95  # a small person
    subject[5:15, 0:35] = 0.55  # wide but unsure (a wall the model half-believes)
    large = large_subjects(subject)
    assert large[10:70, 40:50].all()
    assert not large[80:90, 80:90].any() and not large[5:15, 0:35].any()


@pytest.mark.parametrize("person", [True, False])
def test_the_wide_look_cannot_cut_a_large_person_the_single_pass_is_sure_of(person: bool) -> None:
    first = np.zeros((64, 64), np.float32)
    first[8:60, 20:44] = 0.9  # a big person in the single pass
    wide = np.zeros((128, 128), np.float32)  # the wide look, at twice the size, sees nobody
    merged = combine(first, wide, [], (64, 64), subject_only=True, person=person)
    side = merged.shape[0]  # the merge's canvas: half the photo's resolution
    kept = merged[side * 20 // 64 : side * 50 // 64, side * 26 // 64 : side * 38 // 64].mean()
    assert kept > 0.85 if person else kept < 0.05  # heads: LFW faces are never that large
