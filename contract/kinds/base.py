"""What every task kind declares (``KindSpec``), and the prediction and record types they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from contract.tasks import TaskKind

Size = tuple[int, int]  # (height, width) of the original image
Number = Annotated[float, Field(allow_inf_nan=False)]


class RecordBase(BaseModel):
    """One row of a kind's JSON prediction file: the image's CSV path and the task id, then the kind's fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_path: str
    task_id: str = Field(min_length=1)


@dataclass(frozen=True)
class Prediction:
    """One image's prediction: a mask (segmentation) or the record's fields (other kinds)."""

    kind: TaskKind
    mask: np.ndarray | None = None
    fields: dict[str, Any] | None = None

    def record(self, image_path: str, task_id: str) -> RecordBase:
        from contract.kinds import spec_of

        record_type = spec_of(self.kind).record_type
        if record_type is None or self.fields is None:
            raise ValueError(f"a {self.kind.value} prediction is a mask, not a JSON record")
        return record_type(image_path=image_path, task_id=task_id, **self.fields)


@dataclass(frozen=True)
class KindSpec:
    """Everything the project does differently for one task kind, in one place.

    ``role``/``meaning``: the tensor the manifest names for the kind and what it holds.
    ``record_type``/``prediction_file``: the kind's JSON record and file (None: masks).
    ``gc_socket``: the Grand-Challenge output socket slug of a case of this kind.
    ``decode(output, size)``: one image's role tensor -> Prediction at native size.
    ``fallback(num_classes, size)``: the documented stand-in for a failed row.
    ``label_columns``: CSV columns a labelled row of this kind needs (the evaluator).
    ``metrics``: the metrics the evaluator reports for the kind (headline first).
    ``dense``: the head reads the decoder's full-resolution map (else the deepest encoder map).
    """

    kind: TaskKind
    role: str
    meaning: str
    record_type: type[RecordBase] | None
    prediction_file: str | None
    gc_socket: str
    decode: Callable[[np.ndarray, Size], Prediction]
    fallback: Callable[[int, Size], Prediction]
    label_columns: tuple[str, ...]
    metrics: tuple[str, ...]
    dense: bool


def check_size(size: Size) -> tuple[int, int]:
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {size}")
    return height, width
