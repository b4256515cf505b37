"""Source: an ONNX file a team exported itself (``export.py model.onnx --task-map map.json``).

The task map (``exporter.task_map``) names each task's output and kind. Outputs are the
raw ones of ``network.byom`` (logits, N x 4 box or grid, N x 2M points); they are checked
on random batches of 2 and 8 with ONNX Runtime, then turned into the runtime's roles by
the adapter nodes the kind's spec names (``exporter.onnx_adapters``), the inputs renamed
``image`` / ``task_index``, and the graph split per task (``exporter.split``). Parity
reference: the original file in ONNX Runtime, adapted in numpy. No PyTorch fallback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime as ort

from contract.kinds import spec_of
from contract.manifest import IMAGE_INPUT, OUTPUT_ROLE, ModelConfig, Preprocessing, TaskEntry
from contract.tasks import TaskSpec
from exporter.errors import BroughtModelError, BroughtUsageError
from exporter.images import random_batch
from exporter.onnx_adapters import NUMPY_ADAPTERS, ONNX_ADAPTERS, ROLE_RANK
from exporter.sources.base import Source, split_task_entries
from exporter.split import SplitGraphs
from exporter.task_map import TaskMap, image_input, read_task_map
from inference.engines.feeds import TASK_INDEX_INPUT
from network.byom import ONNX_ARCHITECTURE, ByomError, check_output


class OriginalFile:
    """The team's own file in ONNX Runtime: raw outputs by task for a batch and a task position."""

    def __init__(self, path: Path, task_map: TaskMap, specs: list[TaskSpec], image: str):
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors have no common base class worth naming
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            raise BroughtModelError(f"{path}: ONNX Runtime cannot load it ({reason})") from None
        self.task_map, self.specs, self.image = task_map, specs, image

    def run(self, batch: np.ndarray, position: int) -> dict[str, np.ndarray]:
        feeds = {self.image: batch}
        if self.task_map.task_index_input:
            feeds[self.task_map.task_index_input] = np.full((len(batch),), position, dtype=np.int64)
        names = [self.task_map.tasks[s.task_id].output for s in self.specs]
        try:
            values = self.session.run(names, feeds)
        except Exception as exc:  # onnxruntime's errors have no common base class worth naming
            raise BroughtModelError(f"ONNX Runtime failed on the model with a batch of {len(batch)} "
                                    f"({str(exc).splitlines()[0][:200]}); its batch axis must be dynamic") from None
        return {s.task_id: v for s, v in zip(self.specs, values)}


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for value in graph.input:
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)


def add_roles(model: onnx.ModelProto, task_map: TaskMap, specs: list[TaskSpec], image: str,
              adapters: dict[str, str], ranks: dict[str, int]) -> None:
    """Rename the inputs, append each task's adapter nodes, and make ``<task_id>.<role>`` the graph's outputs."""
    graph = model.graph
    _rename(graph, image, IMAGE_INPUT)
    if task_map.task_index_input:
        _rename(graph, task_map.task_index_input, TASK_INDEX_INPUT)
    opset = _opset(model)
    outputs = []
    for spec in specs:
        raw, name = task_map.tasks[spec.task_id].output, f"{spec.task_id}.{OUTPUT_ROLE[spec.kind]}"
        adapter = adapters[spec.task_id]
        ONNX_ADAPTERS[adapter](graph, raw, name, f"byom_{spec.task_id}", opset)
        rank = ROLE_RANK[adapter](ranks[spec.task_id])
        outputs.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch"] + [None] * (rank - 1)))
    del graph.output[:]
    graph.output.extend(outputs)


class OnnxFileSource(Source):
    """A team's ONNX file with its task map, its outputs checked and adapted to the roles."""

    parity_inputs = ["random", "image-like (reference: the brought ONNX file in ONNX Runtime, roles applied)"]
    parity_subject = "the per-task graphs differ from the ONNX file"

    def __init__(self, path: Path, map_path: Path, prep: Preprocessing, wanted: Sequence[str] | None):
        task_map, listed = read_task_map(map_path)
        try:
            model = onnx.load(str(path))
        except (onnx.onnx_cpp2py_export.checker.ValidationError, OSError, ValueError) as exc:
            raise BroughtModelError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0][:200]})") from None
        image = image_input(model, task_map, path)
        positions = {s.task_id: i for i, s in enumerate(listed)}
        missing = sorted(set(wanted or []) - set(positions))
        if missing:
            raise BroughtUsageError(f"--tasks {', '.join(missing)}: not in the task map (it has: {', '.join(positions)})")
        specs = [s for s in listed if not wanted or s.task_id in wanted]
        self.original = OriginalFile(path, task_map, specs, image)
        self.adapters, ranks = self.check_outputs(specs, prep)
        add_roles(model, task_map, specs, image, self.adapters, ranks)
        self.model = model
        conditioned = bool(task_map.task_index_input)
        config = ModelConfig(architecture=ONNX_ARCHITECTURE, encoder_name=path.name, tasks=specs, preprocessing=prep,
                             params={"conditioned": conditioned,
                                     "task_positions": json.dumps({s.task_id: positions[s.task_id] for s in specs})})
        super().__init__(config, split_task_entries(specs, positions if conditioned else None), network=None)

    def check_outputs(self, specs: list[TaskSpec], prep: Preprocessing) -> tuple[dict[str, str], dict[str, int]]:
        """Every task's raw output fits its kind at batch 2 and 8: (task -> adapter name, task -> raw rank)."""
        height, width = prep.input_size
        ranks: dict[str, int] = {}
        for batch in (2, 8):
            raw = self.original.run(random_batch(batch, prep, seed=batch), 0)
            for spec in specs:
                try:
                    check_output(spec, tuple(raw[spec.task_id].shape), batch)
                except ByomError as exc:
                    raise BroughtModelError(f"{exc} (input {batch} x 3 x {height} x {width}; check --input-size)") from None
                ranks[spec.task_id] = raw[spec.task_id].ndim
        return {s.task_id: spec_of(s.kind).raw_adapter(ranks[s.task_id]) for s in specs}, ranks

    def layout(self, scratch: Path) -> SplitGraphs:
        whole = scratch / "whole.onnx"
        onnx.save(self.model, str(whole))
        return SplitGraphs(whole, self.tasks)

    def reference(self, label: str, batch: np.ndarray, tasks: Sequence[TaskEntry]) -> dict[str, np.ndarray]:
        return {t.output_tensor: NUMPY_ADAPTERS[self.adapters[t.task_id]](self.original.run(batch, t.task_index or 0)[t.task_id])
                for t in tasks}
