"""Output records of the three JSON files (SPEC "Output layout"), validated before writing."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from inference.tasks import TaskKind

Number = Annotated[float, Field(allow_inf_nan=False)]

#: The JSON file each non-segmentation kind is written to.
PREDICTION_FILES: dict[TaskKind, str] = {
    TaskKind.CLASSIFICATION: "classification_predictions.json",
    TaskKind.DETECTION: "detection_predictions.json",
    TaskKind.REGRESSION: "regression_predictions.json",
}


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image_path: str
    task_id: str = Field(min_length=1)


class ClassificationRecord(_Record):
    predicted_class: StrictInt = Field(ge=0)
    predicted_probs: list[Number] = Field(min_length=1)

    @model_validator(mode="after")
    def _probabilities(self) -> "ClassificationRecord":
        if any(p < 0.0 or p > 1.0 for p in self.predicted_probs):
            raise ValueError("predicted_probs must lie in [0, 1]")
        if not math.isclose(math.fsum(self.predicted_probs), 1.0, abs_tol=1e-4):
            raise ValueError(f"predicted_probs sum to {math.fsum(self.predicted_probs)}, not 1")
        if self.predicted_class >= len(self.predicted_probs):
            raise ValueError(f"predicted_class {self.predicted_class} >= {len(self.predicted_probs)} classes")
        return self


class DetectionRecord(_Record):
    bbox_normalized: list[Number] = Field(min_length=4, max_length=4)
    bbox_pixels: list[Number] = Field(min_length=4, max_length=4)


class RegressionRecord(_Record):
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


Record = ClassificationRecord | DetectionRecord | RegressionRecord

RECORD_TYPES: dict[TaskKind, type[_Record]] = {
    TaskKind.CLASSIFICATION: ClassificationRecord,
    TaskKind.DETECTION: DetectionRecord,
    TaskKind.REGRESSION: RegressionRecord,
}
