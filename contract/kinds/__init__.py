"""One spec per task kind (``KindSpec``), and the lookups the rest of the project uses.

To add a kind: a ``TaskKind`` member in ``contract.tasks`` and a module here with its
``SPEC`` (``KindSpec``: role, record, file, socket, decode, fallback, label columns and
label reading, metrics, ensembles, flips, deviation, brought-model outputs), found by
``KIND_SPECS`` on its own; then the per-kind tables outside the contract (a head in
``network.heads``, a target, loss and metric in ``training.kinds``, a scorer in
``evaluation.scoring``, a review scorer and drawing in ``review.collect``/``review.draw``,
a phantom in ``phantoms.kinds``): ``tests/test_kind_specs.py`` names each that lacks it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Sequence

import numpy as np

from contract.kinds.base import KindSpec, Number, Prediction, RecordBase, Size, check_size
from contract.kinds.classification import ClassificationRecord, classification_fields
from contract.kinds.detection import FALLBACK_BOX, DetectionRecord, box_pixels, detection_fields
from contract.kinds.regression import FALLBACK_POINT, RegressionRecord, regression_fields
from contract.kinds.segmentation import segmentation_mask
from contract.tasks import TaskKind


def _discover() -> dict[TaskKind, KindSpec]:
    """Every module of this package with a ``SPEC``, in ``TaskKind`` order: a new kind's module is found here."""
    specs: dict[TaskKind, KindSpec] = {}
    for info in pkgutil.iter_modules(__path__):
        spec = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SPEC", None)
        if isinstance(spec, KindSpec):
            specs[spec.kind] = spec
    return {kind: specs[kind] for kind in TaskKind if kind in specs}


KIND_SPECS: dict[TaskKind, KindSpec] = _discover()

#: The output role each kind's decoding reads.
OUTPUT_ROLE: dict[TaskKind, str] = {kind: spec.role for kind, spec in KIND_SPECS.items()}
#: The JSON file of each kind that has records (segmentation writes masks instead).
PREDICTION_FILES: dict[TaskKind, str] = {
    kind: spec.prediction_file for kind, spec in KIND_SPECS.items() if spec.prediction_file is not None
}
RECORD_TYPES: dict[TaskKind, type[RecordBase]] = {
    kind: spec.record_type for kind, spec in KIND_SPECS.items() if spec.record_type is not None
}
Record = ClassificationRecord | DetectionRecord | RegressionRecord


def spec_of(kind: TaskKind) -> KindSpec:
    return KIND_SPECS[kind]


def decode(kind: TaskKind, output: np.ndarray, size: Size) -> Prediction:
    """One image's output tensor (its role's tensor without the batch axis) -> Prediction at native size."""
    return KIND_SPECS[kind].decode(output, size)


def role_shape_problem(kind: TaskKind, count: int, shape: Sequence[object]) -> str | None:
    """Why a role tensor of ``shape`` (without the batch axis; a dimension that is not an int, e.g. a
    graph's symbolic size, matches anything) cannot be a task's of ``count`` classes or points, or None."""
    expected = KIND_SPECS[kind].role_shape(count)
    if len(shape) == len(expected) and all(not isinstance(have, int) or want is None or have == want
                                           for have, want in zip(shape, expected)):
        return None
    wanted = " x ".join(["N", *(str(d) if d is not None else "*" for d in expected)])
    given = " x ".join(["N", *(str(d) for d in shape)])
    return f"shape {given}, but a {kind.value} task with num_classes {count} needs {wanted}"


def fallback(kind: TaskKind, num_classes: int, size: Size) -> Prediction:
    """The documented stand-in prediction of a row that failed (see each kind's module)."""
    return KIND_SPECS[kind].fallback(num_classes, size)


__all__ = [
    "FALLBACK_BOX", "FALLBACK_POINT", "KIND_SPECS", "OUTPUT_ROLE", "PREDICTION_FILES", "RECORD_TYPES",
    "ClassificationRecord", "DetectionRecord", "KindSpec", "Number", "Prediction", "Record", "RecordBase",
    "RegressionRecord", "Size", "box_pixels", "check_size", "classification_fields", "decode",
    "detection_fields", "fallback", "regression_fields", "role_shape_problem", "segmentation_mask", "spec_of",
]
