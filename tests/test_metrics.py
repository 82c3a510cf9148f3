"""Metrics are pooled over a split and match hand-counted examples exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from blurcli.training.metrics import (
    BoundaryCounts,
    SegmentationMetrics,
    binary_boundary_counts,
    boundary_counts,
    boundary_f_score,
    confusion_matrix,
    f1_per_class,
    frequency_weighted_iou,
    iou_per_class,
    mean_iou,
    merge_classes,
    pixel_accuracy,
    subject_boundary_counts,
    subject_iou,
)

# A 3x3 example counted by hand: rows of CM = target, columns = prediction.
TARGET = np.array([[0, 0, 1], [1, 1, 2], [2, 2, 2]])
PRED = np.array([[0, 1, 1], [1, 2, 2], [2, 2, 0]])
CM = np.array([[1, 1, 0], [0, 2, 1], [1, 0, 3]])


def square(size: int = 20, top: int = 5, left: int = 5, side: int = 10) -> np.ndarray:
    """(size, size) int map: class 1 in a side x side square, class 0 around it."""
    out = np.zeros((size, size), dtype=np.int64)
    out[top : top + side, left : left + side] = 1
    return out


def test_confusion_matrix_rows_are_target_columns_are_prediction() -> None:
    cm = confusion_matrix(PRED, TARGET, num_classes=3)
    np.testing.assert_array_equal(cm, CM)
    assert cm.dtype == np.int64


def test_confusion_matrix_skips_ignore_index_and_out_of_range_targets() -> None:
    target = np.array([[0, 255], [7, 1]])
    pred = np.array([[0, 1], [1, 1]])
    cm = confusion_matrix(pred, target, num_classes=2, ignore_index=255)
    np.testing.assert_array_equal(cm, [[1, 0], [0, 1]])


def test_confusion_matrix_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 3), int), np.zeros((3, 2), int), num_classes=2)


def test_confusion_matrix_rejects_prediction_outside_classes() -> None:
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), num_classes=3)


def test_pixel_accuracy_is_trace_over_total() -> None:
    assert pixel_accuracy(CM) == pytest.approx(6 / 9)


def test_iou_per_class_is_tp_over_tp_fp_fn() -> None:
    # class 0: TP 1, FP 1, FN 1; class 1: TP 2, FP 1, FN 1; class 2: TP 3, FP 1, FN 1
    np.testing.assert_allclose(iou_per_class(CM), [1 / 3, 2 / 4, 3 / 5])


def test_iou_counts_false_negatives_unlike_precision() -> None:
    # target class 1 everywhere, prediction finds half of it: precision 1, IoU 1/2
    cm = confusion_matrix(np.array([1, 1, 0, 0]), np.array([1, 1, 1, 1]), num_classes=2)
    assert iou_per_class(cm)[1] == pytest.approx(0.5)


def test_iou_is_pooled_over_images_not_averaged_per_image() -> None:
    target_a, pred_a = np.array([[1, 1], [1, 1]]), np.array([[1, 1], [1, 1]])  # IoU 1
    target_b, pred_b = np.array([[1, 0], [0, 0]]), np.array([[1, 1], [1, 0]])  # IoU 1/3
    pooled = confusion_matrix(pred_a, target_a, 2) + confusion_matrix(pred_b, target_b, 2)
    # pooled: TP 5, FP 2, FN 0 -> 5/7, whereas the mean of per-image IoUs is 2/3
    assert iou_per_class(pooled)[1] == pytest.approx(5 / 7)
    assert iou_per_class(pooled)[1] != pytest.approx(2 / 3)


def test_iou_is_nan_for_class_absent_from_both_maps() -> None:
    cm = confusion_matrix(np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]]), 3)
    assert math.isnan(iou_per_class(cm)[2])


def test_mean_iou_skips_absent_class() -> None:
    # cm [[1,0,0],[1,2,0],[0,0,0]]: IoU 1/2, 2/3, NaN
    cm = confusion_matrix(np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]]), 3)
    assert mean_iou(cm) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_mean_iou_of_hand_example() -> None:
    assert mean_iou(CM) == pytest.approx((1 / 3 + 1 / 2 + 3 / 5) / 3)


def test_frequency_weighted_iou_weights_by_target_share() -> None:
    # target shares 2/9, 3/9, 4/9 times IoUs 1/3, 1/2, 3/5: 20/270 + 45/270 + 72/270
    assert frequency_weighted_iou(CM) == pytest.approx(137 / 270)


def test_frequency_weighted_iou_ignores_class_absent_from_target() -> None:
    # class 2 only predicted (IoU 0) and class 3 absent (NaN): weights 1/2, 1/2, 0, 0
    cm = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), num_classes=4)
    assert frequency_weighted_iou(cm) == pytest.approx(0.5 * 1 / 2 + 0.5 * 1 / 3)


def test_metrics_of_empty_matrix_are_nan() -> None:
    empty = np.zeros((3, 3), dtype=np.int64)
    assert math.isnan(pixel_accuracy(empty))
    assert math.isnan(mean_iou(empty))
    assert math.isnan(frequency_weighted_iou(empty))


def test_f1_per_class_is_two_tp_over_two_tp_fp_fn() -> None:
    np.testing.assert_allclose(f1_per_class(CM), [2 / 4, 4 / 6, 6 / 8])


def test_f1_is_nan_for_class_absent_from_both_maps() -> None:
    assert math.isnan(f1_per_class(np.array([[4, 0], [0, 0]]))[1])


def test_merge_classes_sums_groups_into_subject_vs_background() -> None:
    merged = merge_classes(CM, [[0], [1, 2]])
    np.testing.assert_array_equal(merged, [[1, 1], [1, 6]])
    assert merged.sum() == CM.sum()


def test_merge_classes_rejects_overlapping_groups() -> None:
    with pytest.raises(ValueError, match="overlap"):
        merge_classes(CM, [[0, 1], [1, 2]])


def test_subject_iou_merges_skin_and_hair() -> None:
    # merged [[1,1],[1,6]]: subject IoU 6 / (6 + 1 + 1); hair/skin mix-ups do not count
    assert subject_iou(CM) == pytest.approx(6 / 8)


def test_perfect_prediction_has_boundary_f_one() -> None:
    target = square()
    f_score = boundary_f_score(boundary_counts(target, target, num_classes=2))
    np.testing.assert_array_equal(f_score, [1.0, 1.0])


def test_image_border_is_not_a_boundary() -> None:
    counts = boundary_counts(np.zeros((6, 6), int), np.zeros((6, 6), int), num_classes=2)
    np.testing.assert_array_equal(counts.pred_total, [0, 0])
    np.testing.assert_array_equal(counts.gt_total, [0, 0])


def test_boundary_is_one_pixel_line_with_four_neighbour_outside() -> None:
    # a 10x10 square: its ring of 36 pixels, and the 40 background pixels that touch it by a side
    counts = boundary_counts(square(), square(), num_classes=2)
    np.testing.assert_array_equal(counts.gt_total, [40, 36])


def test_shift_within_tolerance_scores_one() -> None:
    target = square()
    shifted = square(left=7)
    f_score = boundary_f_score(boundary_counts(shifted, target, num_classes=2, tolerance=3))
    np.testing.assert_array_equal(f_score, [1.0, 1.0])


def test_shift_beyond_tolerance_scores_below_one() -> None:
    f_score = boundary_f_score(boundary_counts(square(left=7), square(), 2, tolerance=1))
    assert np.all(f_score < 1.0)


def test_larger_shift_scores_lower() -> None:
    near = boundary_f_score(boundary_counts(square(left=7), square(), 2, tolerance=3))
    far = boundary_f_score(boundary_counts(square(left=11), square(), 2, tolerance=3))
    assert np.all(far < near)


def test_boundary_counts_match_hand_count_on_a_step() -> None:
    # target edge at column 5; prediction keeps it in rows 0-4 and moves it to column 8 below
    target = np.zeros((10, 10), dtype=np.int64)
    target[:, 5:] = 1
    pred = np.zeros((10, 10), dtype=np.int64)
    pred[:5, 5:] = 1
    pred[5:, 8:] = 1
    counts = boundary_counts(pred, target, num_classes=2, tolerance=1)
    # class 1 prediction edge: (0..4, 5), (4, 6), (4, 7), (5..9, 8) = 12; matched: first 6
    # target edge: (0..9, 5) = 10; matched: rows 0..5 (row 5 is 1 px below (4, 5))
    assert counts.pred_matched[1] == 6
    assert counts.pred_total[1] == 12
    assert counts.gt_matched[1] == 6
    assert counts.gt_total[1] == 10
    # precision 6/12, recall 6/10: F = 2 * (1/2) * (3/5) / (1/2 + 3/5) = (3/5) / (11/10)
    assert boundary_f_score(counts)[1] == pytest.approx(6 / 11)


@pytest.mark.parametrize(("offset", "matched"), [((2, 2), 1), ((3, 1), 0), ((3, 0), 1)])
def test_tolerance_is_a_euclidean_disc(offset: tuple[int, int], matched: int) -> None:
    # one-pixel masks: (2, 2) lies at sqrt(8) <= 3, (3, 1) at sqrt(10) > 3
    gt = np.zeros((12, 12), dtype=bool)
    gt[4, 4] = True
    pred = np.zeros_like(gt)
    pred[4 + offset[0], 4 + offset[1]] = True
    assert binary_boundary_counts(pred, gt, tolerance=3) == (matched, 1, matched, 1)


def test_ignored_target_pixels_make_no_boundary() -> None:
    target = np.zeros((6, 6), dtype=np.int64)
    target[:, 3:] = 255
    counts = boundary_counts(np.zeros((6, 6), int), target, num_classes=2, ignore_index=255)
    np.testing.assert_array_equal(counts.gt_total, [0, 0])
    np.testing.assert_array_equal(counts.pred_total, [0, 0])


def test_boundary_f_when_neither_map_has_a_boundary_is_one() -> None:
    counts = BoundaryCounts(*(np.array([0]) for _ in range(4)))
    np.testing.assert_array_equal(boundary_f_score(counts), [1.0])


def test_boundary_f_when_only_one_map_has_a_boundary_is_zero() -> None:
    only_pred = BoundaryCounts(np.array([0]), np.array([5]), np.array([0]), np.array([0]))
    only_gt = BoundaryCounts(np.array([0]), np.array([0]), np.array([0]), np.array([5]))
    np.testing.assert_array_equal(boundary_f_score(only_pred), [0.0])
    np.testing.assert_array_equal(boundary_f_score(only_gt), [0.0])


def test_boundary_f_is_harmonic_mean_of_precision_and_recall() -> None:
    counts = BoundaryCounts(np.array([3]), np.array([4]), np.array([2]), np.array([4]))
    # precision 3/4, recall 1/2
    np.testing.assert_allclose(boundary_f_score(counts), [2 * 0.75 * 0.5 / 1.25])


def test_boundary_counts_add_field_by_field() -> None:
    a = BoundaryCounts(np.array([1, 2]), np.array([3, 4]), np.array([5, 6]), np.array([7, 8]))
    total = a + a
    np.testing.assert_array_equal(total.pred_matched, [2, 4])
    np.testing.assert_array_equal(total.gt_total, [14, 16])


def test_subject_boundary_ignores_skin_hair_confusion() -> None:
    target = square()
    target[5:10, 5:15] = 2  # hair on the top half of the subject
    pred = square()  # all skin: wrong inside, right at the subject's outline
    per_class = boundary_f_score(boundary_counts(pred, target, num_classes=3))
    subject = boundary_f_score(subject_boundary_counts(pred, target, subject=(1, 2)))
    assert per_class[2] == 0.0
    np.testing.assert_array_equal(subject, [1.0])


def random_maps(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(count, 16, 16) pred and target maps of classes 0-2 with some structure."""
    rng = np.random.default_rng(seed)
    target = np.repeat(np.repeat(rng.integers(0, 3, (count, 4, 4)), 4, axis=1), 4, axis=2)
    pred = np.where(rng.random(target.shape) < 0.8, target, rng.integers(0, 3, target.shape))
    return pred, target


