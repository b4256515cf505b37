"""Detection (the baseline's grid decoding): the cell of highest objectness gives the box (JSON).

Objectness is channel 4 (or the maximum over channels 4.. with several classes; first
cell on ties, row-major); channels 0..3 at that cell are ``[x_min, y_min, x_max,
y_max]`` normalized. ``bbox_normalized`` is exactly what the model gave; ``bbox_pixels``
puts each pair in order (min <= max), clamps it to [0, 1] and scales x by the width,
y by the height. Fallback: the centred box ``[0.25, 0.25, 0.75, 0.75]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from contract.kinds.base import KindSpec, Number, Prediction, RecordBase, Size, check_size
from contract.tasks import TaskKind

FALLBACK_BOX = (0.25, 0.25, 0.75, 0.75)


class DetectionRecord(RecordBase):
    bbox_normalized: list[Number] = Field(min_length=4, max_length=4)
    bbox_pixels: list[Number] = Field(min_length=4, max_length=4)


def box_pixels(box: tuple[float, float, float, float], size: Size) -> list[float]:
    height, width = check_size(size)
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in box)
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    return [x1 * width, y1 * height, x2 * width, y2 * height]


def detection_fields(grid: np.ndarray, size: Size) -> dict[str, Any]:
    """C x h x w grid (4 box channels, then objectness) -> best cell's box."""
    if grid.ndim != 3 or grid.shape[0] < 5:
        raise ValueError(f"detection grid must be (4 + classes) x h x w, got shape {grid.shape}")
    objectness = grid[4] if grid.shape[0] == 5 else grid[4:].max(axis=0)
    row, col = np.unravel_index(int(np.argmax(objectness)), objectness.shape)
    box = tuple(float(v) for v in grid[:4, row, col])
    if not all(np.isfinite(box)):
        raise ValueError(f"non-finite box {box}")
    return {"bbox_normalized": list(box), "bbox_pixels": box_pixels(box, size)}


def _decode(output: np.ndarray, size: Size) -> Prediction:
    return Prediction(TaskKind.DETECTION, fields=detection_fields(output, size))


def _fallback(num_classes: int, size: Size) -> Prediction:
    return Prediction(TaskKind.DETECTION, fields={"bbox_normalized": list(FALLBACK_BOX),
                                                  "bbox_pixels": box_pixels(FALLBACK_BOX, size)})


SPEC = KindSpec(
    kind=TaskKind.DETECTION,
    role="grid",
    meaning="grid: N x (4+C) x h x w; channels 0-3 x_min, y_min, x_max, y_max in [0, 1] (sigmoid), "
    "then objectness logits; the box is read at the cell of highest objectness",
    record_type=DetectionRecord,
    prediction_file="detection_predictions.json",
    gc_socket="detection-prediction",
    decode=_decode,
    fallback=_fallback,
    label_columns=("x_min", "y_min", "x_max", "y_max"),
    metrics=("iou",),
    dense=True,
)
