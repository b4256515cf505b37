"""Segmentation: K x h x w logits -> a native-size uint8 mask of class indices (PNG / .mha).

The logits are resized to the image's own height and width with ``cv2.resize(...,
(W, H), interpolation=cv2.INTER_LINEAR)`` (half-pixel centres, the convention of
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``, no
antialiasing), then the argmax over classes is the mask (ties go to the lower class).
For K = 2 only ``logit1 - logit0`` is resized: interpolation is linear, so its sign is
exactly the argmax of the two resized channels, at half the cost. K = 1 (a lone
foreground logit) means class 1 where the logit > 0. Fallback: an empty mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from contract.kinds.base import KindSpec, Prediction, Size, check_size
from contract.tasks import TaskKind


def segmentation_mask(logits: np.ndarray, size: Size) -> np.ndarray:
    """K x h x w logits (or probabilities) -> H x W uint8 class indices."""
    height, width = check_size(size)
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


def _decode(output: np.ndarray, size: Size) -> Prediction:
    return Prediction(TaskKind.SEGMENTATION, mask=segmentation_mask(output, size))


def _fallback(num_classes: int, size: Size) -> Prediction:
    height, width = check_size(size)
    return Prediction(TaskKind.SEGMENTATION, mask=np.zeros((height, width), np.uint8))


SPEC = KindSpec(
    kind=TaskKind.SEGMENTATION,
    role="logits",
    meaning="logits: N x K x H x W class logits at the input size; argmax gives the class (0 = background)",
    record_type=None,
    prediction_file=None,
    gc_socket="segmentation-mask",
    decode=_decode,
    fallback=_fallback,
    label_columns=("mask_path",),
    metrics=("dice", "hd"),
    dense=True,
)
