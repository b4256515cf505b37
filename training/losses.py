"""Losses of the seed-000 recipe (paper section 2.3), one per task kind, on the raw head outputs.

- segmentation: soft Dice over the foreground classes (eq. 3), plus pixel
  cross-entropy with weight ``seg_ce`` (default 1; set 0 for the paper's pure
  Dice). Dice alone trains slowly from random initialization and gives no
  gradient to a class absent from a batch; the cross-entropy term steadies it.
- classification: cross-entropy (eq. 4).
- Regression: squared Euclidean distance per point between predicted and true
  normalized coordinates, averaged over points and images (eq. 5).
- detection (eq. 6, lambda = 8): at the target cell (the grid cell holding the
  box centre, ``i = floor(cy * h')``, ``j = floor(cx * w')``) BCE-with-logits of
  the objectness toward 1 plus ``lambda`` times the L1 error of the 4 box values.
  Two additions to the paper, because decoding takes the cell of HIGHEST
  objectness: (1) BCE toward 0 on every other cell (mean over those cells, weight
  ``det_negative``), without which nothing teaches the network to keep other cells
  low; (2) the box L1 also at the cells within ``det_box_radius`` (default 1, the
  3 x 3 block) around the target cell, so that an argmax one cell off still reads a
  trained box (the box values are absolute coordinates, so those cells share the target).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F



@dataclass(frozen=True)
class LossSettings:
    seg_ce: float = 1.0
    det_l1: float = 8.0
    det_negative: float = 1.0
    det_box_radius: int = 1
    dice_eps: float = 1.0


def dice_loss(logits: torch.Tensor, mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of softmax probabilities, per foreground class over the batch, averaged."""
    num_classes = logits.shape[1]
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(mask.long(), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2.0 * inter + eps) / (denom + eps)
    return 1.0 - dice[1:].mean() if num_classes > 1 else 1.0 - dice.mean()


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor, settings: LossSettings) -> torch.Tensor:
    loss = dice_loss(logits, mask, settings.dice_eps)
    if settings.seg_ce > 0:
        loss = loss + settings.seg_ce * F.cross_entropy(logits.float(), mask.long())
    return loss


def regression_loss(points: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    diff = (points.float() - target.float()).view(points.shape[0], -1, 2)
    return diff.pow(2).sum(dim=2).mean()


def target_cells(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of the grid cell holding each box centre (eq. 2), clamped to the grid."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    rows = torch.floor(cy * height).long().clamp(0, height - 1)
    cols = torch.floor(cx * width).long().clamp(0, width - 1)
    return rows, cols


def detection_loss(grid: torch.Tensor, boxes: torch.Tensor, settings: LossSettings) -> torch.Tensor:
    """Loss of the grid head output (N x 5 x h x w, box channels already sigmoid) against normalized boxes."""
    grid = grid.float()
    n, _, height, width = grid.shape
    rows, cols = target_cells(boxes, height, width)
    batch = torch.arange(n, device=grid.device)
    objectness = grid[:, 4]
    positive = torch.zeros_like(objectness, dtype=torch.bool)
    positive[batch, rows, cols] = True
    pos_loss = F.binary_cross_entropy_with_logits(objectness[positive], torch.ones(n, device=grid.device))
    loss = pos_loss
    if settings.det_negative > 0:
        neg_logits = objectness[~positive]
        loss = loss + settings.det_negative * F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits))
    r = max(0, int(settings.det_box_radius))
    offsets = torch.arange(-r, r + 1, device=grid.device)
    nb_rows = (rows.view(n, 1, 1) + offsets.view(1, -1, 1)).clamp(0, height - 1).expand(n, 2 * r + 1, 2 * r + 1)
    nb_cols = (cols.view(n, 1, 1) + offsets.view(1, 1, -1)).clamp(0, width - 1).expand(n, 2 * r + 1, 2 * r + 1)
    pred = grid[:, :4].permute(0, 2, 3, 1)[batch.view(n, 1, 1), nb_rows, nb_cols]  # n x k x k x 4
    l1 = (pred - boxes.float().view(n, 1, 1, 4)).abs().mean()
    return loss + settings.det_l1 * l1


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, settings: LossSettings) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels.long())
