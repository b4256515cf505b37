"""inference.postprocess: geometry of each kind on non-square images, hand-checked values."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from contract.kinds import (
    classification_fields,
    decode,
    detection_fields,
    fallback,
    regression_fields,
    segmentation_mask,
)
from contract.tasks import TaskKind


def test_binary_mask_scales_x_with_width_and_y_with_height():
    # 4 x 4 logits; class 1 wins in the left half (columns 0-1), class 0 in the right half.
    logits = np.zeros((2, 4, 4), np.float32)
    logits[1, :, :2], logits[1, :, 2:] = 1.0, -1.0
    mask = segmentation_mask(logits, (6, 12))  # H 6, W 12
    assert mask.shape == (6, 12) and mask.dtype == np.uint8
    # half-pixel centres: source x = (x + 0.5) * 4/12 - 0.5 crosses 1.5 between x = 5 and x = 6
    assert (mask[:, :6] == 1).all() and (mask[:, 6:] == 0).all()
    # a horizontal band along y: rows 0-1 of 4 -> top half of 10 rows
    logits = np.zeros((2, 4, 4), np.float32)
    logits[1, :2, :], logits[1, 2:, :] = 1.0, -1.0
    mask = segmentation_mask(logits, (10, 3))
    assert mask.shape == (10, 3) and (mask[:5] == 1).all() and (mask[5:] == 0).all()


def test_binary_shortcut_equals_argmax_of_resized_channels():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 16, 16)).astype(np.float32)
    full = cv2.resize(logits.transpose(1, 2, 0).copy(), (37, 23), interpolation=cv2.INTER_LINEAR)
    expected = np.argmax(full, axis=2)
    got = segmentation_mask(logits, (23, 37))
    assert (got == expected).mean() > 0.999  # equal up to float rounding exactly at ties


def test_multiclass_quadrants():
    logits = np.zeros((4, 2, 2), np.float32)
    for cls, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        logits[cls, r, c] = 10.0
    mask = segmentation_mask(logits, (4, 8))
    assert mask[0, 0] == 0 and mask[0, 7] == 1 and mask[3, 0] == 2 and mask[3, 7] == 3


def test_detection_best_cell_and_pixels_on_non_square_image():
    grid = np.zeros((5, 4, 4), np.float32)
    grid[4] = -5.0
    grid[4, 1, 2] = 3.0  # best objectness at row 1, column 2
    grid[:4, 1, 2] = [0.1, 0.2, 0.5, 0.9]
    grid[:4, 0, 0] = [0.0, 0.0, 1.0, 1.0]  # another cell, lower objectness
    fields = detection_fields(grid, (100, 200))  # H 100, W 200
    assert fields["bbox_normalized"] == pytest.approx([0.1, 0.2, 0.5, 0.9])
    assert fields["bbox_pixels"] == pytest.approx([20.0, 20.0, 100.0, 90.0])  # x * 200, y * 100


def test_detection_pixels_are_ordered_and_clamped_normalized_kept():
    grid = np.zeros((5, 2, 2), np.float32)
    grid[4, 0, 0] = 1.0
    grid[:4, 0, 0] = [0.6, 0.5, 0.4, 1.2]  # x_min > x_max, y_max beyond the image
    fields = detection_fields(grid, (50, 10))
    assert fields["bbox_normalized"] == pytest.approx([0.6, 0.5, 0.4, 1.2])
    assert fields["bbox_pixels"] == pytest.approx([4.0, 25.0, 6.0, 50.0])


def test_regression_pixels_not_clamped():
    fields = regression_fields(np.array([0.25, 0.5, 1.1, -0.1], np.float32), (100, 200))
    assert fields["predicted_points_normalized"] == pytest.approx([0.25, 0.5, 1.1, -0.1])
    assert fields["predicted_points_pixels"] == pytest.approx([50.0, 50.0, 220.0, -10.0])
    assert all(type(v) is float for v in fields["predicted_points_pixels"])


def test_classification_sums_to_one_and_argmax():
    fields = classification_fields(np.array([0.2, 0.5, 0.30001], np.float32))
    assert fields["predicted_class"] == 1
    assert math.isclose(math.fsum(fields["predicted_probs"]), 1.0, abs_tol=1e-12)
    with pytest.raises(ValueError):
        classification_fields(np.array([np.nan, 1.0]))


def test_decode_builds_valid_records():
    record = decode(TaskKind.CLASSIFICATION, np.array([0.1, 0.9]), (5, 5)).record("../a.png", "lung_2cls")
    assert record.predicted_class == 1 and record.image_path == "../a.png"


def test_fallbacks():
    assert fallback(TaskKind.SEGMENTATION, 3, (7, 9)).mask.shape == (7, 9)
    assert not fallback(TaskKind.SEGMENTATION, 3, (7, 9)).mask.any()
    cls = fallback(TaskKind.CLASSIFICATION, 4, (7, 9)).fields
    assert cls == {"predicted_class": 0, "predicted_probs": [0.25] * 4}
    det = fallback(TaskKind.DETECTION, 1, (100, 200)).fields
    assert det["bbox_pixels"] == pytest.approx([50.0, 25.0, 150.0, 75.0])
    reg = fallback(TaskKind.REGRESSION, 3, (100, 200)).fields
    assert reg["predicted_points_pixels"] == pytest.approx([100.0, 50.0] * 3)
