"""The options of a training run (one typed object; the CLI fills it, tests build it directly)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from pydantic import BaseModel, ConfigDict, Field

#: The default model of this project: small enough for a CPU-trained, <= 25 MB exported folder.
DEFAULT_ENCODER = "mobilenet_v2"
DEFAULT_PARAMS: dict[str, int | float | str | bool | None] = {"pyramid_channels": 128, "segmentation_channels": 64}
DEFAULT_EPOCHS = 50  # the recipe's 50 epochs, with an epoch of ``steps_per_epoch`` steps


class TrainingError(RuntimeError):
    """A training run that cannot start or continue (bad options, diverged loss, clashing folder)."""


class TrainOptions(BaseModel):
    """Everything a run needs. ``encoder`` / ``params`` left as None take the defaults above
    (or, with ``resume``, the checkpoint's)."""

    model_config = ConfigDict(extra="forbid")

    train_dir: Path
    val_dir: Optional[Path] = None
    out_dir: Path
    encoder: Optional[str] = None
    params: Optional[dict[str, int | float | str | bool | None]] = None
    tasks: Optional[list[str]] = None
    input_size: int = Field(256, ge=32, description="square network input; a multiple of 32")
    steps: Optional[int] = Field(None, ge=1, description="total optimizer steps (wins over epochs)")
    epochs: Optional[int] = Field(None, ge=1)
    stop_at: Optional[int] = Field(None, ge=1, description="pause at this step (checkpointed); the schedule "
                                   "still spans the whole run; continue with resume")
    steps_per_epoch: int = Field(100, ge=1, description="an epoch is this many steps, then validation")
    batch_size: int = Field(16, ge=1)
    lr_backbone: float = Field(1e-4, gt=0, description="encoder and FPN decoder")
    lr_heads: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    warmup: float = Field(0.0, ge=0, lt=1, description="fraction of the run with a linear lr warmup")
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    grad_clip: Optional[float] = Field(5.0, description="max gradient norm; None disables clipping")
    device: str = "auto"
    resume: bool = False
    init_from: Optional[Path] = Field(None, description="warm start: copy the tensors of this checkpoint whose "
                                      "names and shapes match (new heads start fresh)")
    seed: int = 0
    time_limit: Optional[float] = Field(None, gt=0, description="minutes of training (validation included)")
    augment: bool = True
    seg_ce: float = Field(1.0, ge=0, description="weight of the cross-entropy added to the Dice loss")
    det_l1: float = Field(8.0, ge=0, description="lambda of the detection box L1")
    det_negative: float = Field(1.0, ge=0, description="weight of the BCE toward 0 on non-target cells")
    kind_weights: dict[str, float] = Field(default_factory=dict, description="loss weight per kind")
    task_sampling: dict[str, float] = Field(default_factory=dict, description="relative draw weight of each "
                                            "task of a kind (1 = the recipe's task-uniform sampling)")
    cache_dir: Optional[Path] = Field(None, description="decoded-data cache; default OUT/cache")
    val_batch_size: int = Field(32, ge=1)
    threads: Optional[int] = Field(None, ge=1, description="torch CPU threads; default: torch's")
    progress: bool = True

    @property
    def total_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return (self.epochs or DEFAULT_EPOCHS) * self.steps_per_epoch

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise TrainingError(f"--device {self.device}: CUDA is not available here; use --device cpu or auto")
        try:
            return torch.device(self.device)
        except RuntimeError as exc:
            raise TrainingError(f"--device {self.device!r} is not a device name (auto, cpu, cuda, cuda:N): {exc}") from None
