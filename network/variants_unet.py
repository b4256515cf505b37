"""Seed 002: a U-Net with a classification head on the bottleneck (smp ``Unet`` with ``aux_params``).

The network is smp's ``Unet`` itself (same ``state_dict`` keys: ``encoder.*``,
``decoder.*``, ``segmentation_head.*``, ``classification_head.*``), serving one
task whose output is a mask (segmentation) and, optionally, one task of a global kind
on the bottleneck (classification in the seed; smp's head emits the kind's raw width). This module only
adds what the exporter and the runtime need: ``stages()``, ``task_path()`` and
``predict()``.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from contract.kinds import KIND_SPECS, spec_of
from contract.manifest import IMAGE_INPUT, OUTPUT_ROLE, ModelConfig
from contract.tasks import TaskSpec
from network.heads import to_roles
from network.model import Stage

FEATURES = ("f1", "f2", "f3", "f4", "f5")


MASK_KINDS = ", ".join(kind.value for kind, spec in KIND_SPECS.items() if spec.writes_mask)
GLOBAL_KINDS = ", ".join(kind.value for kind, spec in KIND_SPECS.items() if not spec.dense)


def _split_tasks(config: ModelConfig) -> tuple[TaskSpec, TaskSpec | None]:
    """(the mask task, the task of a global kind or None)."""
    seg = [t for t in config.tasks if spec_of(t.kind).writes_mask]
    cls = [t for t in config.tasks if not spec_of(t.kind).dense]
    if len(seg) != 1 or len(cls) > 1 or len(seg) + len(cls) != len(config.tasks):
        raise ValueError(f"unet_cls serves exactly one task whose output is a mask ({MASK_KINDS}) and at most "
                         f"one task of a global kind ({GLOBAL_KINDS})")
    return seg[0], (cls[0] if cls else None)


class _Encoder(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.encoder(image)[1:])


class _Decoder(nn.Module):
    """The decoder reads the first feature only for its size (the input's): rebuilt from f1, at stride 2."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        full_size = F.interpolate(features[0][:, :1], scale_factor=2.0, mode="nearest")
        return self.decoder([full_size, *features])


class _Head(nn.Module):
    def __init__(self, attribute: str, head: nn.Module, task: TaskSpec):
        super().__init__()
        self.add_module(attribute, head)
        self.attribute = attribute
        self.task = task

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return to_roles(self.task.kind, getattr(self, self.attribute)(features))[OUTPUT_ROLE[self.task.kind]]


class UnetWithClassifier(smp.Unet):
    """smp ``Unet`` (+ ``aux_params`` classification head) as a two-task network."""

    def __init__(self, config: ModelConfig):
        seg, cls = _split_tasks(config)
        params = dict(config.params)
        aux = ({"classes": spec_of(cls.kind).head_width(cls.num_classes), "dropout": float(params.pop("aux_dropout", 0.2))}
               if cls else None)
        super().__init__(
            encoder_name=config.encoder_name, encoder_weights=None, classes=seg.num_classes, aux_params=aux, **params
        )
        self._model_config = config
        self.seg_task, self.cls_task = seg, cls

    @property
    def config(self) -> ModelConfig:  # smp's own ``config`` property (hub metadata) is replaced by ours
        return self._model_config

    def task(self, task_id: str) -> TaskSpec:
        return self.config.registry[task_id]

    def forward(self, image: torch.Tensor, task_id: str | None = None):
        """Without ``task_id`` smp's forward (masks[, labels]); with one, that task's raw head output."""
        if task_id is None:
            return super().forward(image)
        features = self.encoder(image)
        if spec_of(self.task(task_id).kind).writes_mask:
            return self.segmentation_head(self.decoder(features))
        return self.classification_head(features[-1])

    def predict(self, image: torch.Tensor, task_id: str) -> dict[str, torch.Tensor]:
        return to_roles(self.task(task_id).kind, self(image, task_id))

    def stages(self) -> list[Stage]:
        stages = [
            Stage("encoder", _Encoder(self.encoder), [IMAGE_INPUT], list(FEATURES)),
            Stage("decoder", _Decoder(self.decoder), list(FEATURES), ["decoder"]),
        ]
        seg = self.seg_task
        stages.append(Stage(f"head.{seg.task_id}", _Head("segmentation_head", self.segmentation_head, seg), ["decoder"],
                            [f"{seg.task_id}.{OUTPUT_ROLE[seg.kind]}"]))
        if self.cls_task is not None:
            cls = self.cls_task
            stages.append(Stage(f"head.{cls.task_id}", _Head("classification_head", self.classification_head, cls),
                                [FEATURES[-1]], [f"{cls.task_id}.{OUTPUT_ROLE[cls.kind]}"]))
        return stages

    def task_path(self, task_id: str) -> list[str]:
        if spec_of(self.task(task_id).kind).writes_mask:
            return ["encoder", "decoder", f"head.{task_id}"]
        return ["encoder", f"head.{task_id}"]
