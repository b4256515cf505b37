"""Phantom rendering: determinism, and labels that agree with the rendered image."""

from __future__ import annotations

import numpy as np
import pytest

from contract.tasks import TaskKind, TaskRegistry
from phantoms import NATIVE_SIZES, RENDERERS, render_sample

REGISTRY = TaskRegistry.official()
SEG = [t.task_id for t in REGISTRY.of_kind(TaskKind.SEGMENTATION)]
CLS = [t.task_id for t in REGISTRY.of_kind(TaskKind.CLASSIFICATION)]
DET = [t.task_id for t in REGISTRY.of_kind(TaskKind.DETECTION)]
REG = [t.task_id for t in REGISTRY.of_kind(TaskKind.REGRESSION)]


def test_every_official_task_has_a_renderer() -> None:
    assert sorted(RENDERERS) == sorted(REGISTRY.ids)


@pytest.mark.parametrize("task_id", REGISTRY.ids)
def test_same_seed_same_sample_other_seed_other_image(task_id: str) -> None:
    a, b, c = render_sample(task_id, 5, 3), render_sample(task_id, 5, 3), render_sample(task_id, 6, 3)
    assert np.array_equal(a.image, b.image) and a.ext == b.ext
    assert (a.mask is None) == (b.mask is None) and (a.mask is None or np.array_equal(a.mask, b.mask))
    assert (a.label, a.box, a.points) == (b.label, b.box, b.points)
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("task_id", SEG)
def test_segmentation_masks_match_image_and_hold_every_class(task_id: str) -> None:
    k = REGISTRY[task_id].num_classes
    for index in range(3):
        s = render_sample(task_id, 11, index)
        h, w = s.image.shape[:2]
        assert (w, h) in NATIVE_SIZES
        assert s.mask.shape == (h, w) and s.mask.dtype == np.uint8
        values = set(np.unique(s.mask).tolist())
        assert values == set(range(k)), f"{task_id}[{index}] classes {values}, expected 0..{k - 1}"
        grey = s.image if s.image.ndim == 2 else s.image.mean(axis=2)
        assert (grey[~s.fov] == 0).mean() > 0.95, "black outside the field of view"
        assert not (s.mask[~s.fov]).any(), "labels only inside the field of view"
        for c in range(1, k):  # each class large enough to learn at 256x256
            assert (s.mask == c).mean() > 0.003, f"{task_id} class {c} is tiny"


@pytest.mark.parametrize("task_id", DET)
def test_detection_box_is_the_nodule_and_the_nodule_is_visible(task_id: str) -> None:
    for index in range(4):
        s = render_sample(task_id, 12, index)
        h, w = s.image.shape[:2]
        x0, y0, x1, y1 = s.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert 0.08 <= (x1 - x0) / w <= 0.4
        ys, xs = np.nonzero(s.mask)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        grey = (s.image if s.image.ndim == 2 else s.image.mean(axis=2)).astype(float)
        inside = grey[s.mask > 0].mean()
        pad = int(0.1 * (x1 - x0))
        ring = np.zeros_like(s.mask, bool)
        ring[max(0, int(y0) - pad): int(y1) + pad, max(0, int(x0) - pad): int(x1) + pad] = True
        ring &= s.mask == 0
        assert abs(inside - grey[ring].mean()) > 20, f"{task_id}[{index}] nodule not distinct"


@pytest.mark.parametrize("task_id", REG)
def test_regression_points_inside_and_ordered(task_id: str) -> None:
    n = REGISTRY[task_id].num_points
    for index in range(4):
        s = render_sample(task_id, 13, index)
        h, w = s.image.shape[:2]
        assert len(s.points) == n
        for x, y in s.points:
            assert 0 <= x < w and 0 <= y < h
        assert s.points[0][0] <= s.points[1][0], "points 1 and 2 are ordered left to right"
        grey = s.image if s.image.ndim == 2 else s.image.max(axis=2)
        x, y = map(int, s.points[0])
        patch = grey[max(0, y - 6): y + 7, max(0, x - 6): x + 7]
        assert patch.max() > 150, f"{task_id}[{index}] point 1 is not on a bright structure"


@pytest.mark.parametrize("task_id", CLS)
def test_classification_labels_are_balanced(task_id: str) -> None:
    k = REGISTRY[task_id].num_classes
    labels = [render_sample(task_id, 14, i).label for i in range(2 * k)]
    assert sorted(labels) == sorted(list(range(k)) * 2)


def test_dataset_mixes_grey_colour_and_formats() -> None:
    samples = [render_sample(t, 3, i) for t in ("fetal_head", "organ_cls") for i in range(24)]
    assert {s.image.ndim for s in samples} == {2, 3}
    assert {s.ext for s in samples} == {".png", ".jpg", ".bmp"}
    assert len({s.image.shape[:2] for s in samples}) >= 4


def test_size_scale_shrinks_image_and_labels_together():
    from phantoms import render_sample

    full = render_sample("fetal_head", 3, 0)
    small = render_sample("fetal_head", 3, 0, size_scale=0.5)
    assert small.image.shape[:2] == (round(full.image.shape[0] * 0.5), round(full.image.shape[1] * 0.5))
    assert small.mask.shape == small.image.shape[:2]
    assert small.mask.max() == 1
