"""How an ensemble's members and flipped copies are averaged: decoded estimates, then one role tensor.

What differs by kind lives in the kind's spec (``estimate``, ``mirror_back``, ``finish`` in
``contract.kinds``); this module runs them. The rules, kind by kind:

Every model run (a member on the images, or on their mirror images) gives one *estimate*
per image, in the units that are averaged (weighted by the member's weight in a
composite folder, ``contract.ensemble``; its mirror-image estimate weighs the same);
mirror-image estimates are first mirrored back (``contract.flip``'s rule of the task).
The mean of the estimates is then returned as the task's role tensor, in a form that the
kind's ordinary decoding (``contract.kinds.decode``) turns into the averaged prediction:

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
from contract.kinds import spec_of
from contract.tasks import TaskKind


def estimate(kind: TaskKind, output: np.ndarray) -> np.ndarray:
    """One run's role tensor (N x ...) -> per-image estimates in averaging units (float64; ``KindSpec.estimate``)."""
    return spec_of(kind).estimate(output)


def mirror_back(kind: TaskKind, rule: FlipRule, mirrored: np.ndarray) -> np.ndarray:
    """Estimates made on mirror images -> estimates of the original images (``rule`` must flip)."""
    if not rule.flips:
        raise ValueError("an unsafe task is never flipped")
    return spec_of(kind).mirror_back(mirrored, rule.permutation)


def combine(kind: TaskKind, estimates: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The (weighted) mean of the estimates, as the role tensor the kind's decoding reads (float32; ``KindSpec.finish``).

    ``weights``: one per estimate (a member's weight repeated for its mirror-image estimate); None: equal."""
    if not estimates:
        raise ValueError("nothing to combine")
    if weights is None or len(set(weights)) == 1:
        return spec_of(kind).finish(np.mean(np.stack(estimates), axis=0))
    if len(weights) != len(estimates):
        raise ValueError(f"{len(weights)} weights for {len(estimates)} estimates")
    return spec_of(kind).finish(np.average(np.stack(estimates), axis=0, weights=np.asarray(weights, np.float64)))
