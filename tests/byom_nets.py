"""Small networks a team might bring (tests of ``export.py --model``): 64 x 64 input, a few channels.

- ``DictNet``: ``forward(image) -> dict`` with all four kinds (detection as an N x 4 box);
- ``ConditionedNet``: ``forward(image, task_index)``; a task embedding scales the shared
  features (FiLM), so every task sees different features from the same image;
- ``VitNet``: a timm ViT (random init, tiny dims) with a task token added to its patch
  tokens, M2DINO-style; heads read the patch grid or the class token;
- one-task-per-call forwards: ``NameNet`` (``forward(image, task_id)`` with the task's name,
  unannotated, as team code often has it), ``IndexPerCallNet`` (``forward(image, task_index)``
  returning that task's tensor) and ``PositionNet`` (``forward(image, task_id: int)``);
- factories that fail in the ways the exporter must report.
"""

from __future__ import annotations

import torch
from torch import nn

TASKS = [
    {"task_id": "fetal_head", "kind": "segmentation", "num_classes": 2},
    {"task_id": "cardiac_multi", "kind": "segmentation", "num_classes": 4},
    {"task_id": "breast_3cls", "kind": "classification", "num_classes": 3},
    {"task_id": "thyroid_nodule_det", "kind": "detection", "num_classes": 1},
    {"task_id": "IUGC", "kind": "Regression", "num_classes": 3},
]


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class _Heads(nn.Module):
    """Segmentation decoder (upsampling convs) + global heads on pooled features."""

    def __init__(self, width: int, decoder_width: int):
        super().__init__()
        self.decoder = nn.Sequential(
            _block(width, decoder_width, 1), nn.Upsample(scale_factor=2, mode="bilinear"),
            _block(decoder_width, decoder_width, 1), _block(decoder_width, decoder_width, 1),
        )
        self.seg = nn.ModuleDict({"fetal_head": nn.Conv2d(decoder_width, 2, 1),
                                  "cardiac_multi": nn.Conv2d(decoder_width, 4, 1)})
        self.cls = nn.Linear(width, 3)
        self.det = nn.Linear(width, 4)
        self.reg = nn.Linear(width, 6)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        dense = self.decoder(features)
        pooled = features.mean(dim=(2, 3))
        return {
            "fetal_head": self.seg["fetal_head"](dense),
            "cardiac_multi": self.seg["cardiac_multi"](dense),
            "breast_3cls": self.cls(pooled),
            "thyroid_nodule_det": torch.sigmoid(self.det(pooled)),
            "IUGC": torch.sigmoid(self.reg(pooled)),
        }


class DictNet(nn.Module):
    tasks = TASKS

    def __init__(self, width: int = 8, decoder_width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(_block(3, width, 2), _block(width, width, 2))  # 64 -> 16
        self.heads = _Heads(width, decoder_width)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.stem(image))


