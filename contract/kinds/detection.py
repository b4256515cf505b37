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

from contract.kinds.base import KindSpec, Number, Prediction, RecordBase, Size, cell, check_size, finite
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
    return Prediction(TaskKind.DETECTION, record_type=DetectionRecord, fields=detection_fields(output, size))


def _fallback(num_classes: int, size: Size) -> Prediction:
    return Prediction(TaskKind.DETECTION, record_type=DetectionRecord, fields={"bbox_normalized": list(FALLBACK_BOX),
                                                  "bbox_pixels": box_pixels(FALLBACK_BOX, size)})


def _estimate(output: np.ndarray) -> np.ndarray:
    """N x C x h x w grids -> N x 5: each image's own decoded box and the objectness logit of its cell."""
    output = np.asarray(output, dtype=np.float64)
    if output.ndim != 4 or output.shape[1] < 5:
        raise ValueError(f"detection grid must be N x (4 + C) x h x w, got shape {output.shape}")
    rows = []
    for image in output:
        box = detection_fields(image, (1, 1))["bbox_normalized"]
        objectness = image[4] if image.shape[0] == 5 else image[4:].max(axis=0)
        rows.append([*box, float(objectness.max())])
    return np.asarray(rows, dtype=np.float64).reshape(len(output), 5)


def _mirror_back(mirrored: np.ndarray, permutation: tuple[int, ...] | None) -> np.ndarray:
    back = mirrored.copy()
    back[:, 0], back[:, 2] = 1.0 - mirrored[:, 2], 1.0 - mirrored[:, 0]
    return back


def _finish(mean: np.ndarray) -> np.ndarray:
    """N x 5 mean boxes and objectness -> a one-cell N x 5 x 1 x 1 grid, decoded as any grid."""
    return mean[:, :, None, None].astype(np.float32)


def best_cells(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N x C x h x w grids -> (N x 4 boxes at the cell of highest objectness, N chosen cell indices)."""
    objectness = grid[:, 4:].max(axis=1).reshape(len(grid), -1)
    cells = objectness.argmax(axis=1)
    boxes = grid[:, :4].reshape(len(grid), 4, -1)[np.arange(len(grid)), :, cells]
    return boxes, cells


def _deviation(reference: np.ndarray, actual: np.ndarray) -> list[tuple[str, float, str]]:
    (ref_box, ref_cell), (out_box, out_cell) = best_cells(reference), best_cells(actual)
    return [("detection.max_abs_box_diff", float(np.max(np.abs(ref_box - out_box))), "max"),
            ("detection.cell_agreement", float(np.mean(ref_cell == out_cell)), "min")]


def _raw_fits(shape: tuple[int, ...], batch: int, k: int) -> bool:
    return shape == (batch, 4) or (len(shape) == 4 and shape[:2] == (batch, 4 + k))


BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")


def _read_label(record: dict[str, str], k: int) -> dict[str, list[float]]:
    texts = [cell(record, c) for c in BOX_COLUMNS]
    if not all(texts):
        raise ValueError(f"empty box column(s) {[c for c, t in zip(BOX_COLUMNS, texts) if not t]}")
    return {"box": finite([float(t) for t in texts], "box")}


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
    label_columns=BOX_COLUMNS,
    metrics=("iou",),
    dense=True,
    count_noun="class",
    fallback_sized=True,
    fallback_counted=False,
    estimate=_estimate,
    mirror_back=_mirror_back,
    finish=_finish,
    flip_permutes=None,
    flip_safe_default=True,
    deviation=_deviation,
    read_label=_read_label,
    compared=("bbox_pixels", "pixels"),
    raw_expected=lambda k: f"N x 4 normalized box (x_min, y_min, x_max, y_max) or N x {4 + k} x h x w grid",
    raw_fits=_raw_fits,
    raw_adapter=lambda rank: "box_to_grid" if rank == 2 else "identity",
    head_width=lambda k: 4 + k,
    role_shape=lambda k: (4 + k, None, None),
)
