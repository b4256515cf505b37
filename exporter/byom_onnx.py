"""An ONNX file a team exported itself: ``export.py model.onnx --task-map map.json --out DIR``.

The task map (JSON)::

    {
      "input": "pixels",                 # optional when the graph has one image input
      "task_index_input": "task_idx",    # optional: a task-conditioned graph's int64 (N,) input
      "tasks": {                         # in the model's task order (= the task_index values)
        "fetal_head": {"output": "seg_fh", "kind": "segmentation", "num_classes": 2},
        "breast_3cls": {"output": "cls3", "kind": "classification", "num_classes": 3}
      }
    }

Outputs are the raw ones of ``network.byom`` (logits, N x 4 box or grid, N x 2M points);
they are checked on random batches of 2 and 8 with ONNX Runtime, then turned into the
runtime's roles by a few ONNX nodes (Softmax for classification; a one-cell grid for
an N x 4 box), the inputs renamed ``image`` / ``task_index``, and the graph split per
task as for a PyTorch model (``exporter.byom_graphs``). Parity: the split graphs
against the original file (its outputs converted to the roles in numpy).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from pydantic import BaseModel, ConfigDict, ValidationError

from contract.kinds import spec_of
from contract.manifest import (IMAGE_INPUT, OUTPUT_ROLE, GraphSet, Manifest, ModelConfig, Parity, Preprocessing,
                               TaskEntry, write_manifest)
from contract.tasks import TaskKind, TaskSpec
from exporter.api import PROVIDERS, _check_precisions, versions
from exporter.byom_export import export_variant, run_task, task_runner
from exporter.byom_graphs import split_per_task
from exporter.errors import ExportError, ParityError
from exporter.folder import staged_folder
from exporter.images import image_like_batch, random_batch
from exporter.parity import BATCH_SIZES, TOLERANCE_FP32, relative_error
from inference.engines.feeds import TASK_INDEX_INPUT
from network.byom import ONNX_ARCHITECTURE, ByomError, check_output

log = logging.getLogger(__name__)


class _MapTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output: str
    kind: str
    num_classes: int


class TaskMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str | None = None
    task_index_input: str | None = None
    tasks: dict[str, _MapTask]


def read_task_map(path: Path) -> tuple[TaskMap, list[TaskSpec]]:
    try:
        task_map = TaskMap.model_validate_json(Path(path).read_text(encoding="utf-8"))
        specs = [TaskSpec(task_id=k, kind=TaskKind.parse(v.kind), num_classes=v.num_classes) for k, v in task_map.tasks.items()]
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the task map ({exc.strerror or exc})") from None
    except (ValidationError, ValueError) as exc:
        raise ExportError(f"{path}: not a valid task map ({str(exc).splitlines()[0]}); expected "
                          '{"tasks": {"<task_id>": {"output": "<onnx output>", "kind": "segmentation", "num_classes": 2}}}') from None
    if not specs:
        raise ExportError(f"{path}: the task map lists no tasks")
    return task_map, specs


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for value in graph.input:
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)


def add_roles(model: onnx.ModelProto, task_map: TaskMap, specs: list[TaskSpec], image: str, ranks: dict[str, int]) -> None:
    """Rename the inputs, append the role nodes, and make ``<task_id>.<role>`` the graph's outputs.

    ``ranks``: task_id -> rank of its raw output (measured), which tells a detection box from a grid.
    """
    graph = model.graph
    _rename(graph, image, IMAGE_INPUT)
    if task_map.task_index_input:
        _rename(graph, task_map.task_index_input, TASK_INDEX_INPUT)
    opset = _opset(model)
    outputs = []
    for spec in specs:
        raw, name = task_map.tasks[spec.task_id].output, f"{spec.task_id}.{OUTPUT_ROLE[spec.kind]}"
        prefix = f"byom_{spec.task_id}"
        if spec.kind is TaskKind.CLASSIFICATION:
            graph.node.append(helper.make_node("Softmax", [raw], [name], axis=1, name=f"{prefix}_softmax"))
        elif spec.kind is TaskKind.DETECTION and ranks[spec.task_id] == 2:
            graph.initializer.extend([
                helper.make_tensor(f"{prefix}_starts", TensorProto.INT64, [1], [0]),
                helper.make_tensor(f"{prefix}_ends", TensorProto.INT64, [1], [1]),
                helper.make_tensor(f"{prefix}_axes", TensorProto.INT64, [1], [1]),
                helper.make_tensor(f"{prefix}_zero", TensorProto.FLOAT, [], [0.0]),
                helper.make_tensor(f"{prefix}_grid_axes", TensorProto.INT64, [2], [2, 3]),
            ])
            graph.node.extend([
                helper.make_node("Slice", [raw, f"{prefix}_starts", f"{prefix}_ends", f"{prefix}_axes"], [f"{prefix}_first"]),
                helper.make_node("Mul", [f"{prefix}_first", f"{prefix}_zero"], [f"{prefix}_objectness"]),
                helper.make_node("Concat", [raw, f"{prefix}_objectness"], [f"{prefix}_cells"], axis=1),
            ])
            if opset >= 13:
                graph.node.append(helper.make_node("Unsqueeze", [f"{prefix}_cells", f"{prefix}_grid_axes"], [name]))
            else:
                graph.node.append(helper.make_node("Unsqueeze", [f"{prefix}_cells"], [name], axes=[2, 3]))
        else:
            graph.node.append(helper.make_node("Identity", [raw], [name], name=f"{prefix}_identity"))
        rank = 4 if spec.kind is TaskKind.DETECTION else ranks[spec.task_id]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch"] + [None] * (rank - 1)))
    del graph.output[:]
    graph.output.extend(outputs)


def to_roles(kind: TaskKind, raw: np.ndarray) -> np.ndarray:
    """numpy twin of ``network.byom.to_role`` (the reference the split graphs are compared with)."""
    if kind is TaskKind.CLASSIFICATION:
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    if kind is TaskKind.DETECTION and raw.ndim == 2:
        return np.concatenate([raw, np.zeros_like(raw[:, :1])], axis=1)[:, :, None, None]
    return raw


class _Original:
    """The team's own file in ONNX Runtime: raw outputs by task for a batch and a task position."""

    def __init__(self, path: Path, task_map: TaskMap, specs: list[TaskSpec], image: str):
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors have no common base class worth naming
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            raise ExportError(f"{path}: ONNX Runtime cannot load it ({reason})") from None
        self.task_map, self.specs, self.image = task_map, specs, image

    def run(self, batch: np.ndarray, position: int) -> dict[str, np.ndarray]:
        feeds = {self.image: batch}
        if self.task_map.task_index_input:
            feeds[self.task_map.task_index_input] = np.full((len(batch),), position, dtype=np.int64)
        names = [self.task_map.tasks[s.task_id].output for s in self.specs]
        try:
            values = self.session.run(names, feeds)
        except Exception as exc:  # onnxruntime's errors have no common base class worth naming
            raise ExportError(f"ONNX Runtime failed on the model with a batch of {len(batch)} "
                              f"({str(exc).splitlines()[0][:200]}); its batch axis must be dynamic") from None
        return {s.task_id: v for s, v in zip(self.specs, values)}


