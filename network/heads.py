"""Task heads of the four kinds, with the parameter names of the official baseline.

Key layout of an official ``best_model.pth`` (per task id ``t``):

- segmentation   ``heads.t.0.weight``            smp ``SegmentationHead`` (1x1 conv, x4 upsampling)
- classification ``heads.t.head.3.weight``       smp ``ClassificationHead`` wrapped as ``head``
- Regression     ``heads.t.linear.weight``       global average pool, linear to 2M
- detection      ``heads.t.conv_block.{0,1,3,4,6}.*``  conv3x3-BN-ReLU x2, conv1x1 to 4 + classes

``BASELINE_HEAD_KEYS`` reads this layout back (``exporter.checkpoint``). Every head takes
one tensor (the FPN output for dense kinds, the deepest encoder map for global kinds) and
returns the raw head output of the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from segmentation_models_pytorch.base import ClassificationHead as SmpClassificationHead
from segmentation_models_pytorch.base import SegmentationHead
from torch import nn

from contract.kinds import spec_of
from contract.tasks import TaskKind, TaskSpec


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


def _cell_centres(grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized x and y of every cell centre of an N x C x h x w map (1 x 1 x h x w each)."""
    height, width = grid.shape[-2], grid.shape[-1]
    xs = (torch.arange(width, dtype=grid.dtype, device=grid.device) + 0.5) / width
    ys = (torch.arange(height, dtype=grid.dtype, device=grid.device) + 0.5) / height
    return xs.view(1, 1, 1, -1), ys.view(1, 1, -1, 1)


class CellOffsetDetectionHead(GridDetectionHead):
    """Variant of the grid head whose cells predict the box *around themselves*.

    Same layers and weight names as ``GridDetectionHead``; channels 0..3 are read as
    distances from the cell centre to the left, top, right and bottom edges
    (sigmoid, so 0..1 of the image) and turned into the same absolute normalized
    ``x_min, y_min, x_max, y_max`` the baseline's decoding reads. Convolutions are
    translation-equivariant, so absolute coordinates are hard for them to emit;
    offsets from the cell are not.
    """

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        grid = self.conv_block(dense)
        distances = torch.sigmoid(grid[:, :4])
        cx, cy = _cell_centres(grid)
        box = torch.cat(
            [cx - distances[:, 0:1], cy - distances[:, 1:2], cx + distances[:, 2:3], cy + distances[:, 3:4]], dim=1
        )
        return torch.cat([box, grid[:, 4:]], dim=1)


class HeatmapRegressionHead(nn.Module):
    """Keypoints from the FPN output: one heatmap per point, spatial softmax, expected position.

    Emits the same N x 2M normalized ``x1, y1, x2, y2, ...`` as ``RegressionHead``
    (a differentiable soft-argmax), but keeps the spatial information that global
    pooling discards.
    """

    def __init__(self, in_channels: int, num_points: int, mid_channels: int = 64):
        super().__init__()
        self.num_points = num_points
        self.conv_block = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(),
            nn.Conv2d(mid_channels, num_points, kernel_size=1),
        )

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        heatmaps = self.conv_block(dense)
        batch = heatmaps.shape[0]
        probs = torch.softmax(heatmaps.flatten(2), dim=2).view_as(heatmaps)
        cx, cy = _cell_centres(heatmaps)
        x = (probs * cx).sum(dim=(2, 3))
        y = (probs * cy).sum(dim=(2, 3))
        return torch.stack([x, y], dim=2).reshape(batch, 2 * self.num_points)


HeadBuilder = Callable[[TaskSpec, int], nn.Module]

