"""Segmentation: K x h x w logits -> a native-size uint8 mask of class indices (PNG / .mha).

The logits are resized to the image's own height and width by bilinear interpolation
with half-pixel centres (the convention of ``cv2.resize(..., INTER_LINEAR)`` and of
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``, no
antialiasing), then the argmax over classes is the mask (ties go to the lower class).
For K = 2 only ``logit1 - logit0`` is resized: interpolation is linear, so its sign is
exactly the argmax of the two resized channels, at half the cost. K = 1 (a lone
foreground logit) means class 1 where the logit > 0. Fallback: an empty mask.

Large images: the mask is computed in bands of ``BAND_ROWS`` output rows, each from the
few source rows it needs, so memory beyond the uint8 mask itself is a few bands whatever
the image size and class count (``benchmarks/mask_memory.py``). Each band is computed
with OpenCV's own bilinear coefficients and operation order (source coordinate
``(x + 0.5) * src / dst - 0.5`` rounded to float32; columns clamped at the borders,
rows clamped by index; horizontal pass first, then ``row0 * b0 + row1 * b1``), so the
result equals OpenCV's generic ``cv2.resize`` bit for bit (tests/test_segmentation_bands.py)
and, unlike ``cv2.resize``, does not change with whether OpenCV was built with IPP.
"""

from __future__ import annotations

import numpy as np

from contract.kinds.base import KindSpec, Prediction, Size, cell, check_size, identity_adapter, sigmoid, softmax
from contract.tasks import TaskKind

BAND_ROWS = 64


def _coefficients(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and float32 weights (w0, w1) of each of ``dst`` outputs, as OpenCV computes them."""
    scale = 1.0 / (dst / src)
    coordinate = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    index = np.floor(coordinate).astype(np.int64)
    frac = (coordinate - index.astype(np.float32)).astype(np.float32)
    if clamp_weights:  # columns: outside the image, the edge pixel with weight 1
        low, high = index < 0, index >= src - 1
        frac[low | high] = 0
        index[low] = 0
        index[high] = src - 1
    i0 = np.clip(index, 0, src - 1)
    i1 = np.clip(index + 1, 0, src - 1)
    return i0, i1, (np.float32(1) - frac).astype(np.float32), frac


def resize_bands(planes: np.ndarray, size: Size, band_rows: int = BAND_ROWS):
    """C x h x w float32 -> (first row, C x rows x W band) over the output rows, bilinear as ``cv2.resize``."""
    height, width = size
    _, src_h, src_w = planes.shape
    x0, x1, a0, a1 = _coefficients(src_w, width, clamp_weights=True)
    y0, y1, b0, b1 = _coefficients(src_h, height, clamp_weights=False)
    for top in range(0, height, band_rows):
        bottom = min(height, top + band_rows)
        first, last = int(y0[top:bottom].min()), int(y1[top:bottom].max())
        rows = planes[:, first:last + 1, :]
        horizontal = rows[:, :, x0]  # C x r x W; each step rounds to float32 as OpenCV does
        horizontal *= a0
        right = rows[:, :, x1]
        right *= a1
        horizontal += right
        band = horizontal[:, y0[top:bottom] - first, :]
        band *= b0[top:bottom, None]
        lower = horizontal[:, y1[top:bottom] - first, :]
        lower *= b1[top:bottom, None]
        band += lower
        yield top, band


def segmentation_mask(logits: np.ndarray, size: Size) -> np.ndarray:
    """K x h x w logits (or probabilities) -> H x W uint8 class indices."""
    height, width = check_size(size)
    if logits.ndim != 3:
        raise ValueError(f"segmentation logits must be K x h x w, got shape {logits.shape}")
    logits = logits.astype(np.float32, copy=False)
    classes = logits.shape[0]
    if classes > 256:
        raise ValueError(f"{classes} classes do not fit an 8-bit mask")
    mask = np.empty((height, width), np.uint8)
    planes = logits if classes > 2 else (logits[:1] if classes == 1 else logits[1:2] - logits[0:1])
    for top, band in resize_bands(np.ascontiguousarray(planes), (height, width)):
        rows = slice(top, top + band.shape[1])
        if classes <= 2:
            np.greater(band[0], 0, out=mask[rows])
            continue
        best = band[0].copy()
        out = mask[rows]
        out.fill(0)
        for k in range(1, classes):  # a strict ">" keeps the lower class on ties, as argmax does
            better = band[k] > best
            out[better] = k
            np.maximum(best, band[k], out=best)
    return mask


def _decode(output: np.ndarray, size: Size) -> Prediction:
    return Prediction(TaskKind.SEGMENTATION, mask=segmentation_mask(output, size))


def _fallback(num_classes: int, size: Size) -> Prediction:
    height, width = check_size(size)
    return Prediction(TaskKind.SEGMENTATION, mask=np.zeros((height, width), np.uint8))


def _estimate(output: np.ndarray) -> np.ndarray:
    """Class probabilities at the network's resolution (K = 1: the sigmoid of the lone logit)."""
    output = np.asarray(output, dtype=np.float64)
    if output.ndim != 4:
        raise ValueError(f"segmentation logits must be N x K x h x w, got shape {output.shape}")
    return sigmoid(output) if output.shape[1] == 1 else softmax(output, axis=1)


def _mirror_back(mirrored: np.ndarray, permutation: tuple[int, ...] | None) -> np.ndarray:
    back = mirrored[..., ::-1]
    return back[:, list(permutation)] if permutation else back


def _finish(mean: np.ndarray) -> np.ndarray:
    """The mean probabilities (K = 1: minus 0.5, so that decoding's "> 0" is "p > 0.5")."""
    return (mean - 0.5 if mean.shape[1] == 1 else mean).astype(np.float32)


def _deviation(reference: np.ndarray, actual: np.ndarray) -> list[tuple[str, float, str]]:
    return [("segmentation.mask_agreement_min", float(np.mean(reference.argmax(1) == actual.argmax(1))), "min")]


def _raw_fits(shape: tuple[int, ...], batch: int, k: int) -> bool:
    return len(shape) == 4 and shape[:2] == (batch, k) and min(shape[2:]) >= 1


def _read_label(record: dict[str, str], k: int) -> dict[str, str]:
    mask_path = cell(record, "mask_path")
    if not mask_path:
        raise ValueError("empty mask_path")
    return {"mask_path": mask_path}


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
    count_noun="class",
    fallback_sized=True,
    fallback_counted=False,
    estimate=_estimate,
    mirror_back=_mirror_back,
    finish=_finish,
    flip_permutes="classes",
    flip_safe_default=True,
    deviation=_deviation,
    read_label=_read_label,
    compared=None,
    raw_expected=lambda k: f"N x {k} x h x w logits",
    raw_fits=_raw_fits,
    raw_adapter=identity_adapter,
    head_width=lambda k: k,
    role_shape=lambda k: (k, None, None),
)
