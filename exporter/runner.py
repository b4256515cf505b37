"""The exporter's checks run the graphs with the runtime's own runner (``inference.engines.runner``).

Parity and precision deviations are therefore measured on the code the image runs:
the same session options, the same provider choice, the same graph chaining, the same
``task_index`` feeds. Its ``EngineError`` becomes ``ExportError`` here, so ``export.py``
reports it as one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from contract.manifest import GraphSet, TaskEntry
from exporter.errors import ExportError
from inference.engines.feeds import extra_feeds
from inference.engines.runner import GraphRunner
from inference.errors import EngineError


class CheckRunner:
    """The graphs of a set (only those on ``tasks``' paths when given), run in the set's order on a batch."""

    def __init__(self, model_dir: Path, graph_set: GraphSet, device: str = "cpu",
                 tasks: Sequence[TaskEntry] | None = None):
        self.tasks = list(tasks) if tasks is not None else None
        if self.tasks is not None:
            needed = {name for task in self.tasks for name in task.path}
            graph_set = graph_set.model_copy(
                update={"graphs": {k: g for k, g in graph_set.graphs.items() if k in needed}})
        try:
            self.runner = GraphRunner(Path(model_dir), graph_set, device)
        except EngineError as exc:
            raise ExportError(str(exc)) from exc

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """All tensors produced by the graphs for ``image`` (no input besides the image)."""
        try:
            return self.runner.run(image)
        except EngineError as exc:
            raise ExportError(str(exc)) from exc

    def outputs(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The tasks' outputs for ``image``: one pass over the graphs, or one per task when a graph reads task_index."""
        tasks = self.tasks or []
        graphs = self.runner.graph_set.graphs
        try:
            feeds = [extra_feeds(t, [i for name in t.path for i in graphs[name].inputs], len(image)) for t in tasks]
            if not any(feeds):
                return self.run(image)
            found: dict[str, np.ndarray] = {}
            for task, extra in zip(tasks, feeds):
                found.update(self.runner.run(image, task.path, wanted=task.outputs.values(), extra=extra))
            return found
        except EngineError as exc:
            raise ExportError(f"task {', '.join(t.task_id for t in tasks)}: {exc}") from exc

    @property
    def on_cuda(self) -> bool:
        """True when every session made so far runs on the CUDA provider."""
        sessions = self.runner.sessions.values()
        return bool(sessions) and all("CUDAExecutionProvider" in s.get_providers() for s in sessions)
