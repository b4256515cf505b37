"""Source: a network described by stages (the baseline and the seed variants of ``network``).

The network has ``config``, ``stages()`` (named tensors in and out) and ``task_path()``;
it comes from a checkpoint (``exporter.checkpoint`` + ``exporter.loading``) or is handed
to ``exporter.export_model``. Its graphs use the stage layout (``exporter.graphs``); the
parity reference is the stages run in PyTorch, themselves checked against the network's
own ``predict`` once per kind; the PyTorch fallback rebuilds the network.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from contract.kinds import spec_of
from contract.manifest import OUTPUT_ROLE, ModelConfig, TaskEntry
from exporter.errors import ExportError
from exporter.graphs import StageGraphs, check_mode_unchanged, mode_snapshot, run_torch_stages
from exporter.images import random_batch
from exporter.parity import parity_inputs, relative_error
from exporter.sources.base import Source

STAGE_CHECK_INPUT = "image-like/b1"  # the parity input on which the stages are checked against predict()


def task_entries(model: nn.Module, config: ModelConfig) -> list[TaskEntry]:
    """Each task's graph path (its stages) and output tensors (the last stage's outputs)."""
    stages = {stage.name: stage for stage in model.stages()}
    entries = []
    for task in config.tasks:
        path = model.task_path(task.task_id)
        role = OUTPUT_ROLE[task.kind]
        names = stages[path[-1]].outputs
        outputs = {role: names[0]} if len(names) == 1 else {name.rsplit(".", 1)[-1]: name for name in names}
        entries.append(TaskEntry(task_id=task.task_id, kind=task.kind, num_classes=task.num_classes, path=path,
                                 outputs=outputs, meaning=spec_of(task.kind).meaning))
    return entries


class StagedSource(Source):
    """A network with ``stages()``, exported one graph per stage."""

    def __init__(self, model: nn.Module):
        model.eval()
        super().__init__(model.config, task_entries(model, model.config), network=model)
        self.model = model
        self.stages = model.stages()
        self.before = mode_snapshot(model)

    def layout(self, scratch: Path) -> StageGraphs:
        return StageGraphs(self.model, random_batch(2, self.config.preprocessing, seed=7))

    @torch.no_grad()
    def reference(self, label: str, batch: np.ndarray, tasks: Sequence[TaskEntry]) -> dict[str, np.ndarray]:
        tensors = run_torch_stages(self.stages, torch.from_numpy(batch))
        if label == STAGE_CHECK_INPUT:
            self.check_stages_match_forward(tensors, torch.from_numpy(batch))
        return {name: tensors[name].numpy() for task in tasks for name in task.outputs.values()}

    @torch.no_grad()
    def check_stages_match_forward(self, stage_tensors: dict[str, torch.Tensor], image: torch.Tensor) -> None:
        """The stages must compute what the model's own ``predict`` computes (one task per kind)."""
        seen = set()
        for task in self.config.tasks:
            if task.kind in seen:
                continue
            seen.add(task.kind)
            role = OUTPUT_ROLE[task.kind]
            direct = self.model.predict(image, task.task_id)[role]
            error = relative_error(stage_tensors[f"{task.task_id}.{role}"].numpy(), direct.numpy())
            if error > 1e-5:
                raise ExportError(f"task {task.task_id}: the export stages differ from the model's forward "
                                  f"(rel. error {error:.2e})")

    @torch.no_grad()
    def parity_hint(self, failing: Mapping[str, float]) -> str:
        """How far PyTorch's own fp32 result is from float64 on the same inputs (ill-conditioning shows here)."""
        double_stages = copy.deepcopy(self.model).double().eval().stages()
        names = [name for task in self.tasks if task.task_id in failing for name in task.outputs.values()]
        own = 0.0
        for _label, batch in parity_inputs(self.config.preprocessing):
            single = run_torch_stages(self.stages, torch.from_numpy(batch))
            exact = run_torch_stages(double_stages, torch.from_numpy(batch).double())
            for name in names:
                own = max(own, relative_error(single[name].numpy(), exact[name].numpy()))
        if own > 0.1 * min(failing.values()):
            return (f"; PyTorch fp32 itself differs from float64 by up to {own:.1e} on these inputs: the network is "
                    "ill-conditioned there (check its BatchNorm statistics), not the export")
        return f"; PyTorch fp32 agrees with float64 to {own:.1e}, so the ONNX graphs compute something else"

    def check_unchanged(self) -> None:
        check_mode_unchanged(self.model, self.before)