class ConditionedNet(nn.Module):
    def __init__(self, width: int = 8, decoder_width: int = 8, depth: int = 1):
        super().__init__()
        self.tasks = list(TASKS)
        self.stem = nn.Sequential(_block(3, width, 2), _block(width, width, 2))
        self.task_embedding = nn.Embedding(len(self.tasks), width)
        self.body = nn.Sequential(*[_block(width, width, 1) for _ in range(depth)])
        self.heads = _Heads(width, decoder_width)

    def forward(self, image: torch.Tensor, task_index: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.stem(image)
        scale = self.task_embedding(task_index)[:, :, None, None]
        return self.heads(self.body(features * (1.0 + scale) + scale))


class VitNet(nn.Module):
    """timm ViT (no download: pretrained=False), patch 8 on 64 x 64 (8 x 8 tokens), task token added."""

    def __init__(self, embed_dim: int = 32, depth: int = 2):
        super().__init__()
        import timm

        self.tasks = list(TASKS)
        self.vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, patch_size=8,
                                     embed_dim=embed_dim, depth=depth, num_heads=2, num_classes=0)
        self.task_embedding = nn.Embedding(len(self.tasks), embed_dim)
        self.seg = nn.ModuleDict({"fetal_head": nn.Conv2d(embed_dim, 2, 1), "cardiac_multi": nn.Conv2d(embed_dim, 4, 1)})
        self.cls = nn.Linear(embed_dim, 3)
        self.det = nn.Linear(embed_dim, 4)
        self.reg = nn.Linear(embed_dim, 6)

    def forward(self, image: torch.Tensor, task_index: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.vit._pos_embed(self.vit.patch_embed(image))
        tokens = tokens + self.task_embedding(task_index)[:, None, :]
        tokens = self.vit.norm(self.vit.blocks(tokens))
        cls_token, patches = tokens[:, 0], tokens[:, 1:]
        grid = patches.transpose(1, 2).reshape(image.shape[0], -1, 8, 8)
        return {
            "fetal_head": self.seg["fetal_head"](grid),
            "cardiac_multi": self.seg["cardiac_multi"](grid),
            "breast_3cls": self.cls(cls_token),
            "thyroid_nodule_det": torch.sigmoid(self.det(cls_token)),
            "IUGC": torch.sigmoid(self.reg(cls_token)),
        }


# --- one task per call ---------------------------------------------------------------
TASK_IDS = [t["task_id"] for t in TASKS]


class NameNet(DictNet):
    """``self.heads(...)[task_id]``: called with a tensor this raises ``KeyError: tensor([0, 0])``."""

    def forward(self, image, task_id):  # type: ignore[override]  # unannotated, as in team code
        return self.heads(self.stem(image))[task_id]


class IndexPerCallNet(DictNet):
    def forward(self, image: torch.Tensor, task_index: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.heads(self.stem(image))[TASK_IDS[int(task_index[0])]]


class PositionNet(DictNet):
    def forward(self, image: torch.Tensor, task_id: int) -> torch.Tensor:  # type: ignore[override]
        return self.heads(self.stem(image))[TASK_IDS[task_id]]


class AmbiguousNet(DictNet):
    """Takes a name or an index tensor, and (a bug) they select different tasks' heads of the same kind."""

    def forward(self, image, task):  # type: ignore[override]
        outputs = self.heads(self.stem(image))
        if isinstance(task, str):
            return outputs[task]
        return outputs["cardiac_multi" if int(task[0]) == 0 else TASK_IDS[int(task[0])]][:, :2]


class BrokenPerCallNet(DictNet):
    def forward(self, image, task_id):  # type: ignore[override]
        raise RuntimeError("this forward needs CUDA")


def make_name_net() -> NameNet:
    return NameNet()


def make_index_per_call_net() -> IndexPerCallNet:
    return IndexPerCallNet()


def make_position_net() -> PositionNet:
    return PositionNet()


def make_ambiguous_net() -> AmbiguousNet:
    return AmbiguousNet()


def make_broken_per_call_net() -> BrokenPerCallNet:
    return BrokenPerCallNet()


# --- the exporter must report these ----------------------------------------------------
class TensorNet(DictNet):
    def forward(self, image: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.heads(self.stem(image))["fetal_head"]


class MissingTaskNet(DictNet):
    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = super().forward(image)
        del outputs["IUGC"]
        return outputs


class WrongShapeNet(DictNet):
    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = super().forward(image)
        outputs["breast_3cls"] = outputs["breast_3cls"][:, :2]
        return outputs


class NoTasksNet(DictNet):
    tasks = None


def make_dict_net(width: int = 8, decoder_width: int = 8) -> DictNet:
    return DictNet(width, decoder_width)


def make_conditioned_net(width: int = 8, decoder_width: int = 8, depth: int = 1) -> ConditionedNet:
    return ConditionedNet(width, decoder_width, depth)


def make_vit_net(embed_dim: int = 32, depth: int = 2) -> VitNet:
    return VitNet(embed_dim, depth)


def make_tensor_net() -> TensorNet:
    return TensorNet()


def make_missing_task_net() -> MissingTaskNet:
    return MissingTaskNet()


def make_wrong_shape_net() -> WrongShapeNet:
    return WrongShapeNet()


def make_no_tasks_net() -> NoTasksNet:
    return NoTasksNet()


def make_raising() -> nn.Module:
    raise RuntimeError("weights path /data/x.pt not found")