def test_batch_update_equals_one_by_one() -> None:
    pred, target = random_maps(5)
    batched, single = SegmentationMetrics(), SegmentationMetrics()
    batched.update(pred, target)
    for p, t in zip(pred, target, strict=True):
        single.update(p, t)
    assert batched.compute() == single.compute()


def test_accumulator_pools_one_confusion_matrix() -> None:
    pred, target = random_maps(3)
    metrics = SegmentationMetrics()
    metrics.update(pred, target)
    result = metrics.compute()
    cm = confusion_matrix(pred, target, 3)
    assert result["confusion_matrix"] == cm.tolist()
    assert result["pixels"] == 3 * 16 * 16
    assert result["mean_iou"] == pytest.approx(mean_iou(cm))
    assert result["iou"]["hair"] == pytest.approx(iou_per_class(cm)[2])


def test_compute_reports_hand_example() -> None:
    metrics = SegmentationMetrics()
    metrics.update(PRED, TARGET)
    result = metrics.compute()
    assert result["pixel_accuracy"] == pytest.approx(6 / 9)
    assert result["subject_iou"] == pytest.approx(6 / 8)
    assert result["fw_iou"] == pytest.approx(137 / 270)
    assert result["f1"] == pytest.approx({"background": 1 / 2, "skin": 2 / 3, "hair": 3 / 4})


def test_compute_is_json_serialisable_with_none_for_undefined() -> None:
    metrics = SegmentationMetrics()
    metrics.update(square(8, 2, 2, 4), square(8, 2, 2, 4))  # no hair anywhere
    result = metrics.compute()
    assert result["iou"]["hair"] is None
    assert result["f1"]["hair"] is None
    assert result["boundary_f"]["hair"] == 1.0
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result


def test_compute_before_any_update_is_json_serialisable() -> None:
    result = SegmentationMetrics().compute()
    assert result["pixels"] == 0
    assert result["mean_iou"] is None
    json.dumps(result, allow_nan=False)


def test_accumulator_rejects_wrong_number_of_class_names() -> None:
    with pytest.raises(ValueError, match="class names"):
        SegmentationMetrics(num_classes=2)
