"""The multi-head multi-task network of the FMC_UIA baseline (seed 000).

``MultiTaskNet`` = an smp encoder (``encoder``), smp's FPN decoder (``fpn_decoder``)
and one head per task (``heads.<task_id>``). Global kinds (classification,
Regression) read the deepest encoder map; dense kinds (segmentation, detection)
read the FPN output. Channel counts come from the encoder, never hard-coded.

For export the network is described as *stages* (encoder, fpn, one per head),
each a module with named tensor inputs and outputs, so that an image only runs
the stages its task needs and the encoder's weights are stored once.
"""

from __future__ import annotations

from dataclasses import dataclass

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
from torch import nn

from contract.manifest import IMAGE_INPUT, OUTPUT_ROLE, ModelConfig
from contract.tasks import TaskSpec
from network.heads import HEAD_BUILDERS, head_variant, reads_dense, to_roles

FPN_DEFAULTS: dict[str, int | float | str] = {
    "pyramid_channels": 256,
    "segmentation_channels": 128,
    "dropout": 0.2,
    "merge_policy": "add",
}


@dataclass
class Stage:
    """One exportable piece: ``module(*inputs) -> tuple(outputs)`` with named tensors."""

    name: str
    module: nn.Module
    inputs: list[str]
    outputs: list[str]


class _EncoderStage(nn.Module):
    """Runs the encoder and returns the feature maps the decoder and global heads read."""

    def __init__(self, encoder: nn.Module, keep: list[int]):
        super().__init__()
        self.encoder = encoder
        self.keep = keep

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.encoder(image)
        return tuple(features[i] for i in self.keep)


class _FPNStage(nn.Module):
    def __init__(self, fpn_decoder: nn.Module):
        super().__init__()
        self.fpn_decoder = fpn_decoder

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.fpn_decoder(list(features))


class _HeadStage(nn.Module):
    def __init__(self, heads: nn.ModuleDict, task: TaskSpec):
        super().__init__()
        self.heads = nn.ModuleDict({task.task_id: heads[task.task_id]})
        self.task = task

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(to_roles(self.task.kind, self.heads[self.task.task_id](features)).values())


class MultiTaskNet(nn.Module):
    """Shared encoder + FPN decoder + one head per task, routed by task id."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        params = {**FPN_DEFAULTS, **config.params}
        self.encoder = self.build_encoder(config)
        channels = list(self.encoder.out_channels)
        self.fpn_decoder = FPNDecoder(
            encoder_channels=channels,
            encoder_depth=5,
            pyramid_channels=int(params["pyramid_channels"]),
            segmentation_channels=int(params["segmentation_channels"]),
            dropout=float(params["dropout"]),
            merge_policy=str(params["merge_policy"]),
        )
        dense_channels = self.fpn_decoder.out_channels
        self.heads = nn.ModuleDict()
        self._dense: dict[str, bool] = {}
        for task in config.tasks:
            variant = head_variant(task.kind, params)
            self._dense[task.task_id] = reads_dense(task.kind, variant)
            width = dense_channels if self._dense[task.task_id] else channels[-1]
            self.heads[task.task_id] = HEAD_BUILDERS[task.kind][variant](task, width)

    def build_encoder(self, config: ModelConfig) -> nn.Module:
        """The backbone: an smp encoder (``out_channels`` list, returns a feature list). Variants override this."""
        return smp.encoders.get_encoder(config.encoder_name, in_channels=3, depth=5, weights=None)

    def task(self, task_id: str) -> TaskSpec:
        return self.config.registry[task_id]

    def forward(self, image: torch.Tensor, task_id: str) -> torch.Tensor:
        """The baseline's forward: the raw output of the task's head."""
        self.task(task_id)  # unknown ids raise with the list of known ones
        features = self.encoder(image)
        if self._dense[task_id]:
            return self.heads[task_id](self.fpn_decoder(features))
        return self.heads[task_id](features[-1])

    def predict(self, image: torch.Tensor, task_id: str) -> dict[str, torch.Tensor]:
        """Outputs by role (logits / probs / grid / points), as the ONNX graphs emit them."""
        return to_roles(self.task(task_id).kind, self(image, task_id))

    # --- export description -------------------------------------------------------
    FEATURE_NAMES = ("c2", "c3", "c4", "c5")

    def stages(self) -> list[Stage]:
        depth = len(self.encoder.out_channels)
        keep = list(range(depth - 4, depth))
        stages = [
            Stage("encoder", _EncoderStage(self.encoder, keep), [IMAGE_INPUT], list(self.FEATURE_NAMES)),
            Stage("fpn", _FPNStage(self.fpn_decoder), list(self.FEATURE_NAMES), ["fpn"]),
        ]
        for task in self.config.tasks:
            source = "fpn" if self._dense[task.task_id] else self.FEATURE_NAMES[-1]
            head = _HeadStage(self.heads, task)
            role = OUTPUT_ROLE[task.kind]
            stages.append(Stage(f"head.{task.task_id}", head, [source], [f"{task.task_id}.{role}"]))
        return stages

    def task_path(self, task_id: str) -> list[str]:
        self.task(task_id)
        return ["encoder", "fpn", f"head.{task_id}"] if self._dense[task_id] else ["encoder", f"head.{task_id}"]
