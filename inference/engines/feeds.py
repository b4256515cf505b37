"""Inputs a graph takes besides the image: ``task_index`` for task-conditioned models.

A task-conditioned model (``exporter.byom``) has graphs with an int64 (N,) input
``task_index``; every batch holds one task, so it is the task's position in the
model's task list (``TaskEntry.task_index``) repeated N times.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from inference.errors import EngineError
from contract.manifest import TaskEntry

TASK_INDEX_INPUT = "task_index"


def extra_feeds(task: TaskEntry, input_names: Iterable[str], batch: int) -> dict[str, np.ndarray]:
    """``{"task_index": int64 (batch,)}`` when a graph reads it, else ``{}``."""
    if TASK_INDEX_INPUT not in set(input_names):
        return {}
    if task.task_index is None:
        raise EngineError(f"task {task.task_id}: its graph reads task_index, the manifest gives none; re-export the model")
    return {TASK_INDEX_INPUT: np.full((batch,), task.task_index, dtype=np.int64)}
