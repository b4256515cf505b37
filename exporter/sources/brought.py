"""Source: a team's PyTorch network (``export.py CKPT --model MODULE:FACTORY``), wrapped by ``network.byom``.

The network is loaded and its forward convention found by ``exporter.byom``. The whole
wrapper is exported once (``image`` and, for a forward that takes ``task_index``, that
input too) and split per task (``exporter.split``). Parity reference: the wrapper in
PyTorch; a forward that returns every task at once runs once per input, the others once
per task. The PyTorch fallback imports the team's module again (``network.byom``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from contract.manifest import IMAGE_INPUT, OUTPUT_ROLE, TaskEntry
from exporter.graphs import check_mode_unchanged, mode_snapshot
from exporter.images import random_batch
from exporter.sources.base import Source, split_task_entries
from exporter.split import SplitGraphs, export_whole
from inference.engines.feeds import TASK_INDEX_INPUT
from network.byom import ByomNetwork

CONDITIONED_HINT = (" (a task-conditioned forward must use task_index through tensor operations, e.g. an embedding "
                    "or index_select, not Python control flow: tracing freezes Python branches)")


def task_entries(wrapper: ByomNetwork) -> list[TaskEntry]:
    return split_task_entries(wrapper.tasks, wrapper.positions if wrapper.conditioned else None)


class BroughtSource(Source):
    """A ``ByomNetwork`` (the team's network behind the runtime's roles)."""

    def __init__(self, wrapper: ByomNetwork):
        wrapper.eval()
        super().__init__(wrapper.config, task_entries(wrapper), network=wrapper)
        self.wrapper = wrapper
        self.before = mode_snapshot(wrapper)
        self.all_at_once: dict[str, dict[str, np.ndarray]] = {}  # input label -> every task's output

    def layout(self, scratch: Path) -> SplitGraphs:
        wrapper = self.wrapper
        sample = torch.from_numpy(random_batch(2, self.config.preprocessing, seed=7))
        inputs = [IMAGE_INPUT, TASK_INDEX_INPUT] if wrapper.conditioned else [IMAGE_INPUT]
        args = (sample, wrapper.index_for(wrapper.tasks[0].task_id, 2)) if wrapper.conditioned else (sample,)
        whole = scratch / "whole.onnx"
        export_whole(wrapper, args, inputs, wrapper.output_names(), whole)
        self.check_unchanged()
        return SplitGraphs(whole, self.tasks)

    @torch.no_grad()
    def reference(self, label: str, batch: np.ndarray, tasks: Sequence[TaskEntry]) -> dict[str, np.ndarray]:
        image = torch.from_numpy(batch)
        if self.wrapper.one_call:  # every task from one call: computed once per input
            if label not in self.all_at_once:
                outputs = zip(self.wrapper.output_names(), self.wrapper(image))
                self.all_at_once[label] = {name: value.numpy() for name, value in outputs}
            return {t.output_tensor: self.all_at_once[label][t.output_tensor] for t in tasks}
        return {t.output_tensor: self.wrapper.predict(image, t.task_id)[OUTPUT_ROLE[t.kind]].numpy() for t in tasks}

    def parity_hint(self, failing: Mapping[str, float]) -> str:
        return CONDITIONED_HINT if self.wrapper.conditioned else ""

    def check_unchanged(self) -> None:
        check_mode_unchanged(self.wrapper, self.before)
