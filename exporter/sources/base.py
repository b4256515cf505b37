"""What a source gives the export pipeline (``exporter.pipeline``), and the graph layouts it can use.

A source is one model to export: a network described by stages (the baseline's checkpoint,
``export_model``), a team's PyTorch network (``--model``) or a team's ONNX file
(``--task-map``). Each gives the same things: its ``ModelConfig`` and task entries, a graph
layout holding its fp32 graphs (``exporter.graphs.StageGraphs``: one file per stage, or
``exporter.split.SplitGraphs``: one whole graph pruned per task), the reference outputs
parity is measured against, and the PyTorch network the fallback rebuilds (None: none).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from contract.kinds import spec_of
from contract.manifest import OUTPUT_ROLE, GraphFile, GraphSet, ModelConfig, TaskEntry
from contract.tasks import TaskSpec

TORCH_REFERENCE = [f"{kind} (rel. error = max|onnx-torch| / max(max|torch|, 1e-6))" for kind in ("random", "image-like")]


class GraphLayout(Protocol):
    """How a source's graphs lie in the folder, in every precision, and how checks group its tasks."""

    def write_fp32(self, stage_dir: Path) -> dict[str, GraphFile]: ...

    def write_fp16(self, stage_dir: Path, fp32: GraphSet, block: Sequence[str]) -> dict[str, GraphFile]: ...

    def write_int8(self, stage_dir: Path, fp32: GraphSet, batches: list[np.ndarray]) -> dict[str, GraphFile]: ...

    def groups(self, tasks: Sequence[TaskEntry]) -> list[list[TaskEntry]]: ...


class Source(ABC):
    """One model to export. ``network``: the PyTorch module the fallback rebuilds from the folder, or None."""

    #: What parity compares against (``Parity.inputs``) and how a failure is worded.
    parity_inputs: list[str] = TORCH_REFERENCE
    parity_subject: str = "ONNX Runtime differs from PyTorch"

    def __init__(self, config: ModelConfig, tasks: list[TaskEntry], network: Any = None):
        self.config, self.tasks, self.network = config, tasks, network

    @abstractmethod
    def layout(self, scratch: Path) -> GraphLayout:
        """The layout of this source's graphs; whatever it needs before writing (a whole graph) goes to ``scratch``."""

    @abstractmethod
    def reference(self, label: str, batch: np.ndarray, tasks: Sequence[TaskEntry]) -> dict[str, np.ndarray]:
        """The outputs of ``tasks`` (tensor name -> array) the graphs must reproduce on ``batch`` (``label``: its name)."""

    def parity_hint(self, failing: Mapping[str, float]) -> str:
        """Said after a parity failure: where to look."""
        return ""

    def check_unchanged(self) -> None:
        """Raise when exporting or checking changed the network (train/eval modes)."""


def split_task_entries(tasks: Sequence[TaskSpec], positions: Mapping[str, int] | None) -> list[TaskEntry]:
    """Entries of a split-layout model: one graph per task, named after it; ``positions`` for task-conditioned graphs."""
    return [
        TaskEntry(
            task_id=t.task_id, kind=t.kind, num_classes=t.num_classes, path=[t.task_id],
            outputs={OUTPUT_ROLE[t.kind]: f"{t.task_id}.{OUTPUT_ROLE[t.kind]}"}, meaning=spec_of(t.kind).meaning,
            task_index=positions[t.task_id] if positions is not None else None,
        )
        for t in tasks
    ]
