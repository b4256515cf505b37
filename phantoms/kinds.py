"""What the phantoms do differently per task kind, in one table: ``KIND_PHANTOMS``.

Per kind: the folder of its images in the challenge layout (SPEC.md "Input layout"), the class
the renderer is asked to draw, how a rendered canvas becomes the sample's label (mask, class,
box or points), and the CSV label columns with their values. A new kind adds one entry here
(``tests/test_kind_specs.py`` names the tables that lack it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from contract.tasks import TaskKind, TaskSpec
from phantoms.sample import Sample
from phantoms.ultrasound import Canvas


@dataclass(frozen=True)
class KindPhantom:
    folder: str  # under the dataset root, before <task_id>/images/
    drawn_class: Callable[[TaskSpec, int], int]  # (task, index) -> the class the renderer draws
    fill: Callable[[Sample, Canvas, int, list], None]  # (sample, canvas, class, renderer's points) -> labels set
    label_columns: Callable[[TaskSpec], list[str]]  # CSV label columns (besides mask_path)
    label_values: Callable[[Sample], dict[str, str]]  # the sample's values of those columns


def _no_class(task: TaskSpec, index: int) -> int:
    return 0


def _fill_mask(sample: Sample, canvas: Canvas, label: int, points: list) -> None:
    sample.mask = canvas.mask


def _fill_class(sample: Sample, canvas: Canvas, label: int, points: list) -> None:
    sample.label = label


def _fill_box(sample: Sample, canvas: Canvas, label: int, points: list) -> None:
    sample.mask = canvas.mask
    x, y, w, h = cv2.boundingRect((canvas.mask > 0).astype(np.uint8))
    sample.box = (float(x), float(y), float(x + w), float(y + h))


def _fill_points(sample: Sample, canvas: Canvas, label: int, points: list) -> None:
    sample.points = [(round(float(px), 1), round(float(py), 1)) for px, py in points or []]


BOX_COLUMNS = ["x_min", "y_min", "x_max", "y_max"]

KIND_PHANTOMS: dict[TaskKind, KindPhantom] = {
    TaskKind.SEGMENTATION: KindPhantom("Segmentation/Two", _no_class, _fill_mask, lambda task: [], lambda s: {}),
    TaskKind.CLASSIFICATION: KindPhantom(
        "Classification", lambda task, index: index % task.num_classes, _fill_class,
        lambda task: ["mask"], lambda s: {"mask": str(s.label)}),
    TaskKind.DETECTION: KindPhantom(
        "Detection", _no_class, _fill_box, lambda task: list(BOX_COLUMNS),
        lambda s: {k: f"{v:.1f}" for k, v in zip(BOX_COLUMNS, s.box)}),
    TaskKind.REGRESSION: KindPhantom(
        "Regression", _no_class, _fill_points, lambda task: [f"point_{i + 1}_xy" for i in range(task.num_points)],
        lambda s: {f"point_{i + 1}_xy": json.dumps([round(x, 1), round(y, 1)]) for i, (x, y) in enumerate(s.points)}),
}
