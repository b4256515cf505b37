"""Hand-computed values of the challenge metrics (evaluation.metrics)."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from evaluation.metrics import classification_metrics, dice, hausdorff, image_diagonal, iou, mre, multiclass_auc, radial_errors


def test_dice_partial_overlap():
    p = np.array([[1, 1, 0], [0, 0, 0]])
    g = np.array([[1, 0, 0], [1, 0, 0]])
    assert dice(p, g) == pytest.approx(0.5)  # 2*1 / (2+2)


def test_dice_edge_cases():
    empty = np.zeros((3, 3), bool)
    one = empty.copy()
    one[1, 1] = True
    assert dice(empty, empty) == 1.0
    assert dice(one, empty) == 0.0
    assert dice(empty, one) == 0.0
    assert dice(one, one) == 1.0


def test_dice_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes differ"):
        dice(np.zeros((2, 2)), np.zeros((3, 3)))


def test_hausdorff_3x3_opposite_corners():
    p = np.zeros((3, 3), bool)
    g = np.zeros((3, 3), bool)
    p[0, 0] = True
    g[2, 2] = True
    assert hausdorff(p, g) == pytest.approx(math.sqrt(8))


def test_hausdorff_is_symmetric_max_of_directed():
    # P = {(0,0)}; G = {(0,0), (2,2)}: P->G is 0, G->P is sqrt(8); HD is the max.
    p = np.zeros((3, 3), bool)
    g = np.zeros((3, 3), bool)
    p[0, 0] = True
    g[0, 0] = g[2, 2] = True
    assert hausdorff(p, g) == pytest.approx(math.sqrt(8))
    assert hausdorff(g, p) == pytest.approx(math.sqrt(8))
    # P = row 0, columns 0..1; G = (0,0): the farthest P pixel is 1 away.
    p2 = np.zeros((3, 3), bool)
    p2[0, :2] = True
    g2 = np.zeros((3, 3), bool)
    g2[0, 0] = True
    assert hausdorff(p2, g2) == pytest.approx(1.0)


def test_hausdorff_edge_cases():
    empty = np.zeros((3, 4), bool)
    one = empty.copy()
    one[0, 0] = True
    assert hausdorff(empty, empty) == 0.0
    assert hausdorff(one, empty) == pytest.approx(5.0)  # diagonal of a 3x4 image
    assert hausdorff(empty, one) == pytest.approx(5.0)
    assert hausdorff(one, one) == 0.0
    assert image_diagonal((3, 4)) == pytest.approx(5.0)


def test_iou_known_boxes():
    assert iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)  # 1 / (4 + 4 - 1)
    assert iou([0, 0, 4, 4], [1, 1, 3, 3]) == pytest.approx(4 / 16)
    assert iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert iou([10, 20, 30, 60], [10, 20, 30, 60]) == 1.0
    assert iou([5, 5, 1, 1], [0, 0, 6, 6]) == 0.0  # inverted prediction has zero area


def test_mre_known_points():
    assert radial_errors([0, 0, 3, 4], [0, 0, 0, 0]) == pytest.approx([0.0, 5.0])
    assert mre([0, 0, 3, 4], [0, 0, 0, 0]) == pytest.approx(2.5)
    assert mre([[1, 1], [7, 9]], [[4, 5], [1, 1]]) == pytest.approx((5.0 + 10.0) / 2)
    with pytest.raises(ValueError, match="point counts"):
        mre([0, 0], [0, 0, 1, 1])


def test_binary_classification_metrics_by_hand():
    y = [0, 0, 1, 1]
    p1 = [0.1, 0.4, 0.35, 0.8]
    probs = np.array([[1 - v, v] for v in p1])
    scores = classification_metrics(y, [0, 0, 0, 1], probs)
    assert scores.auc == pytest.approx(0.75)  # 3 of 4 (neg, pos) pairs ranked right
    assert scores.accuracy == pytest.approx(0.75)
    assert scores.f1 == pytest.approx((0.8 + 2 / 3) / 2)  # class 0: P 2/3 R 1; class 1: P 1 R 1/2
    assert scores.mcc == pytest.approx(2 / math.sqrt(12))  # TP1 TN2 FP0 FN1


def test_multiclass_auc_macro_one_vs_rest_by_hand():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.1, 0.6, 0.3]])
    expected = (1.0 + 2 / 3 + 0.875) / 3  # class 2 has one tie (0.3 vs 0.3) counted 1/2
    auc, notes = multiclass_auc(y, probs)
    assert auc == pytest.approx(expected)
    assert notes == []
    assert auc == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    scores = classification_metrics(y, probs.argmax(axis=1), probs)
    assert scores.accuracy == pytest.approx(0.75)  # argmax = [0, 1, 2, 1] vs [0, 1, 2, 2]


def test_auc_with_absent_class_uses_present_classes():
    y = np.array([0, 0, 1, 1])  # class 2 never appears in the labels
    probs = np.array([[0.6, 0.3, 0.1], [0.3, 0.3, 0.4], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    # class 0: pos .6 .3, neg .2 .5 -> (1 + 1 + 1 + 0) / 4 = .75 ; class 1: pos .7 .4, neg .3 .3 -> 1.0
    auc, notes = multiclass_auc(y, probs)
    assert auc == pytest.approx((0.75 + 1.0) / 2)
    assert notes and "absent from labels: [2]" in notes[0]


def test_auc_single_class_is_nan_with_note():
    auc, notes = multiclass_auc(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert math.isnan(auc)
    assert "only class" in notes[0]
