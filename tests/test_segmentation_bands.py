"""Masks computed in bands equal the whole-image bilinear resize and argmax, bit for bit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from contract.kinds.segmentation import resize_bands, segmentation_mask


@pytest.fixture
def generic_opencv():
    """OpenCV's own bilinear code (IPP, where a wheel has it, rounds differently for some sizes)."""
    before = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    yield
    cv2.ipp.setUseIPP(before)


def _whole_image_mask(logits: np.ndarray, size) -> np.ndarray:
    """The former implementation: one cv2.resize of every channel (or of logit1 - logit0), int64 argmax."""
    height, width = size
    classes = logits.shape[0]
    if classes <= 2:
        diff = logits[0] if classes == 1 else logits[1] - logits[0]
        return (cv2.resize(diff, (width, height), interpolation=cv2.INTER_LINEAR) > 0).astype(np.uint8)
    hwc = np.ascontiguousarray(logits.transpose(1, 2, 0))
    resized = cv2.resize(hwc, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, classes)
    return np.argmax(resized, axis=2).astype(np.uint8)


CASES = [  # classes, source (h, w), target (H, W)
    (2, (64, 64), (1000, 700)), (5, (64, 64), (1000, 700)), (1, (64, 64), (997, 613)),
    (3, (64, 64), (50, 80)), (4, (96, 80), (1033, 77)), (6, (64, 64), (64, 64)), (2, (32, 48), (7, 1500)),
]


@pytest.mark.parametrize("classes, source, target", CASES)
def test_bands_equal_the_whole_image_resize(classes, source, target, generic_opencv):
    rng = np.random.default_rng(classes * 1000 + target[0])
    logits = rng.standard_normal((classes, *source)).astype(np.float32) * 4
    np.testing.assert_array_equal(segmentation_mask(logits, target), _whole_image_mask(logits, target))
    hwc = np.ascontiguousarray(logits.transpose(1, 2, 0))
    whole = cv2.resize(hwc, target[::-1], interpolation=cv2.INTER_LINEAR).reshape(*target, classes)
    for rows in (1, 5, 64):  # the interpolated values themselves, whatever the band height
        banded = np.concatenate([band for _, band in resize_bands(logits, target, rows)], axis=1)
        np.testing.assert_array_equal(banded.transpose(1, 2, 0), whole)


def test_ties_go_to_the_lower_class_and_the_mask_is_uint8():
    logits = np.zeros((4, 8, 8), np.float32)
    logits[2, :, 4:] = 1.0
    logits[3, :, 4:] = 1.0  # a tie between classes 2 and 3: class 2
    mask = segmentation_mask(logits, (16, 16))
    assert mask.dtype == np.uint8 and mask.shape == (16, 16)
    assert set(np.unique(mask[:, :7])) == {0} and set(np.unique(mask[:, 9:])) == {2}
