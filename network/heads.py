"""Task heads of the four kinds, with the parameter names of the official baseline.

Key layout of an official ``best_model.pth`` (per task id ``t``):

- segmentation   ``heads.t.0.weight``            smp ``SegmentationHead`` (1x1 conv, x4 upsampling)
- classification ``heads.t.head.3.weight``       smp ``ClassificationHead`` wrapped as ``head``
- Regression     ``heads.t.linear.weight``       global average pool, linear to 2M
- detection      ``heads.t.conv_block.{0,1,3,4,6}.*``  conv3x3-BN-ReLU x2, conv1x1 to 4 + classes

Every head takes one tensor (the FPN output for dense kinds, the deepest encoder
map for global kinds) and returns the raw head output of the baseline.
"""

from __future__ import annotations

from typing import Callable

import torch
from segmentation_models_pytorch.base import ClassificationHead as SmpClassificationHead
from segmentation_models_pytorch.base import SegmentationHead
from torch import nn

from inference.tasks import TaskKind, TaskSpec


class ClassificationHead(nn.Module):
    """Global average pooling, dropout 0.2, linear: K logits."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        self.head = SmpClassificationHead(in_channels, num_classes, pooling="avg", dropout=dropout)

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        return self.head(deepest)


class RegressionHead(nn.Module):
    """Global average pooling, linear to 2M normalized coordinates (not clamped)."""

    def __init__(self, in_channels: int, num_points: int):
        super().__init__()
        self.pooling = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(in_channels, num_points * 2)

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        return self.linear(self.flatten(self.pooling(deepest)))


class GridDetectionHead(nn.Module):
    """Anchor-free grid head: per cell 4 box values (sigmoid) then objectness logit(s)."""

    def __init__(self, in_channels: int, num_classes: int = 1, mid_channels: int = 128):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(),
            nn.Conv2d(mid_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(),
            nn.Conv2d(mid_channels, 4 + num_classes, kernel_size=1),
        )

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        grid = self.conv_block(dense)
        return torch.cat([torch.sigmoid(grid[:, :4]), grid[:, 4:]], dim=1)


def segmentation_head(in_channels: int, num_classes: int, upsampling: int = 4) -> nn.Module:
    return SegmentationHead(in_channels, num_classes, kernel_size=1, upsampling=upsampling)


HeadBuilder = Callable[[TaskSpec, int], nn.Module]

#: kind -> builder(task, in_channels); dense kinds get the decoder's channels, global kinds the encoder's deepest.
HEAD_BUILDERS: dict[TaskKind, HeadBuilder] = {
    TaskKind.SEGMENTATION: lambda task, channels: segmentation_head(channels, task.num_classes),
    TaskKind.CLASSIFICATION: lambda task, channels: ClassificationHead(channels, task.num_classes),
    TaskKind.REGRESSION: lambda task, channels: RegressionHead(channels, task.num_points),
    TaskKind.DETECTION: lambda task, channels: GridDetectionHead(channels, task.num_classes),
}


def to_roles(kind: TaskKind, raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Turn a head's raw output into the manifest's output role (see inference.manifest)."""
    if kind is TaskKind.SEGMENTATION:
        return {"logits": raw}
    if kind is TaskKind.CLASSIFICATION:
        return {"probs": torch.softmax(raw, dim=1)}
    if kind is TaskKind.DETECTION:
        return {"grid": raw}
    return {"points": raw}
