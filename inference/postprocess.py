"""From one image's network output (by the manifest's role) to its prediction, at native size.

Pure numpy / OpenCV, no model: the batch and the per-case layouts both call it.

- Segmentation: the K x h x w logits are resized to the image's own height and
  width with ``cv2.resize(..., (W, H), interpolation=cv2.INTER_LINEAR)`` (half-pixel
  centres, the convention of ``torch.nn.functional.interpolate(mode="bilinear",
  align_corners=False)``, no antialiasing), then the argmax over classes is the
  mask (uint8 class indices; ties go to the lower class, as ``argmax``). For
  K = 2 only the difference ``logit1 - logit0`` is resized: interpolation is
  linear, so its sign is exactly the argmax of the two resized channels, at half
  the cost. K = 1 (a lone foreground logit) means class 1 where the logit > 0.
- Classification: the probabilities (softmax inside the graph) renormalized in
  float64 so they sum to 1; the class is their argmax.
- Detection (the baseline's decoding): the cell with the highest objectness
  (channel 4, or the maximum over channels 4.. when there are several classes;
  first cell on ties, row-major) gives channels 0..3 =
  ``[x_min, y_min, x_max, y_max]`` normalized. ``bbox_normalized`` is exactly
  what the model gave. ``bbox_pixels`` puts each pair in order (min <= max),
  clamps it to [0, 1] and scales x by the width, y by the height.
- Regression: normalized points ``[x1, y1, ...]`` as the model gave them (not
  clamped, like the baseline); pixels are x * W, y * H.

Fallback predictions (for rows whose image cannot be read or run): an empty mask
(all background), uniform probabilities with class 0, the centred box
``[0.25, 0.25, 0.75, 0.75]``, every keypoint at the centre ``(0.5, 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from inference.records import RECORD_TYPES, Record
from inference.tasks import TaskKind

Size = tuple[int, int]  # (height, width) of the original image

FALLBACK_BOX = (0.25, 0.25, 0.75, 0.75)
FALLBACK_POINT = (0.5, 0.5)


@dataclass(frozen=True)
class Prediction:
    """One image's prediction: a mask (segmentation) or the record's fields (other kinds)."""

    kind: TaskKind
    mask: np.ndarray | None = None
    fields: dict[str, Any] | None = None

    def record(self, image_path: str, task_id: str) -> Record:
        if self.kind is TaskKind.SEGMENTATION or self.fields is None:
            raise ValueError("a segmentation prediction is a mask, not a JSON record")
        return RECORD_TYPES[self.kind](image_path=image_path, task_id=task_id, **self.fields)


def _check_size(size: Size) -> tuple[int, int]:
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {size}")
    return height, width


def segmentation_mask(logits: np.ndarray, size: Size) -> np.ndarray:
    """K x h x w logits (or probabilities) -> H x W uint8 class indices."""
    height, width = _check_size(size)
    if logits.ndim != 3:
        raise ValueError(f"segmentation logits must be K x h x w, got shape {logits.shape}")
    logits = logits.astype(np.float32, copy=False)
    classes = logits.shape[0]
    if classes > 256:
        raise ValueError(f"{classes} classes do not fit an 8-bit mask")
    if classes <= 2:
        diff = logits[0] if classes == 1 else logits[1] - logits[0]
        resized = cv2.resize(diff, (width, height), interpolation=cv2.INTER_LINEAR)
        return (resized > 0).astype(np.uint8)
    hwc = np.ascontiguousarray(logits.transpose(1, 2, 0))
    resized = cv2.resize(hwc, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.argmax(resized.reshape(height, width, classes), axis=2).astype(np.uint8)


def classification_fields(probs: np.ndarray) -> dict[str, Any]:
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(probs)) or np.any(probs < 0) or probs.sum() <= 0:
        raise ValueError(f"invalid class probabilities {probs.tolist()}")
    probs = probs / probs.sum()
    return {"predicted_class": int(np.argmax(probs)), "predicted_probs": [float(p) for p in probs]}


def _box_pixels(box: tuple[float, float, float, float], size: Size) -> list[float]:
    height, width = _check_size(size)
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
    return {"bbox_normalized": list(box), "bbox_pixels": _box_pixels(box, size)}


def regression_fields(points: np.ndarray, size: Size) -> dict[str, Any]:
    height, width = _check_size(size)
    flat = np.asarray(points, dtype=np.float64).reshape(-1)
    if flat.size == 0 or flat.size % 2 or not np.all(np.isfinite(flat)):
        raise ValueError(f"invalid keypoints {flat.tolist()}")
    pixels = flat.reshape(-1, 2) * np.array([width, height], dtype=np.float64)
    return {
        "predicted_points_normalized": [float(v) for v in flat],
        "predicted_points_pixels": [float(v) for v in pixels.reshape(-1)],
    }


def decode(kind: TaskKind, output: np.ndarray, size: Size) -> Prediction:
    """One image's output tensor (its role's tensor without the batch axis) -> Prediction."""
    if kind is TaskKind.SEGMENTATION:
        return Prediction(kind, mask=segmentation_mask(output, size))
    if kind is TaskKind.CLASSIFICATION:
        return Prediction(kind, fields=classification_fields(output))
    if kind is TaskKind.DETECTION:
        return Prediction(kind, fields=detection_fields(output, size))
    return Prediction(kind, fields=regression_fields(output, size))


def fallback(kind: TaskKind, num_classes: int, size: Size) -> Prediction:
    """The documented stand-in prediction of a row that failed (module docstring)."""
    height, width = _check_size(size)
    if kind is TaskKind.SEGMENTATION:
        return Prediction(kind, mask=np.zeros((height, width), np.uint8))
    if kind is TaskKind.CLASSIFICATION:
        k = max(int(num_classes), 1)
        return Prediction(kind, fields={"predicted_class": 0, "predicted_probs": [1.0 / k] * k})
    if kind is TaskKind.DETECTION:
        return Prediction(kind, fields={"bbox_normalized": list(FALLBACK_BOX), "bbox_pixels": _box_pixels(FALLBACK_BOX, size)})
    points = np.tile(np.array(FALLBACK_POINT), max(int(num_classes), 1))
    return Prediction(kind, fields=regression_fields(points, size))
