"""What every task kind declares (``KindSpec``), and the prediction and record types they share."""

from __future__ import annotations

import json
import math
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
    """One image's prediction: a mask (segmentation) or the record's fields and type (other kinds)."""

    kind: TaskKind
    mask: np.ndarray | None = None
    fields: dict[str, Any] | None = None
    record_type: type[RecordBase] | None = None

    def record(self, image_path: str, task_id: str) -> RecordBase:
        if self.record_type is None or self.fields is None:
            raise ValueError(f"a {self.kind.value} prediction is a mask, not a JSON record")
        return self.record_type(image_path=image_path, task_id=task_id, **self.fields)


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
    ``count_noun``: what the task's ``num_classes`` counts ("class", or "point" for keypoints).
    ``fallback_sized``/``fallback_counted``: the fallback needs the image's size / the task's count.
    ``estimate``/``mirror_back``/``finish``: ensembles and flip TTA (``inference.engines.combine``):
    one run's role tensor -> per-image estimates in averaging units; estimates of mirror images
    -> estimates of the originals (given the flip rule's permutation, or None); the mean
    estimate -> the role tensor that ``decode`` reads.
    ``flip_permutes``: what a ``permute_*`` flip rule reorders for the kind ("classes", "points",
    None); ``flip_safe_default``: a task outside the official list is flipped by default.
    ``deviation(reference, actual)``: how far a role tensor (fp16, int8) is from fp32, as
    ``(figure, value, worst)`` with worst "max" or "min" (``exporter.deviation``).
    ``compared``: the record field whose numbers two runs are compared on, and the tolerance it is held
    to ("probability" or "pixels"; None: masks, compared pixel by pixel) (``exporter.cpu_compare``).
    ``read_label(record, k)``: a labelled CSV row's label fields (``evaluation.labels.LabelRow``), read from
    its CSV record for a task of ``k`` classes or points; ValueError naming the column when unusable.
    ``raw_expected(k)``/``raw_fits(shape, batch, k)``/``raw_adapter(rank)``: a brought network's
    raw output for a task of ``k`` classes or points: its description, whether a shape fits,
    and the adapter that turns it into the role tensor (``ADAPTERS``).
    ``head_width(k)``: channels of a head's raw output for a task of ``k`` classes or points
    (the width of a pooled head's vector; a dense head's channels), e.g. what a timm or smp
    classifier head is built with (``network.variants_*``).
    ``role_shape(k)``: the role tensor's shape for a task of ``k`` classes or points, without the
    batch axis (None: any size); checked against each graph's outputs and each engine result.
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
    count_noun: str
    fallback_sized: bool
    fallback_counted: bool
    estimate: Callable[[np.ndarray], np.ndarray]
    mirror_back: Callable[[np.ndarray, tuple[int, ...] | None], np.ndarray]
    finish: Callable[[np.ndarray], np.ndarray]
    flip_permutes: str | None
    flip_safe_default: bool
    deviation: Callable[[np.ndarray, np.ndarray], list[tuple[str, float, str]]]
    read_label: Callable[[dict[str, str], int], dict[str, Any]]
    compared: tuple[str, str] | None
    raw_expected: Callable[[int], str]
    raw_fits: Callable[[tuple[int, ...], int, int], bool]
    raw_adapter: Callable[[int], str]
    head_width: Callable[[int], int]
    role_shape: Callable[[int], tuple[int | None, ...]]

    @property
    def writes_mask(self) -> bool:
        """The kind's prediction is a mask file (no JSON record)."""
        return self.record_type is None


def check_size(size: Size) -> tuple[int, int]:
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {size}")
    return height, width


#: Adapters from a brought network's raw output to the role tensor, by name (``KindSpec.raw_adapter``):
#: ``identity``; ``softmax`` over axis 1; ``box_to_grid``: an N x 4 box -> a one-cell N x 5 x 1 x 1 grid
#: whose objectness is 0. Implemented for torch (``network.byom``) and ONNX (``exporter.onnx_adapters``).
ADAPTERS = ("identity", "softmax", "box_to_grid")


def identity_adapter(rank: int) -> str:
    return "identity"


def same_estimate(output: np.ndarray) -> np.ndarray:
    """Estimates that are the role tensor itself, one row per image (float64)."""
    output = np.asarray(output, dtype=np.float64)
    return output.reshape(len(output), -1)


def as_role(mean: np.ndarray) -> np.ndarray:
    return mean.astype(np.float32)


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|



def finite(values: list[float], what: str) -> list[float]:
    """``values`` when every one is finite; ValueError naming ``what`` otherwise."""
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} is not finite: {values}")
    return values


def parse_point(text: str, column: str) -> list[float]:
    """A CSV point cell, JSON ``"[x, y]"``, as two finite floats."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{column}={text!r} is not JSON '[x, y]'") from exc
    if not (isinstance(value, list) and len(value) == 2):
        raise ValueError(f"{column}={text!r} is not '[x, y]'")
    return finite([float(v) for v in value], column)


def cell(record: dict[str, str], column: str) -> str:
    return (record.get(column) or "").strip()
