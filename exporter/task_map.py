"""The task map of a team's ONNX file (``export.py model.onnx --task-map map.json``)::

    {
      "input": "pixels",                 # optional when the graph has one image input
      "task_index_input": "task_idx",    # optional: a task-conditioned graph's int64 (N,) input
      "tasks": {                         # in the model's task order (= the task_index values)
        "fetal_head": {"output": "seg_fh", "kind": "segmentation", "num_classes": 2},
        "breast_3cls": {"output": "cls3", "kind": "classification", "num_classes": 3}
      }
    }
"""

from __future__ import annotations

from pathlib import Path

import onnx
from pydantic import BaseModel, ConfigDict, ValidationError

from contract.tasks import TaskKind, TaskSpec
from exporter.errors import BroughtModelError, BroughtUsageError

EXAMPLE = '{"tasks": {"<task_id>": {"output": "<onnx output>", "kind": "segmentation", "num_classes": 2}}}'


class MapTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output: str
    kind: str
    num_classes: int


class TaskMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str | None = None
    task_index_input: str | None = None
    tasks: dict[str, MapTask]


def read_task_map(path: Path) -> tuple[TaskMap, list[TaskSpec]]:
    """The map and its tasks (in the model's order); one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise BroughtUsageError(f"--task-map {path}: no such file")
    try:
        task_map = TaskMap.model_validate_json(path.read_text(encoding="utf-8"))
        specs = [TaskSpec(task_id=k, kind=TaskKind.parse(v.kind), num_classes=v.num_classes)
                 for k, v in task_map.tasks.items()]
    except OSError as exc:
        raise BroughtModelError(f"{path}: cannot read the task map ({exc.strerror or exc})") from None
    except (ValidationError, ValueError) as exc:
        raise BroughtModelError(f"{path}: not a valid task map ({str(exc).splitlines()[0]}); expected {EXAMPLE}") from None
    if not specs:
        raise BroughtModelError(f"{path}: the task map lists no tasks")
    return task_map, specs


def image_input(model: onnx.ModelProto, task_map: TaskMap, path: Path) -> str:
    """The graph's image input; the map's inputs and outputs must exist in the graph."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if task_map.task_index_input and task_map.task_index_input not in inputs:
        raise BroughtModelError(f"{path.name} has no input {task_map.task_index_input!r} (inputs: {', '.join(inputs)}); "
                                "fix task_index_input in the task map")
    images = [n for n in inputs if n != task_map.task_index_input]
    if task_map.input:
        if task_map.input not in images:
            raise BroughtModelError(f"{path.name} has no input {task_map.input!r} (inputs: {', '.join(inputs)}); "
                                    "fix \"input\" in the task map")
        images = [task_map.input]
    if len(images) != 1:
        raise BroughtModelError(f"{path.name} has inputs {', '.join(inputs)}: name the image one with \"input\" "
                                "(and a task index with \"task_index_input\") in the task map")
    outputs = {o.name for o in model.graph.output}
    for task_id, entry in task_map.tasks.items():
        if entry.output not in outputs:
            raise BroughtModelError(f"task {task_id}: {path.name} has no output {entry.output!r} "
                                    f"(outputs: {', '.join(sorted(outputs))})")
    return images[0]
