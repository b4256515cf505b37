"""Classification: N x K softmax probabilities -> the class and its probabilities (JSON).

The probabilities are renormalized in float64 so they sum to 1; the class is their
argmax. Fallback: uniform probabilities with class 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field, StrictInt, model_validator

from contract.kinds.base import KindSpec, Number, Prediction, RecordBase, Size, as_role, cell, same_estimate
from contract.tasks import TaskKind


class ClassificationRecord(RecordBase):
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


def classification_fields(probs: np.ndarray) -> dict[str, Any]:
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(probs)) or np.any(probs < 0) or probs.sum() <= 0:
        raise ValueError(f"invalid class probabilities {probs.tolist()}")
    probs = probs / probs.sum()
    return {"predicted_class": int(np.argmax(probs)), "predicted_probs": [float(p) for p in probs]}


def _decode(output: np.ndarray, size: Size) -> Prediction:
    return Prediction(TaskKind.CLASSIFICATION, record_type=ClassificationRecord, fields=classification_fields(output))


def _fallback(num_classes: int, size: Size) -> Prediction:
    k = max(int(num_classes), 1)
    return Prediction(TaskKind.CLASSIFICATION, record_type=ClassificationRecord, fields={"predicted_class": 0, "predicted_probs": [1.0 / k] * k})


def _mirror_back(mirrored: np.ndarray, permutation: tuple[int, ...] | None) -> np.ndarray:
    """Under ``permute_classes:P`` class c of an image reads p[P[c]] of its mirror image."""
    return mirrored[:, list(permutation)] if permutation else mirrored


def _deviation(reference: np.ndarray, actual: np.ndarray) -> list[tuple[str, float, str]]:
    return [("classification.max_abs_prob_diff", float(np.max(np.abs(reference - actual))), "max"),
            ("classification.argmax_agreement", float(np.mean(reference.argmax(1) == actual.argmax(1))), "min")]


def _read_label(record: dict[str, str], k: int) -> dict[str, int]:
    text = cell(record, "mask")
    label = int(float(text)) if text else -1
    if not 0 <= label < k:
        raise ValueError(f"class label {text!r} is not in 0..{k - 1}")
    return {"label": label}


SPEC = KindSpec(
    kind=TaskKind.CLASSIFICATION,
    role="probs",
    meaning="probs: N x K softmax probabilities",
    record_type=ClassificationRecord,
    prediction_file="classification_predictions.json",
    gc_socket="classification-prediction",
    decode=_decode,
    fallback=_fallback,
    label_columns=("mask",),
    metrics=("auc", "f1", "mcc", "accuracy"),
    dense=False,
    count_noun="class",
    fallback_sized=False,
    fallback_counted=True,
    estimate=same_estimate,
    mirror_back=_mirror_back,
    finish=as_role,
    flip_permutes="classes",
    flip_safe_default=False,
    deviation=_deviation,
    read_label=_read_label,
    compared=("predicted_probs", "probability"),
    raw_expected=lambda k: f"N x {k} logits",
    raw_fits=lambda shape, batch, k: shape == (batch, k),
    raw_adapter=lambda rank: "softmax",
    head_width=lambda k: k,
    role_shape=lambda k: (k,),
)
