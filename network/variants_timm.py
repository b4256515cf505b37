"""Seed variants built on timm backbones.

- ``timm_regressor`` (seed 003): a timm classifier backbone (EfficientNet-B3 in
  the seed) whose own head, global average pooling + dropout + linear, emits
  the raw output of one global task (a kind whose head reads pooled features):
  the 2M coordinates of a Regression task in the seed (M = 4 landmarks), or K logits.
- ``vit_fpn`` (seed 001, DINO-style ViTs): the baseline's multi-task network
  with a plain timm ViT as encoder. smp's ``tu-`` encoders need a feature
  pyramid, which a ViT (every block at stride 16) lacks, so a small adapter
  makes one from four blocks (transposed convolutions up to strides 4 and 8,
  max-pooling down to 32), as ViTDet does; everything else is ``MultiTaskNet``.
"""

from __future__ import annotations

import timm
import torch
from segmentation_models_pytorch.encoders.timm_vit import TimmViTEncoder
from torch import nn

from contract.kinds import KIND_SPECS, spec_of
from contract.manifest import IMAGE_INPUT, OUTPUT_ROLE, ModelConfig
from contract.tasks import TaskSpec
from network.heads import to_roles
from network.model import MultiTaskNet, Stage


def timm_name(encoder_name: str) -> str:
    """``tu-vit_small_patch16_224`` -> ``vit_small_patch16_224`` (the ``tu-`` prefix is optional)."""
    return encoder_name[3:] if encoder_name.startswith("tu-") else encoder_name


# --- seed 003: landmark regressor ----------------------------------------------------------
class _Backbone(nn.Module):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(image)


class _PooledHead(nn.Module):
    def __init__(self, backbone: nn.Module, task: TaskSpec):
        super().__init__()
        self.backbone = backbone  # only its pooling / dropout / classifier run here
        self.task = task

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return to_roles(self.task.kind, self.backbone.forward_head(features))[OUTPUT_ROLE[self.task.kind]]


GLOBAL_KINDS = ", ".join(kind.value for kind, spec in KIND_SPECS.items() if not spec.dense)


class LandmarkRegressor(nn.Module):
    """timm backbone + global pooling + linear to the task's raw output (2M normalized coordinates in seed 003)."""

    FEATURES = "features"

    def __init__(self, config: ModelConfig):
        super().__init__()
        if len(config.tasks) != 1 or spec_of(config.tasks[0].kind).dense:
            raise ValueError(f"timm_regressor serves exactly one task of a global kind ({GLOBAL_KINDS})")
        self.config = config
        self.task_spec: TaskSpec = config.tasks[0]
        self.backbone = timm.create_model(
            timm_name(config.encoder_name),
            pretrained=False,
            num_classes=spec_of(self.task_spec.kind).head_width(self.task_spec.num_classes),
            drop_rate=float(config.params.get("drop_rate", 0.3)),
        )

    def task(self, task_id: str) -> TaskSpec:
        return self.config.registry[task_id]

    def forward(self, image: torch.Tensor, task_id: str | None = None) -> torch.Tensor:
        if task_id is not None:
            self.task(task_id)
        return self.backbone(image)

    def predict(self, image: torch.Tensor, task_id: str) -> dict[str, torch.Tensor]:
        return to_roles(self.task(task_id).kind, self(image, task_id))

    def stages(self) -> list[Stage]:
        task = self.task_spec
        head = _PooledHead(self.backbone, task)
        # the head stage holds only the classifier's weights: share the module, export only what forward_head uses
        return [
            Stage("encoder", _Backbone(self.backbone), [IMAGE_INPUT], [self.FEATURES]),
            Stage(f"head.{task.task_id}", head, [self.FEATURES], [f"{task.task_id}.{OUTPUT_ROLE[task.kind]}"]),
        ]

    def task_path(self, task_id: str) -> list[str]:
        self.task(task_id)
        return ["encoder", f"head.{task_id}"]


# --- seed 001: ViT encoder under the baseline's FPN and heads ------------------------------
class ViTPyramidEncoder(nn.Module):
    """A plain timm ViT turned into an smp-style encoder: features at strides 1, 2, 4, 8, 16, 32."""

    def __init__(self, name: str, image_size: tuple[int, int]):
        super().__init__()
        self.vit = TimmViTEncoder(
            timm_name(name), pretrained=False, in_channels=3, depth=4, img_size=image_size, num_classes=0
        )
        width = self.vit.out_channels[-1]
        self.to_stride4 = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, kernel_size=2, stride=2),
            nn.GELU(),
            nn.ConvTranspose2d(width // 2, width // 4, kernel_size=2, stride=2),
        )
        self.to_stride8 = nn.ConvTranspose2d(width, width // 2, kernel_size=2, stride=2)
        self.to_stride32 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.out_channels = [3, 0, width // 4, width // 2, width, width]

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        blocks, _prefix_tokens = self.vit(image)
        c2 = self.to_stride4(blocks[0])
        c3 = self.to_stride8(blocks[1])
        c5 = self.to_stride32(blocks[3])
        return [image, image[:, :0], c2, c3, blocks[2], c5]


class ViTMultiTaskNet(MultiTaskNet):
    """``MultiTaskNet`` whose encoder is a timm ViT with a pyramid adapter (encoder_name ``tu-vit_*``)."""

    def build_encoder(self, config: ModelConfig) -> nn.Module:
        return ViTPyramidEncoder(config.encoder_name, tuple(config.preprocessing.input_size))
