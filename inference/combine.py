"""How an ensemble's members and flipped copies are averaged: decoded estimates, then one role tensor.

Every model run (a member on the images, or on their mirror images) gives one *estimate*
per image, in the units that are averaged; mirror-image estimates are first mirrored
back (``contract.flip``'s rule of the task). The mean of the estimates is then returned
as the task's role tensor, in a form that the kind's ordinary decoding
(``contract.kinds.decode``) turns into the averaged prediction:

==============  ==========================================  ===========================================
kind            estimate (mirrored back under a flip)        role tensor returned
==============  ==========================================  ===========================================
classification  class probabilities (N x K); under            the mean probabilities; decoding renormalizes
                ``permute_classes:P`` class c reads p[P[c]]   and takes the argmax
segmentation    class probabilities at the network's          the mean probabilities (K = 1: the mean
                resolution: softmax of the logits (K = 1:     foreground probability minus 0.5, so that
                sigmoid of the lone logit); mirrored along    decoding's "> 0" is "p > 0.5"); decoding
                W, classes permuted under permute_classes     resizes them to native size, then argmax
detection       the box each run decodes itself (the cell of  N x 5 x 1 x 1: the mean box, then the mean
                highest objectness, normalized x_min, y_min,  objectness logit of the chosen cells; a
                x_max, y_max); mirrored: x_min, x_max =       one-cell grid, decoded as any grid
                1 - x_max, 1 - x_min
Regression      normalized points (N x 2M); mirrored: x ->    the mean points
                1 - x, then point i reads the mirror's P[i]
==============  ==========================================  ===========================================

Averaging segmentation probabilities at the network's resolution and resizing the mean
is exactly averaging at native resolution: bilinear resizing is linear (each output
pixel is a fixed weighted sum of input pixels), so resize(mean) == mean(resize). The
argmax is taken once, at native resolution, by the ordinary decoding. Under a flip the
same holds for the mirror: the bilinear resize (half-pixel centres) commutes with a
mirror along W.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from contract.flip import FlipRule
from contract.kinds.detection import detection_fields
from contract.tasks import TaskKind


def _softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|


def _boxes(grid: np.ndarray) -> np.ndarray:
    """N x C x h x w grids -> N x 5: each image's own decoded box and the objectness logit of its cell."""
    rows = []
    for image in grid:
        box = detection_fields(image, (1, 1))["bbox_normalized"]
        objectness = image[4] if image.shape[0] == 5 else image[4:].max(axis=0)
        rows.append([*box, float(objectness.max())])
    return np.asarray(rows, dtype=np.float64).reshape(len(grid), 5)


def estimate(kind: TaskKind, output: np.ndarray) -> np.ndarray:
    """One run's role tensor (N x ...) -> per-image estimates in averaging units (float64)."""
    output = np.asarray(output, dtype=np.float64)
    if kind is TaskKind.CLASSIFICATION:
        return output.reshape(len(output), -1)
    if kind is TaskKind.SEGMENTATION:
        if output.ndim != 4:
            raise ValueError(f"segmentation logits must be N x K x h x w, got shape {output.shape}")
        return _sigmoid(output) if output.shape[1] == 1 else _softmax(output, axis=1)
    if kind is TaskKind.DETECTION:
        if output.ndim != 4 or output.shape[1] < 5:
            raise ValueError(f"detection grid must be N x (4 + C) x h x w, got shape {output.shape}")
        return _boxes(output)
    if kind is TaskKind.REGRESSION:
        return output.reshape(len(output), -1)
    raise ValueError(f"no averaging rule for kind {kind}")


def mirror_back(kind: TaskKind, rule: FlipRule, mirrored: np.ndarray) -> np.ndarray:
    """Estimates made on mirror images -> estimates of the original images (``rule`` must flip)."""
    if not rule.flips:
        raise ValueError("an unsafe task is never flipped")
    permutation = list(rule.permutation) if rule.permutation is not None else None
    if kind is TaskKind.CLASSIFICATION:
        return mirrored[:, permutation] if permutation else mirrored
    if kind is TaskKind.SEGMENTATION:
        back = mirrored[..., ::-1]
        return back[:, permutation] if permutation else back
    if kind is TaskKind.DETECTION:
        back = mirrored.copy()
        back[:, 0], back[:, 2] = 1.0 - mirrored[:, 2], 1.0 - mirrored[:, 0]
        return back
    if kind is TaskKind.REGRESSION:
        points = mirrored.reshape(len(mirrored), -1, 2).copy()
        points[..., 0] = 1.0 - points[..., 0]
        if permutation:
            points = points[:, permutation]
        return points.reshape(len(mirrored), -1)
    raise ValueError(f"no flip rule for kind {kind}")


def combine(kind: TaskKind, estimates: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of the estimates, as the role tensor the kind's decoding reads (float32)."""
    if not estimates:
        raise ValueError("nothing to combine")
    mean = np.mean(np.stack(estimates), axis=0)
    if kind is TaskKind.SEGMENTATION and mean.shape[1] == 1:
        mean = mean - 0.5
    elif kind is TaskKind.DETECTION:
        mean = mean[:, :, None, None]
    return mean.astype(np.float32)
