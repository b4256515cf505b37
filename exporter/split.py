"""The split layout: one whole ONNX graph -> one pruned graph per task, all reading one shared weights file.

    graphs/<task_id>.onnx    the task's part of the whole graph (image[, task_index] -> <task_id>.<role>)
    graphs/weights.bin       every weight once, shared by all task graphs (ONNX external data)
    fp16/graphs/..., int8/graphs/...   the variants of the whole graph, split the same way

The whole model is exported once (every task's output, ``image`` and, for
task-conditioned models, ``task_index`` as inputs). Each task's graph keeps only
the nodes its output depends on (backward reachability from that output), so a
classification image never runs a segmentation decoder. Initializers of 128 bytes or
more are written once to ``<folder>/weights.bin`` and every task graph refers to
them as ONNX external data (location, offset, length); ONNX Runtime resolves the
location relative to the graph file, so the graphs and the weights file share a
folder. Smaller initializers (shapes, scalars) stay inside each graph.

fp16 and int8 convert the whole graph (``exporter.convert``; int8 calibrated over every
task's index in turn for a task-conditioned graph), then split it like fp32.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Sequence

import onnx
import torch
from onnx import numpy_helper
from onnx.external_data_helper import set_external_data
from torch import nn

import numpy as np

from contract.manifest import IMAGE_INPUT, GraphFile, GraphSet, TaskEntry
from exporter.convert import prepare_int8, quantize_int8, to_fp16
from exporter.errors import ExportError
from exporter.graphs import BATCH_AXIS, OPSET, drop_initializer_inputs, graph_file
from inference.engines.feeds import TASK_INDEX_INPUT

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.bin"
GRAPH_FOLDER = "graphs"
EXTERNAL_THRESHOLD = 128  # smaller ones (shapes, scalars) stay inside each graph
ALIGN_LARGE, LARGE = 4096, 65536  # page-aligned offsets let ONNX Runtime map large weights instead of copying them
ALIGN_SMALL = 64


def export_whole(wrapper: nn.Module, args: tuple[torch.Tensor, ...], input_names: list[str],
                 output_names: list[str], path: Path) -> None:
    """torch.onnx.export of the whole wrapper (TorchScript exporter, opset 17, dynamic batch, names kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper, args, str(path), dynamo=False, opset_version=OPSET,
                input_names=input_names, output_names=output_names,
                dynamic_axes={name: {0: BATCH_AXIS} for name in [*input_names, *output_names]},
                do_constant_folding=False, training=torch.onnx.TrainingMode.EVAL,
                keep_initializers_as_inputs=True,
            )
        except (torch.onnx.errors.OnnxExporterError, RuntimeError, TypeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ExportError(f"torch.onnx.export failed on the model: {first}") from exc
    drop_initializer_inputs(path)


def _names_read(node: onnx.NodeProto) -> set[str]:
    """Tensor names a node reads, including those its subgraphs (If/Loop bodies) read from outside."""
    names = {name for name in node.input if name}
    for attribute in node.attribute:
        graphs = list(attribute.graphs) + ([attribute.g] if attribute.HasField("g") else [])
        for graph in graphs:
            for inner in graph.node:
                names |= _names_read(inner)
    return names


def prune(model: onnx.ModelProto, outputs: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` with only the nodes, initializers and inputs ``outputs`` depend on."""
    graph = model.graph
    needed = set(outputs)
    kept_nodes = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            kept_nodes.append(node)
            needed |= _names_read(node)
    kept_nodes.reverse()
    pruned = onnx.helper.make_graph(
        nodes=kept_nodes,
        name=f"{graph.name}:{'+'.join(outputs)}",
        inputs=[i for i in graph.input if i.name in needed],
        outputs=[o for name in outputs for o in graph.output if o.name == name],
        initializer=[init for init in graph.initializer if init.name in needed],
        value_info=[v for v in graph.value_info if v.name in needed],
    )
    result = onnx.helper.make_model(pruned, opset_imports=list(model.opset_import), producer_name=model.producer_name)
    result.ir_version = model.ir_version
    return result


def write_weights(model: onnx.ModelProto, path: Path) -> dict[str, tuple[int, int]]:
    """Write every initializer of >= 128 bytes once to ``path``; name -> (offset, length)."""
    places: dict[str, tuple[int, int]] = {}
    offset = 0
    with open(path, "wb") as handle:
        for init in model.graph.initializer:
            raw = numpy_helper.from_array(numpy_helper.to_array(init)).raw_data
            if len(raw) < EXTERNAL_THRESHOLD or init.name in places:
                continue
            padding = -offset % (ALIGN_LARGE if len(raw) >= LARGE else ALIGN_SMALL)
            handle.write(b"\0" * padding)
            offset += padding
            handle.write(raw)
            places[init.name] = (offset, len(raw))
            offset += len(raw)
    return places


def _refer_to_weights(model: onnx.ModelProto, places: dict[str, tuple[int, int]]) -> None:
    for init in model.graph.initializer:
        if init.name not in places:
            continue
        array = numpy_helper.to_array(init)
        fresh = numpy_helper.from_array(array, init.name)
        init.CopyFrom(fresh)
        offset, length = places[init.name]
        set_external_data(init, location=WEIGHTS_FILE, offset=offset, length=length)
        init.data_location = onnx.TensorProto.EXTERNAL
        init.ClearField("raw_data")


def split_per_task(model: onnx.ModelProto, outputs_by_task: dict[str, list[str]], model_dir: Path,
                   prefix: str = "") -> dict[str, GraphFile]:
    """Write ``<prefix>graphs/<task>.onnx`` for every task and ``<prefix>graphs/weights.bin``; task -> GraphFile."""
    folder = Path(model_dir) / prefix / GRAPH_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    places = write_weights(model, folder / WEIGHTS_FILE)
    graphs: dict[str, GraphFile] = {}
    for task_id, outputs in outputs_by_task.items():
        task_model = prune(model, outputs)
        _refer_to_weights(task_model, places)
        relpath = f"{prefix}{GRAPH_FOLDER}/{task_id}.onnx"
        onnx.save(task_model, str(Path(model_dir) / relpath))
        try:
            onnx.checker.check_model(str(Path(model_dir) / relpath))
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"{relpath}: onnx checker rejected the task graph: {str(exc).splitlines()[0]}") from exc
        graphs[task_id] = graph_file(model_dir, relpath)
        log.info("%s: %d of %d nodes", relpath, len(task_model.graph.node), len(model.graph.node))
    return graphs



class SplitGraphs:
    """The split layout of a whole graph (``whole``: a file under a scratch folder) serving ``tasks``."""

    def __init__(self, whole: Path, tasks: Sequence[TaskEntry]):
        self.whole, self.tasks = whole, list(tasks)
        self.outputs = {t.task_id: [t.output_tensor] for t in self.tasks}

    def write_fp32(self, stage_dir: Path) -> dict[str, GraphFile]:
        return split_per_task(onnx.load(str(self.whole)), self.outputs, stage_dir)

    def groups(self, tasks: Sequence[TaskEntry]) -> list[list[TaskEntry]]:
        """Checks run one task at a time: each holds one task's weights and arena only."""
        return [[task] for task in tasks]

    def write_fp16(self, stage_dir: Path, fp32: GraphSet, block: Sequence[str]) -> dict[str, GraphFile]:
        converted = self.whole.with_name("whole.fp16.onnx")
        to_fp16(self.whole, converted, block)
        return split_per_task(onnx.load(str(converted)), self.outputs, stage_dir, prefix="fp16/")

    def write_int8(self, stage_dir: Path, fp32: GraphSet, batches: list[np.ndarray]) -> dict[str, GraphFile]:
        """Static QDQ int8 of the whole graph, calibrated on every batch (each task's index in turn)."""
        batches = batches * max(1, -(-len(self.tasks) // max(len(batches), 1)))
        inputs = [i.name for i in onnx.load(str(self.whole), load_external_data=False).graph.input]
        feeds = []
        for i, batch in enumerate(batches):
            feed = {IMAGE_INPUT: batch}
            if TASK_INDEX_INPUT in inputs:
                position = [t.task_index for t in self.tasks][i % len(self.tasks)]
                feed[TASK_INDEX_INPUT] = np.full((len(batch),), position, dtype=np.int64)
            feeds.append(feed)
        converted, prepared = self.whole.with_name("whole.int8.onnx"), self.whole.with_name("prepared.onnx")
        prepare_int8(self.whole, prepared)
        quantize_int8(prepared, converted, feeds)
        return split_per_task(onnx.load(str(converted)), self.outputs, stage_dir, prefix="int8/")
