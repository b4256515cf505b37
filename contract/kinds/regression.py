"""Regression (keypoints): N x 2M normalized coordinates -> points, normalized and in pixels (JSON).

Normalized points ``[x1, y1, ...]`` as the model gave them (not clamped, like the
baseline); pixels are x * W, y * H. Fallback: every keypoint at the centre (0.5, 0.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from contract.kinds.base import (KindSpec, Number, Prediction, RecordBase, Size, as_role, cell, check_size, identity_adapter,
                                 parse_point, same_estimate)
from contract.tasks import TaskKind

FALLBACK_POINT = (0.5, 0.5)


class RegressionRecord(RecordBase):
    predicted_points_normalized: list[Number] = Field(min_length=2)
    predicted_points_pixels: list[Number] = Field(min_length=2)

    @field_validator("predicted_points_normalized", "predicted_points_pixels")
    @classmethod
    def _pairs(cls, value: list[float]) -> list[float]:
        if len(value) % 2:
            raise ValueError(f"{len(value)} coordinates: expected x, y pairs")
        return value

    @model_validator(mode="after")
    def _same_length(self) -> "RegressionRecord":
        if len(self.predicted_points_normalized) != len(self.predicted_points_pixels):
            raise ValueError("normalized and pixel points differ in length")
        return self


def regression_fields(points: np.ndarray, size: Size) -> dict[str, Any]:
    height, width = check_size(size)
    flat = np.asarray(points, dtype=np.float64).reshape(-1)
    if flat.size == 0 or flat.size % 2 or not np.all(np.isfinite(flat)):
        raise ValueError(f"invalid keypoints {flat.tolist()}")
    pixels = flat.reshape(-1, 2) * np.array([width, height], dtype=np.float64)
    return {
        "predicted_points_normalized": [float(v) for v in flat],
        "predicted_points_pixels": [float(v) for v in pixels.reshape(-1)],
    }


def _decode(output: np.ndarray, size: Size) -> Prediction:
    return Prediction(TaskKind.REGRESSION, record_type=RegressionRecord, fields=regression_fields(output, size))


def _fallback(num_classes: int, size: Size) -> Prediction:
    points = np.tile(np.array(FALLBACK_POINT), max(int(num_classes), 1))
    return Prediction(TaskKind.REGRESSION, record_type=RegressionRecord, fields=regression_fields(points, size))


def _mirror_back(mirrored: np.ndarray, permutation: tuple[int, ...] | None) -> np.ndarray:
    """x -> 1 - x, then point i reads the mirror's point P[i]."""
    points = mirrored.reshape(len(mirrored), -1, 2).copy()
    points[..., 0] = 1.0 - points[..., 0]
    if permutation:
        points = points[:, list(permutation)]
    return points.reshape(len(mirrored), -1)


def _deviation(reference: np.ndarray, actual: np.ndarray) -> list[tuple[str, float, str]]:
    return [("Regression.max_abs_point_diff", float(np.max(np.abs(reference - actual))), "max")]


def _read_label(record: dict[str, str], k: int) -> dict[str, list[float]]:
    points: list[float] = []
    for i in range(1, k + 1):
        column = f"point_{i}_xy"
        text = cell(record, column)
        if not text:
            raise ValueError(f"empty {column}")
        points.extend(parse_point(text, column))
    return {"points": points}


SPEC = KindSpec(
    kind=TaskKind.REGRESSION,
    role="points",
    meaning="points: N x 2M normalized x1, y1, x2, y2, ... in input-size fractions (not clamped)",
    record_type=RegressionRecord,
    prediction_file="regression_predictions.json",
    gc_socket="keypoint-prediction",
    decode=_decode,
    fallback=_fallback,
    label_columns=("point_1_xy",),
    metrics=("mre", "mre_pct_diag"),
    dense=False,
    count_noun="point",
    fallback_sized=True,
    fallback_counted=True,
    estimate=same_estimate,
    mirror_back=_mirror_back,
    finish=as_role,
    flip_permutes="points",
    flip_safe_default=False,
    deviation=_deviation,
    read_label=_read_label,
    compared=("predicted_points_pixels", "pixels"),
    raw_expected=lambda k: f"N x {2 * k} normalized points (x1, y1, ...)",
    raw_fits=lambda shape, batch, k: shape == (batch, 2 * k),
    raw_adapter=identity_adapter,
    head_width=lambda k: 2 * k,
    role_shape=lambda k: (2 * k,),
)
