"""``infer_batch``: one engine call on a batch, its role tensor checked (every layout and the ensemble use it)."""

from __future__ import annotations

import numpy as np

from contract.kinds import OUTPUT_ROLE, role_shape_problem
from contract.manifest import TaskEntry
from inference.engines.fallback import Engine
from inference.errors import EngineError


def infer_batch(engine: Engine, task: TaskEntry, batch: np.ndarray) -> np.ndarray:
    """N x 3 x H x W input -> the task's role tensor (N x ...); EngineError when the result is unusable."""
    outputs = engine.run(task, batch)
    role = OUTPUT_ROLE[task.kind]
    if role not in outputs:
        raise EngineError(f"task {task.task_id}: the engine returned no {role!r} output (got {sorted(outputs)})")
    output = outputs[role]
    if output.shape[0] != len(batch):
        raise EngineError(f"task {task.task_id}: engine returned {output.shape[0]} results for {len(batch)} images")
    problem = role_shape_problem(task.kind, task.num_classes, output.shape[1:])
    if problem is not None:
        raise EngineError(f"task {task.task_id}: the engine's {role!r} output has {problem}")
    return output