def _image_input(model: onnx.ModelProto, task_map: TaskMap, path: Path) -> str:
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if task_map.task_index_input and task_map.task_index_input not in inputs:
        raise ExportError(f"{path.name} has no input {task_map.task_index_input!r} (inputs: {', '.join(inputs)}); "
                          "fix task_index_input in the task map")
    images = [n for n in inputs if n != task_map.task_index_input]
    if task_map.input:
        if task_map.input not in images:
            raise ExportError(f"{path.name} has no input {task_map.input!r} (inputs: {', '.join(inputs)}); "
                              "fix \"input\" in the task map")
        images = [task_map.input]
    if len(images) != 1:
        raise ExportError(f"{path.name} has inputs {', '.join(inputs)}: name the image one with \"input\" "
                          "(and a task index with \"task_index_input\") in the task map")
    outputs = {o.name for o in model.graph.output}
    for task_id, entry in task_map.tasks.items():
        if entry.output not in outputs:
            raise ExportError(f"task {task_id}: {path.name} has no output {entry.output!r} (outputs: {', '.join(sorted(outputs))})")
    return images[0]


def export_onnx_file(path: Path, map_path: Path, out_dir: Path, prep: Preprocessing, wanted: Sequence[str] | None,
                     precisions: Sequence[str], calibration: Sequence[Path] | None, source: dict,
                     tolerance: float = TOLERANCE_FP32) -> Manifest:
    """Check a team's ONNX file against its task map, wrap the roles, split per task, verify, write atomically."""
    precisions = _check_precisions(precisions, calibration)
    task_map, listed = read_task_map(map_path)
    try:
        model = onnx.load(str(path))
    except (onnx.onnx_cpp2py_export.checker.ValidationError, OSError, ValueError) as exc:
        raise ExportError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0][:200]})") from None
    image = _image_input(model, task_map, path)
    positions = {s.task_id: i for i, s in enumerate(listed)}
    specs = [s for s in listed if not wanted or s.task_id in wanted]
    missing = sorted(set(wanted or []) - set(positions))
    if missing:
        raise ExportError(f"--tasks {', '.join(missing)}: not in the task map (it has: {', '.join(positions)})")
    original = _Original(path, task_map, specs, image)
    height, width = prep.input_size
    ranks: dict[str, int] = {}
    for batch in (2, 8):
        raw = original.run(random_batch(batch, prep, seed=batch), 0)
        for spec in specs:
            try:
                check_output(spec, tuple(raw[spec.task_id].shape), batch)
            except ByomError as exc:
                raise ExportError(f"{exc} (input {batch} x 3 x {height} x {width}; check --input-size)") from None
            ranks[spec.task_id] = raw[spec.task_id].ndim
    conditioned = bool(task_map.task_index_input)
    add_roles(model, task_map, specs, image, ranks)
    tasks = [TaskEntry(task_id=s.task_id, kind=s.kind, num_classes=s.num_classes, path=[s.task_id],
                       outputs={OUTPUT_ROLE[s.kind]: f"{s.task_id}.{OUTPUT_ROLE[s.kind]}"}, meaning=spec_of(s.kind).meaning,
                       task_index=positions[s.task_id] if conditioned else None) for s in specs]
    config = ModelConfig(architecture=ONNX_ARCHITECTURE, encoder_name=path.name, tasks=specs, preprocessing=prep,
                         params={"conditioned": conditioned,
                                 "task_positions": json.dumps({s.task_id: positions[s.task_id] for s in specs})})
    with staged_folder(Path(out_dir)) as stage_dir, tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / "whole.onnx"
        onnx.save(model, str(whole))
        graphs = split_per_task(model, {t.task_id: [t.output_tensor] for t in tasks}, stage_dir)
        graph_sets = {"fp32": GraphSet(precision="fp32", graphs=graphs, providers=PROVIDERS["fp32"])}
        parity = _parity(original, stage_dir, graph_sets["fp32"], tasks, prep, tolerance)
        for precision in precisions[1:]:
            graph_sets[precision] = export_variant(precision, whole, stage_dir, graph_sets["fp32"], tasks, prep, calibration)
        manifest = Manifest(model=config, tasks=tasks, graph_sets=graph_sets, parity=parity, versions=versions(),
                            source={k: str(v) for k, v in source.items()} | {"layout": "onnx", "task_map": map_path.name},
                            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        write_manifest(manifest, stage_dir)
        for file in stage_dir.rglob("*"):
            if file.is_file():
                os.chmod(file, 0o644)
    return manifest


def _parity(original: _Original, model_dir: Path, graph_set: GraphSet, tasks: list[TaskEntry], prep: Preprocessing,
            tolerance: float) -> Parity:
    worst = {t.task_id: 0.0 for t in tasks}
    inputs = [batch for size in BATCH_SIZES
              for batch in (random_batch(size, prep, seed=size), image_like_batch(size, prep, seed=100 + size))]
    for task in tasks:
        runner = task_runner(model_dir, graph_set, task)
        for batch in inputs:
            reference = to_roles(task.kind, original.run(batch, task.task_index or 0)[task.task_id])
            actual = run_task(runner, task, batch)[task.output_tensor]
            worst[task.task_id] = max(worst[task.task_id], relative_error(actual, reference))
    failing = {t: e for t, e in worst.items() if not e <= tolerance}
    if failing:
        raise ParityError(f"the per-task graphs differ from the ONNX file above {tolerance:.0e} for: "
                          + ", ".join(f"{t} {e:.2e}" for t, e in failing.items()))
    return Parity(max_rel_error=worst, tolerance=tolerance, batch_sizes=list(BATCH_SIZES),
                  inputs=["random", "image-like (reference: the brought ONNX file in ONNX Runtime, roles applied)"])