#: (kind, variant) -> builder(task, in_channels). The first variant of each kind is the
#: official baseline's; a model picks others with ``params["<kind>_head"]``.
HEAD_BUILDERS: dict[TaskKind, dict[str, HeadBuilder]] = {
    TaskKind.SEGMENTATION: {"conv": lambda task, channels: segmentation_head(channels, task.num_classes)},
    TaskKind.CLASSIFICATION: {"linear": lambda task, channels: ClassificationHead(channels, task.num_classes)},
    TaskKind.REGRESSION: {
        "linear": lambda task, channels: RegressionHead(channels, task.num_points),
        "heatmap": lambda task, channels: HeatmapRegressionHead(channels, task.num_points),
    },
    TaskKind.DETECTION: {
        "grid": lambda task, channels: GridDetectionHead(channels, task.num_classes),
        "cell_offset": lambda task, channels: CellOffsetDetectionHead(channels, task.num_classes),
    },
}


def head_variant(kind: TaskKind, params: dict) -> str:
    """The head variant a model's params ask for (``segmentation_head``, ``Regression_head``...)."""
    variants = HEAD_BUILDERS[kind]
    name = str(params.get(f"{kind.value.lower()}_head", next(iter(variants))))
    if name not in variants:
        raise ValueError(f"unknown {kind.value} head {name!r}; known: {', '.join(variants)}")
    return name


#: Head variants that read the FPN output although their kind is a global one.
DENSE_VARIANTS: set[tuple[TaskKind, str]] = {(TaskKind.REGRESSION, "heatmap")}


def reads_dense(kind: TaskKind, variant: str) -> bool:
    """Whether a head reads the FPN output (dense) or the deepest encoder map (global)."""
    return spec_of(kind).dense or (kind, variant) in DENSE_VARIANTS


def _identity(raw: torch.Tensor) -> torch.Tensor:
    return raw


def _softmax(raw: torch.Tensor) -> torch.Tensor:
    return torch.softmax(raw, dim=1)


#: What turns a head's raw output into its kind's role tensor (the role's name: ``contract.kinds``).
ROLE_ACTIVATIONS: dict[TaskKind, Callable[[torch.Tensor], torch.Tensor]] = {
    TaskKind.SEGMENTATION: _identity,
    TaskKind.CLASSIFICATION: _softmax,
    TaskKind.DETECTION: _identity,  # the grid head applies its sigmoid to the box channels itself
    TaskKind.REGRESSION: _identity,
}


def to_roles(kind: TaskKind, raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Turn a head's raw output into the manifest's output role (see contract.kinds)."""
    return {spec_of(kind).role: ROLE_ACTIVATIONS[kind](raw)}


@dataclass(frozen=True)
class BaselineHeadKeys:
    """How an official ``best_model.pth`` head of one kind is recognised and sized (keys under ``heads.<task_id>.``).

    ``signature``: the parameter only this kind's default head has; ``count(shape)``: the task's
    classes (points for Regression) from that parameter's shape; ``first``: the head's first
    layer, whose ``shape[1]`` is the width of the tensor the head reads.
    """

    signature: str
    count: Callable[[tuple[int, ...]], int]
    first: str


#: The official baseline's head layout per kind (the default variants of ``HEAD_BUILDERS``).
BASELINE_HEAD_KEYS: dict[TaskKind, BaselineHeadKeys] = {
    TaskKind.SEGMENTATION: BaselineHeadKeys("0.weight", lambda shape: shape[0], "0.weight"),
    TaskKind.CLASSIFICATION: BaselineHeadKeys("head.3.weight", lambda shape: shape[0], "head.3.weight"),
    TaskKind.DETECTION: BaselineHeadKeys("conv_block.6.weight", lambda shape: shape[0] - 4, "conv_block.0.weight"),
    TaskKind.REGRESSION: BaselineHeadKeys("linear.weight", lambda shape: shape[0] // 2, "linear.weight"),
}


def baseline_head_input(state: dict[str, torch.Tensor], task: TaskSpec) -> int | None:
    """Channels of the tensor a baseline-layout head reads (None when the checkpoint lacks its first layer)."""
    key = f"heads.{task.task_id}.{BASELINE_HEAD_KEYS[task.kind].first}"
    return int(state[key].shape[1]) if key in state else None
